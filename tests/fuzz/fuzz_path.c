/* fuzz_path.c - libFuzzer target: a path below the mount, "block/Model/name".
 *
 * The input is split on '/' as the kernel splits a path into the names it
 * hands to fs/: the block id goes through block_id_check() and, when
 * accepted, the loader rules; the model name through catalog_find(); the
 * file name through keyname_to_key() and doc_check_pk(). Each answer is
 * checked against what the daemon relies on (an accepted id is a safe file
 * name, a record name decodes to a key whose one name it is, a rule's captures rebuild the id, the
 * first matching rule wins) and a violation abort()s. The whole input is
 * also offered as a block id, so that ids holding '/' are seen too.
 */
#include <inttypes.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "catalog.h"
#include "doc.h"
#include "keyname.h"
#include "loader.h"

#define PK_BUF (KEYNAME_KEY_MAX + 1)	/* as struct node_ref's pk in fs/nodes.h */
#define RULES_MAX 8

/* Literal text on both sides of captures, two captures in one rule, and a
 * catch-all last, so that the order of the rules matters. */
static const char rules_text[] =
	"# rules for fuzz_path\n"
	"block user-{id}\n"
	"    User  where \"id\" = $id\n"
	"    Order where \"userId\" = $id order by \"placed_at\" desc limit 100\n"
	"block org-{org}-u{user}\n"
	"    User  where \"id\" = $user and \"org\" = $org\n"
	"\n"
	"block {name}.archive\n"
	"    Event where \"name\" = $name\n"
	"block exact\n"
	"    User  where \"id\" = 1\n"
	"block x{a}y{b}z\n"
	"    Order where \"a\" = $a and \"b\" = $b\n"
	"block {any}\n"
	"    Event where \"block\" = $any\n";

static struct catalog *cat;
static struct loaders *rules;
static regex_t oracle[RULES_MAX];	/* rule i as an anchored POSIX regex */
static size_t noracles;

static void check(int ok, const char *what, const char *input)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_path: %s: '%s'\n", what, input);
	abort();
}

static struct catalog *build_catalog(void)
{
	struct catalog *c = catalog_new("public");
	struct model *m;

	if (!c)
		return NULL;
	if (!(m = catalog_add_model(c, "User")) ||
	    model_add_column(m, "id", "bigint", "int8", true, false, true) ||
	    model_add_column(m, "email", "text", "text", true, false, false))
		goto fail;
	if (!(m = catalog_add_model(c, "Order")) ||
	    model_add_column(m, "id", "integer", "int4", true, false, true) ||
	    model_add_column(m, "userId", "bigint", "int8", true, false, false))
		goto fail;
	if (!(m = catalog_add_model(c, "Event")) ||
	    model_add_column(m, "id", "uuid", "uuid", true, false, true))
		goto fail;
	if (!(m = catalog_add_model(c, "Tag")) ||
	    model_add_column(m, "name", "text", "text", true, false, true))
		goto fail;
	return c;
fail:
	catalog_free(c);
	return NULL;
}

/* "user-{id}" -> "^user-(.+)$": an independent answer to "does it match". */
static int compile_oracle(regex_t *re, const char *pat)
{
	char buf[256];
	size_t n = 0;

	buf[n++] = '^';
	for (const char *p = pat; *p && n < sizeof(buf) - 8; p++) {
		if (*p == '{') {
			p = strchr(p, '}');
			memcpy(buf + n, "(.+)", 4);
			n += 4;
			continue;
		}
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && *p != '-')
			buf[n++] = '\\';
		buf[n++] = *p;
	}
	buf[n++] = '$';
	buf[n] = '\0';
	return regcomp(re, buf, REG_EXTENDED | REG_NOSUB);
}

static void teardown(void)
{
	for (size_t i = 0; i < noracles; i++)
		regfree(&oracle[i]);
	loaders_free(rules);
	catalog_free(cat);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	cat = build_catalog();
	if (!cat || loaders_parse_text(rules_text, "fuzz", cat, &rules, err, sizeof(err)) != SH_OK) {
		fprintf(stderr, "fuzz_path: setup failed: %s\n", cat ? err : "catalog");
		abort();
	}
	if (rules->nrules > RULES_MAX)
		abort();
	for (; noracles < rules->nrules; noracles++)
		if (compile_oracle(&oracle[noracles], rules->rules[noracles].pattern) != 0)
			abort();
	atexit(teardown);
	return 0;
}

/* The length of the well-formed UTF-8 character at p (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF) into *c; 0 if none. */
static size_t oracle_utf8(const unsigned char *p, unsigned *c)
{
	static const unsigned min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t n = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 :
		   (p[0] & 0xf8) == 0xf0 ? 4 : 0;

	if (!n)
		return 0;
	*c = n == 1 ? p[0] : p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*c = (*c << 6) | (p[i] & 0x3f);
	}
	if (*c < min[n] || *c > 0x10ffff || (*c >= 0xd800 && *c <= 0xdfff))
		return 0;
	return n;
}

/* What block_id_check promises, written out again: 1 to BLOCK_ID_MAX bytes
 * of UTF-8, no leading '.', no '/', no C0, DEL or C1 control character. */
static int id_acceptable(const char *id)
{
	size_t len = strlen(id), n;
	unsigned c;

	if (len == 0 || len > BLOCK_ID_MAX || id[0] == '.' || strchr(id, '/'))
		return 0;
	for (const unsigned char *p = (const unsigned char *)id; *p; p += n)
		if (!(n = oracle_utf8(p, &c)) || c < 0x20 || (c >= 0x7f && c <= 0x9f))
			return 0;
	return 1;
}

