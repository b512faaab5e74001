#!/usr/bin/env bash
# test_pg_apply.sh - core/pg.c against a throwaway PostgreSQL: runs tests/pg_apply_check.c,
# which prints one "ok"/"FAIL" line per check, and reports each line as a check here.
set -u
source "$(dirname "$0")/lib.sh"

prog=$SHARDED_BUILD_DIR/tests/pg_apply_check
[[ -x $prog ]] || die "no $prog: build the pg_apply_check target first"

setup_tmp
start_postgres

out=$(timeout 120 "$prog" "$PG_CONNINFO" 2>"$T/pg_apply_check.err")
rc=$?
while IFS= read -r line; do
  case $line in
    "ok - "*) check "${line#ok - }" true ;;
    "FAIL - "*) check "${line#FAIL - }" false ;;
  esac
done <<<"$out"
check_eq "pg_apply_check exit status" 0 "$rc"
((rc == 0)) || show_log "$T/pg_apply_check.err" 40
if report=$(sanitizer_report "$T/pg_apply_check.err"); then
  check_eq "no sanitizer report" "" "$report"
fi
finish
