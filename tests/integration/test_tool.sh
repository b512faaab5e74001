#!/usr/bin/env bash
# The sharded tool against a real mount, PostgreSQL and Redis: dead letters (list, retry, drop),
# status, cleanup of Redis leftovers, invalidate, usage errors and --help.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHARDED=$SHARDED_BUILD_DIR/sharded
[[ -x $SHARDED ]] || die "no $SHARDED: build first"

# tool ARGS...: the tool on this test's data directory and Redis. Its stderr is shown and also
# collected in $T/tool.err, checked for sanitizer reports at the end.
tool() {
  local rc=0
  timeout 60 "$SHARDED" --data "$DATA" --redis "$REDIS_URL" "$@" 2>"$T/tool.last" || rc=$?
  cat "$T/tool.last" >&2
  cat "$T/tool.last" >>"$T/tool.err"
  return $rc
}

# status_of ARGS...: the exit status of ARGS, output discarded.
status_of() {
  local rc=0
  "$@" >/dev/null 2>&1 || rc=$?
  echo "$rc"
}

# stderr_of ARGS...: what ARGS printed on stderr.
stderr_of() { { "$@" 2>&1 >/dev/null || true; } | head -n 5; }

sync_status() { timeout 10 sed -n "s/^$2 //p" "$MNT/$1/sync-status"; }
dead_is() { [[ $(sync_status "$1" dead) == "$2" ]]; }
pending_is_zero() { [[ $(sync_status "$1" pending) == 0 ]]; }
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }
xlen() { redis_cli XLEN "$1"; }
key_exists() { redis_cli EXISTS "$1"; }
put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
tool_status_field() { tool status --json | jq -r --arg b "$1" ".[] | select(.block == \$b) | .$2"; }
tool_pending_zero() { [[ $(tool_status_field "$1" pending) == 0 ]]; }

setup_tmp
start_postgres
load_sample_schema
start_redis
mount_sharded
: >"$T/tool.err"

require "mkdir M/u1" mkdir "$MNT/u1"

# --- a dead letter: list, retry ---------------------------------------------------------------
check "write an order of a user that does not exist" \
  bash -c "echo '{\"userId\":424242,\"total\":1}' > '$MNT/u1/Order/9001.json'"
require "the write becomes a dead letter (sync-status dead 1)" \
  wait_for 20 grep -qx 'dead 1' "$MNT/u1/sync-status"

list=$(tool dlq list u1 2>&1) || true
check "dlq list shows the order (a create: C)" grep -Eq '^[0-9]+-[0-9]+ +[0-9]+ +C +Order +9001 ' <<<"$list"
check "dlq list shows the foreign key error" grep -q 'foreign key' <<<"$list"
check_eq "dlq list has a header and one line" 2 "$(wc -l <<<"$list")"
json=$(tool dlq list u1 --json 2>&1) || true
check "dlq list --json parses and holds the dead letter with its document" jq -e '
  length == 1 and .[0].model == "Order" and .[0].pk == "9001" and .[0].op == "C"
  and (.[0].error | test("foreign key")) and .[0].doc.userId == 424242
  and (.[0].id | test("^[0-9]+-[0-9]+$")) and .[0].seq > 0' <<<"$json"
check_eq "the order is not in postgresql" 0 "$(psql_q 'select count(*) from "Order" where id = 9001')"

check "create the missing user in postgresql" \
  psql_q "insert into \"User\"(id, email) values (424242, 'late@example.com')"
check "dlq retry u1" tool dlq retry u1
check "the retried order reaches postgresql" \
  wait_for 20 pg_is 1 'select count(*) from "Order" where id = 9001 and "userId" = 424242'
check_eq "the dead stream is empty" 0 "$(xlen 'sharded:{u1}:dead')"
check "sync-status shows dead 0" wait_for 10 dead_is u1 0
check_eq "dlq list --json is an empty array" "[]" "$(tool dlq list u1 --json)"

