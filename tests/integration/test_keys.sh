#!/usr/bin/env bash
# Keys and file names (issue 12, item 2): text keys holding '/', ',', '%', '.', '..', '', a
# newline, a leading dot and 300 bytes are each listed under one name that opens, reads and
# writes back (sed -i) to the same row; creates through encoded names reach PostgreSQL with the
# decoded key; a uuid or integer key has one file name (other spellings are refused, never a
# second copy); a domain-typed key written back as read is accepted; tables named "a/b" and
# "ttl" are left out with a log line and break no listing; loader rules quote a model name
# with a space. Ends with dead 0 in every block.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pg_is() { [[ $(psql_q "$2") == "$1" ]]; }
status_of() { timeout 10 sed -n "s/^$1 //p" "$1/sync-status" 2>/dev/null; }
block_status() { timeout 10 sed -n "s/^$2 //p" "$1/sync-status"; }
drained() { [[ $(block_status "$1" pending) == 0 ]]; }
put() { printf '%s\n' "$2" >"$1"; }
note_of() { timeout 10 jq -r .note "$1"; }
LONG=$(printf 'k%.0s' {1..300})

setup_tmp
start_postgres
start_redis
psql_q "CREATE DOMAIN bigint_domain AS bigint;
CREATE TABLE \"Tag\" (name text PRIMARY KEY, note text CHECK (note <> 'die'));
CREATE TABLE \"Thing\" (id uuid PRIMARY KEY, note text);
CREATE TABLE \"Dom\" (id bigint_domain PRIMARY KEY, note text);
CREATE TABLE \"Num\" (id bigint PRIMARY KEY, note text);
CREATE TABLE \"a/b\" (id int PRIMARY KEY);
CREATE TABLE ttl (id int PRIMARY KEY);
CREATE TABLE \"Order Item\" (id int PRIMARY KEY, note text);
INSERT INTO \"Tag\" VALUES ('a/b', 'slash'), ('a,b', 'comma'), ('50%', 'percent'), ('.', 'dot'),
  ('..', 'dotdot'), ('', 'empty'), (E'a\\nb', 'newline'), ('$LONG', 'long'),
  ('.hidden', 'leading dot'), ('plain', 'plain');
INSERT INTO \"Thing\" VALUES ('550e8400-e29b-41d4-a716-446655440000', 'u');
INSERT INTO \"Dom\" VALUES (1, 'd');
INSERT INTO \"Num\" VALUES (7, 'seven');
INSERT INTO \"Order Item\" VALUES (1, 'oi');" >/dev/null
cat >"$T/rules" <<'RULES'
block tags
    "Tag" where true
block oi-{id}
    "Order Item" where "id" = $id::int
RULES
mount_sharded "loaders=$T/rules"

# ---- tables whose names cannot be directories beside the control files ----
check "a table named a/b is left out with a log line" grep -q 'table "a/b" left out' "$T/daemon.log"
check "a table named ttl is left out with a log line" grep -q 'table "ttl" left out' "$T/daemon.log"

# ---- every odd text key listed once, under a name that opens ----
require "mkdir of a block loads every Tag row" mkdir "$MNT/tags"
D=$MNT/tags/Tag
check "ls of the block works (no model named a/b breaks it)" ls "$MNT/tags"
check_eq "ttl in a block is the control file, not the table" "ttl" "$(ls "$MNT/tags" | grep -x ttl)"
require "ls of the model directory works" ls "$D"
expected=$(printf '%s\n' '%00.json' '%2E..json' '%2E.json' '%2Ehidden.json' '50%25.json' \
  'a%0Ab.json' 'a%2Cb.json' 'a%2Fb.json' 'plain.json' | sort)
check_eq "ls lists every plain key under its encoded name" "$expected" \
  "$(ls "$D" | grep -v '%~' | sort)"
long_name=$(ls "$D" | grep '%~' || true)
check_eq "the 300-byte key is listed once, under its long form" 1 "$(ls "$D" | grep -c '%~')"
check "the long form fits a file name" test "${#long_name}" -le 255
check_eq "ls lists 10 names for 10 rows" 10 "$(ls "$D" | wc -l)"
check "find walks the model directory" find "$MNT/tags"
opened=0
while IFS= read -r f; do
  timeout 10 cat "$D/$f" >/dev/null && opened=$((opened + 1))
