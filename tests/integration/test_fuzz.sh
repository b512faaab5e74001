#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz/fuzz_*.c): each is built with clang under ASan+UBSan
# together with core/, into $SHARDED_BUILD_DIR/fuzz/, and run for FUZZ_SECONDS (default 40) on
# a copy of its seed corpus (tests/fuzz/corpus/<target>/) with the seed FUZZ_SEED (default 1).
# A crash, a leak, a UBSan report, a failed property (abort) or an input slower than
# FUZZ_INPUT_TIMEOUT seconds fails the test;
# the input that did it is kept as $SHARDED_BUILD_DIR/fuzz/<target>-crash-* to replay with
# "$SHARDED_BUILD_DIR/fuzz/<target> FILE". No servers, no mount.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${FUZZ_SECONDS:=40}"
: "${FUZZ_INPUT_TIMEOUT:=25}"
# a fixed seed makes a run the same sequence of inputs each time, cut only by the clock: what a
# longer run with this seed found clean stays clean in CI. FUZZ_SEED=0 lets libFuzzer pick one.
: "${FUZZ_SEED:=1}"
TARGETS=(fuzz_path fuzz_doc)
OUT=$SHARDED_BUILD_DIR/fuzz
SRC=$SHARDED_SOURCE_DIR

# clang and its fuzzer runtime come with tools/deps.sh: without them this is a failure, not a skip
command -v clang >/dev/null || die "clang not found: run tools/deps.sh (packages clang, libclang-rt-14-dev)"
[[ -f $SHARDED_BUILD_DIR/version.h ]] || die "no $SHARDED_BUILD_DIR/version.h: configure the build first"

# as setup_tmp, without its need for root
T=$(mktemp -d "${TMPDIR:-/tmp}/sharded-fuzz.XXXXXX")
export T
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
mkdir -p "$OUT"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# build TARGET: the target and every core source, instrumented, into $OUT/TARGET.
build() {
  local flags
  flags=$(pkg-config --cflags --libs sqlite3 hiredis libpq json-c)
  # shellcheck disable=SC2086 # flags is a word list
  clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -fno-omit-frame-pointer -D_GNU_SOURCE -Wall -Wextra -Werror \
    -I"$SRC/core" -I"$SHARDED_BUILD_DIR" "$SRC/tests/fuzz/$1.c" "$SRC"/core/*.c \
    $flags -lpthread -lm -o "$OUT/$1"
}

# fuzz TARGET: FUZZ_SECONDS on a copy of its seeds; on failure, the report first.
fuzz() {
  local t=$1 rc=0
  rm -f "$OUT/$t"-crash-* "$OUT/$t"-leak-* "$OUT/$t"-timeout-* "$OUT/$t"-oom-*
  mkdir -p "$T/corpus"
  cp -r "$SRC/tests/fuzz/corpus/$t" "$T/corpus/$t"
  timeout $((FUZZ_SECONDS + 120)) "$OUT/$t" -max_total_time="$FUZZ_SECONDS" \
    -timeout="$FUZZ_INPUT_TIMEOUT" -seed="$FUZZ_SEED" -print_final_stats=1 \
    -artifact_prefix="$OUT/$t-" "$T/corpus/$t" >"$T/$t.log" 2>&1 || rc=$?
  if ((rc != 0)); then
    grep -E "^$t: |ERROR: |SUMMARY: |runtime error: |Test unit written" "$T/$t.log" || true
    tail -n 40 "$T/$t.log"
    return "$rc"
  fi
}

# stats TARGET: runs, coverage and speed from libFuzzer's last line.
stats() {
  local last
  last=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$T/$1.log" | tail -n 1) || true
  log "$1: ${last:-no final line from libFuzzer}"
}

for t in "${TARGETS[@]}"; do
  check "build $t with clang, ASan+UBSan and libFuzzer" build "$t"
  if ((CHECK_RC == 0)); then
    check "run $t for ${FUZZ_SECONDS} s on its seed corpus: no crash, leak or UBSan report" fuzz "$t"
    stats "$t"
  fi
done
finish