# --- drop: all, and by id; retry by id --------------------------------------------------------
check "write a second bad order" \
  bash -c "echo '{\"userId\":525252}' > '$MNT/u1/Order/9002.json'"
check "it becomes a dead letter" wait_for 20 dead_is u1 1
check "dlq drop u1 --all" tool dlq drop u1 --all
check_eq "the dropped dead letter is gone from the stream" 0 "$(xlen 'sharded:{u1}:dead')"
check "sync-status shows dead 0 after the drop" wait_for 10 dead_is u1 0
check_eq "the dropped order never reached postgresql" 0 \
  "$(psql_q 'select count(*) from "Order" where id = 9002')"

check "write two bad orders" bash -c \
  "echo '{\"userId\":626262}' > '$MNT/u1/Order/9003.json' && echo '{\"userId\":626262}' > '$MNT/u1/Order/9004.json'"
check "both become dead letters" wait_for 20 dead_is u1 2
ids=$(tool dlq list u1 --json | jq -r '.[] | "\(.pk) \(.id)"' 2>/dev/null) || true
id3=$(awk '$1 == 9003 {print $2}' <<<"$ids")
id4=$(awk '$1 == 9004 {print $2}' <<<"$ids")
check "dlq list --json gives both ids" test -n "$id3" -a -n "$id4"
check_eq "dlq drop of an unknown id fails (1) and drops nothing" 1 \
  "$(status_of tool dlq drop u1 "$id3" 1-0)"
check_eq "still two dead letters" 2 "$(xlen 'sharded:{u1}:dead')"
check "dlq drop u1 ID drops one" tool dlq drop u1 "$id3"
check_eq "one dead letter left" 1 "$(xlen 'sharded:{u1}:dead')"
check "the one left is 9004" grep -q '"pk":"9004"' <<<"$(tool dlq list u1 --json)"
check "sync-status shows dead 1" wait_for 10 dead_is u1 1
psql_q "insert into \"User\"(id, email) values (626262, 'later@example.com')" >/dev/null
check "dlq retry u1 ID" tool dlq retry u1 "$id4"
check "order 9004 reaches postgresql" \
  wait_for 20 pg_is 1 'select count(*) from "Order" where id = 9004'
check_eq "order 9003 (dropped) does not" 0 "$(psql_q 'select count(*) from "Order" where id = 9003')"
check "sync-status shows dead 0 again" wait_for 10 dead_is u1 0
check_eq "retry of a block without a file fails (1)" 1 "$(status_of tool dlq retry nosuch)"
check "... saying which block" grep -q "no block 'nosuch'" <<<"$(stderr_of tool dlq retry nosuch)"

# --- status -------------------------------------------------------------------------------------
check "status lists u1 with pending 0" wait_for 15 bash -c \
  "'$SHARDED' --data '$DATA' status | awk '\$1 == \"u1\" {found = 1; p = \$2} END {exit !(found && p == 0)}'"
st=$(tool status 2>&1) || true
check "status has the header" grep -Eq '^block +pending +applied +dead +records +lag_ms +last_sync$' <<<"$st"
# applied: the two retried orders (9001, 9004); the four dead letters are not applied writes
check "status --json parses, u1 has pending 0 and applied writes" jq -e '
  (map(select(.block == "u1")) | length == 1) and
  (.[] | select(.block == "u1") | .pending == 0 and .applied == 2 and .dead == 0 and .last_sync > 0)' \
  <<<"$(tool status --json)"
check_eq "status u1 --json gives one block" u1 "$(tool status u1 --json | jq -r '.[0].block')"
check_eq "status of an unknown block fails (1)" 1 "$(status_of tool status nosuch)"

