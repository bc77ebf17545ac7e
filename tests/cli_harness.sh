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

finish() {
  echo "$pass passed, $fail failed"
  [ $fail -eq 0 ]
}