done < <(ls "$D")
check_eq "every listed name opens" 10 "$opened"
check_eq "a%2Fb.json reads key a/b" "a/b" "$(timeout 10 jq -r .name "$D/a%2Fb.json")"
check_eq "a%0Ab.json reads the key with a newline" "$(printf 'a\nb')" \
  "$(timeout 10 jq -r .name "$D/a%0Ab.json")"
check_eq "%00.json reads the empty key" '""' "$(timeout 10 jq -c .name "$D/%00.json")"
check_eq "the long form reads the 300-byte key" "$LONG" "$(timeout 10 jq -r .name "$D/$long_name")"

# ---- each name writes back to its own row (sed -i: a scratch file renamed onto the name) ----
for f in '%00.json' '%2E..json' '%2E.json' '%2Ehidden.json' '50%25.json' 'a%0Ab.json' \
  'a%2Cb.json' 'a%2Fb.json' 'plain.json'; do
  check "sed -i of $f" timeout 10 sed -i 's/"note":"\([^"]*\)"/"note":"\1!"/' "$D/$f"
done
check "the sync drains" wait_for 20 drained "$MNT/tags"
check_eq "each row got its own change in PostgreSQL, under its decoded key" \
  "$(printf '%s\n' '|empty!' '.|dot!' '..|dotdot!' '.hidden|leading dot!' '50%|percent!' \
    'a,b|comma!' 'a/b|slash!' 'a\nb|newline!' 'plain|plain!' "$LONG|long" | sort)" \
  "$(psql_q "select replace(name, E'\\n', '\\n') || '|' || note from \"Tag\"" | sort)"
check_fails "a write to the long form is refused" put "$D/$long_name" '{"note":"x"}'
check "the refusal says why" grep -q 'does not fit in a file name' "$T/daemon.log"
check_eq "still 10 names, no second copy" 10 "$(ls "$D" | wc -l)"

# ---- creates through encoded names ----
require "mkdir b1" mkdir "$MNT/b1"
B=$MNT/b1
check "create x%2Fy.json" put "$B/Tag/x%2Fy.json" '{"note":"new slash"}'
check "create %2Enew.json" put "$B/Tag/%2Enew.json" '{"note":"new dot"}'
check "create n%0Al.json" put "$B/Tag/n%0Al.json" '{"note":"new newline"}'
check "create p%25%2C.json" put "$B/Tag/p%25%2C.json" '{"note":"new pct"}'
check_fails "a name that is not the encoder's (lower-case hex) is refused" \
  put "$B/Tag/q%2fy.json" '{"note":"x"}'
check_fails "a raw ',' in a one-column key's name is refused" put "$B/Tag/q,y.json" '{"note":"x"}'
check "the creates drain" wait_for 20 drained "$B"
check_eq "they reach PostgreSQL with the decoded keys" \
  "$(printf '%s\n' '.new|new dot' 'n\nl|new newline' 'p%,|new pct' 'x/y|new slash' | sort)" \
  "$(psql_q "select replace(name, E'\\n', '\\n') || '|' || note from \"Tag\" where note like 'new %'" | sort)"
check_eq "no row for the refused names" 0 "$(psql_q "select count(*) from \"Tag\" where name like 'q%'")"
check "a scratch file" put "$B/Tag/tmp1" '{"note":"renamed"}'
check_fails "cannot be renamed onto a name that is not the encoder's" mv "$B/Tag/tmp1" "$B/Tag/r%2fy.json"
check "but onto the encoded name" mv "$B/Tag/tmp1" "$B/Tag/r%2Fy.json"
check "which reads back the decoded key" bash -c "[[ \$(jq -r .name '$B/Tag/r%2Fy.json') == r/y ]]"
check "an editor's hidden swap file stays a scratch file" put "$B/Tag/.x.json.swp" 'junk'
check "and is listed" test -e "$B/Tag/.x.json.swp"
check "rm of the scratch file" rm "$B/Tag/.x.json.swp"

# ---- one file name per uuid and integer ----
U=550e8400-e29b-41d4-a716-446655440000
check_eq "the canonical uuid name reads" u "$(note_of "$B/Thing/$U.json")"
check_fails "the upper-case spelling does not open" timeout 10 cat "$B/Thing/${U^^}.json"
check_fails "the undashed spelling does not open" timeout 10 cat "$B/Thing/${U//-/}.json"
check_fails "a write through the upper-case spelling is refused" \
  put "$B/Thing/${U^^}.json" '{"note":"upper"}'