# --- cleanup --------------------------------------------------------------------------------
require "mkdir M/b2" mkdir "$MNT/b2"
check "write a record in b2" put "$MNT/b2/User/7001.json" '{"id":7001,"email":"b2@example.com"}'
check "write a bad order in b2" put "$MNT/b2/Order/7002.json" '{"userId":727272}'
check "b2 gets a dead letter" wait_for 20 dead_is b2 1
check "b2 has nothing pending" wait_for 20 pending_is_zero b2
check "rmdir M/b2" rmdir "$MNT/b2"
check_eq "b2's dead stream is still there" 1 "$(key_exists 'sharded:{b2}:dead')"
# leftovers of a block that never existed here (written long ago: an id from 1970), a block
# another node holds (a fresh entry: it may still be needed), and a key that is not a stream
redis_cli XADD 'sharded:{ghost}:ops' 1000-1 seq 1 base 0 op D model User pk 1 >/dev/null
redis_cli XADD 'sharded:{elsewhere}:ops' '*' seq 1 base 0 op D model User pk 1 >/dev/null
redis_cli XADD 'sharded:{ghost}:dead' '*' seq 1 op D model User pk 1 error x >/dev/null
redis_cli SET 'sharded:{ghost}:other' x >/dev/null
# a live block whose ops stream holds an acknowledged, a pending and an undelivered entry
require "mkdir M/b3" mkdir "$MNT/b3"
redis_cli XGROUP CREATE 'sharded:{b3}:ops' sharded 0 MKSTREAM >/dev/null
a1=$(redis_cli XADD 'sharded:{b3}:ops' '*' seq 1 base 0 op D model User pk 1)
a2=$(redis_cli XADD 'sharded:{b3}:ops' '*' seq 2 base 0 op D model User pk 2)
a3=$(redis_cli XADD 'sharded:{b3}:ops' '*' seq 3 base 0 op D model User pk 3)
redis_cli XREADGROUP GROUP sharded tester COUNT 2 STREAMS 'sharded:{b3}:ops' '>' >/dev/null
redis_cli XACK 'sharded:{b3}:ops' sharded "$a1" >/dev/null

dry=$(tool cleanup --dry-run 2>&1) || true
check "cleanup --dry-run reports an acknowledged entry to remove" \
  grep -Eq '^[1-9][0-9]* acknowledged stream entries to remove' <<<"$dry"
check_eq "cleanup --dry-run removes nothing (ghost ops)" 1 "$(key_exists 'sharded:{ghost}:ops')"
check_eq "cleanup --dry-run removes nothing (b3 entries)" 3 "$(xlen 'sharded:{b3}:ops')"

rc=0
out=$(tool cleanup 2>&1) || rc=$?
check_eq "cleanup exits 0" 0 "$rc"
check "cleanup reports what it did" grep -q 'ops streams of deleted blocks removed' <<<"$out"
check "cleanup says it kept dead-letter streams" grep -q 'kept (--include-dead removes them)' <<<"$out"
check_eq "the ops stream of the removed block b2 is gone" 0 "$(key_exists 'sharded:{b2}:ops')"
check_eq "the ops stream of ghost is gone" 0 "$(key_exists 'sharded:{ghost}:ops')"
check_eq "another node's fresh stream is kept" 1 "$(key_exists 'sharded:{elsewhere}:ops')"
check "cleanup says it kept it" grep -q '^1 ops streams of blocks without a file kept' <<<"$out"
check_eq "b2's dead stream is kept without --include-dead" 1 "$(key_exists 'sharded:{b2}:dead')"
check_eq "u1's ops stream is kept" 1 "$(key_exists 'sharded:{u1}:ops')"
check_eq "u1's dead stream is kept" 1 "$(key_exists 'sharded:{u1}:dead')"
check_eq "b3: only the acknowledged entry is removed" "$a2 $a3" \
  "$(redis_cli XRANGE 'sharded:{b3}:ops' - + | grep -E '^[0-9]+-[0-9]+$' | tr '\n' ' ' | sed 's/ $//')"