static int check_block_id(const char *id)
{
	char why[160] = "";
	enum sh_err err = block_id_check(id, why, sizeof(why));

	check((err == SH_OK) == id_acceptable(id), "block_id_check disagrees with its contract", id);
	if (err) {
		check(why[0] != '\0', "block id refused without a reason", id);
		check(err == (strlen(id) > BLOCK_ID_MAX ? SH_ENAMETOOLONG : SH_EINVAL),
		      "block id refused with the wrong error", id);
	}
	return !err;
}

/* The rule's pattern with its captures put back must be the id. */
static void check_rebuild(const struct load_rule *r, char *values[LOADER_CAPTURES_MAX],
			  const char *id)
{
	size_t n = 0, vlen;
	int k = 0;

	for (const char *p = r->pattern; *p; p++) {
		if (*p != '{') {
			check(id[n] == *p, "captures do not rebuild the id", id);
			n++;
			continue;
		}
		p = strchr(p, '}');
		check(k < r->ncaptures && values[k] && values[k][0], "a capture is missing or empty",
		      id);
		vlen = strlen(values[k]);
		check(strncmp(id + n, values[k], vlen) == 0, "captures do not rebuild the id", id);
		n += vlen;
		k++;
	}
	check(id[n] == '\0', "captures do not rebuild the id", id);
	check(k == r->ncaptures, "a rule filled the wrong number of captures", id);
	for (; k < LOADER_CAPTURES_MAX; k++)
		check(values[k] == NULL, "a capture beyond the rule's", id);
}

static void check_loaders(const char *id)
{
	char *values[LOADER_CAPTURES_MAX];
	const struct load_rule *r = loaders_match(rules, id, values);
	size_t first = noracles;

	for (size_t i = 0; i < noracles && first == noracles; i++)
		if (regexec(&oracle[i], id, 0, NULL, 0) == 0)
			first = i;
	check(first < noracles ? r == &rules->rules[first] : r == NULL,
	      "loaders_match did not pick the first matching rule", id);
	if (r)
		check_rebuild(r, values, id);
	else
		for (int k = 0; k < LOADER_CAPTURES_MAX; k++)
			check(values[k] == NULL, "a capture left over without a rule", id);
	loader_values_free(values);
}

static void check_model(const char *name)
{
	const struct model *m = catalog_find(cat, name);
	int known = 0;

	for (size_t i = 0; i < cat->nmodels; i++)
		known |= strcmp(cat->models[i].name, name) == 0;
	check(known == (m != NULL), "catalog_find disagrees with the catalog", name);
	check(!m || strcmp(m->name, name) == 0, "catalog_find returned another model", name);
}

/* A key doc_check_pk accepts is, for an integer column, the canonical
 * spelling of a number in its range, and for a uuid the lower-case dashed one. */
static void check_pk(const struct model *m, const char *pk)
{
	const struct column *c = model_key_col(m, 0);
	char why[160] = "", canon[32];
	enum sh_err err = doc_check_pk(m, pk, why, sizeof(why));
	size_t len = strlen(pk);
	long long v;

	if (err) {
		check(err == SH_EINVAL && why[0], "key refused without SH_EINVAL and a reason", pk);
		return;
	}
	check(len <= KEYNAME_KEY_MAX, "key too long accepted", pk);
	if (c->kind == COL_INT) {
		v = strtoll(pk, NULL, 10);
		snprintf(canon, sizeof(canon), "%lld", v);
		check(strcmp(canon, pk) == 0 && v >= c->min && v <= c->max,
		      "integer key not canonical or out of range", pk);
	}
	if (c->kind == COL_UUID)
		check(len == 36 && strspn(pk, "0123456789abcdef-") == len,
		      "uuid key not in its one spelling", pk);
}

/* A name is a record's when it ends in ".json" and is not hidden; then it
 * is either the one name of exactly one key, or the long form, or no key's. */
static void check_record_name(const struct model *m, const char *name)
{
	char pk[PK_BUF], back[KEYNAME_MAX + 1];
	size_t n = strlen(name), s = strlen(DOC_SUFFIX);
	int record = name[0] != '.' && n >= s && strcmp(name + n - s, DOC_SUFFIX) == 0;
	enum keyname_kind k = keyname_to_key(name, pk, sizeof(pk));

	check((k != KEYNAME_NONE) == record, "keyname_to_key disagrees with its contract", name);
	if (k != KEYNAME_KEY)
		return;
	check(keyname_from_key(pk, back), "a decoded key has no plain name", name);
	check(strcmp(back, name) == 0, "record name does not round-trip", name);
	check(back[0] != '.' && strlen(back) <= KEYNAME_MAX,
	      "unsafe record name", name);
	for (const char *p = back; *p; p++)
		check((unsigned char)*p >= 0x20 && *p != 0x7f && *p != '/',
		      "a control character or '/' in a record name", name);
	if (m) {
		check_pk(m, pk);
		return;
	}
	for (size_t i = 0; i < cat->nmodels; i++)
		check_pk(&cat->models[i], pk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path, *rest, *block, *model, *name;

	if (memchr(data, '\0', size))
		return 0;	/* a path never holds NUL */
	path = malloc(size + 1);
	if (!path)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';

	if (check_block_id(path))
		check_loaders(path);
	rest = path;
	block = strsep(&rest, "/");
	model = rest ? strsep(&rest, "/") : NULL;
	name = rest ? strsep(&rest, "/") : NULL;
	if (check_block_id(block))
		check_loaders(block);
	if (model)
		check_model(model);
	if (name)
		check_record_name(model ? catalog_find(cat, model) : NULL, name);
	free(path);
	return 0;
}