check "the refusal names the one file name" grep -q "its one file name is $U.json" "$T/daemon.log"
check "a body spelling the uuid in upper case is accepted under the canonical name" \
  put "$B/Thing/$U.json" "{\"id\":\"${U^^}\",\"note\":\"canon\"}"
check_eq "one Thing file" "$U.json" "$(ls "$B/Thing")"
check_fails "007.json does not open" timeout 10 cat "$B/Num/007.json"
check_fails "+7.json does not open" timeout 10 cat "$B/Num/+7.json"
check_fails "a write to 007.json is refused" put "$B/Num/007.json" '{"note":"x"}'
check_eq "7.json reads" seven "$(note_of "$B/Num/7.json")"
check_eq "one Num file" "7.json" "$(ls "$B/Num")"

# ---- a key of a domain type ----
check_eq "the domain-typed key reads as a number" 1 "$(timeout 10 jq .id "$B/Dom/1.json")"
check "the document as read is accepted back" \
  bash -c "doc=\$(cat '$B/Dom/1.json') && printf '%s\n' \"\$doc\" > '$B/Dom/1.json'"
check "sed -i of the domain-keyed record" timeout 10 sed -i 's/"note":"d"/"note":"d2"/' "$B/Dom/1.json"
check "a new domain-keyed record without its key in the body" put "$B/Dom/2.json" '{"note":"two"}'
check "a new domain-keyed record with its key as a number" put "$B/Dom/3.json" '{"id":3,"note":"three"}'
check "the thing and domain writes drain" wait_for 20 drained "$B"
check "PostgreSQL has the new domain-keyed rows" pg_is '2|two 3|three' \
  "select string_agg(id || '|' || note, ' ' order by id) from \"Dom\" where id > 1"
check "PostgreSQL has them" pg_is 'canon|d2' \
  "select (select note from \"Thing\") || '|' || (select note from \"Dom\" where id = 1)"

# ---- loader rules quote a model name with a space ----
check "mkdir oi-1 loads through the quoted rule" mkdir "$MNT/oi-1"
check_eq "the Order Item row is in the block" "1.json" "$(ls "$MNT/oi-1/Order Item")"

# ---- the sharded tool names a dead letter's key as its file name does ----
require "mkdir dl" mkdir "$MNT/dl"
check "a write PostgreSQL will refuse, under an encoded name" put "$MNT/dl/Tag/d%2Fie%0A.json" '{"note":"die"}'
check "it goes dead" wait_for 20 bash -c "[[ \$(sed -n 's/^dead //p' '$MNT/dl/sync-status') == 1 ]]"
list=$(timeout 30 "$SHARDED_BUILD_DIR/sharded" --data "$DATA" --redis "$REDIS_URL" dlq list dl 2>&1) || true
check "dlq list shows the key encoded, on one line" grep -Eq ' Tag +d%2Fie%0A +.*check' <<<"$list"
check_eq "dlq list: a header and one line" 2 "$(wc -l <<<"$list")"
json=$(timeout 30 "$SHARDED_BUILD_DIR/sharded" --data "$DATA" --redis "$REDIS_URL" dlq list dl --json 2>&1) || true
check "dlq list --json gives the key and its file name" jq -e \
  '.[0].pk == "d/ie\n" and .[0].file == "d%2Fie%0A.json"' <<<"$json"

# ---- a table asked for by name that cannot be a directory refuses the mount ----
mkdir -p "$T/mnt2" "$T/data2"
out=$(timeout 20 "$SHARDED_BUILD_DIR/mount.sharded" -f \
  -o "pg=$PG_URL,redis=$REDIS_URL,data=$T/data2,models=ttl" "$T/mnt2" 2>&1 </dev/null) && rc=0 || rc=$?
check "models=ttl refuses the mount" test "$rc" -ne 0 -a "$rc" -ne 124
check "naming the table and why" grep -q 'table "ttl" cannot be mounted: every block has a control file of that name' <<<"$out"

for b in tags b1 oi-1; do
  check_eq "dead 0 in $b" 0 "$(block_status "$MNT/$b" dead)"
done
finish
