/* engine.h - what the file system asks of sharded, in its own terms.
 *
 * The engine owns the catalog, the blocks, a PostgreSQL connection for
 * read-through and the sync workers. This header is the only core header
 * fs/ includes (tests/check_fs_includes.cmake fails the suite otherwise), so
 * every rule about blocks, records and control files lives behind it, not in
 * the FUSE layer. What it exposes beyond its own calls, and why:
 *   - error.h: the result of every call (fs/errmap.c maps it to errno once);
 *   - log.h: sh_log, the one logging function, which fs/ logs through too;
 *   - catalog.h: the models, read-only (names, look-up by name), which name
 *     the directories; fs/ never builds or changes a catalog;
 *   - clock.h: the wall clock, for the times of what has no stored mtime
 *     (directories, control files, a record being created).
 * A block is an opaque, counted handle (engine_block_get/put): fs/ never sees
 * the block set, a store, or a block's locks and state.
 */
#ifndef SHARDED_ENGINE_H
#define SHARDED_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "clock.h"
#include "error.h"
#include "log.h"

/* The longest block id, in bytes (blocks.h's BLOCK_ID_MAX; engine.c checks they agree). */
#define ENGINE_BLOCK_ID_MAX 128

/* The cap on one document when engine_config.max_doc is 0 (doc.h's DOC_MAX_DEFAULT). */
#define ENGINE_MAX_DOC_DEFAULT (1024 * 1024)

struct engine_config {
	const char *pg;		/* libpq conninfo or URI; NULL: $DATABASE_URL, else PG* defaults */
	const char *redis;	/* redis:// URL; NULL: $REDIS_URL, else redis://127.0.0.1:6379 */
	const char *data_dir;	/* block files */
	const char *models;	/* "User,Order"; NULL: every table with a primary key */
	const char *schema;	/* PostgreSQL schema; NULL: public */
	const char *node;	/* this daemon's consumer name; NULL: the host name */
	int64_t ttl;		/* default idle TTL of a block, seconds; 0 = never */
	bool sync_full;		/* fsync SQLite on every write */
	size_t max_doc;		/* cap on one document; 0: DOC_MAX_DEFAULT */
	const char *loaders;	/* loader rules file (loader.h); NULL: blocks start empty */
	const char *catalog;	/* catalog file (catalog_file.h); NULL: read pg_catalog */
	int64_t cleanup_s;	/* periodic cleanup of Redis leftovers, seconds; 0 = never */
	const char *local;	/* "Event,Log": models never read through; NULL: none */
	bool ids_strict;	/* -o ids=strict: a new record of a model keyed by a sequence
				 * must carry an id handed out by its ENGINE_NEXT_ID_NAME */
	enum engine_capture {	/* -o capture=: changes made in PostgreSQL (core/capture.h) */
		ENGINE_CAPTURE_AUTO,	/* listen while `sharded capture install` is in place */
		ENGINE_CAPTURE_ON,	/* listen even without the triggers */
		ENGINE_CAPTURE_OFF
	} capture;
};

/* The control files of every block, then the mount's own (metrics, at the
 * root), then each model's .next-id (read with engine_next_id, not engine_ctl_read). */
enum ctl_file { CTL_TTL, CTL_INVALIDATE, CTL_SYNC_STATUS, CTL_COUNT, CTL_METRICS = CTL_COUNT,
		CTL_NEXT_ID };

/* Called from a worker thread after a record (or, with model NULL, a whole
 * block) changed behind the user's back; gone: the record may no longer
 * exist (else only its content changed). */
typedef void (*engine_change_fn)(void *ctx, const char *block, const char *model, const char *pk,
				 bool gone);

struct engine;

/* One block, as a counted reference: valid until engine_block_put(), even
 * when the block is removed meanwhile. */
struct block;

/* Connect to PostgreSQL and Redis, load the catalog, open the blocks.
 * On failure err holds a one-line reason without any password. */
enum sh_err engine_open(const struct engine_config *cfg, struct engine **out, char *err,
			size_t errlen);

/* Open the block files in this process and start the workers: call it after
 * daemonizing (SQLite's locks do not survive a fork). */
enum sh_err engine_start(struct engine *e, engine_change_fn on_change, void *ctx);

/* Stop the workers, after letting pending writes drain for a bounded time.
 * No change callback runs after it returns. */
void engine_stop(struct engine *e);

/* engine_stop(), then free everything. Accepts NULL. */
void engine_close(struct engine *e);

const struct catalog *engine_catalog(const struct engine *e);

/* The cap on one document, in bytes (engine_config.max_doc or the default). */
size_t engine_max_doc(const struct engine *e);

/* A reference to block id: SH_ENOENT when there is none (or it was removed
 * and is only still sending its writes). */
enum sh_err engine_block_get(struct engine *e, const char *id, struct block **out);

/* Drop a reference from engine_block_get(). Accepts NULL. */
void engine_block_put(struct block *b);

/* Call fn with the id of every block a user sees, in id order. */
typedef void (*engine_block_fn)(void *ctx, const char *id);
enum sh_err engine_block_list(struct engine *e, engine_block_fn fn, void *ctx);

/* How many blocks this daemon holds, removed ones still sending included. */
size_t engine_block_count(struct engine *e);

/* Record keys become file names through one reversible encoding
 * (core/keyname.h, README "Keys and file names"): '/', ',', '%', control
 * bytes and a leading '.' are %XX, the empty key is "%00", and a key too
 * long for a file name is listed under a long form with a hash. */
#define ENGINE_KEY_MAX 2048	/* longest key a record node holds */
#define ENGINE_NAME_MAX 255	/* longest record file name */

