#!/usr/bin/env bash
# End to end: every step of "what a user must be able to do" (issue 2), with shell tools and
# psql against a real mount, a throwaway PostgreSQL and a throwaway Redis.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# put FILE BODY: write BODY plus "\n" the way a careful program does. tee opens the file
# itself (O_TRUNC, like the shell's >) and reports an error at write() or at close(); the
# shell's own `echo > f` never sees an error that the daemon returns at close().
put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }

# shell_write FILE BODY: exactly what a user types, echo BODY > FILE.
shell_write() { echo "$2" >"$1"; }

# refused FILE BODY: the write must fail with EINVAL ("Invalid argument").
refused() {
  local out rc=0
  out=$(put "$1" "$2" 2>&1) || rc=$?
  if ((rc == 0)); then
    echo "the write was accepted"
    return 1
  fi
  [[ $out == *"Invalid argument"* ]] || { echo "failed, but not with EINVAL: $out"; return 1; }
}

# jq_true FILE FILTER: FILTER evaluates to true on the JSON in FILE.
jq_true() { timeout 10 jq -e "$2" "$1" >/dev/null; }

# pg_is EXPECTED SQL: the query prints exactly EXPECTED.
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }

# status_of KEY: the value of one sync-status line of block B.
status_of() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }
pending_is_zero() { [[ $(status_of pending) == 0 ]]; }

# content FILE: the file's bytes, or <absent>.
content() { timeout 10 cat "$1" 2>/dev/null || echo "<absent>"; }

# snapshot: every sample table, as one line of JSON per row, in a stable order.
snapshot() {
  psql_q 'select json_agg(u order by id) from "User" u' &&
    psql_q 'select json_agg(o order by id) from "Order" o' &&
    psql_q 'select json_agg(e order by id) from "Event" e'
}

epoch() { date -d "$1" +%s; }

setup_tmp
start_postgres
load_sample_schema
start_redis
mount_sharded
B=$MNT/user-1

# --- blocks ----------------------------------------------------------------------------------
require "mkdir M/user-1 creates a block" mkdir "$B"
check "ls M lists user-1" grep -qx user-1 <<<"$(ls "$MNT")"
check "the block has a SQLite file in the data directory" test -f "$DATA/user-1.sqlite"
check_eq "ls M/user-1 shows the tables and the control files" \
  "Event Order User invalidate sync-status ttl" "$(ls "$B" | sort | tr '\n' ' ' | sed 's/ $//')"
check "User is a directory" test -d "$B/User"
check "ttl is a regular file" test -f "$B/ttl"

# --- read-through ----------------------------------------------------------------------------
check_eq "nothing is cached before the first read" 0 \
  "$(sqlite3 "$DATA/user-1.sqlite" "select count(*) from records where model = 'User' and pk = '1'" 2>&1)"
u1=$(content "$B/User/1.json")
check "cat User/1.json prints a JSON object" jq -e 'type == "object"' <<<"$u1"
check_eq "the record is one line" 1 "$(content "$B/User/1.json" | wc -l)"
check_eq "User/1.json matches PostgreSQL (all but created_at)" \
  "$(psql_q 'select row_to_json(u) from "User" u where id = 1' | jq -cS 'del(.created_at)')" \
  "$(jq -cS 'del(.created_at)' <<<"$u1" 2>&1)"
check_eq "id is a number" 1 "$(jq '.id' <<<"$u1")"
check_eq "email" ada@example.com "$(jq -r '.email' <<<"$u1")"
check_eq "active is a boolean" true "$(jq '.active' <<<"$u1")"
check_eq "settings is nested JSON" '{"langs":["en","fr"],"theme":"dark"}' "$(jq -cS '.settings' <<<"$u1")"
check_eq "created_at is the same instant" "$(epoch '2024-01-02 03:04:05+00')" \
  "$(epoch "$(jq -r '.created_at' <<<"$u1")" 2>&1)"
check_eq "the row is now cached in the block's SQLite" 1 \
  "$(sqlite3 "$DATA/user-1.sqlite" "select count(*) from records where model = 'User' and pk = '1'" 2>&1)"
check_eq "Order/10.json: numeric and jsonb" '42.5 book 1' \
  "$(jq -c '[.total, .items[0].sku, .userId] | join(" ")' -r "$B/Order/10.json" 2>&1)"
