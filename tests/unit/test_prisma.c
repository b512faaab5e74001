/* test_prisma.c - prisma_parse: the schema subset of prisma.h, types, keys, warnings, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "prisma.h"

static char warnings[2048];

static void collect(void *ctx, const char *msg)
{
	(void)ctx;
	strncat(warnings, msg, sizeof(warnings) - strlen(warnings) - 2);
	strcat(warnings, "\n");
}

static struct catalog *parse_ok(const char *text)
{
	struct catalog *cat = NULL;
	char err[512] = "";

	warnings[0] = '\0';
	if (prisma_parse_ex(text, "public", collect, NULL, &cat, err, sizeof(err)) != SH_OK)
		fail_msg("refused: %s", err);
	assert_non_null(cat);
	return cat;
}

static void parse_fails(const char *text, const char *want)
{
	struct catalog *cat = (struct catalog *)1;
	char err[512] = "";

	warnings[0] = '\0';
	if (prisma_parse_ex(text, "public", collect, NULL, &cat, err, sizeof(err)) != SH_EINVAL)
		fail_msg("accepted:\n%s", text);
	assert_null(cat);
	if (!strstr(err, want))
		fail_msg("expected a message with \"%s\", got \"%s\"", want, err);
}

static void col_is(const struct model *m, const char *name, const char *typname,
		   const char *type, bool not_null, bool has_default)
{
	const struct column *c = model_column(m, name);

	if (!c)
		fail_msg("model %s has no column %s", m->name, name);
	assert_string_equal(typname, c->typname);
	assert_string_equal(type, c->type);
	if (c->not_null != not_null || c->has_default != has_default)
		fail_msg("%s.%s: not_null %d has_default %d", m->name, name, c->not_null,
			 c->has_default);
}

static const char full[] =
	"// a schema as the original project had it\n"
	"generator client {\n"
	"  provider = \"prisma-client-js\"\n"
	"  previewFeatures = [\"x\"] // { not a block }\n"
	"}\n"
	"\n"
	"datasource db {\n"
	"  provider = \"postgresql\"\n"
	"  url      = env(\"DATABASE_URL\")\n"
	"}\n"
	"\n"
	"/// A user of the app\n"
	"model User {\n"
	"  id        Int      @id @default(autoincrement())\n"
	"  email     String   @unique\n"
	"  name      String?\n"
	"  createdAt DateTime @default(now()) @map(\"created_at\")\n"
	"  updatedAt DateTime @updatedAt\n"
	"  data      Json\n"
	"  amount    Decimal\n"
	"  flag      Boolean  @default(false)\n"
	"  big       BigInt\n"
	"  ratio     Float?\n"
	"  tags      String[]\n"
	"  bytes     Bytes\n"
	"  role      Role     @default(USER)\n"
	"  roles     Role[]\n"
	"  posts     Post[]\n"
	"  profile   Profile?\n"
	"\n"
	"  @@map(\"users\")\n"
	"  @@index([email])\n"
	"}\n"
	"\n"
	"model Post {\n"
	"  uid       String   @id @default(uuid()) @db.Uuid\n"
	"  title     String   @db.VarChar(200)\n"
	"  code      String   @db.Char(4)\n"
	"  at        DateTime @db.Timestamptz(6)\n"
	"  day       DateTime? @db.Date\n"
	"  price     Decimal  @db.Decimal(12, 2)\n"
	"  small     Int      @db.SmallInt\n"
	"  real      Float    @db.Real\n"
	"  doc       Json?    @db.Json\n"
	"  authorId  Int      @map(\"author_id\")\n"
	"  author    User     @relation(fields: [authorId], references: [id], onDelete: Cascade)\n"
	"}\n"
	"\n"
	"model Profile {\n"
	"  userId Int  @unique\n"
	"  user   User @relation(fields: [userId], references: [id])\n"
	"  bio    String\n"
	"  @@id([userId])\n"
	"}\n"
	"\n"
	"enum Role {\n"
	"  USER\n"
	"  ADMIN @map(\"admin\")\n"
	"}\n"
	"\n"
	"enum Mood { HAPPY SAD\n"
	"  @@map(\"mood\") }\n"
	"\n"
	"model Membership {\n"
	"  userId Int\n"
	"  groupId Int\n"
	"  mood Mood?\n"
	"  @@id([userId, groupId])\n"
	"}\n"
	"\n"
	"model Legacy {\n"
	"  a Int\n"
	"  @@unique([a])\n"
	"}\n"
	"\n"
	"model Hidden {\n"
	"  id Int @id\n"
	"  @@ignore\n"
	"}\n"
	"\n"
	"model Mooded {\n"
	"  id   BigInt @id\n"
	"  mood Mood\n"
	"  poly Unsupported(\"polygon\")?\n"
	"}\n";

static void test_full_schema(void **state)
{
	struct catalog *cat = parse_ok(full);
	const struct model *m;

	(void)state;
	assert_string_equal("public", cat->schema);
	assert_int_equal(4, cat->nmodels);	/* users, Post, Profile, Mooded */
	assert_string_equal("users", cat->models[0].name);
	assert_string_equal("Post", cat->models[1].name);
	assert_string_equal("Profile", cat->models[2].name);
	assert_string_equal("Mooded", cat->models[3].name);
	assert_null(catalog_find(cat, "User"));

	m = catalog_find(cat, "users");
	assert_int_equal(14, m->ncols);		/* posts and profile are relations */
	assert_string_equal("id", model_key_col(m, 0)->name);
	col_is(m, "id", "int4", "integer", true, true);
	col_is(m, "email", "text", "text", true, false);
	col_is(m, "name", "text", "text", false, false);
	col_is(m, "created_at", "timestamp", "timestamp(3) without time zone", true, true);
	col_is(m, "updatedAt", "timestamp", "timestamp(3) without time zone", true, false);
	col_is(m, "data", "jsonb", "jsonb", true, false);
	col_is(m, "amount", "numeric", "numeric(65,30)", true, false);
	col_is(m, "flag", "bool", "boolean", true, true);
	col_is(m, "big", "int8", "bigint", true, false);
	col_is(m, "ratio", "float8", "double precision", false, false);
	col_is(m, "tags", "_text", "text[]", false, false);
	col_is(m, "bytes", "bytea", "bytea", true, false);
	col_is(m, "role", "Role", "\"Role\"", true, true);
	col_is(m, "roles", "_Role", "\"Role\"[]", false, false);
	assert_null(model_column(m, "createdAt"));
	assert_int_equal(COL_INT, model_column(m, "id")->kind);
	assert_int_equal(INT32_MAX, model_column(m, "id")->max);
	/* an enum knows its labels as the database has them (@map) */
	assert_int_equal(COL_ENUM, model_column(m, "role")->kind);
	assert_int_equal(2, model_column(m, "role")->nlabels);
	assert_string_equal("USER", model_column(m, "role")->labels[0]);
	assert_string_equal("admin", model_column(m, "role")->labels[1]);
	assert_int_equal(COL_ARRAY, model_column(m, "roles")->kind);
	assert_int_equal(COL_ENUM, model_column(m, "roles")->base_kind);
	assert_string_equal("Role", model_column(m, "roles")->base);
	assert_int_equal(COL_ARRAY, model_column(m, "tags")->kind);
	assert_int_equal(COL_TIMESTAMP, model_column(m, "created_at")->kind);

	m = catalog_find(cat, "Post");
	assert_int_equal(10, m->ncols);
	assert_string_equal("uid", model_key_col(m, 0)->name);
	col_is(m, "uid", "uuid", "uuid", true, true);
	assert_int_equal(COL_UUID, model_key_col(m, 0)->kind);
	col_is(m, "title", "varchar", "character varying(200)", true, false);
	col_is(m, "code", "bpchar", "character(4)", true, false);
	col_is(m, "at", "timestamptz", "timestamp(6) with time zone", true, false);
	col_is(m, "day", "date", "date", false, false);
	col_is(m, "price", "numeric", "numeric(12,2)", true, false);
	col_is(m, "small", "int2", "smallint", true, false);
	col_is(m, "real", "float4", "real", true, false);
	col_is(m, "doc", "json", "json", false, false);
	col_is(m, "author_id", "int4", "integer", true, false);

	m = catalog_find(cat, "Profile");
	assert_string_equal("userId", model_key_col(m, 0)->name);
	assert_int_equal(2, m->ncols);

	m = catalog_find(cat, "Mooded");
	col_is(m, "mood", "mood", "mood", true, false);	/* @@map of the enum */
	assert_string_equal("mood", model_column(m, "mood")->base);
	assert_int_equal(2, model_column(m, "mood")->nlabels);
	assert_string_equal("SAD", model_column(m, "mood")->labels[1]);
	assert_null(model_column(m, "poly"));

	assert_non_null(strstr(warnings, "model 'Membership' left out: its primary key has 2"));
	assert_non_null(strstr(warnings, "model 'Legacy' left out: it has no @id"));
	assert_non_null(strstr(warnings, "Unsupported(\"polygon\")"));
	assert_null(strstr(warnings, "Hidden"));
	catalog_free(cat);
}

