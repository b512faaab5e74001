#!/usr/bin/env bash
# Prisma as Prisma works: `sharded generate --schema DIR` on a schema folder (models that use
# each other across files), its catalog file mounted over tables made as Prisma's migrations
# make them, and records created without the values Prisma's client makes (cuid(), uuid(),
# nanoid(), now(), @updatedAt): sharded fills them in, in Prisma's formats, and PostgreSQL
# takes them (dead 0).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHARDED=$SHARDED_BUILD_DIR/sharded
[[ -x $SHARDED ]] || die "no $SHARDED: build first"

put() { timeout 10 tee "$1" >/dev/null <<<"$2"; }
pg_is() { [[ $(psql_q "$2") == "$1" ]]; }
pg_matches() { [[ $(psql_q "$2") =~ $1 ]]; }
status_line() { timeout 10 sed -n "s/^$1 //p" "$B/sync-status"; }

setup_tmp
start_postgres
start_redis

# --- the schema folder ----------------------------------------------------------------------
S=$T/prisma/schema
mkdir -p "$S/models" "$S/migrations"
cat >"$S/schema.prisma" <<'PRISMA'
generator client {
  provider        = "prisma-client-js"
  previewFeatures = ["prismaSchemaFolder"]
}

datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}
PRISMA
cat >"$S/models/user.prisma" <<'PRISMA'
model User {
  id        String   @id @default(cuid())
  ref       String   @unique @default(cuid())
  email     String   @unique
  name      String?
  role      Role     @default(USER)
  createdAt DateTime @default(now()) @map("created_at")
  updatedAt DateTime @updatedAt @map("updated_at")
  posts     Post[]

  @@map("users")
}
PRISMA
cat >"$S/models/post.prisma" <<'PRISMA'
model Post {
  id        String   @id @default(uuid()) @db.Uuid
  uid       String   @default(uuid()) @db.Uuid
  slug      String   @unique @default(nanoid())
  title     String
  authorId  String   @map("author_id")
  author    User     @relation(fields: [authorId], references: [id])
  createdAt DateTime @default(now()) @db.Timestamptz(3)
  updatedAt DateTime @updatedAt @db.Timestamptz(3)
  tags      Tag[]
}

model Tag {
  id    Int    @id
  posts Post[]
}
PRISMA
cat >"$S/enums.prisma" <<'PRISMA'
enum Role {
  USER
  ADMIN
}
PRISMA
echo '-- not a schema file' >"$S/migrations/migration.sql"

# The tables as `prisma migrate` creates them for that schema.
psql_q '
create type "Role" as enum ($$USER$$, $$ADMIN$$);
create table users (id text primary key, ref text not null unique, email text not null unique,
  name text, role "Role" not null default $$USER$$,
  created_at timestamp(3) not null default current_timestamp,
  updated_at timestamp(3) not null);
create table "Post" (id uuid primary key, uid uuid not null, slug text not null unique,
  title text not null, author_id text not null references users (id),
  "createdAt" timestamptz(3) not null default current_timestamp,
  "updatedAt" timestamptz(3) not null);
create table "Tag" (id integer primary key);
create table "_PostToTag" ("A" uuid not null references "Post" (id),
  "B" integer not null references "Tag" (id), primary key ("A", "B"));' >/dev/null

check "generate --schema DIR reads the folder" \
  bash -c "timeout 60 '$SHARDED' generate --schema '$S' -o '$T/cat.json' 2>'$T/gen.err'"
check_eq "the models of every file" "Post Tag users" \
  "$(jq -r '[.models[].name | select(startswith("_") | not)] | sort | join(" ")' "$T/cat.json")"
check_eq "the enum of another file types users.role" "Role" \
  "$(jq -r '.models[] | select(.name == "users") | .columns[] | select(.name == "role") | .typname' "$T/cat.json")"
check_eq "client-side defaults in the catalog" \
  "users.id:cuid users.ref:cuid users.created_at:now users.updated_at:updatedAt Post.id:uuid Post.uid:uuid Post.slug:nanoid Post.createdAt:now Post.updatedAt:updatedAt" \
  "$(jq -r '[.models[] | .name as $m | .columns[] | select(.client_default) | "\($m).\(.name):\(.client_default)"] | join(" ")' "$T/cat.json" | tr ' ' '\n' | sort -t. -k1,1r -s | tr '\n' ' ' | sed 's/ $//')"
if jq -e '.models[] | select(.name == "_PostToTag")' "$T/cat.json" >/dev/null; then
  check_eq "the implicit many-to-many table, key (A, B)" '["A","B"]' \
    "$(jq -c '.models[] | select(.name == "_PostToTag") | .primary_key' "$T/cat.json")"