check_eq "Event/<uuid>.json: uuid, json payload, timestamp" \
  '"0b5e7c1a-3f4d-4a8e-9c2b-7d6e5f4a3b21" true 2024-04-01T09:59:00' \
  "$(jq -r '[(.id | tojson), (.payload.ok | tojson), .happened_at] | join(" ")' \
    "$B/Event/0b5e7c1a-3f4d-4a8e-9c2b-7d6e5f4a3b21.json" 2>&1)"
check_fails "a missing row cannot be read" timeout 10 cat "$B/User/999.json"
check "a missing row is ENOENT" grep -q 'No such file or directory' <<<"$(cat "$B/User/999.json" 2>&1)"
check "test ! -e on a missing row" test ! -e "$B/User/999.json"

# --- write, read back, sync --------------------------------------------------------------------
check "echo '{...}' > User/1001.json succeeds" \
  shell_write "$B/User/1001.json" '{"id":1001,"email":"a@example.com","name":"A"}'
check_eq "1001 reads back at once" a@example.com "$(jq -r .email "$B/User/1001.json" 2>&1)"
check "1001 reaches PostgreSQL within 5 s" \
  wait_for 5 pg_is 'a@example.com|A' 'select email, name from "User" where id = 1001'
check "server defaults appear in the file after the sync" wait_for 5 jq_true "$B/User/1001.json" \
  '.active == true and .settings == {} and (.created_at | type) == "string"'
check_eq "created_at in the file is PostgreSQL's" \
  "$(psql_q 'select extract(epoch from date_trunc($$second$$, created_at))::bigint from "User" where id = 1001')" \
  "$(epoch "$(jq -r .created_at "$B/User/1001.json")" 2>&1)"
check "ls User lists 1001.json" grep -qx 1001.json <<<"$(ls "$B/User")"

# A partial document updates only the keys it names.
check "a partial update succeeds" put "$B/User/1001.json" '{"id":1001,"name":"B"}'
check_eq "the partial update keeps the other keys in the file" 'B a@example.com true' \
  "$(jq -r '[.name, .email, (.active | tojson)] | join(" ")' "$B/User/1001.json" 2>&1)"
check "the partial update keeps the other keys in PostgreSQL" \
  wait_for 5 pg_is 'B|a@example.com|t' 'select name, email, active from "User" where id = 1001'

# --- types, both ways --------------------------------------------------------------------------
check "a boolean and a null are written" put "$B/User/1001.json" '{"id":1001,"active":false,"name":null}'
check "false and null reach PostgreSQL" \
  wait_for 5 pg_is 'f|t' 'select active, name is null from "User" where id = 1001'
check_eq "false and null read back" 'false true' \
  "$(jq -r '[(.active | tojson), (has("name") and .name == null | tojson)] | join(" ")' "$B/User/1001.json" 2>&1)"

order='{"id":500,"userId":1,"total":12.50,"items":[{"sku":"x","qty":2,"tags":["a","b"],"meta":{"gift":true,"note":null}}],"status":"paid","placed_at":"2024-05-06T07:08:09+00:00"}'
check "an Order with numeric, jsonb and timestamptz is written" put "$B/Order/500.json" "$order"
check "the Order reaches PostgreSQL" wait_for 5 pg_is 1 'select count(*) from "Order" where id = 500'
check_eq "numeric 12.50 in PostgreSQL" 12.50 "$(psql_q 'select total from "Order" where id = 500')"
check_eq "nested jsonb in PostgreSQL" t "$(psql_q "select items = '$(jq -c .items <<<"$order")'::jsonb from \"Order\" where id = 500")"
check_eq "timestamptz in PostgreSQL" t \
  "$(psql_q "select placed_at = '2024-05-06 07:08:09+00' from \"Order\" where id = 500")"
check "numeric reads back as the number 12.5" jq_true "$B/Order/500.json" '.total == 12.5 and (.total | type) == "number"'
check "nested jsonb reads back" jq_true "$B/Order/500.json" \
  '.items[0].tags == ["a","b"] and .items[0].meta.gift == true and (.items[0].meta | has("note")) and .items[0].qty == 2'
check "timestamptz reads back as the same instant" \
  test "$(epoch "$(jq -r .placed_at "$B/Order/500.json")")" = "$(epoch '2024-05-06 07:08:09+00')"

uuid=6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f
event='{"id":"'$uuid'","userId":1,"kind":"signup","payload":{"a":[1,2.5,{"b":null}],"s":"x"},"happened_at":"2024-06-07T08:09:10"}'
check "an Event with a uuid key is written" put "$B/Event/$uuid.json" "$event"
check "the Event reaches PostgreSQL with its types" wait_for 5 pg_is 'signup|t|t' \
  "select kind, happened_at = '2024-06-07 08:09:10', payload::jsonb = '{\"a\":[1,2.5,{\"b\":null}],\"s\":\"x\"}'::jsonb from \"Event\" where id = '$uuid'"
