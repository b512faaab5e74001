#!/usr/bin/env bash
# sharded generate: the catalog from the sample PostgreSQL schema and from an equivalent Prisma
# schema, --models, refusals with their line numbers, usage errors; and, when the daemon knows
# -o catalog=FILE, a mount from the generated catalog while PostgreSQL is down.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHARDED=$SHARDED_BUILD_DIR/sharded
[[ -x $SHARDED ]] || die "no $SHARDED: build first"

# gen ARGS...: the tool; stderr kept in $T/gen.err (also appended to $T/tool.err, checked for
# sanitizer reports at the end).
gen() {
  local rc=0
  timeout 60 "$SHARDED" generate "$@" 2>"$T/gen.err" || rc=$?
  cat "$T/gen.err" >>"$T/tool.err"
  return $rc
}
user_name_is() { [[ $(psql_q "select name from \"User\" where id = $1" 2>/dev/null) == "$2" ]]; }
status_of() {
  local rc=0
  "$@" >/dev/null 2>&1 || rc=$?
  echo "$rc"
}
# The comparable part of a catalog: models by name, each with its key and its columns' names,
# typnames, nullability and defaults (the "type" texts differ where Prisma adds a precision).
shape() {
  jq -S '{schema, models: (.models | sort_by(.name) | map({name, primary_key,
    columns: [.columns[] | {name, typname, not_null, has_default}]}))}' "$1"
}

setup_tmp
start_postgres
load_sample_schema
: >"$T/tool.err"

# --- from PostgreSQL ------------------------------------------------------------------------
check "generate from PostgreSQL (--pg)" gen --pg "$PG_URL" -o "$T/pg.json"
check_eq "it says what it wrote" "sharded: wrote 3 models to $T/pg.json" "$(cat "$T/gen.err")"
check "the catalog is JSON of format sharded-catalog, version 2, schema public" \
  jq -e '.format == "sharded-catalog" and .version == 2 and .schema == "public"' "$T/pg.json"
check_eq "three models" "Event Order User" "$(jq -r '[.models[].name] | sort | join(" ")' "$T/pg.json")"
check_eq "their primary keys" "Event:id Order:id User:id" \
  "$(jq -r '[.models[] | "\(.name):\(.primary_key)"] | sort | join(" ")' "$T/pg.json")"
check_eq "User's columns in table order, with their types" \
  "id:bigint:int8:true:false email:text:text:true:false name:text:text:false:false active:boolean:bool:true:true settings:jsonb:jsonb:true:true created_at:timestamp with time zone:timestamptz:true:true" \
  "$(jq -r '.models[] | select(.name == "User") | [.columns[] | "\(.name):\(.type):\(.typname):\(.not_null):\(.has_default)"] | join(" ")' "$T/pg.json")"
check_eq "Order.total keeps its precision" "numeric(12,2) numeric" \
  "$(jq -r '.models[] | select(.name == "Order") | .columns[] | select(.name == "total") | "\(.type) \(.typname)"' "$T/pg.json")"
check_eq "Event's key is a uuid" "uuid" \
  "$(jq -r '.models[] | select(.name == "Event") | .columns[] | select(.name == "id") | .typname' "$T/pg.json")"
check "no sharded_* table is exposed" \
  bash -c "! jq -r '.models[].name' '$T/pg.json' | grep -q '^sharded_'"

out=$(PGPORT=1 DATABASE_URL=$PG_URL gen) || true
check "without --pg it uses \$DATABASE_URL (over PG*) and writes to standard output" \
  diff <(jq -S . "$T/pg.json") <(jq -S . <<<"$out")
out=$(env -u DATABASE_URL PGHOST=127.0.0.1 PGPORT=$PGPORT PGUSER=postgres PGDATABASE=sharded_test \
  "$SHARDED" generate --all-models -o - 2>/dev/null) || true
check "without either it uses libpq's PG* variables; --all-models and -o - are the defaults" \
  diff <(jq -S . "$T/pg.json") <(jq -S . <<<"$out")

out=$(gen --pg "$PG_URL" --models User) || true
check_eq "--models User: only User" "User" "$(jq -r '[.models[].name] | join(" ")' <<<"$out")"
out=$(gen --pg "$PG_URL" --models 'Order, Event') || true
check_eq "--models 'Order, Event': those two" "Event Order" \
  "$(jq -r '[.models[].name] | sort | join(" ")' <<<"$out")"

check_eq "an unknown model: exit 1" 1 "$(status_of gen --pg "$PG_URL" --models User,Nope)"
check "... with a message naming it" grep -q '"Nope"' "$T/gen.err"
psql_q 'create table "NoKey" (a int, b int)' >/dev/null
psql_q 'create table "TwoKeys" (a int, b int, primary key (a, b))' >/dev/null
check_eq "a table without a primary key cannot be asked for: exit 1" 1 \
  "$(status_of gen --pg "$PG_URL" --models NoKey)"
