/* sbuf.c - a capped string builder for SQL text (sbuf.h). */
#include "sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool sb_reserve(struct sbuf *sb, size_t add)
{
	size_t cap = sb->cap ? sb->cap : 256;
	char *p;

	if (sb->failed)
		return false;
	if (add > SBUF_MAX - sb->len - 1) {
		sb->failed = sb->toobig = true;
		return false;
	}
	while (cap < sb->len + add + 1)
		cap *= 2;
	if (cap == sb->cap)
		return true;
	p = realloc(sb->p, cap);
	if (!p) {
		sb->failed = true;
		return false;
	}
	sb->p = p;
	sb->cap = cap;
	return true;
}

void sb_addn(struct sbuf *sb, const char *s, size_t n)
{
	if (!sb_reserve(sb, n))
		return;
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

void sb_add(struct sbuf *sb, const char *s)
{
	sb_addn(sb, s, strlen(s));
}

void sb_ident(struct sbuf *sb, PGconn *conn, const char *name)
{
	char *q = PQescapeIdentifier(conn, name, strlen(name));

	if (!q) {
		sb->failed = true;
		return;
	}
	sb_add(sb, q);
	PQfreemem(q);
}

/* A column name as a string literal (a JSON key to look up). */
void sb_literal(struct sbuf *sb, PGconn *conn, const char *s)
{
	char *q = PQescapeLiteral(conn, s, strlen(s));

	if (!q) {
		sb->failed = true;
		return;
	}
	sb_add(sb, q);
	PQfreemem(q);
}

void sb_table(struct sbuf *sb, PGconn *conn, const char *schema, const char *table)
{
	sb_ident(sb, conn, schema);
	sb_add(sb, ".");
	sb_ident(sb, conn, table);
}

/* A JSON string literal; the input is UTF-8, so only quotes, backslashes
 * and control characters need escaping. */
void sb_json_string(struct sbuf *sb, const char *s)
{
	char esc[8];

	sb_add(sb, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			sb_addn(sb, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			sb_add(sb, esc);
		} else {
			sb_addn(sb, s, 1);
		}
	}
	sb_add(sb, "\"");
}

void sb_free(struct sbuf *sb)
{
	free(sb->p);
	memset(sb, 0, sizeof(*sb));
}
