#!/usr/bin/env bash
# Column types (issue 12, item 5): a table with a column of every type sharded checks (enum,
# enum[], a domain over int with NOT NULL, int[], text[][], char(3), varchar(5), numeric(5,2),
# numeric, date, time, timestamp, timestamptz with infinity and BC, inet, cidr, macaddr,
# interval, bytea, money, bit(4), int4range, tsvector, uuid, json, jsonb, float8, a composite):
# - every row reads, and each column written back as read (and each whole document) is
#   accepted and applied: a round trip of every type;
# - what PostgreSQL would refuse for the type alone is refused at write() with EINVAL, and the
#   file is unchanged;
# - at the end nothing is pending, `dead 0`, and PostgreSQL's rows are as they were.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

status_of() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }
settled() { [[ $(status_of pending) == 0 ]]; }
# attempt FILE BODY: open, write BODY in one write(), close; prints "ok", or where it failed
# and the errno name ("write EINVAL").
attempt() {
  timeout 10 python3 - "$1" "$2" <<'EOF'
import errno, os, sys
stage = "open"
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
    stage = "write"
    os.write(fd, sys.argv[2].encode())
    stage = "close"
    os.close(fd)
    print("ok")
except OSError as e:
    print(stage, errno.errorcode.get(e.errno, e.errno))
EOF
}
rows() { psql_q "select json_agg(row_to_json(t) order by id)::text from \"Typed\" t"; }
# column DOC COL: {"COL": value} with the value's text exactly as in DOC (jq would round
# numbers beyond a double's precision).
column() {
  python3 - "$1" "$2" <<'PY'
import json, sys
class Raw(str): pass
def dump(v):
    if isinstance(v, Raw): return v
    if isinstance(v, dict): return "{" + ",".join(json.dumps(k) + ":" + dump(x) for k, x in v.items()) + "}"
    if isinstance(v, list): return "[" + ",".join(dump(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)
doc = json.loads(sys.argv[1], parse_int=Raw, parse_float=Raw)
print(dump({sys.argv[2]: doc[sys.argv[2]]}))
PY
}
# same_json A B: equal as jsonb (numbers compared exactly, blanks and key order ignored).
same_json() {
  [[ $("$PGBIN/psql" -tAX -v a="$1" -v b="$2" <<<"select (:'a')::jsonb = (:'b')::jsonb" 2>&1) == t ]]
}

setup_tmp
start_postgres
"$PGBIN/psql" -qX -v ON_ERROR_STOP=1 </dev/null >/dev/null <<'SQL' || die "loading the schema failed"
create type mood as enum ('sad', 'ok', 'happy');
create type pair as (a int, b text);
create domain posint as integer not null check (value > 0);
create table "Typed" (
  id int primary key, e mood, ea mood[], d posint, ia int[], tt text[][], c3 char(3),
  v5 varchar(5), n52 numeric(5,2), n numeric, dt date, tm time, ts timestamp,
  tz timestamptz, ip inet, ci cidr, mac macaddr, iv interval, by bytea, mo money, b4 bit(4),
  r int4range, tv tsvector, u uuid, j json, jb jsonb, f float8, tmz timetz, pr pair);
insert into "Typed" values
 (1, 'ok', '{sad,happy}', 5, '{1,2,3}', '{{a,b},{c,d}}', 'ab', 'héllo', 123.45,
  123456789012345678901234567890.5, '2024-02-29', '24:00:00', 'infinity', '-infinity',
  '10.0.0.1/8', '10.0.0.0/8', '08:00:2b:01:02:03', '1 year 2 mons 3 days 04:05:06.5',
  '\xdeadbeef', '$1,234.56', '1010', '[1,5)', 'a fat:2 cat',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a":1}', '{"b":[1,2]}', 'NaN', '12:00:00+05:30',
  '(1,"x y")'),
 (2, 'happy', '{}', 7, '{{1,2},{3,4}}', '{}', 'abc', 'a', -999.99, 'NaN', '0044-03-15 BC',
  '23:59:59.999999', '0044-03-15 12:00:00 BC', '0044-03-15 12:00:00+00 BC', '::1',
  '2001:db8::/32', '08:00:2b:ff:fe:01', '-1 days +02:00:00', '\x', '-$0.01', '0000',
  'empty', '', '00000000-0000-0000-0000-000000000000', '[1,"x"]', '"s"', 'Infinity',
  '00:00:00-03', null),
 (3, null, '{ok,null}', 1, '{1,null}', '{{x}}', null, null, null,
  '123456789012345678901234567890', '-infinity', null, '2024-01-01 10:00:00.123456',
  '2024-06-01 08:30:00+00', null, null, null, '00:00:00', null, null, null, '(,)', null, null,
  'null', 'null', 1e300, null, '(,)');
create domain bigid as bigint not null;
create table "Dk" (id bigid primary key, v varchar(3));
insert into "Dk" values (1, 'abc');
SQL
before=$(rows)
start_redis
mount_sharded
B=$MNT/t1
require "mkdir a block" mkdir "$B"
cols=$(psql_q "select string_agg(attname, ' ' order by attnum) from pg_attribute
  where attrelid = '\"Typed\"'::regclass and attnum > 1 and not attisdropped")

# --- reads and round trips ------------------------------------------------------------------
for id in 1 2 3; do
  F=$B/Typed/$id.json
  require "read Typed/$id" jq -e . "$F"
  doc=$(cat "$F")
  check "Typed/$id reads as PostgreSQL prints it" \
    same_json "$doc" "$(psql_q "select row_to_json(t) from \"Typed\" t where id = $id")"
  for c in $cols; do
    body=$(column "$doc" "$c")
    check_eq "Typed/$id: $c written back as read ($body)" "ok" "$(attempt "$F" "$body")"
  done
  check_eq "Typed/$id: the whole document written back as read" "ok" "$(attempt "$F" "$doc")"
  check "Typed/$id: unchanged by its round trips" same_json "$doc" "$(cat "$F")"
done

# --- a key of a domain type is its base type's key ---------------------------------------------
F=$B/Dk/1.json
require "read Dk/1 (a key of a domain over bigint)" jq -e . "$F"
doc=$(cat "$F")
check_eq "Dk/1 reads its key as a number" '{"id":1,"v":"abc"}' "$doc"
check_eq "Dk/1 written back as read" "ok" "$(attempt "$F" "$doc")"
check_eq "Dk/1: its varchar(3) refuses 4 characters" "write EINVAL" \
  "$(attempt "$F" '{"v":"abcd"}')"
check "Dk/007.json is no record of it" bash -c "! cat '$B/Dk/007.json' 2>/dev/null"

# --- refusals at write() ----------------------------------------------------------------------
F=$B/Typed/1.json
doc=$(cat "$F")
while IFS=$'\t' read -r c v; do
  [[ -n $c ]] || continue
  check_eq "refused at write(): $c = $v" "write EINVAL" "$(attempt "$F" "{\"$c\":$v}")"
  check_eq "  and Typed/1 is unchanged" "$doc" "$(cat "$F")"
done <<'EOF'
e	"meh"
e	"OK"
ea	["sad","meh"]
ea	"{sad}"
d	null
d	"five"
d	5.5
d	3000000000
ia	[[1,2],[3]]
ia	"{1,2}"
ia	[1.5]
tt	[["a"],"b"]
c3	"abcd"
v5	"hello!"
v5	"\ud800"
n52	999.995
n52	"1000"
n52	"inf"
n	"0x10"
n	"0x1p3"
n	"1e999999"
n	"abc"
dt	"2023-02-31"
dt	"2024-02-30"
dt	"0000-01-01"
dt	"4714-11-23 BC"
tm	"24:30:00"
tm	"24:00:01"
ts	"2024-02-30T10:00:00"
ts	"0000-01-01T00:00:00"
tz	"2024-01-01T10:00:00+16:00"
ip	"10.0.0.1/33"
ip	"10.1"
ci	"10.0.0.1/8"
mac	"08:00:2b:01:02"
iv	"1 fortnight"
by	"\\xdeadbee"
mo	"$92233720368547758.08"
mo	"abc"
b4	"101"
b4	"10102"
r	"[5,1)"
r	"[a,b)"
tv	"'a':0"
u	"a0eebc99-9c0b-4ef8-bb6d"
f	"1.5"
tmz	"12:00:00+16:00"
EOF

# --- nothing went dead --------------------------------------------------------------------------
check "everything acknowledged is applied" wait_for 30 settled
check_eq "dead 0" "0" "$(status_of dead)"
check_eq "PostgreSQL's rows are as they were" "$before" "$(rows)"
finish