check "... saying why" grep -q '"NoKey".*no primary key' "$T/gen.err"
out=$(gen --pg "$PG_URL") || true
check_eq "... and is not in the full catalog; a two-column key is" "Event Order TwoKeys User" \
  "$(jq -r '[.models[].name] | sort | join(" ")' <<<"$out")"
psql_q 'create schema empty' >/dev/null
check_eq "a schema without tables: exit 1" 1 "$(status_of gen --pg "$PG_URL" --schema-name empty)"
check "... saying so" grep -q 'no model to expose' "$T/gen.err"
psql_q 'create schema app; create table app.t (id int primary key, v text)' >/dev/null
out=$(gen --pg "$PG_URL" --schema-name app) || true
check_eq "--schema-name app" "app t id" "$(jq -r '"\(.schema) \(.models[0].name) \(.models[0].primary_key)"' <<<"$out")"
check_eq "PostgreSQL unreachable: exit 1" 1 \
  "$(status_of gen --pg "postgresql://postgres:secret@127.0.0.1:1/x?connect_timeout=3")"
check "... with a message that hides the password" \
  bash -c "[[ -s '$T/gen.err' ]] && ! grep -q secret '$T/gen.err'"

# --- from a Prisma schema -------------------------------------------------------------------
cat >"$T/schema.prisma" <<'PRISMA'
// tools/sample-schema.sql, as Prisma would describe it
generator client {
  provider = "prisma-client-js"
}

datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}

/// the users
model User {
  id        BigInt     @id
  email     String     @unique
  name      String?
  active    Boolean    @default(true)
  settings  Json       @default("{}")
  createdAt DateTime   @default(now()) @map("created_at") @db.Timestamptz(6)
  orders    Purchase[]
  events    Event[]
}

model Purchase {
  id       BigInt    @id
  userId   BigInt
  user     User      @relation(fields: [userId], references: [id])
  total    Decimal   @default(0) @db.Decimal(12, 2)
  items    Json?
  status   String    @default("new")
  placedAt DateTime? @default(now()) @map("placed_at") @db.Timestamptz(6)

  @@map("Order")
}

model Event {
  id         String   @id @db.Uuid
  userId     BigInt?
  user       User?    @relation(fields: [userId], references: [id])
  kind       String
  payload    Json?    @db.Json
  happenedAt DateTime @map("happened_at") @db.Timestamp(6)
}

enum Unused {
  A
  B
}

model Membership {
  userId  BigInt
  groupId BigInt
  @@id([userId, groupId])
}
PRISMA
line_of() { grep -n -- "$1" "$2" | head -n 1 | cut -d: -f1; }
check "generate --schema schema.prisma" gen --schema "$T/schema.prisma" -o "$T/prisma.json"
# with composite keys in the catalog (branch tables) an @@id of two fields is a model, key in order
check_eq "the composite-key model is a model with its @@id in order" "userId,groupId" \
  "$(jq -r '.models[] | select(.name == "Membership") | .primary_key | join(",")' "$T/prisma.json")"
check "the Prisma catalog equals PostgreSQL's in models, keys, columns, types and nullability" \
  diff <(shape "$T/pg.json") <(shape <(jq '.models |= map(select(.name != "Membership"))' "$T/prisma.json"))
check_eq "the types correspond where Prisma and PostgreSQL spell them alike" \
  "bigint numeric(12,2) uuid json" \
  "$(jq -r '[(.models[] | select(.name == "User") | .columns[0].type),
             (.models[] | select(.name == "Order") | .columns[] | select(.name == "total") | .type),
             (.models[] | select(.name == "Event") | .columns[] | select(.name == "id", .name == "payload") | .type)] | join(" ")' \
    "$T/prisma.json")"
cat >"$T/mood.prisma" <<'PRISMA'
enum Mood {
  ok
  sad
}
model M {
  id   Int  @id
  mood Mood
}
model N {
  id Int @id
}
PRISMA
out=$(gen --schema "$T/mood.prisma" --models M) || true
check_eq "--models keeps a column's details (an enum's labels)" "M ok,sad" \
  "$(jq -r '[.models[].name] | join(" ")' <<<"$out") $(jq -r '.models[0].columns[] | select(.name == "mood") | .labels | join(",")' <<<"$out")"
out=$(gen --schema "$T/schema.prisma" --models Order) || true
check_eq "--models with --schema picks by table name (after @@map)" "Order" \
  "$(jq -r '[.models[].name] | join(" ")' <<<"$out")"
check_eq "--models naming the Prisma model instead: exit 1" 1 \
  "$(status_of gen --schema "$T/schema.prisma" --models Purchase)"

