#!/usr/bin/env bash
# The drain's batch statement (docs/architecture.md section 6): rows come back from the
# upsert without a second parse of the documents, matched to their writes by key. Checked
# here, with PostgreSQL down while the writes queue, then back:
# - 300 records of a table with a trigger that bumps "ver" on every update, rewritten in one
#   batch that mixes column sets (three deleted and re-created with fewer columns) and one
#   refused write in the middle (a duplicate email): the refused one is a dead letter, every
#   other row is in PostgreSQL as written, row by row, and every file reads as PostgreSQL's row
#   (the refresh from RETURNING reached the right record);
# - a composite key with a timestamptz part: 50 records as loaded, and one created through
#   the mount under a spelling PostgreSQL prints otherwise, whose returned row is matched
#   through PostgreSQL's spelling of its document's key (its file shows the column default);
# - the metrics count the apply thread's batches and statements.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=300
put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
status_of() { timeout 10 sed -n "s/^$2 //p" "$1/sync-status"; }
drained() { [[ $(status_of "$1" pending) == 0 ]]; }
dead_is() { [[ $(status_of "$1" dead) == "$2" ]]; }
metric() { timeout 10 sed -n "s/^sharded_$1 //p" "$MNT/metrics"; }

setup_tmp
start_postgres
start_redis
psql_q "CREATE TABLE \"Acct\" (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text,
  n int, ver int NOT NULL DEFAULT 0);
CREATE TABLE \"Ev\" (at timestamptz, k int, note text, ver int NOT NULL DEFAULT 0,
  def text DEFAULT 'filled', PRIMARY KEY (at, k));
CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS
  \$\$ BEGIN NEW.ver := OLD.ver + 1; RETURN NEW; END \$\$;
CREATE TRIGGER bump BEFORE UPDATE ON \"Acct\" FOR EACH ROW EXECUTE FUNCTION bump();
CREATE TRIGGER bump BEFORE UPDATE ON \"Ev\" FOR EACH ROW EXECUTE FUNCTION bump();
INSERT INTO \"Acct\" SELECT g, 'a' || g || '@example.com', 'before', g FROM generate_series(1, $N) g;
INSERT INTO \"Ev\" SELECT '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 second', g,
  'before' FROM generate_series(1, 50) g;" >/dev/null
cat >"$T/rules" <<'RULES'
block acct
    "Acct" where true
block ev
    "Ev" where true
RULES
mount_sharded "loaders=$T/rules"
A=$MNT/acct E=$MNT/ev
require "mkdir acct loads $N records" mkdir "$A"
require "mkdir ev loads 50 records" mkdir "$E"
check_eq "acct lists $N records" "$N" "$(ls "$A/Acct" | wc -l)"
mapfile -t evs < <(ls "$E/Ev")
check_eq "ev lists 50 records" 50 "${#evs[@]}"
# created under ISO spelling: PostgreSQL prints "2026-02-01 00:00:00+00"
NEWEV="$E/Ev/2026-02-01T00:00:00Z,100.json"
check "create an Ev record under another spelling of its timestamp" \
  put "$NEWEV" '{"at":"2026-02-01T00:00:00Z","k":100,"note":"new"}'
check "it drains" wait_for 30 drained "$E"
def_filled() { [[ $(timeout 10 jq -r .def "$NEWEV") == filled ]]; }
check "its file shows the default PostgreSQL filled in (the returned row found it)" \
  wait_for 10 def_filled
batches0=$(metric apply_batches_total) statements0=$(metric apply_statements_total)

stop_postgres
for id in 10 11 12; do check "rm Acct/$id.json (PostgreSQL down)" rm "$A/Acct/$id.json"; done
sleep 3   # past the grace in which a new write revokes a deletion
for id in 10 11 12; do
  put "$A/Acct/$id.json" "{\"id\":$id,\"email\":\"new$id@example.com\"}" || true
done
failed=0
for ((id = 1; id <= N; id++)); do
  case $id in 10 | 11 | 12) continue ;; esac
  if ((id == 150)); then body='{"name":"drained-150","email":"a151@example.com"}'
  else body="{\"name\":\"drained-$id\"}"; fi
  put "$A/Acct/$id.json" "$body" || failed=$((failed + 1))
done
check_eq "every write acknowledged while PostgreSQL is down" 0 "$failed"
failed=0
for f in "${evs[@]}"; do
  put "$E/Ev/$f" '{"note":"drained"}' || failed=$((failed + 1))
done
check_eq "every Ev write acknowledged" 0 "$failed"
_pg_start
check "acct drains" wait_for 60 drained "$A"
check "ev drains" wait_for 60 drained "$E"
check "one dead letter in acct" wait_for 10 dead_is "$A" 1
check "none in ev" dead_is "$E" 0

# ---- row by row, in PostgreSQL -----------------------------------------------------------
check_eq "every rewritten Acct row has its new name and one bump" "$((N - 4))" \
  "$(psql_q "select count(*) from \"Acct\" where id not in (10, 11, 12, 150)
             and name = 'drained-' || id and ver = 1 and n = id and email = 'a' || id || '@example.com'")"
check_eq "the refused write left Acct 150 as it was" "a150@example.com|before|0" \
  "$(psql_q "select email || '|' || name || '|' || ver from \"Acct\" where id = 150")"
check_eq "the re-created rows hold exactly their new documents" \
  "10|new10@example.com|||0 11|new11@example.com|||0 12|new12@example.com|||0" \
  "$(psql_q "select id || '|' || email || '|' || coalesce(name, '') || '|' || coalesce(n::text, '')
             || '|' || ver from \"Acct\" where id in (10, 11, 12) order by id" | tr '\n' ' ' | sed 's/ $//')"
check_eq "every Ev row has its note and one bump" 50 \
  "$(psql_q "select count(*) from \"Ev\" where note = 'drained' and ver = 1")"

# ---- every file as PostgreSQL has the row: the refresh reached the right record ----------
# sorted_rows TABLE: PostgreSQL's rows as jq -cS prints them, sorted; sorted_files FILE...
sorted_rows() { psql_q "select row_to_json(t) from \"$1\" t" | jq -cS . | sort; }
sorted_files() { timeout 30 jq -cS . "$@" | sort; }
check_eq "every Acct file reads as PostgreSQL's row (ver from the trigger)" \
  "$(sorted_rows Acct)" "$(sorted_files "$A"/Acct/*.json)"
check_eq "every Ev file reads as PostgreSQL's row, through PostgreSQL's spelling of its key" \
  "$(sorted_rows Ev)" "$(sorted_files "${evs[@]/#/$E/Ev/}" "$NEWEV")"

# ---- the counts ------------------------------------------------------------------------------
batches=$(($(metric apply_batches_total) - batches0))
statements=$(($(metric apply_statements_total) - statements0))
log "drain: $batches batches, $statements statements"
check "the metrics count the drain's batches" test "$batches" -ge 2
# a batch is about ten statements, the bisection of the one refused write about 2 log2(300)
# tries of three; one statement per row would be more than $N
check "and its statements: a handful per batch plus the bisection's, not one per row" \
  test "$statements" -ge "$batches" -a "$statements" -le 150
unmount_sharded
finish
