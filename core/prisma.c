/* prisma.c - the Prisma schema subset of prisma.h: tokens, then blocks into a
 * small syntax tree, then the tree into a catalog (types resolved once every
 * model and enum is known, since a type may be used before it is declared).
 */
#include "prisma.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_file.h"	/* CATALOG_NAME_MAX */
#include "log.h"

#define NAME_BUF (CATALOG_NAME_MAX + 1)

/* ---- tokens ------------------------------------------------------------- */

enum tk { TK_EOF, TK_IDENT, TK_STRING, TK_NUMBER, TK_ATAT, TK_PUNCT };

struct tok {
	enum tk kind;
	const char *s;		/* TK_STRING: the text between the quotes */
	size_t len;
	int line;
};

struct parser {
	struct tok *toks;
	size_t ntoks, at;
	int prev_line;		/* line of the last token taken */
	char *err;
	size_t errlen;
	prisma_warn_fn warn;
	void *warn_ctx;
};

static enum sh_err fail_at(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum sh_err fail_at(struct parser *p, int line, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (p->err && p->errlen)
		snprintf(p->err, p->errlen, "line %d: %s", line, what);
	return SH_EINVAL;
}

static void warn_at(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void warn_at(struct parser *p, int line, const char *fmt, ...)
{
	char what[400], msg[420];
	va_list ap;

	if (!p->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(msg, sizeof(msg), "line %d: %s", line, what);
	p->warn(p->warn_ctx, msg);
}

static bool ident_start(int c)
{
	return isalpha(c) || c == '_';
}

static bool ident_char(int c)
{
	return isalnum(c) || c == '_';
}

static enum sh_err push(struct parser *p, size_t *cap, struct tok t)
{
	if (p->ntoks == *cap) {
		size_t n = *cap ? *cap * 2 : 256;
		struct tok *grown = realloc(p->toks, n * sizeof(*grown));

		if (!grown)
			return SH_ENOMEM;
		p->toks = grown;
		*cap = n;
	}
	p->toks[p->ntoks++] = t;
	return SH_OK;
}

static enum sh_err tokenize(struct parser *p, const char *text)
{
	const char *s = text;
	size_t cap = 0;
	int line = 1;
	enum sh_err rc;

	for (;;) {
		struct tok t = { .s = s, .line = line };
		unsigned char c = (unsigned char)*s;

		if (c == '\0') {
			t.kind = TK_EOF;
			return push(p, &cap, t);
		}
		if (c == '\n') {
			line++;
			s++;
			continue;
		}
		if (isspace(c) || (c == 0xef && (unsigned char)s[1] == 0xbb &&
				   (unsigned char)s[2] == 0xbf && s == text)) {
			s += isspace(c) ? 1 : 3;	/* a byte-order mark at the start */
			continue;
		}
		if (c == '/' && s[1] == '/') {	/* //, /// */
			while (*s && *s != '\n')
				s++;
			continue;
		}
		if (c == '/' && s[1] == '*') {	/* accepted, though Prisma has none */
			int start = line;

			for (s += 2; *s && !(*s == '*' && s[1] == '/'); s++)
				line += *s == '\n';
			if (!*s)
				return fail_at(p, start, "unterminated /* comment");
			s += 2;
			continue;
		}
		if (ident_start(c)) {
			t.kind = TK_IDENT;
			while (ident_char((unsigned char)*s))
				s++;
		} else if (isdigit(c) || (c == '-' && isdigit((unsigned char)s[1]))) {
			t.kind = TK_NUMBER;
			s++;
			while (isalnum((unsigned char)*s) || *s == '.')
				s++;
		} else if (c == '"') {
			t.kind = TK_STRING;
			t.s = ++s;
			while (*s && *s != '"' && *s != '\n') {
				if (*s == '\\' && s[1] && s[1] != '\n')
					s++;
				s++;
			}
			if (*s != '"')
				return fail_at(p, line, "unterminated string");
			t.len = (size_t)(s - t.s);
			s++;
			if ((rc = push(p, &cap, t)))
				return rc;
			continue;
		} else if (c == '@' && s[1] == '@') {
			t.kind = TK_ATAT;
			s += 2;
		} else if (strchr("{}()[],:=?.@", c)) {
			t.kind = TK_PUNCT;
			s++;
		} else if (c < 0x20 || c == 0x7f) {
			return fail_at(p, line, "unexpected control character 0x%02x", c);
		} else if (c >= 0x80) {
			return fail_at(p, line, "unexpected non-ASCII character outside a string");
		} else {
			return fail_at(p, line, "unexpected character '%c'", c);
		}
		t.len = (size_t)(s - t.s);
		if ((rc = push(p, &cap, t)))
			return rc;
	}
}

static const struct tok *peek(struct parser *p)
{
	return &p->toks[p->at];
}

static const struct tok *take(struct parser *p)
{
	const struct tok *t = &p->toks[p->at];

	if (t->kind != TK_EOF)
		p->at++;
	p->prev_line = t->line;
	return t;
}

static bool is_punct(const struct tok *t, char c)
{
	return t->kind == TK_PUNCT && t->s[0] == c;
}

static bool is_word(const struct tok *t, const char *w)
{
	return t->kind == TK_IDENT && t->len == strlen(w) && memcmp(t->s, w, t->len) == 0;
}

static bool tok_eq(const struct tok *a, const struct tok *b)
{
	return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

/* A token as text for messages. */
static const char *show(const struct tok *t, char *buf, size_t len)
{
	if (t->kind == TK_EOF)
		snprintf(buf, len, "the end of the file");
	else
		snprintf(buf, len, "%s%.*s%s", t->kind == TK_STRING ? "\"" : "'",
			 (int)(t->len > 40 ? 40 : t->len), t->s, t->kind == TK_STRING ? "\"" : "'");
	return buf;
}

static enum sh_err unexpected(struct parser *p, const struct tok *t, const char *expected)
{
	char b[64];

	return fail_at(p, t->line, "expected %s, found %s", expected, show(t, b, sizeof(b)));
}

static enum sh_err expect_punct(struct parser *p, char c, const char *what)
{
	if (!is_punct(peek(p), c))
		return unexpected(p, peek(p), what);
	take(p);
	return SH_OK;
}

/* A name token into buf (NUL-terminated), refused above CATALOG_NAME_MAX. */
static enum sh_err name_of(struct parser *p, const struct tok *t, char *buf)
{
	if (t->len > CATALOG_NAME_MAX)
		return fail_at(p, t->line, "name '%.*s' is longer than PostgreSQL's 63-byte limit",
			       (int)t->len, t->s);
	memcpy(buf, t->s, t->len);
	buf[t->len] = '\0';
	return SH_OK;
}

/* A string token, unescaped, into buf: a table, column or type name. */
static enum sh_err string_of(struct parser *p, const struct tok *t, char *buf)
{
	size_t n = 0;

	for (size_t i = 0; i < t->len; i++) {
		char c = t->s[i];

		if (c == '\\' && i + 1 < t->len) {
			c = t->s[++i];
			if (strchr("nrt0u", c))
				return fail_at(p, t->line, "escape '\\%c' in a name is not supported",
					       c);
		}
		if (n == CATALOG_NAME_MAX)
			return fail_at(p, t->line, "name \"%.*s\" is longer than PostgreSQL's "
				       "63-byte limit", (int)t->len, t->s);
		buf[n++] = c;
	}
	if (n == 0)
		return fail_at(p, t->line, "empty name");
	buf[n] = '\0';
	return SH_OK;
}

/* ---- syntax tree -------------------------------------------------------- */

/* An attribute: @name or @@name, and its arguments (the tokens between the
 * parentheses, or none). */
struct attr {
	const struct tok *name;		/* first part, e.g. "db" of @db.Uuid */
	const struct tok *sub;		/* "Uuid" of @db.Uuid, or NULL */
	size_t args, nargs;		/* token range in parser.toks */
	bool has_args;
	int line;
};

struct pfield {
	const struct tok *name, *type;
	const struct tok *unsupported;	/* Unsupported("...") */
	bool list, optional, id, has_default, relation;
	char column[NAME_BUF];
	const struct tok *native;	/* "Uuid" of @db.Uuid */
	char native_args[48];		/* "(12,2)" or "" */
	int line;
};

struct pmodel {
	const struct tok *name;
	char table[NAME_BUF];
	struct pfield *fields;
	size_t nfields;
	int line;
	const struct tok *key_fields[2];	/* @@id fields (the first two) */
	size_t nkey;
	int key_line;
	bool ignore;
	char db_schema[NAME_BUF];	/* @@schema, or "" */
};

struct penum {
	const struct tok *name;
	char db_name[NAME_BUF];
	char (*labels)[NAME_BUF];	/* the values as the database has them (@map) */
	size_t nlabels;
};

struct tree {
	struct pmodel *models;
	size_t nmodels;
	struct penum *enums;
	size_t nenums;
};

static void tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->nmodels; i++)
		free(t->models[i].fields);
	free(t->models);
	for (size_t i = 0; i < t->nenums; i++)
		free(t->enums[i].labels);
	free(t->enums);
}

static enum sh_err parse_attr(struct parser *p, struct attr *a)
{
	const struct tok *t;

	memset(a, 0, sizeof(*a));
	a->line = take(p)->line;	/* @ or @@ */
	t = peek(p);
	if (t->line != a->line)
		return fail_at(p, a->line, "expected an attribute name after '@', found the end "
			       "of the line");
	if (t->kind != TK_IDENT)
		return unexpected(p, t, "an attribute name after '@'");
	a->name = take(p);
	while (is_punct(peek(p), '.')) {
		take(p);
		if (peek(p)->kind != TK_IDENT)
			return unexpected(p, peek(p), "a name after '.'");
		a->sub = take(p);
	}
	if (is_punct(peek(p), '(') && peek(p)->line == p->prev_line) {
		int depth = 1, open = peek(p)->line;

		take(p);
		a->has_args = true;
		a->args = p->at;
		while (depth > 0) {
			const struct tok *x = peek(p);

			if (x->kind == TK_EOF)
				return fail_at(p, open, "unclosed '(' of @%.*s", (int)a->name->len,
					       a->name->s);
			if (is_punct(x, '(') || is_punct(x, '['))
				depth++;
			else if (is_punct(x, ')') || is_punct(x, ']'))
				depth--;
			else if (is_punct(x, '{') || is_punct(x, '}'))
				return fail_at(p, open, "unclosed '(' of @%.*s", (int)a->name->len,
					       a->name->s);
			take(p);
		}
		a->nargs = p->at - 1 - a->args;
	}
	return SH_OK;
}

static bool attr_is(const struct attr *a, const char *name)
{
	return is_word(a->name, name) && !a->sub;
}

/* The name an attribute gives: @map("x"), @map(name: "x"), @@map("x"). */
static enum sh_err attr_string(struct parser *p, const struct attr *a, char *buf)
{
	for (size_t i = a->args; i < a->args + a->nargs; i++) {
		const struct tok *t = &p->toks[i];

		if (t->kind == TK_STRING)
			return string_of(p, t, buf);
	}
	return fail_at(p, a->line, "@%.*s needs a name in quotes", (int)a->name->len, a->name->s);
}

/* The fields of @@id([a, b]) or @@id(fields: [a, b], name: "x"). */
static enum sh_err attr_id_fields(struct parser *p, const struct attr *a, struct pmodel *m)
{
	size_t i = a->args, end = a->args + a->nargs;

	while (i < end && !is_punct(&p->toks[i], '['))
		i++;
	if (i == end)
		return fail_at(p, a->line, "@@id needs a list of fields, e.g. @@id([a, b])");
	for (i++; i < end && !is_punct(&p->toks[i], ']'); i++) {
		const struct tok *t = &p->toks[i];

		if (t->kind == TK_IDENT) {
			if (m->nkey < 2)
				m->key_fields[m->nkey] = t;
			m->nkey++;
			/* skip a field's own arguments, e.g. a(sort: Desc) */
			if (i + 1 < end && is_punct(&p->toks[i + 1], '(')) {
				while (i < end && !is_punct(&p->toks[i], ')'))
					i++;
			}
		} else if (!is_punct(t, ',')) {
			return unexpected(p, t, "a field name in @@id");
		}
	}
	if (m->nkey == 0)
		return fail_at(p, a->line, "@@id lists no field");
	m->key_line = a->line;
	return SH_OK;
}

/* @db.X(args): the numbers as "(n,m)". */
static enum sh_err attr_native(struct parser *p, const struct attr *a, struct pfield *f)
{
	size_t n = 0;

	f->native = a->sub;
	f->native_args[0] = '\0';
	if (!a->has_args)
		return SH_OK;
	for (size_t i = a->args; i < a->args + a->nargs; i++) {
		const struct tok *t = &p->toks[i];
		int w;

		if (!(t->kind == TK_NUMBER || is_punct(t, ',')) || (t->kind == TK_NUMBER &&
		    !isdigit((unsigned char)t->s[0])))
			return fail_at(p, a->line, "@db.%.*s takes numbers only", (int)a->sub->len,
				       a->sub->s);
		w = snprintf(f->native_args + n, sizeof(f->native_args) - n, "%s%.*s",
			     n == 0 ? "(" : "", (int)t->len, t->s);
		if (w < 0 || (size_t)w >= sizeof(f->native_args) - n - 1)
			return fail_at(p, a->line, "arguments of @db.%.*s are too long",
				       (int)a->sub->len, a->sub->s);
		n += (size_t)w;
	}
	if (n == 0)
		return SH_OK;	/* @db.VarChar() */
	f->native_args[n++] = ')';
	f->native_args[n] = '\0';
	return SH_OK;
}

static enum sh_err parse_field(struct parser *p, struct pfield *f)
{
	const struct tok *t;
	enum sh_err rc;
	struct attr a;

	memset(f, 0, sizeof(*f));
	f->name = take(p);
	f->line = f->name->line;
	if ((rc = name_of(p, f->name, f->column)))
		return rc;
	t = peek(p);
	if (t->kind != TK_IDENT || t->line != f->line) {
		char b[64];

		return fail_at(p, t->line == f->line ? t->line : f->line,
			       "expected a type after field '%.*s', found %s", (int)f->name->len,
			       f->name->s, t->line == f->line ? show(t, b, sizeof(b)) :
			       "the end of the line");
	}
	f->type = take(p);
	if (is_word(f->type, "Unsupported") && is_punct(peek(p), '(')) {
		take(p);
		if (peek(p)->kind != TK_STRING)
			return unexpected(p, peek(p), "a type name in quotes");
		f->unsupported = take(p);
		if ((rc = expect_punct(p, ')', "')'")))
			return rc;
	}
	if (is_punct(peek(p), '[') && peek(p)->line == f->line) {
		take(p);
		if ((rc = expect_punct(p, ']', "']' after '['")))
			return rc;
		f->list = true;
	}
	if (is_punct(peek(p), '?') && peek(p)->line == f->line) {
		take(p);
		f->optional = true;
	}
	if (f->list && f->optional)
		return fail_at(p, f->line, "field '%.*s': a list cannot be optional",
			       (int)f->name->len, f->name->s);
	while (is_punct(peek(p), '@') && peek(p)->line == f->line) {
		if ((rc = parse_attr(p, &a)))
			return rc;
		if (attr_is(&a, "id")) {
			f->id = true;
		} else if (attr_is(&a, "default")) {
			f->has_default = true;
		} else if (attr_is(&a, "relation")) {
			f->relation = true;
		} else if (attr_is(&a, "map")) {
			if ((rc = attr_string(p, &a, f->column)))
				return rc;
		} else if (is_word(a.name, "db") && a.sub) {
			if ((rc = attr_native(p, &a, f)))
				return rc;
		}
		/* @unique, @updatedAt, @ignore, ... change nothing here */
	}
	t = peek(p);
	if (t->line == f->line && !is_punct(t, '}'))
		return unexpected(p, t, "an attribute ('@...') or the end of the line");
	return SH_OK;
}

static enum sh_err parse_model(struct parser *p, struct tree *tr, const struct tok *name,
			       int line)
{
	struct pmodel *grown = realloc(tr->models, (tr->nmodels + 1) * sizeof(*grown));
	struct pmodel *m;
	size_t cap = 0;
	enum sh_err rc;

	if (!grown)
		return SH_ENOMEM;
	tr->models = grown;
	m = &tr->models[tr->nmodels++];
	memset(m, 0, sizeof(*m));
	m->name = name;
	m->line = line;
	if ((rc = name_of(p, name, m->table)))
		return rc;
	for (;;) {
		const struct tok *t = peek(p);

		if (is_punct(t, '}')) {
			take(p);
			return SH_OK;
		}
		if (t->kind == TK_EOF)
			return fail_at(p, t->line, "missing '}' closing model '%.*s' (opened on "
				       "line %d)", (int)name->len, name->s, line);
		if (t->line == p->prev_line)
			return unexpected(p, t, "the end of the line");
		if (t->kind == TK_ATAT) {
			struct attr a;

			if ((rc = parse_attr(p, &a)))
				return rc;
			if (attr_is(&a, "map"))
				rc = attr_string(p, &a, m->table);
			else if (attr_is(&a, "id"))
				rc = attr_id_fields(p, &a, m);
			else if (attr_is(&a, "schema"))
				rc = attr_string(p, &a, m->db_schema);
			else if (attr_is(&a, "ignore"))
				m->ignore = true;
			if (rc)
				return rc;
			if (peek(p)->line == a.line && !is_punct(peek(p), '}'))
				return unexpected(p, peek(p), "the end of the line");
			continue;
		}
		if (t->kind != TK_IDENT)
			return unexpected(p, t, "a field name, '@@' or '}'");
		if (m->nfields == cap) {
			size_t n = cap ? cap * 2 : 16;
			struct pfield *g = realloc(m->fields, n * sizeof(*g));

			if (!g)
				return SH_ENOMEM;
			m->fields = g;
			cap = n;
		}
		if ((rc = parse_field(p, &m->fields[m->nfields])))
			return rc;
		m->nfields++;
	}
}

/* One more label of e: the value t, until an @map says otherwise. */
static enum sh_err enum_label(struct parser *p, struct penum *e, const struct tok *t)
{
	char (*grown)[NAME_BUF] = realloc(e->labels, (e->nlabels + 1) * sizeof(*grown));

	if (!grown)
		return SH_ENOMEM;
	e->labels = grown;
	return name_of(p, t, e->labels[e->nlabels++]);
}

static enum sh_err parse_enum(struct parser *p, struct tree *tr, const struct tok *name,
			      int line)
{
	struct penum *grown = realloc(tr->enums, (tr->nenums + 1) * sizeof(*grown));
	struct penum *e;
	size_t nvalues = 0;
	enum sh_err rc;

	if (!grown)
		return SH_ENOMEM;
	tr->enums = grown;
	e = &tr->enums[tr->nenums++];
	memset(e, 0, sizeof(*e));
	e->name = name;
	if ((rc = name_of(p, name, e->db_name)))
		return rc;
	for (;;) {
		const struct tok *t = peek(p);
		struct attr a;

		if (is_punct(t, '}')) {
			take(p);
			if (nvalues == 0)
				return fail_at(p, line, "enum '%.*s' has no values", (int)name->len,
					       name->s);
			return SH_OK;
		}
		if (t->kind == TK_EOF)
			return fail_at(p, t->line, "missing '}' closing enum '%.*s' (opened on "
				       "line %d)", (int)name->len, name->s, line);
		/* values may share a line: enum Role { USER ADMIN } */
		if (t->kind == TK_ATAT) {
			if ((rc = parse_attr(p, &a)))
				return rc;
			if (attr_is(&a, "map") && (rc = attr_string(p, &a, e->db_name)))
				return rc;
			continue;
		}
		if (t->kind != TK_IDENT)
			return unexpected(p, t, "an enum value, '@@' or '}'");
		take(p);
		if ((rc = enum_label(p, e, t)))
			return rc;
		nvalues++;
		while (is_punct(peek(p), '@') && peek(p)->line == t->line) {
			if ((rc = parse_attr(p, &a)))
				return rc;
			/* @map("x"): the label in the database */
			if (attr_is(&a, "map") &&
			    (rc = attr_string(p, &a, e->labels[e->nlabels - 1])))
				return rc;
		}
	}
}

/* generator and datasource: key = value lines, skipped whole. */
static enum sh_err skip_block(struct parser *p, const struct tok *kw, int line)
{
	int depth = 1;

	while (depth > 0) {
		const struct tok *t = take(p);

		if (t->kind == TK_EOF)
			return fail_at(p, t->line, "missing '}' closing %.*s (opened on line %d)",
				       (int)kw->len, kw->s, line);
		depth += is_punct(t, '{') - is_punct(t, '}');
	}
	return SH_OK;
}

static enum sh_err parse_tree(struct parser *p, struct tree *tr)
{
	for (;;) {
		const struct tok *kw = peek(p), *name;
		enum sh_err rc;
		int line;

		if (kw->kind == TK_EOF)
			return SH_OK;
		if (kw->line == p->prev_line)
			return unexpected(p, kw, "the end of the line");
		if (!(is_word(kw, "model") || is_word(kw, "enum") || is_word(kw, "generator") ||
		      is_word(kw, "datasource") || is_word(kw, "view") || is_word(kw, "type")))
			return unexpected(p, kw, "model, enum, generator or datasource");
		take(p);
		line = kw->line;
		if (peek(p)->kind != TK_IDENT)
			return unexpected(p, peek(p), "a name");
		name = take(p);
		if ((rc = expect_punct(p, '{', "'{'")))
			return rc;
		if (is_word(kw, "model")) {
			rc = parse_model(p, tr, name, line);
		} else if (is_word(kw, "enum")) {
			rc = parse_enum(p, tr, name, line);
		} else {
			if (is_word(kw, "view") || is_word(kw, "type"))
				warn_at(p, line, "%.*s '%.*s' left out: only models are exposed",
					(int)kw->len, kw->s, (int)name->len, name->s);
			rc = skip_block(p, kw, line);
		}
		if (rc)
			return rc;
	}
}

/* ---- types -------------------------------------------------------------- */

/* "()" in type is where the native arguments go ("" without arguments). */
static const struct native {
	const char *scalar, *db, *typname, *type;
} natives[] = {
	{ "Int", NULL, "int4", "integer" },
	{ "Int", "Integer", "int4", "integer" },
	{ "Int", "SmallInt", "int2", "smallint" },
	{ "Int", "Oid", "oid", "oid" },
	{ "BigInt", NULL, "int8", "bigint" },
	{ "BigInt", "BigInt", "int8", "bigint" },
	{ "String", NULL, "text", "text" },
	{ "String", "Text", "text", "text" },
	{ "String", "VarChar", "varchar", "character varying()" },
	{ "String", "Char", "bpchar", "character()" },
	{ "String", "Uuid", "uuid", "uuid" },
	{ "String", "Xml", "xml", "xml" },
	{ "String", "Inet", "inet", "inet" },
	{ "String", "Citext", "citext", "citext" },
	{ "String", "Bit", "bit", "bit()" },
	{ "String", "VarBit", "varbit", "bit varying()" },
	{ "Boolean", NULL, "bool", "boolean" },
	{ "Boolean", "Boolean", "bool", "boolean" },
	{ "DateTime", NULL, "timestamp", "timestamp(3) without time zone" },
	{ "DateTime", "Timestamp", "timestamp", "timestamp() without time zone" },
	{ "DateTime", "Timestamptz", "timestamptz", "timestamp() with time zone" },
	{ "DateTime", "Date", "date", "date" },
	{ "DateTime", "Time", "time", "time() without time zone" },
	{ "DateTime", "Timetz", "timetz", "time() with time zone" },
	{ "Float", NULL, "float8", "double precision" },
	{ "Float", "DoublePrecision", "float8", "double precision" },
	{ "Float", "Real", "float4", "real" },
	{ "Decimal", NULL, "numeric", "numeric(65,30)" },
	{ "Decimal", "Decimal", "numeric", "numeric()" },
	{ "Decimal", "Money", "money", "money" },
	{ "Json", NULL, "jsonb", "jsonb" },
	{ "Json", "Json", "json", "json" },
	{ "Json", "JsonB", "jsonb", "jsonb" },
	{ "Bytes", NULL, "bytea", "bytea" },
	{ "Bytes", "ByteA", "bytea", "bytea" },
};

static bool is_scalar(const struct tok *t)
{
	for (size_t i = 0; i < sizeof(natives) / sizeof(natives[0]); i++)
		if (!natives[i].db && is_word(t, natives[i].scalar))
			return true;
	return false;
}

static const struct pmodel *find_model(const struct tree *tr, const struct tok *name)
{
	for (size_t i = 0; i < tr->nmodels; i++)
		if (tok_eq(tr->models[i].name, name))
			return &tr->models[i];
	return NULL;
}

static const struct penum *find_enum(const struct tree *tr, const struct tok *name)
{
	for (size_t i = 0; i < tr->nenums; i++)
		if (tok_eq(tr->enums[i].name, name))
			return &tr->enums[i];
	return NULL;
}

/* typname and type of a scalar field; "[]" and "_" are added by the caller. */
static enum sh_err scalar_type(struct parser *p, const struct pfield *f, char *typname,
			       size_t tlen, char *type, size_t typelen)
{
	for (size_t i = 0; i < sizeof(natives) / sizeof(natives[0]); i++) {
		const struct native *n = &natives[i];
		const char *slot;

		if (!is_word(f->type, n->scalar))
			continue;
		if (f->native ? !n->db || !is_word(f->native, n->db) : n->db != NULL)
			continue;
		slot = strstr(n->type, "()");
		if (!slot && f->native_args[0])
			return fail_at(p, f->line, "@db.%s takes no arguments", n->db);
		snprintf(typname, tlen, "%s", n->typname);
		if (slot)
			snprintf(type, typelen, "%.*s%s%s", (int)(slot - n->type), n->type,
				 f->native_args, slot + 2);
		else
			snprintf(type, typelen, "%s", n->type);
		return SH_OK;
	}
	return fail_at(p, f->line, "field '%.*s': @db.%.*s is not a native type of %.*s",
		       (int)f->name->len, f->name->s, (int)f->native->len, f->native->s,
		       (int)f->type->len, f->type->s);
}

/* How format_type() shows a type name: quoted unless all lowercase. */
static void quote_type(const char *name, char *out, size_t len)
{
	bool plain = !isdigit((unsigned char)name[0]);

	for (const char *c = name; *c; c++)
		plain &= islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_';
	if (plain) {
		snprintf(out, len, "%s", name);
		return;
	}
	size_t n = 0;

	if (len < 3)
		return;
	out[n++] = '"';
	for (const char *c = name; *c && n + 3 < len; c++) {
		if (*c == '"')
			out[n++] = '"';
		out[n++] = *c;
	}
	out[n++] = '"';
	out[n] = '\0';
}

/* ---- the tree into a catalog -------------------------------------------- */

/* The key field of m: its one @id field, or the one field of @@id; NULL with
 * a warning when the model has no single-column key. */
static enum sh_err model_key(struct parser *p, const struct pmodel *m, const struct pfield **key)
{
	const struct pfield *id = NULL;

	*key = NULL;
	for (size_t i = 0; i < m->nfields; i++) {
		if (!m->fields[i].id)
			continue;
		if (id)
			return fail_at(p, m->fields[i].line, "model '%.*s' has a second @id field "
				       "('%.*s'); use @@id for a composite key", (int)m->name->len,
				       m->name->s, (int)m->fields[i].name->len,
				       m->fields[i].name->s);
		id = &m->fields[i];
	}
	if (id && m->nkey)
		return fail_at(p, m->key_line, "model '%.*s' has both @id and @@id",
			       (int)m->name->len, m->name->s);
	if (m->nkey > 1) {
		warn_at(p, m->key_line, "model '%.*s' left out: its primary key has %zu columns "
			"(only single-column keys are exposed)", (int)m->name->len, m->name->s,
			m->nkey);
		return SH_OK;
	}
	if (m->nkey == 1) {
		for (size_t i = 0; i < m->nfields && !id; i++)
			if (tok_eq(m->fields[i].name, m->key_fields[0]))
				id = &m->fields[i];
		if (!id)
			return fail_at(p, m->key_line, "@@id names '%.*s', not a field of model "
				       "'%.*s'", (int)m->key_fields[0]->len, m->key_fields[0]->s,
				       (int)m->name->len, m->name->s);
	}
	if (!id) {
		warn_at(p, m->line, "model '%.*s' left out: it has no @id (only models with a "
			"single-column primary key are exposed)", (int)m->name->len, m->name->s);
		return SH_OK;
	}
	*key = id;
	return SH_OK;
}

/* Is f a column (SH_OK, *skip false), left out (*skip true), or an error? */
static enum sh_err field_column(struct parser *p, const struct tree *tr, const struct pmodel *m,
				const struct pfield *f, bool *skip, char *typname, char *type,
				size_t typelen, const struct penum **en)
{
	char tn[NAME_BUF], ty[256];
	const struct penum *e;
	enum sh_err rc;

	*skip = false;
	*en = NULL;
	if (f->relation || find_model(tr, f->type)) {
		*skip = true;	/* a relation: the key columns are fields of their own */
		return SH_OK;
	}
	if (f->unsupported) {
		warn_at(p, f->line, "field '%.*s' of model '%.*s' left out: Unsupported(\"%.*s\")",
			(int)f->name->len, f->name->s, (int)m->name->len, m->name->s,
			(int)f->unsupported->len, f->unsupported->s);
		*skip = true;
		return SH_OK;
	}
	if ((e = find_enum(tr, f->type))) {
		if (f->native)
			return fail_at(p, f->line, "field '%.*s': @db.%.*s on an enum",
				       (int)f->name->len, f->name->s, (int)f->native->len,
				       f->native->s);
		snprintf(tn, sizeof(tn), "%s", e->db_name);
		quote_type(e->db_name, ty, sizeof(ty));
		*en = e;
	} else if (is_scalar(f->type)) {
		if ((rc = scalar_type(p, f, tn, sizeof(tn), ty, sizeof(ty))))
			return rc;
	} else {
		return fail_at(p, f->line, "field '%.*s' of model '%.*s': unknown type '%.*s'",
			       (int)f->name->len, f->name->s, (int)m->name->len, m->name->s,
			       (int)f->type->len, f->type->s);
	}
	if (f->list) {
		if (strlen(tn) >= CATALOG_NAME_MAX)
			return fail_at(p, f->line, "the array type of '%s' has too long a name", tn);
		typname[0] = '_';	/* checked above: "_" + tn fits in NAME_BUF */
		memcpy(typname + 1, tn, strlen(tn) + 1);
		snprintf(type, typelen, "%s[]", ty);
	} else {
		snprintf(typname, NAME_BUF, "%s", tn);
		snprintf(type, typelen, "%s", ty);
	}
	return SH_OK;
}

/* An enum column knows its labels, so that a write of another is refused. */
static enum sh_err enum_details(struct column *c, const struct penum *e, bool list)
{
	const char **labels = calloc(e->nlabels ? e->nlabels : 1, sizeof(*labels));
	int rc;

	if (!labels)
		return SH_ENOMEM;
	for (size_t i = 0; i < e->nlabels; i++)
		labels[i] = e->labels[i];
	rc = column_set_details(c, e->db_name, -1, list, false, labels, e->nlabels);
	free(labels);
	return rc ? SH_ENOMEM : SH_OK;
}

static enum sh_err build_model(struct parser *p, const struct tree *tr, const struct pmodel *m,
			       struct catalog *cat)
{
	const struct pfield *key;
	struct model *cm;
	enum sh_err rc;

	if ((rc = model_key(p, m, &key)) || !key)
		return rc;
	if (catalog_find(cat, m->table))
		return fail_at(p, m->line, "model '%.*s' is a second model on table \"%s\"",
			       (int)m->name->len, m->name->s, m->table);
	if (!(cm = catalog_add_model(cat, m->table)))
		return SH_ENOMEM;
	for (size_t i = 0; i < m->nfields; i++) {
		const struct pfield *f = &m->fields[i];
		char typname[NAME_BUF], type[300];
		const struct penum *e;
		bool skip;

		if ((rc = field_column(p, tr, m, f, &skip, typname, type, sizeof(type), &e)))
			return rc;
		if (skip) {
			if (f == key)
				return fail_at(p, f->line, "the key of model '%.*s' is not a "
					       "column", (int)m->name->len, m->name->s);
			continue;
		}
		if (model_column(cm, f->column))
			return fail_at(p, f->line, "field '%.*s' is a second field on column "
				       "\"%s\" of model '%.*s'", (int)f->name->len, f->name->s,
				       f->column, (int)m->name->len, m->name->s);
		if (f == key && (f->optional || f->list))
			return fail_at(p, f->line, "the key '%.*s' of model '%.*s' cannot be %s",
				       (int)f->name->len, f->name->s, (int)m->name->len,
				       m->name->s, f->list ? "a list" : "optional");
		/* Prisma's migrations create a list column without NOT NULL (and introspect a
		 * nullable array as T[]): PostgreSQL has the last word on null there */
		if (model_add_column(cm, f->column, type, typname, !f->optional && !f->list,
				     f->has_default, f == key))
			return SH_ENOMEM;
		if (e && (rc = enum_details(&cm->cols[cm->ncols - 1], e, f->list)))
			return rc;
	}
	return SH_OK;
}

static enum sh_err build(struct parser *p, const struct tree *tr, const char *schema,
			 struct catalog **out)
{
	struct catalog *cat = catalog_new(schema);
	enum sh_err rc = cat ? SH_OK : SH_ENOMEM;

	for (size_t i = 0; i < tr->nmodels && rc == SH_OK; i++) {
		const struct pmodel *m = &tr->models[i];

		for (size_t j = 0; j < i; j++)
			if (tok_eq(tr->models[j].name, m->name))
				rc = fail_at(p, m->line, "model '%.*s' is declared twice (first on "
					     "line %d)", (int)m->name->len, m->name->s,
					     tr->models[j].line);
		if (rc == SH_OK && find_enum(tr, m->name))
			rc = fail_at(p, m->line, "'%.*s' is both a model and an enum",
				     (int)m->name->len, m->name->s);
		if (rc != SH_OK || m->ignore)
			continue;
		if (m->db_schema[0] && strcmp(m->db_schema, schema) != 0) {
			warn_at(p, m->line, "model '%.*s' left out: it is in schema \"%s\", not "
				"\"%s\"", (int)m->name->len, m->name->s, m->db_schema, schema);
			continue;
		}
		rc = build_model(p, tr, m, cat);
	}
	if (rc != SH_OK) {
		catalog_free(cat);
		return rc;
	}
	*out = cat;
	return SH_OK;
}

/* ---- entry points ------------------------------------------------------- */

static void log_warning(void *ctx, const char *msg)
{
	(void)ctx;
	sh_log(LOG_WARNING, "prisma schema: %s", msg);
}

enum sh_err prisma_parse_ex(const char *text, const char *schema, prisma_warn_fn warn,
			    void *ctx, struct catalog **out, char *err, size_t errlen)
{
	struct parser p = { .err = err, .errlen = errlen, .warn = warn, .warn_ctx = ctx };
	struct tree tr = { 0 };
	enum sh_err rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	rc = tokenize(&p, text);
	if (rc == SH_OK)
		rc = parse_tree(&p, &tr);
	if (rc == SH_OK)
		rc = build(&p, &tr, schema, out);
	if (rc == SH_ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory");
	tree_free(&tr);
	free(p.toks);
	return rc;
}

enum sh_err prisma_parse(const char *text, const char *schema, struct catalog **out,
			 char *err, size_t errlen)
{
	return prisma_parse_ex(text, schema, log_warning, NULL, out, err, errlen);
}