/* The key of record file name name in model m of block block: SH_OK with
 * the key in pk (pklen bytes); SH_ENOENT when name is not a record's name
 * at all (hidden, or not ending in ".json": a scratch file); SH_EINVAL when
 * it ends in ".json" but is not the one name of a key (e.g. "a%2fb.json",
 * or the long form of a key the block does not hold), the reason in why. */
enum sh_err engine_record_key(struct engine *e, const char *block, const struct model *m,
			      const char *name, char *pk, size_t pklen, char *why, size_t whylen);

/* The file name of record pk into name (namelen bytes, ENGINE_NAME_MAX + 1
 * always does); false when it does not fit. */
bool engine_record_name(const struct model *m, const char *pk, char *name, size_t namelen);

/* Is pk a valid primary key for m? SH_EINVAL with a reason in why when not. */
enum sh_err engine_check_key(const struct model *m, const char *pk, char *why, size_t whylen);

/* mkdir and rmdir of a block. */
enum sh_err engine_block_create(struct engine *e, const char *id);
enum sh_err engine_block_remove(struct engine *e, const char *id);

/* A record's document: from the block, or read through from PostgreSQL and
 * cached. *doc is malloc'd. SH_ENOENT when there is no such row. */
enum sh_err engine_get(struct engine *e, struct block *b, const struct model *m, const char *pk,
		       char **doc, int64_t *mtime_ns);

/* The same from the block alone, never asking PostgreSQL. */
enum sh_err engine_get_local(struct engine *e, struct block *b, const struct model *m,
			     const char *pk, char **doc, int64_t *mtime_ns);

/* Write body as record pk: validated, merged, stored with its outbox entry.
 * Refusals (SH_EINVAL, SH_ETOOBIG) are logged with the reason. */
enum sh_err engine_put(struct engine *e, struct block *b, const struct model *m, const char *pk,
		       const char *body, size_t len);

/* Would body be refused by engine_put? SH_OK while body is a valid document
 * or still an unfinished JSON prefix; otherwise the refusal, logged. Lets a
 * sequential writer learn of a bad document at write() rather than close(). */
enum sh_err engine_check(struct engine *e, struct block *b, const struct model *m,
			 const char *pk, const char *body, size_t len);

/* What engine_check_keep merged body into (the stored record then, the
 * document and what it sends): engine_put_kept stores it as it is when body
 * and the stored record are still those, instead of validating and merging
 * the same again (a writer's check at write() and its close() saw the same). */
struct engine_kept;
void engine_kept_free(struct engine_kept *k);

/* engine_check that, when body is a whole valid document, replaces *kept
 * (freed first; NULL when nothing is kept) with what it merged. */
enum sh_err engine_check_keep(struct engine *e, struct block *b, const struct model *m,
			      const char *pk, const char *body, size_t len,
			      struct engine_kept **kept);

/* engine_put that uses kept (may be NULL) when it still applies. */
enum sh_err engine_put_kept(struct engine *e, struct block *b, const struct model *m,
			    const char *pk, const char *body, size_t len,
			    const struct engine_kept *kept);

/* <block>/<Model>/.next-id: each open hands out one id, reserved from the
 * model's key sequence (serial, identity) in blocks kept in the block file,
 * so that it also hands out while PostgreSQL is down, for a while. The name
 * is never a record's (no ".json") and a scratch file cannot take it. */
#define ENGINE_NEXT_ID_NAME ".next-id"

/* Does m have a key sequence, and so a ENGINE_NEXT_ID_NAME file? */
bool engine_has_next_id(const struct model *m);

/* Hand out the next id of m's sequence reserved for block b: *text is
 * "<id>\n", malloc'd. SH_ENOENT: m has no sequence. SH_EUNAVAIL: none left
 * in the block and PostgreSQL is unreachable (logged). */
enum sh_err engine_next_id(struct engine *e, struct block *b, const struct model *m, char **text);

/* A refusal decided outside the engine (e.g. the FUSE layer's size cap):
 * log it with the block and file, and count it in the metrics. pk NULL: a
 * name that is no key's (why names it). */
void engine_refused(struct engine *e, const char *block, const char *model, const char *pk,
		    const char *why);

/* Drop the block's copy of a record (not the row): kept while a write to it
 * is pending, read through again on the next use. */
enum sh_err engine_evict(struct engine *e, struct block *b, const struct model *m,
			 const char *pk);

/* Delete record pk. SH_ENOENT when the block does not hold it. */

enum sh_err engine_delete(struct engine *e, struct block *b, const struct model *m,
			  const char *pk);

const char *ctl_name(enum ctl_file f);
bool ctl_writable(enum ctl_file f);

/* The records of model in block b, in key order: fn gets each record's key,
 * document length and mtime, and returns non-zero to stop. */
typedef int (*engine_record_fn)(void *ctx, const char *pk, size_t doc_len, int64_t mtime_ns);
enum sh_err engine_list(struct engine *e, struct block *b, const struct model *m,
			engine_record_fn fn, void *ctx);

/* A control file's whole content (malloc'd, ends in a newline). b is NULL
 * for CTL_METRICS. */
enum sh_err engine_ctl_read(struct engine *e, struct block *b, enum ctl_file f, char **text);

/* Replace a control file's value with buf (the whole value; one trailing newline allowed). */
enum sh_err engine_ctl_write(struct engine *e, struct block *b, enum ctl_file f, const char *buf,
			     size_t len);

/* Start a named thread that takes no signals, as the engine starts its own
 * (core/thread.h declares the same; thread.c checks that they agree): for
 * fs/'s notify thread. 0, or pthread_create's error number. */
int thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg);

#endif
