/* doc.h - record documents: JSON objects checked against a model.
 *
 * A record file holds one JSON object whose keys are the model's columns.
 * doc_prepare() is the single gate every write passes: it parses, checks
 * every key and value against the catalog, checks the primary key against
 * the file name, merges onto the stored document, and returns the canonical
 * text that is stored and synced. Nothing here touches storage.
 */
#ifndef SHARDED_DOC_H
#define SHARDED_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "catalog.h"
#include "error.h"

#define DOC_MAX_DEFAULT (1024 * 1024)	/* default cap on one document, bytes */

#define DOC_SUFFIX ".json"	/* a record's file name: keyname.h */

/* Is pk (a key, decoded from its file name by keyname.h) a valid primary
 * key for m, in its one canonical spelling (a uuid in lower case with
 * dashes, an integer without '+' or leading zeros)? For a key of several
 * columns: exactly that many parts, each in keyname's encoding, joined by
 * KEY_SEP (catalog.h key_split), each valid for its column. SH_EINVAL with
 * a reason in why when not. A write also needs a key short enough for its
 * name. */
enum sh_err doc_check_pk(const struct model *m, const char *pk, char *why, size_t whylen);

/* Validate body (len bytes, not NUL-terminated) as the new content of record
 * pk of model m. existing is the stored document or NULL for a new record:
 * keys absent from body keep their existing values; a new record must carry
 * every NOT NULL column without a default; a generated column (catalog.h)
 * may appear only with the value existing holds. On SH_OK *out is the canonical
 * document (malloc'd, no trailing newline). On failure *out is NULL, the
 * return is SH_EINVAL or SH_ETOOBIG, and why holds a one-line reason. */
enum sh_err doc_prepare(const struct model *m, const char *pk, const char *body, size_t len,
			size_t max_len, const char *existing, char **out, char *why, size_t whylen);

/* doc_prepare, and for an update (existing holds the record) *sent gets what
 * the write sends to PostgreSQL (malloc'd; NULL for a new record, which sends
 * all of *out): the key, and every column body names, except that a body
 * naming every column existing holds (a whole-document rewrite such as
 * `sed -i`) sends only those whose value differs from existing. The columns
 * a write leaves out are not sent, so a concurrent write of another column
 * by another node is not undone by this node's copy of it. */
enum sh_err doc_prepare_update(const struct model *m, const char *pk, const char *body,
			       size_t len, size_t max_len, const char *existing, char **out,
			       char **sent, char *why, size_t whylen);

/* The object over laid onto the object under (over's keys win), as text
 * (malloc'd); NULL when either is not a JSON object or memory ran out. For
 * a write that carries some columns only (a dead letter sent again). */
char *doc_overlay(const char *under, const char *over);

/* Could more bytes appended to body still make a JSON document? True while
 * the text so far is a valid but unfinished JSON prefix (or only blanks). */
bool doc_incomplete(const char *body, size_t len);

/* The value of top-level key in doc as text (strings unquoted), malloc'd,
 * or NULL when absent or doc is not an object. */
char *doc_get_text(const char *doc, const char *key);

#endif
