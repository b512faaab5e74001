#!/usr/bin/env bash
# The conflict rule across nodes, column by column: two daemons (node=na, node=nb) share one
# Redis and one PostgreSQL and hold block c-1. An update sends the key and the columns its
# body names (a whole-document rewrite: those that differ from the node's copy), so
# PostgreSQL's commit order decides per column:
#   1. node A writes "name" and node B writes "email" of the same 20 records at once, 10
#      rounds: every row ends with A's last name and B's last email;
#   2. both nodes write "note" of the same records at once: every row ends with one node's
#      last acknowledged value;
#   3. a whole-document rewrite on node A (its copy's email stale: another client changed it
#      in PostgreSQL) sends only the column it changed, and PostgreSQL keeps the other
#      client's email; the same document written again unchanged is acknowledged, applied
#      (the outbox drains) and changes nothing; no write is a dead letter;
#   4. an update of a row another client deleted is a dead letter (the NOT NULL columns it
#      does not send); `sharded dlq retry` once the row is back sets its column only.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib.sh"

NREC=20
ROUNDS=10

setup_tmp
start_postgres
start_redis
psql_q 'create table "Person" (id bigint primary key, name text not null, email text not null,
                               note text);
        insert into "Person" select i, $$n0$$, $$e0$$, $$t0$$ from generate_series(1, 20) i;' \
  >/dev/null

declare -A NODE_MNT NODE_PID
mount_node() {
  MNT=$T/mnt-$1 DATA=$T/data-$1 mount_sharded "node=n$1"
  NODE_MNT[$1]=$MNT NODE_PID[$1]=$DAEMON_PID
}
mount_node a
mount_node b
for n in a b; do mkdir "${NODE_MNT[$n]}/c-1"; done

status_of() { timeout 10 sed -n "s/^$2 //p" "${NODE_MNT[$1]}/c-1/sync-status"; }
drained() { [[ $(status_of a pending) == 0 && $(status_of b pending) == 0 ]]; }
rec() { echo "${NODE_MNT[$1]}/c-1/Person/$2.json"; }

# Both nodes read every record first: each then holds a copy, and a write is an update.
for n in a b; do
  for i in $(seq 1 $NREC); do cat "$(rec "$n" "$i")" >/dev/null; done
done

# writes NODE COLUMN PREFIX: ROUNDS rounds of {"COLUMN":"PREFIX-r"} to every record; prints
# the number of writes acknowledged (close() returned 0)
writes() {
  local n=$1 col=$2 prefix=$3 r i acked=0
  for r in $(seq 1 $ROUNDS); do
    for i in $(seq 1 $NREC); do
      # tee, not the shell's redirection: the shell ignores an error of close()
      printf '{"%s":"%s-%d"}' "$col" "$prefix" "$r" | tee "$(rec "$n" "$i")" >/dev/null &&
        acked=$((acked + 1))
    done
  done
  echo "$acked"
}

# concurrently NAME COL_A PREFIX_A COL_B PREFIX_B: both nodes' writes at once, then drain
concurrently() {
  writes a "$2" "$3" >"$T/acked-a" &
  local pa=$!
  writes b "$4" "$5" >"$T/acked-b" &
  local pb=$!
  wait "$pa" "$pb"
  check_eq "$1: every write acknowledged" "$((NREC * ROUNDS)) $((NREC * ROUNDS))" \
    "$(cat "$T/acked-a") $(cat "$T/acked-b")"
  check "$1: both outboxes drain" wait_for 15 drained
}

# 1. different columns of the same records at once: both survive
concurrently "name on a, email on b" name a email b
check_eq "each row holds node a's last name and node b's last email" \
  "$NREC|a-$ROUNDS|b-$ROUNDS" \
  "$(psql_q 'select count(*), min(name), min(email) from "Person"
             where name = $$a-'$ROUNDS'$$ and email = $$b-'$ROUNDS'$$')"
check_eq "and its note as it was" "$NREC" "$(psql_q 'select count(*) from "Person" where note = $$t0$$')"

# 2. the same column at once: one node's last acknowledged value
concurrently "note on both" note a note b
check_eq "each row holds one node's last note" "$NREC" \
  "$(psql_q 'select count(*) from "Person" where note in ($$a-'$ROUNDS'$$, $$b-'$ROUNDS'$$)')"
check_eq "and the names and emails of step 1" "$NREC" \
  "$(psql_q 'select count(*) from "Person"
             where name = $$a-'$ROUNDS'$$ and email = $$b-'$ROUNDS'$$')"

# 3. a whole-document rewrite sends what it changed
psql_q 'update "Person" set email = $$other$$ where id = 1' >/dev/null
doc=$(cat "$(rec a 1)")
python3 -c 'import json, sys; d = json.loads(sys.argv[1]); d["name"] = "whole"
print(json.dumps(d))' "$doc" >"$(rec a 1)"
check "whole document: node a's outbox drains" wait_for 15 drained
check_eq "whole document: the changed name is applied, the other client's email kept" \
  "whole|other" "$(psql_q 'select name, email from "Person" where id = 1')"
cat "$(rec a 1)" >"$T/same" && cat "$T/same" >"$(rec a 1)"
check "unchanged document: acknowledged and applied (the outbox drains)" wait_for 15 drained
check_eq "unchanged document: the row is as it was" \
  "whole|other" "$(psql_q 'select name, email from "Person" where id = 1')"
check_eq "no dead letters" "0 0" "$(status_of a dead) $(status_of b dead)"

# 4. an update of a row another client deleted lacks the NOT NULL columns: a dead letter;
# sent again (sharded dlq retry) once the row is back, it sets its column only, and the
# node's copy is the whole row PostgreSQL returned
psql_q 'delete from "Person" where id = 2' >/dev/null
echo '{"note":"late"}' >"$(rec a 2)"
dead_is() { [[ $(status_of a dead) == "$1" ]]; }
row2_is() { [[ $(psql_q 'select name, email, note from "Person" where id = 2') == "$1" ]]; }
check "update of a deleted row: a dead letter" wait_for 15 dead_is 1
psql_q 'insert into "Person" values (2, $$back$$, $$back$$, null)' >/dev/null
check "dlq retry" timeout 60 "$SHARDED_BUILD_DIR/sharded" --data "$T/data-a" --redis "$REDIS_URL" \
  dlq retry c-1
check "the retried update sets its column only" wait_for 15 row2_is "back|back|late"
copy2_ok() { jq -e '.name == "back" and .email == "back" and .note == "late"' "$(rec a 2)"; }
check "node a's copy is PostgreSQL's whole row again" wait_for 10 copy2_ok

for n in a b; do
  MNT=${NODE_MNT[$n]} DAEMON_PID=${NODE_PID[$n]}
  check "node $n unmounts cleanly" unmount_sharded
done
finish