static void test_edge_forms(void **state)
{
	struct catalog *cat;
	const struct model *m;

	(void)state;
	/* types used before they are declared; @map(name: ...); comments everywhere;
	 * @@id(fields: [...]) with one field; a type name with digits */
	cat = parse_ok("model A { // trailing\n"
		       "  key   Int @map(name: \"the key\") // comment\n"
		       "  b2    B2?\n"
		       "  @@id(fields: [key], name: \"pk\")\n"
		       "}\n"
		       "model B2 {\n  id String @id\n  aKey Int\n"
		       "  a A @relation(fields: [aKey], references: [key])\n}\n");
	assert_int_equal(2, cat->nmodels);
	m = catalog_find(cat, "A");
	assert_int_equal(1, m->ncols);
	assert_string_equal("the key", model_key_col(m, 0)->name);
	m = catalog_find(cat, "B2");
	assert_int_equal(2, m->ncols);
	catalog_free(cat);

	/* an empty schema is an empty catalog */
	cat = parse_ok("// nothing\n");
	assert_int_equal(0, cat->nmodels);
	catalog_free(cat);

	/* @@schema: models of another schema are left out */
	cat = parse_ok("model A {\n  id Int @id\n  @@schema(\"other\")\n}\n"
		       "model B {\n  id Int @id\n  @@schema(\"public\")\n}\n");
	assert_int_equal(1, cat->nmodels);
	assert_string_equal("B", cat->models[0].name);
	assert_non_null(strstr(warnings, "schema \"other\""));
	catalog_free(cat);

	/* CRLF line ends and a byte-order mark */
	cat = parse_ok("\xef\xbb\xbfmodel A {\r\n  id Int @id\r\n}\r\n");
	assert_int_equal(1, cat->nmodels);
	catalog_free(cat);
}