check_eq "b3: the pending entry is still pending" 1 \
  "$(redis_cli XPENDING 'sharded:{b3}:ops' sharded | head -n 1)"
check "cleanup --include-dead" tool cleanup --include-dead
check_eq "b2's dead stream is gone with --include-dead" 0 "$(key_exists 'sharded:{b2}:dead')"
check_eq "ghost's dead stream is gone with --include-dead" 0 "$(key_exists 'sharded:{ghost}:dead')"
check_eq "a key that is not a stream is left alone" 1 "$(key_exists 'sharded:{ghost}:other')"
check_eq "u1's dead stream is still kept" 1 "$(key_exists 'sharded:{u1}:dead')"
check "the mount still syncs after cleanup" put "$MNT/u1/User/8001.json" '{"id":8001,"email":"e@example.com"}'
check "... to postgresql" wait_for 20 pg_is 1 'select count(*) from "User" where id = 8001'
check_eq "cleanup of a missing data directory fails (1)" 1 \
  "$(status_of "$SHARDED" --data "$T/nope" --redis "$REDIS_URL" cleanup)"

# --- progress: a bar on a terminal, nothing of it in a file ---------------------------------------
ghosts() {   # ghosts N: N ops streams of blocks that have no file, for cleanup to remove
  local i
  for ((i = 1; i <= $1; i++)); do
    redis_cli XADD "sharded:{pghost$i}:ops" 1000-1 seq 1 base 0 op D model User pk 1 >/dev/null
  done
}
ghosts 12
rc=0
timeout 60 script -qec "'$SHARDED' --data '$DATA' --redis '$REDIS_URL' cleanup" /dev/null \
  >"$T/tty.out" 2>&1 </dev/null || rc=$?
check_eq "cleanup on a terminal exits 0" 0 "$rc"
check "on a terminal it draws a progress bar (\\r, bar, count)" \
  grep -Eq $'\rcleaning up \\[[#.]{30}\\] [0-9]+/[0-9]+' "$T/tty.out"
check "the bar moves: it is redrawn several times" \
  test "$(grep -o $'\rcleaning up \\[' "$T/tty.out" | wc -l)" -gt 3
check "the bar ends full" grep -Eq $'\\[#{30}\\] ([0-9]+)/\\1' "$T/tty.out"
check_eq "the ghost streams are gone" 0 "$(redis_cli --scan --pattern 'sharded:{pghost*' | wc -l)"
ghosts 12
set +e
timeout 60 "$SHARDED" --data "$DATA" --redis "$REDIS_URL" cleanup 2>&1 </dev/null | cat >"$T/file.out"
rc=${PIPESTATUS[0]}
set -e
check_eq "cleanup piped into a file exits 0" 0 "$rc"
check_eq "piped: no \\r anywhere" 0 "$(tr -cd '\r' <"$T/file.out" | wc -c)"
check "piped: no bar" bash -c "! grep -q 'cleaning up \\[' '$T/file.out'"
check "piped: the summary is still there" grep -q 'ops streams of deleted blocks removed' "$T/file.out"
check_eq "the ghost streams are gone again" 0 "$(redis_cli --scan --pattern 'sharded:{pghost*' | wc -l)"

# --- invalidate -------------------------------------------------------------------------------
check "u1 holds records" test "$(tool_status_field u1 records)" -gt 0
check "invalidate u1 --mount M" tool invalidate u1 --mount "$MNT"
check "invalidate dropped every synced record of u1" \
  wait_for 10 bash -c "[[ \$('$SHARDED' --data '$DATA' status u1 --json | jq '.[0].records') == 0 ]]"
check "the record still reads (from postgresql)" jq -e '.id == 8001' "$MNT/u1/User/8001.json"
check_eq "invalidate of a directory that is not a mount fails (1)" 1 \
  "$(status_of tool invalidate u1 --mount "$T")"
