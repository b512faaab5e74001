/* sbuf.h - a capped string builder for SQL text (pg.c, capture.c).
 *
 * Appends never fail loudly: the first allocation failure, or reaching
 * SBUF_MAX, sets failed, after which appends do nothing; check failed once,
 * before using the text. Identifiers and literals are escaped by libpq for
 * the connection they are sent on.
 */
#ifndef SHARDED_SBUF_H
#define SHARDED_SBUF_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#define SBUF_MAX (64u << 20)	/* one statement or parameter */

struct sbuf {
	char *p;	/* NUL-terminated once anything was added */
	size_t len, cap;
	bool failed;	/* allocation failed or cap reached: the text is unusable */
	bool toobig;	/* it was the cap */
};

void sb_addn(struct sbuf *sb, const char *s, size_t n);
void sb_add(struct sbuf *sb, const char *s);
/* name as a quoted identifier ("a""b") */
void sb_ident(struct sbuf *sb, PGconn *conn, const char *name);
/* s as a string literal ('a''b') */
void sb_literal(struct sbuf *sb, PGconn *conn, const char *s);
/* "schema"."table" */
void sb_table(struct sbuf *sb, PGconn *conn, const char *schema, const char *table);
/* s (UTF-8) as a JSON string */
void sb_json_string(struct sbuf *sb, const char *s);
void sb_free(struct sbuf *sb);

#endif