n=$(line_of '  total ' "$T/schema.prisma")
sed "${n}s/.*/  total    Decimal   @default(0) @db.Decimal(12, 2/" "$T/schema.prisma" >"$T/bad1.prisma"
check_eq "a syntax error (an unclosed parenthesis): exit 1" 1 "$(status_of gen --schema "$T/bad1.prisma")"
check "... naming the file and line $n" grep -q "$T/bad1.prisma: line $n: unclosed" "$T/gen.err"
n=$(line_of '  email ' "$T/schema.prisma")
sed "${n}s/.*/  email     Strng      @unique/" "$T/schema.prisma" >"$T/bad2.prisma"
check_eq "an unknown type: exit 1" 1 "$(status_of gen --schema "$T/bad2.prisma")"
check "... naming line $n and the type" grep -q "line $n: .*unknown type 'Strng'" "$T/gen.err"
n=$(line_of '  status ' "$T/schema.prisma")
sed "${n}s/.*/  status   String    @default(\"new\") extra/" "$T/schema.prisma" >"$T/bad4.prisma"
check_eq "a stray word after a field: exit 1" 1 "$(status_of gen --schema "$T/bad4.prisma")"
check "... naming line $n" grep -q "line $n: expected an attribute" "$T/gen.err"
printf 'model A {\n  id Int @id\n' >"$T/bad3.prisma"
check_eq "an unclosed model: exit 1" 1 "$(status_of gen --schema "$T/bad3.prisma")"
check "... naming where it was opened" grep -q "opened on line 1" "$T/gen.err"
check_eq "a missing schema file: exit 1" 1 "$(status_of gen --schema "$T/none.prisma")"
check "no output file is left behind by a failure" bash -c "! ls '$T'/out.json* 2>/dev/null"
check_eq "(run into -o)" 1 "$(status_of gen --schema "$T/bad1.prisma" -o "$T/out.json")"
check "still no output file" bash -c "! ls '$T'/out.json* 2>/dev/null"

# --- usage ----------------------------------------------------------------------------------
check "generate --help exits 0 and describes the format" help_ok 'sharded-catalog' "$SHARDED" generate --help
check "sharded --help exits 0 and lists generate" help_ok '^  generate' "$SHARDED" --help
check_eq "--models with --all-models: exit 2" 2 "$(status_of gen --models User --all-models)"
check_eq "--schema with --pg: exit 2" 2 "$(status_of gen --schema "$T/schema.prisma" --pg "$PG_URL")"
check_eq "an unknown option: exit 2" 2 "$(status_of gen --frobnicate)"
check_eq "an argument: exit 2" 2 "$(status_of gen User)"
check_eq "-o without a value: exit 2" 2 "$(status_of gen -o)"
check_eq "--models with no name: exit 2" 2 "$(status_of gen --models ,)"
check_eq "-o into a missing directory: exit 1" 1 \
  "$(status_of gen --schema "$T/schema.prisma" -o "$T/no/such/dir.json")"

# --- a mount from the catalog while PostgreSQL is down ---------------------------------------
check "mount.sharded --help exits 0 and lists -o catalog=" \
  help_ok 'catalog=' "$SHARDED_BUILD_DIR/mount.sharded" --help
if ((CHECK_RC == 0)); then
  psql_q 'drop table "NoKey", "TwoKeys"; drop schema app cascade; drop schema empty' >/dev/null 2>&1
  start_redis
  mount_sharded "catalog=$T/pg.json"
  require "mkdir a block with PostgreSQL up" mkdir "$MNT/user-1"
  check_eq "read through User 1" "Ada Lovelace" "$(timeout 10 jq -r .name "$MNT/user-1/User/1.json")"
  check "write User 500" bash -c "echo '{\"id\":500,\"email\":\"e@x\",\"name\":\"E\"}' > '$MNT/user-1/User/500.json'"
  check "it reaches PostgreSQL" wait_for 20 user_name_is 500 E
  check "unmount" unmount_sharded
  stop_postgres
  mount_sharded "catalog=$T/pg.json"
  check "with PostgreSQL down, the mount comes up from the catalog" is_mounted "$MNT"
  check "the block is there" test -d "$MNT/user-1"
  check_eq "its cached record reads" "Ada Lovelace" "$(timeout 10 jq -r .name "$MNT/user-1/User/1.json")"
  check_eq "and the one written before" "E" "$(timeout 10 jq -r .name "$MNT/user-1/User/500.json")"
  check "a new write is accepted" \
    bash -c "echo '{\"id\":501,\"email\":\"f@x\",\"name\":\"F\"}' > '$MNT/user-1/User/501.json'"
  check "a malformed one is still refused, by the catalog's types" \
    bash -c "! echo '{\"id\":502,\"email\":\"g@x\",\"active\":\"yes\"}' > '$MNT/user-1/User/502.json'"
  check "sync-status shows postgres down" wait_for 20 grep -qx 'postgres down' "$MNT/user-1/sync-status"
  _pg_start
  check "once PostgreSQL is back, the write arrives" \
    wait_for 60 user_name_is 501 F
  check "unmount" unmount_sharded
  check_fails "a bad catalog fails the mount" \
    "$SHARDED_BUILD_DIR/mount.sharded" -f -o "pg=$PG_URL,redis=$REDIS_URL,data=$T/data,catalog=$T/bad1.prisma" "$MNT"
else
  log "mount.sharded --help failed: the mount-while-PostgreSQL-is-down part is skipped"
fi

check "no sanitizer report from the tool" bash -c "! grep -qE 'Sanitizer|runtime error:' '$T/tool.err'"
finish