static void test_errors(void **state)
{
	(void)state;
	parse_fails("model A {\n  id Int @id\n  name\n}\n", "line 3: expected a type after field 'name'");
	parse_fails("model A {\n  id Int @id\n  name Strin\n}\n", "line 3: field 'name' of model 'A': unknown type 'Strin'");
	parse_fails("model A {\n  id Int @id\n", "missing '}' closing model 'A' (opened on line 1)");
	parse_fails("model A {\n  id Int @id\n}\n}\n", "line 4: expected model, enum, generator or datasource, found '}'");
	parse_fails("modle A {\n}\n", "line 1: expected model, enum");
	parse_fails("model A {\n  id Int @id @map(\"x)\n}\n", "line 2: unterminated string");
	parse_fails("model A {\n  id Int @id\n  a Int b\n}\n", "line 3: expected an attribute");
	parse_fails("model A {\n  id Int @id\n  b Int @id\n}\n", "line 3: model 'A' has a second @id");
	parse_fails("model A {\n  id Int @id\n  @@id([id])\n}\n", "line 3: model 'A' has both @id and @@id");
	parse_fails("model A {\n  id Int\n  @@id([nope])\n}\n", "line 3: @@id names 'nope'");
	parse_fails("model A {\n  id Int @id @db.Uuid\n}\n", "line 2: field 'id': @db.Uuid is not a native type of Int");
	parse_fails("model A {\n  id String @id @db.Uuid(4)\n}\n", "line 2: @db.Uuid takes no arguments");
	parse_fails("model A {\n  id String @id @db.Nope\n}\n", "line 2: field 'id': @db.Nope");
	parse_fails("model A {\n  id Int? @id\n}\n", "line 2: the key 'id' of model 'A' cannot be optional");
	parse_fails("model A {\n  id Int @id\n  a Int @map(\"id\")\n}\n", "line 3: field 'a' is a second field on column \"id\"");
	parse_fails("model A {\n  id Int @id\n}\nmodel B {\n  id Int @id\n  @@map(\"A\")\n}\n", "line 4: model 'B' is a second model on table \"A\"");
	parse_fails("model A {\n  id Int @id\n}\nmodel A {\n  id Int @id\n}\n", "line 4: model 'A' is declared twice");
	parse_fails("model A {\n  id Int @id @default(now()\n}\n", "line 2: unclosed '(' of @default");
	parse_fails("model A {\n  id Int @id\n  x Int[]?\n}\n", "line 3: field 'x': a list cannot be optional");
	parse_fails("model A {\n  id Int @id\n  # x\n}\n", "line 3: unexpected character '#'");
	parse_fails("model A {\n  id Int @id\n  @@map(\"" "0123456789012345678901234567890123456789012345678901234567890123" "\")\n}\n", "line 3: name");
	parse_fails("enum E {\n}\n", "line 1: enum 'E' has no values");
	parse_fails("model A { id Int @id }\n", "line 1: expected the end of the line");
	parse_fails("model A {\n  id Int @id\n  a Int @\n}\n", "line 3: expected an attribute name");
}

static void test_plain_entry_point(void **state)
{
	struct catalog *cat = NULL;
	char err[256];

	(void)state;
	/* prisma_parse logs its warnings; it must behave like the _ex form */
	assert_int_equal(SH_OK, prisma_parse("model A {\n  a Int\n  b Int\n  @@id([a, b])\n}\n",
					     "public", &cat, err, sizeof(err)));
	assert_int_equal(0, cat->nmodels);
	catalog_free(cat);
	cat = (struct catalog *)1;
	assert_int_equal(SH_EINVAL, prisma_parse("model", "public", &cat, err, sizeof(err)));
	assert_null(cat);
	assert_non_null(strstr(err, "line 1: expected a name"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_schema),
		cmocka_unit_test(test_edge_forms),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_plain_entry_point),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