check "... with a clear message" grep -q "no sharded filesystem is mounted at '$T'" \
  <<<"$(stderr_of tool invalidate u1 --mount "$T")"
check_eq "invalidate of an unknown block fails (1)" 1 "$(status_of tool invalidate nosuch --mount "$MNT")"
check "... naming the block" grep -q "no block 'nosuch'" \
  <<<"$(stderr_of tool invalidate nosuch --mount "$MNT")"

# --- usage errors, invalid ids, help ----------------------------------------------------------
for args in "" "bogus" "status --bogus" "status a b" "dlq" "dlq frob u1" "dlq list" \
  "dlq drop u1" "dlq drop u1 --all 1-0" "dlq retry u1 notanid" "dlq retry u1 --all" \
  "cleanup extra" "cleanup --json" "invalidate" "invalidate u1" "--data"; do
  # shellcheck disable=SC2086
  check_eq "usage error exits 2: sharded $args" 2 "$(status_of "$SHARDED" $args)"
done
check "a usage error is one line on stderr" \
  bash -c "[[ \$('$SHARDED' bogus 2>&1 >/dev/null | wc -l) == 1 ]]"
for cmd in "dlq list" "dlq retry" "dlq drop" "status"; do
  # shellcheck disable=SC2086
  check "an invalid block id fails: sharded $cmd ../x" test "$(status_of tool $cmd ../x)" != 0
  # shellcheck disable=SC2086
  check "... with a message naming it: $cmd" grep -q "'../x'" <<<"$(stderr_of tool $cmd ../x)"
done
check "no file was created outside the data directory" test ! -e "$T/x.sqlite"
for cmd in "" status dlq "dlq list" "dlq retry" "dlq drop" cleanup invalidate generate; do
  # shellcheck disable=SC2086
  check "sharded $cmd --help exits 0 with its usage" help_ok '^usage: sharded' "$SHARDED" $cmd --help
done
check "sharded help exits 0 with the usage" help_ok '^usage: sharded' "$SHARDED" help
check "sharded bench --help exits 0 with sharded-bench's usage" \
  help_ok '^usage: sharded-bench' "$SHARDED" bench --help
check "mount.sharded --help exits 0 with its usage" \
  help_ok '^usage: .*mount.sharded' "$SHARDED_BUILD_DIR/mount.sharded" --help
check "sharded --version exits 0" help_ok '^sharded ' "$SHARDED" --version
check "a password in --redis is never printed (unreachable)" bash -c \
  "! '$SHARDED' --redis redis://:hunter2@127.0.0.1:1 dlq list u1 2>&1 | grep -q hunter2"
check "a password in --redis is never printed (malformed)" bash -c \
  "! '$SHARDED' --redis http://:hunter2@x dlq list u1 2>&1 | grep -q hunter2"
check_eq "an unreachable redis fails (1)" 1 \
  "$(status_of "$SHARDED" --redis redis://127.0.0.1:1 dlq list u1)"
check_eq "the default data directory comes from \$SHARDED_DATA" u1 \
  "$(SHARDED_DATA=$DATA "$SHARDED" status u1 --json | jq -r '.[0].block')"