else
  check "the implicit many-to-many table is named, with its key, in a warning" \
    grep -q 'the many-to-many table of .Post. and .Tag. left out (table "_PostToTag", key (A, B))' \
    "$T/gen.err"
fi
check_eq "--models keeps the client-side defaults of the models it keeps" "cuid cuid now updatedAt" \
  "$(timeout 60 "$SHARDED" generate --schema "$S" --models users 2>/dev/null |
     jq -r '[.models[].columns[] | select(.client_default) | .client_default] | join(" ")')"
printf 'model Broken {\n  id Int @id\n' >"$S/models/zz.prisma"
out=$(timeout 60 "$SHARDED" generate --schema "$S" -o "$T/bad.json" 2>&1) || true
check "an error names the file and its line" grep -q "models/zz.prisma: line 3: missing '}'" <<<"$out"
rm "$S/models/zz.prisma"

# --- records created through the mount ------------------------------------------------------
mount_sharded "catalog=$T/cat.json"
B=$MNT/app
require "mkdir a block" mkdir "$B"

check "create users/u1 without id-like, time or @updatedAt values" \
  put "$B/users/u1.json" '{"email":"ann@example.com","name":"Ann"}'
# the fraction: 3 digits as filled in, or as PostgreSQL prints the row once the sync has
# refreshed it (trailing zeros dropped: .120 reads .12, .000 nothing)
check "it reads back with them filled in" \
  timeout 10 jq -e '(.ref | test("^c[0-9a-z]{24}$")) and
    (.created_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,3})?$")) and
    .updated_at == .created_at' "$B/users/u1.json"
check "it lands in PostgreSQL: ref a cuid, the times now" \
  wait_for 20 pg_is "t" "select ref ~ '^c[0-9a-z]{24}\$' and created_at > now() at time zone 'utc' - interval '1 minute'
    and updated_at = created_at and role = 'USER' from users where id = 'u1'"
check "the role comes from the table's DEFAULT" wait_for 20 pg_is "USER" "select role from users where id = 'u1'"

P=3f0c2b7e-9a41-4d5e-8f00-1234567890ab
check "create a Post without uid, slug or times" put "$B/Post/$P.json" '{"title":"Hello","author_id":"u1"}'
check "it lands: uid a v4 uuid, slug 21 nanoid characters, times with the zone" \
  wait_for 20 pg_is "t" "select uid::text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\$'
    and slug ~ '^[A-Za-z0-9_-]{21}\$' and \"createdAt\" > now() - interval '1 minute'
    and \"updatedAt\" = \"createdAt\" from \"Post\" where id = '$P'"
check_eq "the document shows the zone as PostgreSQL does" "+00:00" \
  "$(timeout 10 jq -r '.updatedAt[-6:]' "$B/Post/$P.json")"

if jq -e '.models[] | select(.name == "_PostToTag")' "$T/cat.json" >/dev/null; then
  psql_q 'insert into "Tag" values (1)' >/dev/null
  check "link the Post and Tag 1 through _PostToTag/A,B" put "$B/_PostToTag/$P,1.json" '{}'
  check "... the row lands" \
    wait_for 20 pg_is 1 "select count(*) from \"_PostToTag\" where \"A\" = '$P' and \"B\" = 1"
fi

check "given values are kept" \
  put "$B/users/u2.json" '{"email":"bob@example.com","ref":"mine","created_at":"2001-02-03T04:05:06.000"}'
check "... in PostgreSQL too" wait_for 20 pg_is "mine 2001-02-03 04:05:06" \
  "select ref || ' ' || created_at from users where id = 'u2'"

before=$(psql_q "select updated_at from users where id = 'u1'")
sleep 0.05
check "a partial update of u1" put "$B/users/u1.json" '{"name":"Ann B"}'
check "moves its @updatedAt and keeps ref and created_at" \
  wait_for 20 pg_is "t" "select name = 'Ann B' and updated_at > '$before' and updated_at > created_at from users where id = 'u1'"
check_eq "... the document as read says the same" "true" \
  "$(timeout 10 jq '.updated_at > .created_at' "$B/users/u1.json")"
before=$(psql_q "select \"updatedAt\" from \"Post\" where id = '$P'")
sleep 0.05
check "sed -i of the title (the document carries @updatedAt as stored)" \
  timeout 10 sed -i 's/Hello/Hello again/' "$B/Post/$P.json"
check "moves @updatedAt" wait_for 20 pg_is "t" \
  "select title = 'Hello again' and \"updatedAt\" > '$before' from \"Post\" where id = '$P'"

check "nothing pending" wait_for 20 bash -c "[[ \$(sed -n 's/^pending //p' '$B/sync-status') == 0 ]]"
check_eq "dead 0" "0" "$(status_line dead)"
check "unmount" unmount_sharded
finish
