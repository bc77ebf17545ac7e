# Shared harness of the CLI script tests, sourced as `. cli_harness.sh TAG`: the gattn binary
# in $G, a scratch folder $T removed on exit, pass/fail counters with ok/bad, expect_fail, and
# finish (the closing "N passed, N failed" line and the exit status).
set -u
G=${GA_CLI:?GA_CLI must point at the gattn binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/gattn-${1:-cli}-XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect_fail NEEDLE cmd...: a nonzero exit that is not a signal (>= 128 would be a crash),
# exactly one stderr line containing NEEDLE, and nothing on stdout.
expect_fail() {
  local needle=$1; shift
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  local lines
  lines=$(wc -l <"$T/err")
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then bad "exit $rc: $*"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$lines stderr lines: $* :: $(cat "$T/err")"; return; fi
  if ! grep -qF -- "$needle" "$T/err"; then bad "stderr lacks '$needle': $(cat "$T/err")"; return; fi
  if [ -s "$T/out" ]; then bad "stdout not empty: $*"; return; fi
  ok
}

# expect_exit CODE NEEDLE cmd...: as expect_fail, and the exit code is CODE (1 runtime failure,
# 2 usage error: the scheme every subcommand follows).
expect_exit() {
  local code=$1; shift
  local before=$fail
  expect_fail "$@"
  [ $fail -ne $before ] && return
  "${@:2}" >/dev/null 2>&1
  local rc=$?
  if [ $rc -ne "$code" ]; then pass=$((pass - 1)); bad "exit $rc, want $code: ${*:2}"; fi
}

# expect_stdout_error cmd...: with stdout on /dev/full the command must fail (exit 1) with one
# stderr line about stdout, instead of reporting success.
expect_stdout_error() {
  "$@" >/dev/full 2>"$T/err"
  local rc=$?
  # one error line (bench also reports its rows on stderr as they finish)
  if [ $rc -ne 1 ] || ! grep -q "cannot write to stdout" "$T/err" || [ "$(grep -c ': error: ' "$T/err")" -ne 1 ]; then
    bad "stdout on /dev/full: exit $rc: $* :: $(cat "$T/err")"
  else
    ok
  fi
}

finish() {
  echo "$pass passed, $fail failed"
  [ $fail -eq 0 ]
}