# --- takeover: what a consumer that died left pending is claimed (XAUTOCLAIM) -----------------
# With PostgreSQL down the entry stays pending; XCLAIM hands it to another consumer
# ("dead-node", as if a daemon on another host had read it and died) and makes it look idle for
# two minutes. Without the claim it would come back only through the relay's re-send, 30 s
# after it was sent.
require "mkdir M/b5" mkdir "$MNT/b5"
stop_postgres fast
check "claim: a write while PostgreSQL is down" put "$MNT/b5/User/7501.json" '{"id":7501,"email":"b5@example.com"}'
CLAIM_KEY='sharded:{b5}:ops'
in_stream() { [[ $(redis_cli XLEN "$CLAIM_KEY") -ge 1 ]]; }
check "claim: the relay put it in the stream" wait_for 10 in_stream
claim_id=$(redis_cli XRANGE "$CLAIM_KEY" - + | grep -E '^[0-9]+-[0-9]+$' | head -n 1 || true)
check "claim: the entry has an id" test -n "$claim_id"
sleep 1   # the apply thread may be reading it right now: let it fail and leave it pending
redis_cli XCLAIM "$CLAIM_KEY" sharded dead-node 0 "$claim_id" IDLE 120000 FORCE >/dev/null
# pending_of CONSUMER: how many entries are pending on it; "error: ..." when Redis says no
pending_of() {
  local out
  out=$(redis_cli XPENDING "$CLAIM_KEY" sharded - + 10 "$1" 2>&1) || { echo "error: $out"; return; }
  if grep -qE '^(ERR|NOGROUP|WRONGTYPE)' <<<"$out"; then echo "error: $out"; return; fi
  grep -cE '^[0-9]+-[0-9]+$' <<<"$out" || true
}
check_eq "claim: it is pending on dead-node" 1 "$(pending_of dead-node)"
_pg_start
claim_t0=$SECONDS
has_7501() { [[ $(psql_q 'select count(*) from "User" where id = 7501') == 1 ]]; }
check "claim: the write reaches PostgreSQL" wait_for 25 has_7501
claim_s=$((SECONDS - claim_t0))
log "claim: landed ${claim_s} s after PostgreSQL was back"
check "claim: ... within 20 s (claims run every 10 s), so by the claim and not the 30 s re-send" test "$claim_s" -le 20
check_eq "claim: nothing is left pending on dead-node" 0 "$(pending_of dead-node)"
check "claim: b5 has nothing pending" wait_for 15 pending_is_zero b5

# --- the daemon's own periodic cleanup (-o cleanup=SECONDS) -----------------------------------
unmount_sharded || _fail "unmount before the cleanup mount"
mount_sharded cleanup=1
redis_cli XADD 'sharded:{ghost2}:ops' 1000-1 seq 1 base 0 op D model User pk 1 >/dev/null
redis_cli XADD 'sharded:{ghost2}:dead' '*' seq 1 op D model User pk 1 error x >/dev/null
require "mkdir M/b4 (cleanup mount)" mkdir "$MNT/b4"
key_gone() { [[ $(key_exists "$1") == 0 ]]; }
check "cleanup=1: the ops stream of a block without a file goes by itself" \
  wait_for 10 key_gone 'sharded:{ghost2}:ops'
check_eq "cleanup=1: its dead letters stay" 1 "$(key_exists 'sharded:{ghost2}:dead')"
check "cleanup=1: a live block's records still sync" put "$MNT/b4/User/7401.json" '{"id":7401,"email":"b4@example.com"}'
check "cleanup=1: ... and reach PostgreSQL" wait_for 20 pg_is 1 'select count(*) from "User" where id = 7401'
check "cleanup=1: the log says what it removed" grep -q 'periodic cleanup: 1 streams of deleted blocks' "$T/daemon.log"
mkdir -p "$T/m2"
bad_rc=0; timeout 20 "$SHARDED_BUILD_DIR/mount.sharded" -f -o "pg=$PG_URL,redis=$REDIS_URL,data=$T/d2,cleanup=soon" "$T/m2" \
  >"$T/bad.out" 2>&1 </dev/null || bad_rc=$?
check_eq "cleanup=soon is refused with exit 2 (124: it was accepted and ran)" 2 "$bad_rc"
check "... naming the option" grep -q "invalid cleanup 'soon'" "$T/bad.out"

report=""
if report=$(sanitizer_report "$T/tool.err"); then
  _fail "no sanitizer report from the tool" "$report"
else
  _pass "no sanitizer report from the tool"
fi
if unmount_sharded; then _pass "unmount"; else _fail "unmount"; fi
finish
