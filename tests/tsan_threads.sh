#!/usr/bin/env bash
# tsan.threads: build the threaded unit tests with ThreadSanitizer (-DTSAN=ON) in a build tree
# of their own and run them; any report of a data race, a lock-order inversion or a misused
# lock fails the test (halt_on_error). Usage: tsan_threads.sh SOURCE_DIR BUILD_DIR [CC]
set -euo pipefail

src=$1 build=$2 cc=${3:-cc}
tests=(test_threads)	# the unit tests that start threads

cmake -S "$src" -B "$build" -DTSAN=ON -DSANITIZE=OFF -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$build" -j2 --target "${tests[@]}"

export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 history_size=4"
unset ASAN_OPTIONS UBSAN_OPTIONS
for t in "${tests[@]}"; do
  echo "== $t under ThreadSanitizer"
  "$build/tests/$t"
done