check "the Event reads back" jq_true "$B/Event/$uuid.json" \
  ".id == \"$uuid\" and .payload.a[2].b == null and .payload.a[1] == 2.5 and (.happened_at | startswith(\"2024-06-07T08:09:10\"))"

big=9007199254740993   # 2^53 + 1: a double would round it
check "a bigint beyond 2^53 is written" put "$B/User/$big.json" "{\"id\":$big,\"email\":\"big@example.com\"}"
check "the bigint reaches PostgreSQL exactly" wait_for 5 pg_is 1 "select count(*) from \"User\" where id = $big"
check_eq "the bigint reads back exactly" "$big" "$(sed -E 's/.*"id":([0-9]+).*/\1/' "$B/User/$big.json" 2>&1)"

# --- rm -----------------------------------------------------------------------------------------
check "rm User/1001.json succeeds" rm "$B/User/1001.json"
check "1001.json is gone locally" test ! -e "$B/User/1001.json"
check "ls User no longer lists 1001.json" test -z "$(ls "$B/User" | grep -x 1001.json)"
check "1001 is deleted in PostgreSQL" wait_for 5 pg_is 0 'select count(*) from "User" where id = 1001'

# --- refusals: EINVAL, nothing changes ---------------------------------------------------------
check "everything is synced before the refusals" wait_for 10 pending_is_zero
content "$B/Order/10.json" >/dev/null
pg_before=$(snapshot)
u1_before=$(content "$B/User/1.json")
o10_before=$(content "$B/Order/10.json")
refusal() {   # refusal NAME FILE BODY
  local before
  before=$(content "$2")
  check "refused: $1" refused "$2" "$3"
  check_eq "unchanged after refusal: $1" "$before" "$(content "$2")"
}
refusal "not JSON" "$B/User/1.json" 'this is not json'
refusal "a JSON array" "$B/User/1.json" '[1,2,3]'
refusal "a JSON string" "$B/User/1.json" '"hello"'
refusal "an unknown key" "$B/User/1.json" '{"id":1,"nickname":"x"}'
refusal "a string into a bigint column" "$B/Order/10.json" '{"id":10,"userId":"abc"}'
refusal "a string into a boolean column" "$B/User/1.json" '{"id":1,"active":"yes"}'
refusal "NOT NULL email set to null" "$B/User/1.json" '{"id":1,"email":null}'
refusal "body id differs from the file name" "$B/User/1.json" '{"id":2,"email":"x@example.com"}'
refusal "a new User without its required email" "$B/User/1003.json" '{"id":1003,"name":"No Email"}'
refusal "two JSON objects" "$B/User/1.json" '{"id":1} {"id":1}'
check "no refused record appears" test ! -e "$B/User/1003.json"
check_eq "User/1.json is intact after all refusals" "$u1_before" "$(content "$B/User/1.json")"
check_eq "Order/10.json is intact after all refusals" "$o10_before" "$(content "$B/Order/10.json")"
sleep 1
check_eq "nothing is pending after the refusals" 0 "$(status_of pending)"
check_eq "PostgreSQL is unchanged by the refusals" "$pg_before" "$(snapshot)"

# --- ttl ------------------------------------------------------------------------------------------
check_eq "cat ttl prints the default 0" 0 "$(content "$B/ttl")"
check "echo 120 > ttl succeeds" shell_write "$B/ttl" 120
check_eq "cat ttl prints 120" 120 "$(content "$B/ttl")"
check_eq "ttl holds \"120\\n\"" "$(printf '120\n' | od -c)" "$(timeout 10 cat "$B/ttl" | od -c)"
check "echo abc > ttl is refused with EINVAL" refused "$B/ttl" abc
check "echo -5 > ttl is refused with EINVAL" refused "$B/ttl" -5
check "echo 1.5 > ttl is refused with EINVAL" refused "$B/ttl" 1.5
check "echo '' > ttl is refused with EINVAL" refused "$B/ttl" ''
check_eq "ttl stays 120" 120 "$(content "$B/ttl")"

# --- invalidate --------------------------------------------------------------------------------
loaded=$(content "$B/invalidate")
check "invalidate reads as a unix time" grep -qE '^[1-9][0-9]{9,}$' <<<"$loaded"
psql_q "update \"User\" set name = 'changed' where id = 1" >/dev/null
sleep 1   # so that the new load time is visibly later
check "echo 1 > invalidate succeeds" shell_write "$B/invalidate" 1
check_eq "after invalidate, User/1.json shows the change made in PostgreSQL" changed \
  "$(jq -r .name "$B/User/1.json" 2>&1)"
