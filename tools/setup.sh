#!/usr/bin/env bash
# Installs what gattn needs to build and test on a Debian/Ubuntu machine: the compiler tools
# and the libraries it links (cJSON, stb, PCRE2, utf8proc), all Debian packages, the font the
# heatmaps are labelled in (fonts-dejavu-core; without it viz uses a bitmap font), plus the
# independent reference tokenizer the tests compare against (npm, cached under .cache/).
# Idempotent: does nothing that is already done. Needs root (or sudo) only to install.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="build-essential cmake ninja-build pkg-config libcjson-dev libstb-dev libpcre2-dev libutf8proc-dev"
PKGS="$PKGS fonts-dejavu-core" # the heatmaps' anti-aliased text (src/viz/font.c)
PKGS="$PKGS clang"             # the libFuzzer harnesses (tools/fuzz.sh)
PKGS="$PKGS libmicrohttpd-dev curl" # gattn serve (src/server) and its raw-HTTP tests
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# libFuzzer is in compiler-rt, which clang only recommends (Debian: libclang-rt-N-dev).
if command -v clang >/dev/null 2>&1 && [ ! -f "$(clang -print-file-name=libclang_rt.fuzzer-$(uname -m).a)" ]; then
  rt="libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
  if apt-cache show "$rt" >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "setup: installing $rt"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$rt" >/dev/null
  fi
fi

# --- reference tokenizer (tests only) ---
if [ -x tools/tokref/setup.sh ]; then
  tools/tokref/setup.sh
fi
# --- the official openai client (gattn serve's tests only) ---
if [ -x tools/openai/setup.sh ]; then
  tools/openai/setup.sh
fi
echo "setup: ok"
