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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog_file.h"	/* CATALOG_NAME_MAX, CATALOG_FILE_MAX */
#include "clientdef.h"
#include "log.h"

#define NAME_BUF (CATALOG_NAME_MAX + 1)
#define KEY_FIELDS_MAX 32	/* PostgreSQL's INDEX_MAX_KEYS */

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
	/* several files: their names, and the line number each starts after (lines
	 * run on across files, so that no two files share a line number) */
	const char *const *fnames;
	int *fbase;
	size_t nfiles;
};

/* A line number within its own file. */
static int rel_line(const struct parser *p, int line)
{
	size_t f = 0;

	while (p->fnames && f + 1 < p->nfiles && p->fbase[f + 1] < line)
		f++;
	return p->fnames && p->nfiles ? line - p->fbase[f] : line;
}

/* "line N", or "FILE: line N" when the schema is several files. */
static void where_line(const struct parser *p, int line, char *buf, size_t len)
{
	size_t f = 0;

	if (!p->fnames || !p->nfiles) {
		snprintf(buf, len, "line %d", line);
		return;
	}
	while (f + 1 < p->nfiles && p->fbase[f + 1] < line)
		f++;
	snprintf(buf, len, "%s: line %d", p->fnames[f], line - p->fbase[f]);
}

static enum sh_err fail_at(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum sh_err fail_at(struct parser *p, int line, const char *fmt, ...)
{
	char what[400], at[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	where_line(p, line, at, sizeof(at));
	if (p->err && p->errlen)
		snprintf(p->err, p->errlen, "%s: %s", at, what);
	return SH_EINVAL;
}

static void warn_at(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void warn_at(struct parser *p, int line, const char *fmt, ...)
{
	char what[400], msg[720], at[300];
	va_list ap;

	if (!p->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	where_line(p, line, at, sizeof(at));
	snprintf(msg, sizeof(msg), "%s: %s", at, what);
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

/* Tokens of text appended to p->toks (cap: their room), its lines numbered
 * from first_line; *last_line gets the last. */
static enum sh_err tokenize(struct parser *p, size_t *capp, const char *text, int first_line,
			   int *last_line)
{
	const char *s = text;
	size_t cap = *capp;
	int line = first_line;
	enum sh_err rc;

	for (;;) {
		struct tok t = { .s = s, .line = line };
		unsigned char c = (unsigned char)*s;

		if (c == '\0') {
			t.kind = TK_EOF;
			*last_line = line;
			rc = push(p, &cap, t);
			*capp = cap;
			return rc;
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
	bool rel_fields;		/* @relation(fields: ...): this side holds the key */
	const struct tok *rel_name;	/* @relation("name") or (name: "name"), or NULL */
	char client_default[CLIENTDEF_SPEC_MAX];	/* clientdef.h spec, or "" */
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
	const struct tok *key_fields[KEY_FIELDS_MAX];	/* @@id fields */
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
			if (m->nkey == KEY_FIELDS_MAX)
				return fail_at(p, a->line, "@@id lists more than %d fields",
					       KEY_FIELDS_MAX);
			m->key_fields[m->nkey++] = t;
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

/* @default(...): a function of Prisma's client (clientdef.h) is its spec;
 * anything else (a literal, autoincrement(), dbgenerated(...), sequence())
 * is a DEFAULT of the table. */
static enum sh_err attr_default(struct parser *p, const struct attr *a, struct pfield *f)
{
	static const char *const client[] = { "cuid", "uuid", "nanoid", "ulid", "now" };
	const struct tok *t = a->nargs >= 3 ? &p->toks[a->args] : NULL;
	char spec[CLIENTDEF_SPEC_MAX * 2];

	f->has_default = true;
	if (!t || t->kind != TK_IDENT || !is_punct(&p->toks[a->args + 1], '('))
		return SH_OK;
	for (size_t i = 0; i < sizeof(client) / sizeof(client[0]); i++) {
		const struct tok *arg = &p->toks[a->args + 2];

		if (!is_word(t, client[i]))
			continue;
		if (is_punct(arg, ')'))
			snprintf(spec, sizeof(spec), "%s", client[i]);
		else if (arg->kind == TK_NUMBER && a->nargs >= 4 &&
			 is_punct(&p->toks[a->args + 3], ')') && arg->len < 8)
			snprintf(spec, sizeof(spec), "%s(%.*s)", client[i], (int)arg->len, arg->s);
		else
			spec[0] = '\0';
		if (!clientdef_valid(spec) || strlen(spec) >= sizeof(f->client_default))
			return fail_at(p, a->line, "field '%.*s': @default(%.*s(...)) with an "
				       "argument this sharded does not know", (int)f->name->len,
				       f->name->s, (int)t->len, t->s);
		/* `@default(now()) @updatedAt` in either order is @updatedAt */
		if (strcmp(f->client_default, "updatedAt") != 0)
			memcpy(f->client_default, spec, strlen(spec) + 1);
		/* the client fills it; the table has no DEFAULT, but for now(), which
		 * Prisma's migrations make DEFAULT CURRENT_TIMESTAMP */
		f->has_default = is_word(t, "now");
		return SH_OK;
	}
	return SH_OK;
}

/* @relation("name", fields: [...], references: [...]): its name and whether
 * this side holds the foreign key. */
static void attr_relation(struct parser *p, const struct attr *a, struct pfield *f)
{
	for (size_t i = a->args; i < a->args + a->nargs; i++) {
		const struct tok *t = &p->toks[i];
		bool named = i + 2 < a->args + a->nargs && is_punct(&p->toks[i + 1], ':');

		if (i == a->args && t->kind == TK_STRING)
			f->rel_name = t;
		else if (named && is_word(t, "name") && p->toks[i + 2].kind == TK_STRING)
			f->rel_name = &p->toks[i + 2];
		else if (named && is_word(t, "fields"))
			f->rel_fields = true;
	}
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
			if ((rc = attr_default(p, &a, f)))
				return rc;
		} else if (attr_is(&a, "updatedAt")) {
			snprintf(f->client_default, sizeof(f->client_default), "updatedAt");
		} else if (attr_is(&a, "relation")) {
			f->relation = true;
			attr_relation(p, &a, f);
		} else if (attr_is(&a, "map")) {
			if ((rc = attr_string(p, &a, f->column)))
				return rc;
		} else if (is_word(a.name, "db") && a.sub) {
			if ((rc = attr_native(p, &a, f)))
				return rc;
		}
		/* @unique, @ignore, ... change nothing here */
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
				       "line %d)", (int)name->len, name->s, rel_line(p, line));
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
				       "line %d)", (int)name->len, name->s, rel_line(p, line));
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
				       (int)kw->len, kw->s, rel_line(p, line));
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

		if (kw->kind == TK_EOF && p->at + 1 < p->ntoks) {
			p->at++;	/* the end of one file of several */
			continue;
		}
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

/* The key fields of m, in key order: its one @id field, or the fields of
 * @@id; none (*n 0) with a warning when the model has no key. */
static enum sh_err model_key(struct parser *p, const struct pmodel *m,
			     const struct pfield **key, size_t *n)
{
	const struct pfield *id = NULL;

	*n = 0;
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
	if (id) {
		key[(*n)++] = id;
		return SH_OK;
	}
	for (size_t k = 0; k < m->nkey; k++) {
		const struct pfield *f = NULL;

		for (size_t i = 0; i < m->nfields && !f; i++)
			if (tok_eq(m->fields[i].name, m->key_fields[k]))
				f = &m->fields[i];
		if (!f)
			return fail_at(p, m->key_line, "@@id names '%.*s', not a field of model "
				       "'%.*s'", (int)m->key_fields[k]->len, m->key_fields[k]->s,
				       (int)m->name->len, m->name->s);
		for (size_t j = 0; j < *n; j++)
			if (key[j] == f)
				return fail_at(p, m->key_line, "@@id names '%.*s' twice",
					       (int)f->name->len, f->name->s);
		key[(*n)++] = f;
	}
	if (*n == 0)
		warn_at(p, m->line, "model '%.*s' left out: it has no @id or @@id (only models "
			"with a primary key are exposed)", (int)m->name->len, m->name->s);
	return SH_OK;
}

/* "(a, b)" of the key columns, for messages. */
static void key_text(const char *const *cols, size_t n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < n && used < len; k++) {
		int w = snprintf(buf + used, len - used, "%s%s%s", k ? ", " : "(", cols[k],
				 k + 1 == n ? ")" : "");

		if (w < 0)
			return;
		used += (size_t)w;
	}
}

/* Can the catalog hold a key of n columns? Composite keys come with the
 * catalog's key list (model_set_key, MODEL_KEY_MAX, issue 12 item 1); before
 * it, a model with one is left out, with a warning naming its key. */
static bool key_fits(struct parser *p, int line, const char *what, const char *table,
		     const char *const *cols, size_t n)
{
	char kt[400];

#ifdef MODEL_KEY_MAX
	if (n <= MODEL_KEY_MAX)
		return true;
#else
	if (n == 1)
		return true;
#endif
	key_text(cols, n, kt, sizeof(kt));
	warn_at(p, line, "%s left out (table \"%s\", key %s): this catalog holds only "
		"one-column keys", what, table, kt);
	return false;
}

/* Make cols (n names, in key order) the primary key of cm. */
static enum sh_err set_key(struct model *cm, const char *const *cols, size_t n)
{
#ifdef MODEL_KEY_MAX
	return model_set_key(cm, cols, n) ? SH_ENOMEM : SH_OK;
#else
	const struct column *c = n == 1 ? model_column(cm, cols[0]) : NULL;

	if (!c)
		return SH_EINVAL;
	cm->pk = (size_t)(c - cm->cols);
	return SH_OK;
#endif
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
	const struct pfield *key[KEY_FIELDS_MAX];
	const char *cols[KEY_FIELDS_MAX];
	size_t nkey;
	struct model *cm;
	enum sh_err rc;
	char what[100];

	if ((rc = model_key(p, m, key, &nkey)) || nkey == 0)
		return rc;
	for (size_t k = 0; k < nkey; k++) {
		cols[k] = key[k]->column;
		if (key[k]->optional || key[k]->list)
			return fail_at(p, key[k]->line, "the key '%.*s' of model '%.*s' cannot be "
				       "%s", (int)key[k]->name->len, key[k]->name->s,
				       (int)m->name->len, m->name->s,
				       key[k]->list ? "a list" : "optional");
	}
	if (catalog_find(cat, m->table))
		return fail_at(p, m->line, "model '%.*s' is a second model on table \"%s\"",
			       (int)m->name->len, m->name->s, m->table);
	snprintf(what, sizeof(what), "model '%.*s'", (int)m->name->len, m->name->s);
	if (!key_fits(p, nkey > 1 ? m->key_line : m->line, what, m->table, cols, nkey))
		return SH_OK;
	if (!(cm = catalog_add_model(cat, m->table)))
		return SH_ENOMEM;
	for (size_t i = 0; i < m->nfields; i++) {
		const struct pfield *f = &m->fields[i];
		char typname[NAME_BUF], type[300];
		const struct penum *e;
		bool skip, is_key = false;

		for (size_t k = 0; k < nkey; k++)
			is_key |= key[k] == f;
		if ((rc = field_column(p, tr, m, f, &skip, typname, type, sizeof(type), &e)))
			return rc;
		if (skip) {
			if (is_key)
				return fail_at(p, f->line, "the key of model '%.*s' is not a "
					       "column", (int)m->name->len, m->name->s);
			continue;
		}
		if (model_column(cm, f->column))
			return fail_at(p, f->line, "field '%.*s' is a second field on column "
				       "\"%s\" of model '%.*s'", (int)f->name->len, f->name->s,
				       f->column, (int)m->name->len, m->name->s);
		/* Prisma's migrations create a list column without NOT NULL (and introspect a
		 * nullable array as T[]): PostgreSQL has the last word on null there */
		if (model_add_column(cm, f->column, type, typname, !f->optional && !f->list,
				     f->has_default, false) ||
		    (f->client_default[0] &&
		     model_set_client_default(cm, f->column, f->client_default)))
			return SH_ENOMEM;
		if (e && (rc = enum_details(&cm->cols[cm->ncols - 1], e, f->list)))
			return rc;
	}
	return set_key(cm, cols, nkey);
}

/* ---- implicit many-to-many tables --------------------------------------- */

/* Is m a model of the catalog (not @@ignore'd, in the schema asked for)? */
static bool exposed(const struct pmodel *m, const char *schema)
{
	return !m->ignore && (!m->db_schema[0] || strcmp(m->db_schema, schema) == 0);
}

/* The relation name of f on model m: its @relation name, or Prisma's default,
 * the two model names sorted and joined by "To". */
static void relation_name(const struct pmodel *m, const struct pfield *f, char *buf, size_t len)
{
	const struct tok *a = m->name, *b = f->type;
	int cmp;

	if (f->rel_name) {
		snprintf(buf, len, "%.*s", (int)f->rel_name->len, f->rel_name->s);
		return;
	}
	cmp = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
	if (cmp > 0 || (cmp == 0 && a->len > b->len)) {
		a = f->type;
		b = m->name;
	}
	snprintf(buf, len, "%.*sTo%.*s", (int)a->len, a->s, (int)b->len, b->s);
}

/* The other side of list relation f of m (a list field of the related model
 * back to m, with the same relation name), or NULL. */
static const struct pfield *other_side(const struct tree *tr, const struct pmodel *m,
				       const struct pfield *f, const struct pmodel **om)
{
	char name[2 * NAME_BUF + 4], oname[2 * NAME_BUF + 4];

	*om = find_model(tr, f->type);
	if (!*om)
		return NULL;
	relation_name(m, f, name, sizeof(name));
	for (size_t i = 0; i < (*om)->nfields; i++) {
		const struct pfield *g = &(*om)->fields[i];

		if (g == f || !tok_eq(g->type, m->name))
			continue;
		relation_name(*om, g, oname, sizeof(oname));
		if (strcmp(name, oname) == 0)
			return g;
	}
	return NULL;
}

/* Column `col` of a join table: the type of model m's one key field. */
static enum sh_err join_column(struct parser *p, const struct tree *tr, const struct pmodel *m,
			       struct model *cm, const char *col, int line)
{
	const struct pfield *key[KEY_FIELDS_MAX];
	const struct penum *e;
	char typname[NAME_BUF], type[300];
	size_t nkey;
	bool skip;
	enum sh_err rc;

	if ((rc = model_key(p, m, key, &nkey)))
		return rc;
	if (nkey != 1)
		return fail_at(p, line, "a many-to-many relation with model '%.*s' needs a "
			       "one-field @id on it", (int)m->name->len, m->name->s);
	if ((rc = field_column(p, tr, m, key[0], &skip, typname, type, sizeof(type), &e)))
		return rc;
	if (model_add_column(cm, col, type, typname, true, false, false))
		return SH_ENOMEM;
	if (e && (rc = enum_details(&cm->cols[cm->ncols - 1], e, false)))
		return rc;
	return SH_OK;
}

/* The table Prisma creates for an implicit many-to-many relation: "_" + its
 * name, column A the key of the model first by name, B of the other, and
 * (A, B) as the key, as Prisma's primary key (or, before Prisma 6, its
 * unique index) on them. */
static enum sh_err build_join(struct parser *p, const struct tree *tr, const struct pmodel *m,
			      const struct pfield *f, const char *schema, struct catalog *cat)
{
	static const char *const cols[] = { "A", "B" };
	const struct pmodel *om, *a, *b;
	const struct pfield *g = other_side(tr, m, f, &om);
	char rel[2 * NAME_BUF + 4], table[2 * NAME_BUF + 8], what[2 * NAME_BUF + 64];
	struct model *cm;
	enum sh_err rc;
	int cmp;

	if (!g || !g->list || g->rel_fields || !exposed(om, schema))
		return SH_OK;	/* a one-to-many relation, or with a model left out */
	relation_name(m, f, rel, sizeof(rel));
	snprintf(table, sizeof(table), "_%s", rel);
	if (strlen(table) > CATALOG_NAME_MAX)
		return fail_at(p, f->line, "the many-to-many table \"%s\" has a name longer than "
			       "PostgreSQL's 63-byte limit", table);
	if (catalog_find(cat, table)) {
		/* the other side seen first, or a model of that name */
		for (size_t i = 0; i < tr->nmodels; i++)
			if (strcmp(tr->models[i].table, table) == 0)
				return fail_at(p, f->line, "the many-to-many table \"%s\" is also "
					       "model '%.*s'", table,
					       (int)tr->models[i].name->len,
					       tr->models[i].name->s);
		return SH_OK;
	}
	cmp = memcmp(m->name->s, om->name->s,
		     m->name->len < om->name->len ? m->name->len : om->name->len);
	a = cmp < 0 || (cmp == 0 && m->name->len <= om->name->len) ? m : om;
	b = a == m ? om : m;
	snprintf(what, sizeof(what), "the many-to-many table of '%.*s' and '%.*s'",
		 (int)a->name->len, a->name->s, (int)b->name->len, b->name->s);
	if (!key_fits(p, f->line, what, table, cols, 2))
		return SH_OK;
	if (!(cm = catalog_add_model(cat, table)))
		return SH_ENOMEM;
	if ((rc = join_column(p, tr, a, cm, "A", f->line)) ||
	    (rc = join_column(p, tr, b, cm, "B", f->line)))
		return rc;
	return set_key(cm, cols, 2);
}

static enum sh_err build_joins(struct parser *p, const struct tree *tr, const char *schema,
			       struct catalog *cat)
{
	enum sh_err rc = SH_OK;

	for (size_t i = 0; i < tr->nmodels && rc == SH_OK; i++) {
		const struct pmodel *m = &tr->models[i];

		if (!exposed(m, schema))
			continue;
		for (size_t j = 0; j < m->nfields && rc == SH_OK; j++) {
			const struct pfield *f = &m->fields[j];

			if (f->list && !f->rel_fields && find_model(tr, f->type))
				rc = build_join(p, tr, m, f, schema, cat);
		}
	}
	return rc;
}

static enum sh_err build(struct parser *p, const struct tree *tr, const char *schema,
			 struct catalog **out)
{
	struct catalog *cat = catalog_new(schema);
	enum sh_err rc = cat ? SH_OK : SH_ENOMEM;

	for (size_t i = 0; i < tr->nmodels && rc == SH_OK; i++) {
		const struct pmodel *m = &tr->models[i];

		for (size_t j = 0; j < i && rc == SH_OK; j++) {
			char first[300];

			if (!tok_eq(tr->models[j].name, m->name))
				continue;
			where_line(p, tr->models[j].line, first, sizeof(first));
			rc = fail_at(p, m->line, "model '%.*s' is declared twice (first on %s)",
				     (int)m->name->len, m->name->s, first);
		}
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
	if (rc == SH_OK)
		rc = build_joins(p, tr, schema, cat);
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

enum sh_err prisma_parse_files(const char *const *texts, const char *const *names, size_t n,
			       const char *schema, prisma_warn_fn warn, void *ctx,
			       struct catalog **out, char *err, size_t errlen)
{
	struct parser p = { .err = err, .errlen = errlen, .warn = warn, .warn_ctx = ctx,
			    .fnames = names, .nfiles = names ? n : 0 };
	struct tree tr = { 0 };
	enum sh_err rc = SH_OK;
	size_t cap = 0;
	int line = 0;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (n == 0) {
		if (err && errlen)
			snprintf(err, errlen, "no .prisma file");
		return SH_EINVAL;
	}
	if (!(p.fbase = calloc(n, sizeof(*p.fbase))))
		rc = SH_ENOMEM;
	for (size_t i = 0; i < n && rc == SH_OK; i++) {
		p.fbase[i] = line;
		rc = tokenize(&p, &cap, texts[i], line + 1, &line);
		line++;		/* a gap: no token of the next file is on this one's last line */
	}
	if (rc == SH_OK)
		rc = parse_tree(&p, &tr);
	if (rc == SH_OK)
		rc = build(&p, &tr, schema, out);
	if (rc == SH_ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory");
	tree_free(&tr);
	free(p.toks);
	free(p.fbase);
	return rc;
}

enum sh_err prisma_parse_ex(const char *text, const char *schema, prisma_warn_fn warn,
			    void *ctx, struct catalog **out, char *err, size_t errlen)
{
	return prisma_parse_files(&text, NULL, 1, schema, warn, ctx, out, err, errlen);
}

enum sh_err prisma_parse(const char *text, const char *schema, struct catalog **out,
			 char *err, size_t errlen)
{
	return prisma_parse_ex(text, schema, log_warning, NULL, out, err, errlen);
}

/* ---- a folder of .prisma files ------------------------------------------ */

#define DIR_FILES_MAX 4096
#define DIR_DEPTH_MAX 8

struct files {
	char **names;		/* relative to the folder */
	char **texts;
	size_t n;
	size_t total;		/* bytes, capped at CATALOG_FILE_MAX in all */
	char *err;
	size_t errlen;
};

static enum sh_err files_fail(struct files *fs, enum sh_err rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum sh_err files_fail(struct files *fs, enum sh_err rc, const char *fmt, ...)
{
	va_list ap;

	if (fs->err && fs->errlen) {
		va_start(ap, fmt);
		vsnprintf(fs->err, fs->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* The whole of file path (rel for messages), NUL-terminated, into fs. */
static enum sh_err read_one(struct files *fs, const char *path, const char *rel)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap), **names, **texts;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf) {
		int e = errno;

		free(buf);
		if (fd >= 0)
			close(fd);
		return fd < 0 ? files_fail(fs, SH_EIO, "%s: %s", rel, strerror(e)) : SH_ENOMEM;
	}
	for (;;) {
		ssize_t got;

		if (len + 1 == cap) {
			char *grown = fs->total + len > CATALOG_FILE_MAX ? NULL : realloc(buf, cap * 2);

			if (!grown) {
				free(buf);
				close(fd);
				return fs->total + len > CATALOG_FILE_MAX ?
				       files_fail(fs, SH_ETOOBIG, "the .prisma files hold more than "
						  "%d bytes in all", CATALOG_FILE_MAX) : SH_ENOMEM;
			}
			buf = grown;
			cap *= 2;
		}
		got = read(fd, buf + len, cap - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			int e = errno;

			close(fd);
			if (got < 0) {
				free(buf);
				return files_fail(fs, SH_EIO, "%s: %s", rel, strerror(e));
			}
			break;
		}
		len += (size_t)got;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		free(buf);
		return files_fail(fs, SH_EINVAL, "%s: holds a NUL byte: not a Prisma schema", rel);
	}
	names = realloc(fs->names, (fs->n + 1) * sizeof(*names));
	if (names)
		fs->names = names;
	texts = names ? realloc(fs->texts, (fs->n + 1) * sizeof(*texts)) : NULL;
	if (texts)
		fs->texts = texts;
	if (!names || !texts || !(fs->names[fs->n] = strdup(rel))) {
		free(buf);
		return SH_ENOMEM;
	}
	fs->texts[fs->n++] = buf;
	fs->total += len;
	return SH_OK;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.prisma file under dir (rel: its path from the top, "" there), in
 * name order, subfolders included, as Prisma reads a schema folder. */
static enum sh_err read_folder(struct files *fs, const char *dir, const char *rel, int depth)
{
	DIR *d = opendir(dir);
	char **entries = NULL;
	size_t n = 0;
	struct dirent *de;
	enum sh_err rc = SH_OK;

	if (!d)
		return files_fail(fs, SH_EIO, "%s: %s", *rel ? rel : dir, strerror(errno));
	while ((de = readdir(d)) && rc == SH_OK) {
		char **grown;

		if (de->d_name[0] == '.')	/* ., .., hidden files and folders */
			continue;
		if (n == DIR_FILES_MAX) {
			rc = files_fail(fs, SH_ETOOBIG, "%s: more than %d entries", dir,
					DIR_FILES_MAX);
		} else if (!(grown = realloc(entries, (n + 1) * sizeof(*grown))) ||
			   !(grown[n] = strdup(de->d_name))) {
			if (grown)
				entries = grown;
			rc = SH_ENOMEM;
		} else {
			entries = grown;
			n++;
		}
	}
	closedir(d);
	if (entries)
		qsort(entries, n, sizeof(*entries), by_name);
	for (size_t i = 0; i < n && rc == SH_OK; i++) {
		size_t len = strlen(entries[i]);
		char path[4096], sub[4096];
		struct stat st;

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, entries[i]) >= sizeof(path) ||
		    (size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "",
				     entries[i]) >= sizeof(sub)) {
			rc = files_fail(fs, SH_ETOOBIG, "%s/%s: path too long", dir, entries[i]);
			break;
		}
		if (stat(path, &st) != 0) {
			rc = files_fail(fs, SH_EIO, "%s: %s", sub, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			rc = depth >= DIR_DEPTH_MAX ?
			     files_fail(fs, SH_ETOOBIG, "%s: folders nested more than %d deep", sub,
					DIR_DEPTH_MAX) :
			     read_folder(fs, path, sub, depth + 1);
		} else if (S_ISREG(st.st_mode) && len > 7 &&
			   strcmp(entries[i] + len - 7, ".prisma") == 0) {
			rc = read_one(fs, path, sub);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(entries[i]);
	free(entries);
	return rc;
}

enum sh_err prisma_parse_dir(const char *dir, const char *schema, prisma_warn_fn warn,
			     void *ctx, struct catalog **out, char *err, size_t errlen)
{
	struct files fs = { .err = err, .errlen = errlen };
	enum sh_err rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	rc = read_folder(&fs, dir, "", 0);
	if (rc == SH_OK && fs.n == 0)
		rc = files_fail(&fs, SH_EINVAL, "no .prisma file in the folder");
	if (rc == SH_OK)
		rc = prisma_parse_files((const char *const *)fs.texts,
					(const char *const *)fs.names, fs.n, schema, warn, ctx,
					out, err, errlen);
	else if (rc == SH_ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory");
	for (size_t i = 0; i < fs.n; i++) {
		free(fs.names[i]);
		free(fs.texts[i]);
	}
	free(fs.names);
	free(fs.texts);
	return rc;
}