check "invalidate's time moved forward" test "$(content "$B/invalidate")" -gt "$loaded"
check "records written through the mount survive invalidate" jq_true "$B/Order/500.json" '.total == 12.5'

# --- sync-status -------------------------------------------------------------------------------
status=$(content "$B/sync-status")
check "sync-status has a pending line" grep -qE '^pending [0-9]+$' <<<"$status"
check "sync-status has a last_sync line" grep -qE '^last_sync [0-9]+$' <<<"$status"
for key in applied dead lag_ms; do
  check "sync-status has a $key line" grep -qE "^$key [0-9]+\$" <<<"$status"
done
check "sync-status has a last_error line" grep -qE '^last_error .+$' <<<"$status"
check "sync-status says redis up" grep -qx 'redis up' <<<"$status"
check "sync-status says postgres up" grep -qx 'postgres up' <<<"$status"
check "every sync-status line is \"key value\"" test -z "$(grep -vE '^[a-z_]+ .+$' <<<"$status")"
check "pending goes to 0" wait_for 5 pending_is_zero
check "last_sync is a recent time" test "$(status_of last_sync)" -ge "$(($(date +%s) - 600))"
check_eq "no dead letters" 0 "$(status_of dead)"
check_eq "no last error" - "$(status_of last_error)"

# --- persistence across a remount ----------------------------------------------------------------
check "1001 can be written again" put "$B/User/1001.json" '{"id":1001,"email":"a@example.com","name":"Again"}'
check "1001 is synced again" wait_for 5 pg_is Again 'select name from "User" where id = 1001'
check "a write just before unmount is accepted" put "$B/User/1004.json" '{"id":1004,"email":"late@example.com"}'
check "unmount: the daemon exits cleanly" unmount_sharded
check "the block's records are in its SQLite file" test \
  "$(sqlite3 "$DATA/user-1.sqlite" "select count(*) from records where model = 'User' and pk in ('1', '1001', '1004')")" = 3
mount_sharded
check "user-1 is still listed after a remount" grep -qx user-1 <<<"$(ls "$MNT")"
check_eq "User/1.json is still readable" changed "$(jq -r .name "$B/User/1.json" 2>&1)"
check_eq "User/1001.json is still readable" Again "$(jq -r .name "$B/User/1001.json" 2>&1)"
check_eq "User/1004.json is still readable" late@example.com "$(jq -r .email "$B/User/1004.json" 2>&1)"
check_eq "the ttl survives too" 120 "$(content "$B/ttl")"
check "the write made before unmount reaches PostgreSQL" \
  wait_for 10 pg_is 1 'select count(*) from "User" where id = 1004'
check "unmount again: the daemon exits cleanly" unmount_sharded

# --- a bad connection string fails the mount command ----------------------------------------
bad_mount() {   # bad_mount OPTS: must fail quickly, with one line on stderr, mounting nothing
  local mnt=$T/mnt-bad err=$T/bad-mount.err rc=0 start=$SECONDS
  mkdir -p "$mnt" "$T/data-bad"
  timeout 30 "$SHARDED_BUILD_DIR/mount.sharded" -f -o "$1" "$mnt" </dev/null >/dev/null 2>"$err" || rc=$?
  if is_mounted "$mnt"; then force_unmount "$mnt"; echo "it mounted"; return 1; fi
  ((rc != 0 && rc != 124)) || { echo "exit status $rc"; return 1; }
  ((SECONDS - start <= 10)) || { echo "took $((SECONDS - start)) s"; return 1; }
  [[ $(grep -cv '^$' "$err") == 1 ]] || { echo "stderr is not one line:"; cat "$err"; return 1; }
  echo "message: $(cat "$err")"
}
check "an unreachable PostgreSQL fails the mount with a one-line message" \
  bad_mount "pg=postgresql://postgres@127.0.0.1:1/nope,redis=$REDIS_URL,data=$T/data-bad"
check "a bad PostgreSQL conninfo fails the mount" \
  bad_mount "pg=nosuchkey=1,redis=$REDIS_URL,data=$T/data-bad"
check "an unreachable Redis fails the mount" \
  bad_mount "pg=$PG_URL,redis=redis://127.0.0.1:1,data=$T/data-bad"
check "nothing is mounted after the failures" test -z "$(fuse_mounts_under "$T")"

finish
