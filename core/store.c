/* store.c - a block's SQLite file: records, outbox and meta. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "clock.h"
#include "log.h"

#define STMT_CACHE 48
#define STORE_CACHE_KIB "256"	/* page cache per block connection, at most */
#define STORE_OPEN_DEFAULT 64	/* block connections open at once */

#define PARKED_META_MAX 32	/* meta rows a parked store remembers */
#define RECHECK_NS (1000LL * 1000000)	/* how often a parked store looks at its files */

/* A file as stat(2) saw it; all zero when absent. */
struct file_sig {
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
};

/* What a parked store answers without opening its file: valid until the file
 * changes (another process, a load) or this process writes to it. */
struct parked {
	bool valid;
	struct store_stats stats;
	char *keys[PARKED_META_MAX], *values[PARKED_META_MAX];
	int nmeta;
	struct file_sig db, wal;
	int64_t checked_ns;
};

/* A model's ids taken from the file's free ones (handed 0 -> 1) in one
 * fsynced commit and handed out from memory, lowest first: .next-id then
 * costs no commit per id, and after a crash or power loss the ids of a lease
 * not handed out yet read as handed (burnt, gaps): none is handed twice. */
#define IDS_LEASE 64

struct ids_lease {
	struct ids_lease *next;
	char *model;
	int64_t ids[IDS_LEASE];
	int n, pos;		/* ids[pos..n) are not handed out yet */
	int64_t free;		/* ids still 0 in the file; -1: count again */
};

struct store {
	sqlite3 *db;		/* NULL while parked */
	pthread_mutex_t lock;
	char *path;
	bool sync_full;
	struct store *lru_prev, *lru_next;	/* while open; under lru.lock */
	struct parked parked;	/* while parked; under lock */
	/* The origin this process writes under (op.h), and the last seq it
	 * wrote: when the file's meta says otherwise, the file is not as we left
	 * it and the next write begins a new origin. Under lock. */
	struct {
		char id[OP_ORIGIN_MAX];	/* "" until the first write */
		int64_t base, after_seq, last_seq;
		char after[OP_ORIGIN_MAX];
	} origin;
	/* ids of each model marked handed in the file in one durable commit
	 * and not handed out yet (store_ids_take); under lock */
	struct ids_lease *leases;
	/* prepared statements, kept per connection; keyed by the address of
	 * their SQL, which is always a string literal in this file */
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[STMT_CACHE];
	int ncache;
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS records(model TEXT NOT NULL, pk TEXT NOT NULL,"
	" doc TEXT NOT NULL, mtime_ns INTEGER NOT NULL, PRIMARY KEY(model, pk)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY, op TEXT NOT NULL,"
	" model TEXT NOT NULL, pk TEXT NOT NULL, doc TEXT, mtime_ns INTEGER NOT NULL,"
	" relayed_ns INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT '" OP_ORIGIN_LEGACY "',"
	" base INTEGER NOT NULL DEFAULT 0, after TEXT NOT NULL DEFAULT '',"
	" after_seq INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS outbox_record ON outbox(model, pk);"
	"CREATE INDEX IF NOT EXISTS outbox_relay ON outbox(relayed_ns, seq);"
	"CREATE TABLE IF NOT EXISTS ids(model TEXT NOT NULL, id INTEGER NOT NULL,"
	" handed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(model, id)) WITHOUT ROWID;"
	/* the free ids (handed 0), lowest first, without a scan of every id a
	 * block ever handed out: .next-id's lease and count */
	"CREATE INDEX IF NOT EXISTS ids_free ON ids(model, handed, id);";

/* A file from before origins: its outbox rows are the legacy origin's, with
 * the block's base_seq as their base, which is what PostgreSQL's per-block
 * row (now the legacy origin's) was counted against. */
static const char migrate_outbox_sql[] =
	"ALTER TABLE outbox ADD COLUMN origin TEXT NOT NULL DEFAULT '" OP_ORIGIN_LEGACY "';"
	"ALTER TABLE outbox ADD COLUMN base INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE outbox ADD COLUMN after TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE outbox ADD COLUMN after_seq INTEGER NOT NULL DEFAULT 0;"
	"UPDATE outbox SET base = coalesce((SELECT CAST(value AS INTEGER) FROM meta"
	" WHERE key = 'base_seq'), 0);";

static const char drop_synced_sql[] =
	"DELETE FROM records WHERE NOT EXISTS (SELECT 1 FROM outbox o"
	" WHERE o.model = records.model AND o.pk = records.pk)";

enum sh_err store_sqlite_err(int rc, int sys_errno)
{
	if ((rc & 0xff) == SQLITE_FULL || ((rc & 0xff) == SQLITE_IOERR && sys_errno == ENOSPC))
		return SH_ENOSPC;
	return SH_EIO;
}

/* The error of db's last failed call: a full disk is told apart (ENOSPC). */
static enum sh_err db_err(sqlite3 *db)
{
	return store_sqlite_err(sqlite3_extended_errcode(db), sqlite3_system_errno(db));
}

static enum sh_err db_fail(struct store *st, const char *what)
{
	sh_log(LOG_ERR, "block file '%s': %s: %s", st->path, what, sqlite3_errmsg(st->db));
	return db_err(st->db);
}

/* Run SQL without parameters or results on db (of the block file at path). */
static enum sh_err exec_on(sqlite3 *db, const char *path, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		sh_log(LOG_ERR, "block file '%s': %s", path, msg ? msg : "error");
		sqlite3_free(msg);
		return db_err(db);
	}
	return SH_OK;
}

static sqlite3_stmt *prep(struct store *st, const char *sql);
static enum sh_err run(struct store *st, sqlite3_stmt *s);

/* Every write's transaction statements: sqlite3_exec parsed them again each
 * time (some 9,000 instructions a write); these run from the statement
 * cache, which is keyed by pointer, hence one copy of each text. */
static const char *const tx_sql[] = { "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK" };

static enum sh_err exec_sql(struct store *st, const char *sql)
{
	for (size_t i = 0; i < sizeof(tx_sql) / sizeof(tx_sql[0]); i++)
		if (strcmp(sql, tx_sql[i]) == 0)
			return run(st, prep(st, tx_sql[i]));
	return exec_on(st->db, st->path, sql);
}

/* The prepared statement for sql, from the cache when it was used before.
 * Give it back with release(). */
static sqlite3_stmt *prep(struct store *st, const char *sql)
{
	sqlite3_stmt *stmt = NULL;

	for (int i = 0; i < st->ncache; i++)
		if (st->cache[i].sql == sql)
			return st->cache[i].stmt;
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) != SQLITE_OK) {
		db_fail(st, "prepare");
		return NULL;
	}
	if (st->ncache < STMT_CACHE) {
		st->cache[st->ncache].sql = sql;
		st->cache[st->ncache++].stmt = stmt;
	}
	return stmt;
}

/* Done with a statement from prep(): reset it for next time (or free it). */
static void release(struct store *st, sqlite3_stmt *stmt)
{
	if (!stmt)
		return;
	for (int i = 0; i < st->ncache; i++) {
		if (st->cache[i].stmt == stmt) {
			sqlite3_reset(stmt);
			sqlite3_clear_bindings(stmt);
			return;
		}
	}
	sqlite3_finalize(stmt);
}

static char *column_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? strdup((const char *)t) : NULL;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

/* bind_text for a value that outlives the statement's use: the caller steps
 * and releases s (reset, bindings cleared) before v goes away, so SQLite
 * need not copy it: a malloc and a copy less per value, some 14 values a
 * write. */
static void bind_text_static(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* Step a statement that returns no rows, then give it back (release: reset
 * when cached, else finalized). */
static enum sh_err run(struct store *st, sqlite3_stmt *s)
{
	int rc;

	if (!s)
		return SH_EIO;
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		enum sh_err err = db_fail(st, "write");

		release(st, s);
		return err;
	}
	release(st, s);
	return SH_OK;
}

static enum sh_err meta_set_locked(struct store *st, const char *key, const char *value)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO meta(key, value) VALUES(?1, ?2)"
				   " ON CONFLICT(key) DO UPDATE SET value = excluded.value");

	if (s) {
		bind_text_static(s, 1, key);
		bind_text_static(s, 2, value);
	}
	return run(st, s);
}

static enum sh_err meta_get_int_locked(struct store *st, const char *key, int64_t *v)
{
	sqlite3_stmt *s = prep(st, "SELECT value FROM meta WHERE key = ?1");
	enum sh_err err = SH_ENOENT;

	if (!s)
		return SH_EIO;
	bind_text(s, 1, key);
	if (sqlite3_step(s) == SQLITE_ROW) {
		*v = strtoll((const char *)sqlite3_column_text(s, 0), NULL, 10);
		err = SH_OK;
	}
	release(st, s);
	return err;
}

static enum sh_err meta_set_int_locked(struct store *st, const char *key, int64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return meta_set_locked(st, key, buf);
}

/* A new block: its sequence numbers start at the creation time in microseconds. */
static enum sh_err init_new(struct store *st)
{
	int64_t seq;
	enum sh_err err;

	if (meta_get_int_locked(st, "last_seq", &seq) == SH_OK)
		return SH_OK;
	seq = clock_wall_ns() / 1000;
	err = meta_set_int_locked(st, "base_seq", seq);
	if (!err)
		err = meta_set_int_locked(st, "created_ns", clock_wall_ns());
	if (!err)
		err = meta_set_int_locked(st, "loaded_ns", clock_wall_ns());
	return err ? err : meta_set_int_locked(st, "last_seq", seq);
}

static bool outbox_has_origin(struct store *st)
{
	sqlite3_stmt *s = NULL;
	bool has = false;

	if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM pragma_table_info('outbox')"
			       " WHERE name = 'origin'", -1, &s, NULL) == SQLITE_OK)
		has = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return has;
}

/* Bring a file made by an older version up to date, once (another process
 * may be doing the same: the check is repeated under the write lock). */
static enum sh_err migrate(struct store *st)
{
	enum sh_err err;

	if (outbox_has_origin(st))
		return SH_OK;
	err = exec_sql(st, "BEGIN IMMEDIATE");
	if (!err && !outbox_has_origin(st))
		err = exec_sql(st, migrate_outbox_sql);
	if (!err)
		err = exec_sql(st, "COMMIT");
	if (err)
		exec_sql(st, "ROLLBACK");
	return err;
}

/* An id handed out by .next-id is 1 in ids.handed until a record with that
 * key is first stored here, then 2 (a trigger, in the transaction that
 * stores it): a lookup of a key still at 1 needs no PostgreSQL, no row can
 * have it. A file from before the trigger cannot tell, so its ids count as
 * stored. */
static const char ids_trigger_sql[] =
	"CREATE TRIGGER IF NOT EXISTS ids_stored AFTER INSERT ON records BEGIN"
	" UPDATE ids SET handed = 2 WHERE handed = 1 AND model = NEW.model AND id = NEW.pk;"
	" END;";

/* A process opening the file does not know which ids of the last one's
 * leases it handed out (store_ids_take): all count as handed. Nor that a
 * handed id's record is not in PostgreSQL: a power loss may have taken its
 * store back after the sync applied it, so its lookup reads through again. */
static const char ids_restart_sql[] = "UPDATE ids SET handed = 2 WHERE handed = 1";

static bool has_ids_trigger(struct store *st)
{
	sqlite3_stmt *s = prep(st, "SELECT 1 FROM sqlite_master WHERE type = 'trigger' "
				   "AND name = 'ids_stored'");
	bool has = false;

	if (s) {
		has = sqlite3_step(s) == SQLITE_ROW;
		release(st, s);
	}
	return has;
}

static enum sh_err migrate_ids(struct store *st)
{
	enum sh_err err;

	if (has_ids_trigger(st))
		return SH_OK;
	err = exec_sql(st, "BEGIN IMMEDIATE");
	if (!err && !has_ids_trigger(st)) {
		err = exec_sql(st, "UPDATE ids SET handed = 2 WHERE handed = 1");
		if (!err)
			err = exec_sql(st, ids_trigger_sql);
	}
	if (!err)
		err = exec_sql(st, "COMMIT");
	if (err)
		exec_sql(st, "ROLLBACK");
	return err;
}

/* A daemon holds thousands of block connections: none gets SQLite's bulk
 * page-cache allocation up front (~80 KiB each), and each caches few pages. */
static void sqlite_setup(void)
{
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

/* The connection's settings; a fresh open also makes sure of the schema. */
static enum sh_err configure(struct store *st, bool fresh)
{
	enum sh_err err;

	sqlite3_busy_timeout(st->db, 5000);
	err = exec_sql(st, "PRAGMA journal_mode=WAL");
	if (!err)
		err = exec_sql(st, "PRAGMA cache_size=-" STORE_CACHE_KIB);
	if (!err)
		err = exec_sql(st, st->sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
	if (!err && fresh)
		err = exec_sql(st, schema_sql);
	if (!err && fresh)
		err = migrate(st);
	if (!err && fresh)
		err = migrate_ids(st);
	if (!err && fresh)
		err = exec_sql(st, ids_restart_sql);
	if (!err && fresh)
		err = init_new(st);
	return err;
}

/* Open st's connection (st->db is NULL). */
static enum sh_err open_db(struct store *st, bool create, bool fresh)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	enum sh_err err;

	if (sqlite3_open_v2(st->path, &st->db, flags, NULL) != SQLITE_OK)
		err = st->db ? db_fail(st, "open") : SH_ENOMEM;
	else
		err = configure(st, fresh);
	if (err) {
		sqlite3_close_v2(st->db);
		st->db = NULL;
	}
	return err;
}

/* ---- parking: at most lru.max connections open ----------------------------
 *
 * Every open store is on a list, most recently used first. When more than
 * lru.max are open, the least recently used one that no thread holds is
 * parked: its connection closed, after it noted its counts and meta rows,
 * which it answers from memory for as long as its files do not change. Any
 * other call opens it again. A store's lock is taken before lru.lock; a
 * victim's only with trylock, so no two threads wait on each other (every
 * lock and its order: docs/architecture.md, "Threads and locks"). */

static struct {
	pthread_mutex_t lock;
	struct store head;	/* head.lru_next: the most recently used */
	size_t open, max;
} lru = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.head = { .lru_prev = &lru.head, .lru_next = &lru.head },
	.max = STORE_OPEN_DEFAULT,
};

void store_set_max_open(size_t max)
{
	pthread_mutex_lock(&lru.lock);
	lru.max = max ? max : 1;
	pthread_mutex_unlock(&lru.lock);
}

size_t store_open_count(void)
{
	size_t n;

	pthread_mutex_lock(&lru.lock);
	n = lru.open;
	pthread_mutex_unlock(&lru.lock);
	return n;
}

bool store_is_parked(struct store *st)
{
	bool parked;

	pthread_mutex_lock(&st->lock);
	parked = st->db == NULL;
	pthread_mutex_unlock(&st->lock);
	return parked;
}

/* Under lru.lock. */
static void lru_unlink(struct store *st)
{
	if (!st->lru_next)
		return;
	st->lru_prev->lru_next = st->lru_next;
	st->lru_next->lru_prev = st->lru_prev;
	st->lru_prev = st->lru_next = NULL;
	lru.open--;
}

static void file_sig_read(const char *path, const char *suffix, struct file_sig *sig)
{
	char p[4096];
	struct stat sb;

	memset(sig, 0, sizeof(*sig));
	if (snprintf(p, sizeof(p), "%s%s", path, suffix) >= (int)sizeof(p) || stat(p, &sb) != 0)
		return;
	sig->dev = sb.st_dev;
	sig->ino = sb.st_ino;
	sig->size = sb.st_size;
	sig->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
}

static void parked_clear(struct parked *pk)
{
	for (int i = 0; i < pk->nmeta; i++) {
		free(pk->keys[i]);
		free(pk->values[i]);
	}
	memset(pk, 0, sizeof(*pk));
}

static void stats_locked(struct store *st, struct store_stats *stats);

/* Note what st answers while parked; valid only when all of it was read. */
static void parked_fill_locked(struct store *st)
{
	struct parked *pk = &st->parked;
	sqlite3_stmt *s = prep(st, "SELECT key, value FROM meta");
	bool ok = s != NULL;
	int rc = SQLITE_DONE;

	parked_clear(pk);
	stats_locked(st, &pk->stats);
	while (ok && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (pk->nmeta == PARKED_META_MAX)
			break;
		pk->keys[pk->nmeta] = column_dup(s, 0);
		pk->values[pk->nmeta] = column_dup(s, 1);
		ok = pk->keys[pk->nmeta] && pk->values[pk->nmeta];
		pk->nmeta++;	/* parked_clear frees what there is */
	}
	release(st, s);
	pk->valid = ok && rc == SQLITE_DONE;
}

/* Close st's connection (st->lock held, st off the list); remember: keep
 * answering counts and meta from memory. */
static void park_locked(struct store *st, bool remember)
{
	if (remember)
		parked_fill_locked(st);
	else
		parked_clear(&st->parked);
	for (int i = 0; i < st->ncache; i++)
		sqlite3_finalize(st->cache[i].stmt);
	st->ncache = 0;
	sqlite3_close_v2(st->db);
	st->db = NULL;
	file_sig_read(st->path, "", &st->parked.db);
	file_sig_read(st->path, "-wal", &st->parked.wal);
	st->parked.checked_ns = clock_wall_ns();
}

/* st (open, st->lock held) becomes the most recently used; the least
 * recently used beyond lru.max that nobody holds are parked. */
static void lru_touch(struct store *st)
{
	struct store *victims[4];
	int nv = 0;

	pthread_mutex_lock(&lru.lock);
	lru_unlink(st);
	st->lru_prev = &lru.head;
	st->lru_next = lru.head.lru_next;
	lru.head.lru_next->lru_prev = st;
	lru.head.lru_next = st;
	lru.open++;
	for (struct store *v = lru.head.lru_prev; v != &lru.head && lru.open > lru.max && nv < 4;) {
		struct store *prev = v->lru_prev;

		if (v != st && pthread_mutex_trylock(&v->lock) == 0) {
			lru_unlink(v);
			victims[nv++] = v;
		}
		v = prev;
	}
	pthread_mutex_unlock(&lru.lock);
	for (int i = 0; i < nv; i++) {
		park_locked(victims[i], true);
		pthread_mutex_unlock(&victims[i]->lock);
	}
}

/* Do a parked store's remembered answers still hold? Looks at its files at
 * most every RECHECK_NS (another process, such as the sharded tool, may have
 * written to them). */
static bool parked_fresh_locked(struct store *st)
{
	struct parked *pk = &st->parked;
	struct file_sig db, wal;
	int64_t now = clock_wall_ns();

	if (st->db || !pk->valid)
		return false;
	if (now - pk->checked_ns < RECHECK_NS)
		return true;
	file_sig_read(st->path, "", &db);
	file_sig_read(st->path, "-wal", &wal);
	if (memcmp(&db, &pk->db, sizeof(db)) != 0 || memcmp(&wal, &pk->wal, sizeof(wal)) != 0) {
		pk->valid = false;
		return false;
	}
	pk->checked_ns = now;
	return true;
}

/* st is locked: open its connection if parked; on failure, unlock. */
static enum sh_err open_locked(struct store *st)
{
	if (!st->db) {
		parked_clear(&st->parked);
		if (open_db(st, false, false) != SH_OK) {
			pthread_mutex_unlock(&st->lock);
			return SH_EIO;
		}
	}
	lru_touch(st);
	return SH_OK;
}

/* Lock st and make sure its connection is open. */
static enum sh_err lock_open(struct store *st)
{
	pthread_mutex_lock(&st->lock);
	return open_locked(st);
}

/* Lock st; *parked when its remembered answers hold, else open it. */
static enum sh_err lock_answer(struct store *st, bool *parked)
{
	pthread_mutex_lock(&st->lock);
	*parked = parked_fresh_locked(st);
	return *parked ? SH_OK : open_locked(st);
}

enum sh_err store_open(const char *path, bool create, bool sync_full, struct store **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct store *st = calloc(1, sizeof(*st));
	enum sh_err err;

	*out = NULL;
	pthread_once(&once, sqlite_setup);
	if (!st || !(st->path = strdup(path))) {
		free(st);
		return SH_ENOMEM;
	}
	pthread_mutex_init(&st->lock, NULL);
	st->sync_full = sync_full;
	err = open_db(st, create, true);
	if (err) {
		store_close(st);
		return err;
	}
	pthread_mutex_lock(&st->lock);
	lru_touch(st);
	pthread_mutex_unlock(&st->lock);
	*out = st;
	return SH_OK;
}

void store_park(struct store *st, bool remember)
{
	pthread_mutex_lock(&st->lock);
	pthread_mutex_lock(&lru.lock);
	lru_unlink(st);
	pthread_mutex_unlock(&lru.lock);
	if (st->db)
		park_locked(st, remember);
	if (!remember)	/* another process (after a fork): it writes under an origin of its own */
		st->origin.id[0] = 0;
	pthread_mutex_unlock(&st->lock);
}

static void ids_leases_free(struct store *st);

void store_close(struct store *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);	/* a parker may hold it */
	pthread_mutex_lock(&lru.lock);
	lru_unlink(st);
	pthread_mutex_unlock(&lru.lock);
	for (int i = 0; i < st->ncache; i++)
		sqlite3_finalize(st->cache[i].stmt);
	sqlite3_close_v2(st->db);
	parked_clear(&st->parked);
	ids_leases_free(st);
	pthread_mutex_unlock(&st->lock);
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
}

/* The stored document of a record (st locked, open); *doc is malloc'd. */
static enum sh_err get_locked(struct store *st, const char *model, const char *pk, char **doc,
			      int64_t *mtime_ns)
{
	sqlite3_stmt *s = prep(st, "SELECT doc, mtime_ns FROM records WHERE model = ?1 AND pk = ?2");
	enum sh_err err = SH_ENOENT;

	*doc = NULL;
	if (!s)
		return SH_EIO;
	bind_text_static(s, 1, model);
	bind_text_static(s, 2, pk);
	if (sqlite3_step(s) == SQLITE_ROW) {
		*doc = column_dup(s, 0);
		if (mtime_ns)
			*mtime_ns = sqlite3_column_int64(s, 1);
		err = *doc ? SH_OK : SH_ENOMEM;
	}
	release(st, s);
	return err;
}

enum sh_err store_get(struct store *st, const char *model, const char *pk, char **doc,
		      int64_t *mtime_ns)
{
	enum sh_err err;

	*doc = NULL;
	if (lock_open(st) != SH_OK)
		return SH_EIO;
	err = get_locked(st, model, pk, doc, mtime_ns);
	pthread_mutex_unlock(&st->lock);
	return err;
}

enum sh_err store_cache(struct store *st, const char *model, const char *pk, const char *doc)
{
	sqlite3_stmt *s;
	enum sh_err err;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	/* not over a local write, nor back over a local deletion made meanwhile */
	s = prep(st, "INSERT OR IGNORE INTO records(model, pk, doc, mtime_ns) SELECT ?1, ?2, ?3, ?4"
		     " WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE model = ?1 AND pk = ?2)");
	if (s) {
		bind_text(s, 1, model);
		bind_text(s, 2, pk);
		bind_text(s, 3, doc);
		sqlite3_bind_int64(s, 4, clock_wall_ns());
	}
	err = run(st, s);
	pthread_mutex_unlock(&st->lock);
	return err;
}

static enum sh_err put_record_locked(struct store *st, const char *model, const char *pk,
				     const char *doc, int64_t now)
{
	sqlite3_stmt *s;

	if (!doc) {
		s = prep(st, "DELETE FROM records WHERE model = ?1 AND pk = ?2");
	} else {
		s = prep(st, "INSERT INTO records(model, pk, doc, mtime_ns) VALUES(?1, ?2, ?3, ?4)"
			     " ON CONFLICT(model, pk) DO UPDATE SET doc = excluded.doc,"
			     " mtime_ns = excluded.mtime_ns");
	}
	if (s) {
		bind_text_static(s, 1, model);
		bind_text_static(s, 2, pk);
		if (doc) {
			bind_text_static(s, 3, doc);
			sqlite3_bind_int64(s, 4, now);
		}
	}
	return run(st, s);
}

static enum sh_err append_outbox_locked(struct store *st, int64_t seq, const char *model,
					const char *pk, const char *doc, bool create, int64_t now)
{
	const char kind[2] = { doc ? (create ? OP_CREATE : OP_UPSERT) : OP_DELETE, 0 };

	sqlite3_stmt *s = prep(st, "INSERT INTO outbox(seq, op, model, pk, doc, mtime_ns, origin,"
				   " base, after, after_seq) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");

	if (s) {
		sqlite3_bind_int64(s, 1, seq);
		bind_text_static(s, 2, kind);
		bind_text_static(s, 3, model);
		bind_text_static(s, 4, pk);
		bind_text_static(s, 5, doc);
		sqlite3_bind_int64(s, 6, now);
		bool first = seq == st->origin.base + 1;	/* only it waits on after */

		bind_text_static(s, 7, st->origin.id);
		sqlite3_bind_int64(s, 8, st->origin.base);
		bind_text_static(s, 9, first ? st->origin.after : "");
		sqlite3_bind_int64(s, 10, first ? st->origin.after_seq : 0);
	}
	return run(st, s);
}

/* ---- origins (op.h) ------------------------------------------------------ */

/* A new origin id: 16 hex digits of microseconds, so that the origins of one
 * file sort in the order they began (at least one after prev, the file's
 * current one, whatever the clock says), and 64 random bits. */
static enum sh_err new_origin_id(const char *prev, char *out)
{
	uint64_t us = (uint64_t)(clock_wall_ns() / 1000), rnd, prev_us = 0;
	char head[17];

	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return SH_EIO;
	if (prev && strlen(prev) == OP_ORIGIN_MAX - 1) {
		snprintf(head, sizeof(head), "%.16s", prev);
		prev_us = strtoull(head, NULL, 16);
	}
	if (us <= prev_us)
		us = prev_us + 1;
	snprintf(out, OP_ORIGIN_MAX, "%016" PRIx64 "%016" PRIx64, us, rnd);
	return SH_OK;
}

/* The file's last seq and the origin it went out under ("" if none), in one
 * statement: every write reads both. */
static enum sh_err last_write_locked(struct store *st, int64_t *last_seq, char *origin)
{
	sqlite3_stmt *s = prep(st, "SELECT (SELECT value FROM meta WHERE key = 'last_seq'),"
				   " (SELECT value FROM meta WHERE key = 'origin')");
	enum sh_err err = SH_EIO;

	if (!s)
		return SH_EIO;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		const unsigned char *o = sqlite3_column_text(s, 1);

		*last_seq = sqlite3_column_int64(s, 0);
		snprintf(origin, OP_ORIGIN_MAX, "%s", o ? (const char *)o : "");
		err = SH_OK;
	}
	release(st, s);
	return err;
}

/* The file's last write still in the outbox, if any: a new origin's first
 * write is applied after it. */
static void last_pending_locked(struct store *st)
{
	sqlite3_stmt *s = prep(st, "SELECT origin, seq FROM outbox ORDER BY seq DESC LIMIT 1");

	st->origin.after[0] = 0;
	st->origin.after_seq = 0;
	if (s && sqlite3_step(s) == SQLITE_ROW) {
		snprintf(st->origin.after, sizeof(st->origin.after), "%s",
			 (const char *)sqlite3_column_text(s, 0));
		st->origin.after_seq = sqlite3_column_int64(s, 1);
	}
	release(st, s);
}

/* Make sure the next write (seq last_seq + 1) goes out under an origin of
 * ours that the file agrees with: the file's meta names it and its last_seq
 * is the last seq we wrote. Anything else (no write yet since we opened the
 * file, another process wrote, the file was restored or rolled back) begins
 * a new origin, with base last_seq. In the write transaction. */
static enum sh_err origin_for_write_locked(struct store *st, int64_t last_seq,
					   const char *current)
{
	enum sh_err err;

	if (st->origin.id[0] && strcmp(current, st->origin.id) == 0 &&
	    st->origin.last_seq == last_seq)
		return SH_OK;
	err = new_origin_id(current, st->origin.id);
	if (err)
		return err;
	st->origin.base = last_seq;
	last_pending_locked(st);
	err = meta_set_locked(st, "origin", st->origin.id);
	return err ? err : meta_set_int_locked(st, "origin_base", last_seq);
}

/* A record deleted and written again before the deletion left for Redis (mv
 * from another file system unlinks, then creates): the deletion becomes this
 * write, so PostgreSQL never drops the row (and what cascades from it). */
static enum sh_err revoke_delete_locked(struct store *st, const char *model, const char *pk,
					const char *doc)
{
	sqlite3_stmt *s = prep(st, "UPDATE outbox SET op = 'U', doc = ?3"
				   " WHERE model = ?1 AND pk = ?2 AND op = 'D' AND relayed_ns = 0");

	if (s) {
		bind_text_static(s, 1, model);
		bind_text_static(s, 2, pk);
		bind_text_static(s, 3, doc);
	}
	return run(st, s);
}

/* create: the block did not hold the record (store_write_merged); a
 * deletion held back and turned into this write makes it an upsert again.
 * sent: what the outbox entry carries of an update (NULL: all of doc). */
static enum sh_err write_locked(struct store *st, const char *model, const char *pk,
				const char *doc, const char *sent, bool create, int64_t *seq)
{
	int64_t now = clock_wall_ns();
	char current[OP_ORIGIN_MAX];
	enum sh_err err = last_write_locked(st, seq, current);

	if (err)
		return err;
	err = origin_for_write_locked(st, *seq, current);
	if (err)
		return err;
	(*seq)++;
	err = meta_set_int_locked(st, "last_seq", *seq);
	if (!err)
		err = put_record_locked(st, model, pk, doc, now);
	if (!err && doc)
		err = revoke_delete_locked(st, model, pk, doc);
	if (!err && doc && sqlite3_changes(st->db) > 0)
		create = false;
	if (!err)
		err = append_outbox_locked(st, *seq, model, pk, sent ? sent : doc, create, now);
	return err;
}

enum sh_err store_write(struct store *st, const char *model, const char *pk, const char *doc,
			int64_t *seq)
{
	enum sh_err err;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	err = exec_sql(st, "BEGIN IMMEDIATE");
	if (!err) {
		err = write_locked(st, model, pk, doc, NULL, false, seq);
		if (!err)
			err = exec_sql(st, "COMMIT");
		if (err)
			exec_sql(st, "ROLLBACK");
	}
	if (err)
		st->origin.id[0] = 0;	/* an origin begun here may not be in the file */
	else
		st->origin.last_seq = *seq;
	pthread_mutex_unlock(&st->lock);
	return err;
}

/* Read, merge and write under one BEGIN IMMEDIATE: no other writer, in this
 * process or another, can commit to the record between the read and the write,
 * so two partial writes of one record compose instead of undoing each other. */
enum sh_err store_write_merged(struct store *st, const char *model, const char *pk,
			       store_merge_fn merge, void *ctx, int64_t *seq)
{
	char *existing = NULL, *doc = NULL, *sent = NULL;
	bool wrote = false;
	enum sh_err err;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	err = exec_sql(st, "BEGIN IMMEDIATE");
	if (!err) {
		err = get_locked(st, model, pk, &existing, NULL);
		if (err == SH_OK || err == SH_ENOENT)
			err = merge(ctx, existing, &doc, &sent);
		if (!err && !doc)
			err = SH_EINVAL;	/* a deletion is store_write's */
		if (!err) {
			wrote = true;
			err = write_locked(st, model, pk, doc, existing ? sent : NULL,
					   existing == NULL, seq);
		}
		if (!err)
			err = exec_sql(st, "COMMIT");
		if (err)
			exec_sql(st, "ROLLBACK");
	}
	/* as store_write: else the next write finds last_seq moved and begins a
	 * new origin, one per write (a refused document began none) */
	if (err && wrote)
		st->origin.id[0] = 0;
	else if (!err)
		st->origin.last_seq = *seq;
	pthread_mutex_unlock(&st->lock);
	free(existing);
	free(doc);
	free(sent);
	return err;
}

enum sh_err store_list(struct store *st, const char *model, store_list_fn fn, void *ctx)
{
	sqlite3_stmt *s;
	enum sh_err err = SH_OK;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	s = prep(st, "SELECT pk, length(CAST(doc AS BLOB)), mtime_ns FROM records"
		     " WHERE model = ?1 ORDER BY pk");
	if (!s) {
		pthread_mutex_unlock(&st->lock);
		return SH_EIO;
	}
	bind_text(s, 1, model);
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (fn(ctx, (const char *)sqlite3_column_text(s, 0),
		       (size_t)sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2)))
			break;
	}
	release(st, s);
	pthread_mutex_unlock(&st->lock);
	return err;
}

/* The first size of read_ops' array: the relay asks for up to thousands of
 * entries at every wake-up and most often finds one, and zeroing the whole
 * array was a tenth of a write's instructions (callgrind). */
#define READ_OPS_FIRST 16

/* Make room for one more op at arr[i] (zeroed); false without memory. */
static bool ops_room(struct op **arr, size_t *cap, size_t i)
{
	struct op *grown;
	size_t cap2;

	if (i < *cap)
		return true;
	cap2 = *cap * 2;
	grown = realloc(*arr, cap2 * sizeof(**arr));
	if (!grown)
		return false;
	memset(grown + *cap, 0, (cap2 - *cap) * sizeof(*grown));
	*arr = grown;
	*cap = cap2;
	return true;
}

static enum sh_err read_ops(sqlite3_stmt *s, size_t max, struct op **ops, size_t *n)
{
	size_t cap = max && max < READ_OPS_FIRST ? max : READ_OPS_FIRST, i = 0;
	struct op *arr = calloc(cap, sizeof(*arr));

	if (!arr)
		return SH_ENOMEM;
	while (i < max && sqlite3_step(s) == SQLITE_ROW) {
		struct op *op;

		if (!ops_room(&arr, &cap, i)) {
			op_free_array(arr, i);
			return SH_ENOMEM;
		}
		op = &arr[i++];

		op->seq = sqlite3_column_int64(s, 0);
		op->kind = (char)sqlite3_column_text(s, 1)[0];
		op->model = column_dup(s, 2);
		op->pk = column_dup(s, 3);
		op->doc = column_dup(s, 4);
		snprintf(op->origin, sizeof(op->origin), "%s", (const char *)sqlite3_column_text(s, 5));
		op->base = sqlite3_column_int64(s, 6);
		snprintf(op->after, sizeof(op->after), "%s", (const char *)sqlite3_column_text(s, 7));
		op->after_seq = sqlite3_column_int64(s, 8);
		if (!op->model || !op->pk || (op_kind_writes(op->kind) && !op->doc)) {
			op_free_array(arr, i);
			return SH_ENOMEM;
		}
	}
	*ops = arr;
	*n = i;
	return SH_OK;
}

/* Lock st for a call that has nothing to do when the store is parked with an
 * empty outbox: false (unlocked) then, else true with its connection open. */
static bool lock_outbox(struct store *st, enum sh_err *err)
{
	bool parked;

	*err = lock_answer(st, &parked);
	if (*err)
		return false;
	if (!parked)
		return true;
	if (st->parked.stats.pending == 0) {
		pthread_mutex_unlock(&st->lock);
		return false;
	}
	*err = open_locked(st);
	return *err == SH_OK;
}

enum sh_err store_outbox_to_relay(struct store *st, int64_t resend_before_ns,
				  int64_t hold_deletes_after_ns, size_t max, struct op **ops, size_t *n)
{
	sqlite3_stmt *s;
	enum sh_err err;

	*ops = NULL;
	*n = 0;
	if (!lock_outbox(st, &err)) {	/* parked with nothing to send */
		if (!err && !(*ops = calloc(1, sizeof(**ops))))
			err = SH_ENOMEM;
		return err;
	}
	s = prep(st, "SELECT seq, op, model, pk, doc, origin, base, after, after_seq FROM outbox"
		     " WHERE relayed_ns < ?1"
		     " AND seq < coalesce((SELECT min(seq) FROM outbox WHERE op = 'D'"
		     " AND relayed_ns = 0 AND mtime_ns > ?3), 9223372036854775807)"
		     " ORDER BY seq LIMIT ?2");
	if (!s) {
		pthread_mutex_unlock(&st->lock);
		return SH_EIO;
	}
	sqlite3_bind_int64(s, 1, resend_before_ns);
	sqlite3_bind_int64(s, 2, (int64_t)max);
	sqlite3_bind_int64(s, 3, hold_deletes_after_ns);
	err = read_ops(s, max, ops, n);
	release(st, s);
	pthread_mutex_unlock(&st->lock);
	return err;
}

/* Run one parameterised statement taking up to three integers (st locked, open). */
static enum sh_err run_ints_locked(struct store *st, const char *sql, int64_t a, int64_t b,
				   int64_t c)
{
	const int64_t v[] = { a, b, c };
	sqlite3_stmt *s = prep(st, sql);

	for (int i = 0; s && i < 3 && i < sqlite3_bind_parameter_count(s); i++)
		sqlite3_bind_int64(s, i + 1, v[i]);
	return run(st, s);
}

static enum sh_err run_ints(struct store *st, const char *sql, int64_t a, int64_t b, int64_t c)
{
	enum sh_err err;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	err = run_ints_locked(st, sql, a, b, c);
	pthread_mutex_unlock(&st->lock);
	return err;
}

enum sh_err store_outbox_relayed(struct store *st, int64_t from_seq, int64_t upto_seq,
				 int64_t now_ns)
{
	/* only the range just sent: the whole outbox would be rewritten on
	 * every pass while PostgreSQL is down and the outbox grows */
	return run_ints(st, "UPDATE outbox SET relayed_ns = ?3 WHERE seq BETWEEN ?1 AND ?2"
			    " AND relayed_ns < ?3", from_seq, upto_seq, now_ns);
}

static int64_t count_or_fail_locked(struct store *st, const char *sql);

enum sh_err store_outbox_unrelay(struct store *st)
{
	enum sh_err err;

	if (!lock_outbox(st, &err))
		return err;
	/* a read first: an UPDATE takes SQLite's write lock even when it changes
	 * nothing, and would wait out a load's transaction holding st->lock */
	if (count_or_fail_locked(st, "SELECT EXISTS (SELECT 1 FROM outbox WHERE relayed_ns > 0)"))
		err = run_ints_locked(st, "UPDATE outbox SET relayed_ns = 0 WHERE relayed_ns > 0",
				      0, 0, 0);
	pthread_mutex_unlock(&st->lock);
	return err;
}

enum sh_err store_outbox_origins(struct store *st, char (*out)[OP_ORIGIN_MAX], size_t max,
				 size_t *n)
{
	sqlite3_stmt *s;
	enum sh_err err;
	int rc;

	*n = 0;
	if (!lock_outbox(st, &err))	/* parked with nothing pending */
		return err;
	/* only what went to Redis can have been applied by anyone */
	s = prep(st, "SELECT DISTINCT origin FROM outbox WHERE relayed_ns > 0 ORDER BY origin"
		     " LIMIT ?1");
	if (!s) {
		pthread_mutex_unlock(&st->lock);
		return SH_EIO;
	}
	sqlite3_bind_int64(s, 1, (int64_t)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
		const unsigned char *o = sqlite3_column_text(s, 0);
		snprintf(out[(*n)++], OP_ORIGIN_MAX, "%s", o ? (const char *)o : "");
	}
	err = rc == SQLITE_DONE || rc == SQLITE_ROW ? SH_OK : db_fail(st, "outbox origins");
	release(st, s);
	pthread_mutex_unlock(&st->lock);
	return err;
}

void store_keys_free(char **keys, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++)
		free(keys[i]);
	free(keys);
}

static bool add_key(char **keys, size_t *n, const unsigned char *model, const unsigned char *pk)
{
	keys[2 * *n] = strdup(model ? (const char *)model : "");
	keys[2 * *n + 1] = strdup(pk ? (const char *)pk : "");
	(*n)++;
	return keys[2 * *n - 2] && keys[2 * *n - 1];
}

enum sh_err store_outbox_applied_keys(struct store *st, const char *origin, int64_t upto_seq,
				      size_t max, char ***keys, size_t *n)
{
	sqlite3_stmt *s;
	enum sh_err err;
	int rc = SQLITE_DONE;

	*keys = NULL;
	*n = 0;
	if (!lock_outbox(st, &err))	/* parked with nothing pending */
		return err;
	s = prep(st, "SELECT DISTINCT model, pk FROM outbox WHERE origin = ?1 AND seq <= ?2"
		     " LIMIT ?3");
	if (!s) {
		pthread_mutex_unlock(&st->lock);
		return SH_EIO;
	}
	bind_text(s, 1, origin);
	sqlite3_bind_int64(s, 2, upto_seq);
	sqlite3_bind_int64(s, 3, (int64_t)max);
	err = SH_OK;
	while (!err && *n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (!*keys && !(*keys = calloc(2 * max, sizeof(**keys))))
			err = SH_ENOMEM;
		else if (!add_key(*keys, n, sqlite3_column_text(s, 0), sqlite3_column_text(s, 1)))
			err = SH_ENOMEM;
	}
	if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = db_fail(st, "outbox applied keys");
	release(st, s);
	pthread_mutex_unlock(&st->lock);
	if (err) {
		store_keys_free(*keys, *n);
		*keys = NULL;
		*n = 0;
	}
	return err;
}

enum sh_err store_outbox_settle(struct store *st, const char *origin, int64_t upto_seq,
				int64_t *not_applied, int64_t *applied)
{
	sqlite3_stmt *s;
	enum sh_err err;

	*applied = 0;
	if (lock_open(st) != SH_OK)
		return SH_EIO;
	/* a read first: the sync asks this on every pass while anything is
	 * pending, mostly about entries gone already or of another node */
	s = prep(st, "SELECT 1 FROM outbox WHERE origin = ?1 AND seq <= ?2 LIMIT 1");
	if (s) {
		bind_text(s, 1, origin);
		sqlite3_bind_int64(s, 2, upto_seq);
		if (sqlite3_step(s) == SQLITE_DONE) {
			release(st, s);
			pthread_mutex_unlock(&st->lock);
			return SH_OK;
		}
		release(st, s);
	}
	err = exec_sql(st, "BEGIN IMMEDIATE");
	if (!err) {
		s = prep(st, "DELETE FROM outbox WHERE origin = ?1 AND seq <= ?2");
		if (s) {
			bind_text(s, 1, origin);
			sqlite3_bind_int64(s, 2, upto_seq);
		}
		err = run(st, s);
		if (!err) {
			int64_t n = sqlite3_changes(st->db);
			int64_t skip = n < *not_applied ? n : *not_applied;

			*applied = n - skip;
			if (*applied)
				err = run_ints_locked(st, "INSERT INTO meta(key, value)"
						      " VALUES('applied_total', ?1) ON CONFLICT(key)"
						      " DO UPDATE SET value = CAST(value AS INTEGER) + ?1",
						      *applied, 0, 0);
			if (!err)
				err = exec_sql(st, "COMMIT");
			if (!err)
				*not_applied -= skip;
		}
		if (err) {
			exec_sql(st, "ROLLBACK");
			*applied = 0;
		}
	}
	pthread_mutex_unlock(&st->lock);
	return err;
}

int64_t store_own_upto(struct store *st, const struct op *ops, size_t n)
{
	sqlite3_stmt *s;
	int64_t upto = 0;
	enum sh_err err;

	if (!lock_outbox(st, &err))
		return 0;
	s = prep(st, "SELECT 1 FROM outbox WHERE seq = ?1 AND origin = ?2");
	for (size_t i = 0; s && i < n; i++) {
		if (ops[i].seq <= upto)
			continue;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, ops[i].seq);
		bind_text_static(s, 2, op_origin(&ops[i]));
		if (sqlite3_step(s) == SQLITE_ROW)
			upto = ops[i].seq;
	}
	release(st, s);
	pthread_mutex_unlock(&st->lock);
	return upto;
}

static bool pending_after_locked(struct store *st, const char *model, const char *pk, int64_t seq)
{
	sqlite3_stmt *s = prep(st, "SELECT 1 FROM outbox WHERE model = ?1 AND pk = ?2 AND seq > ?3");
	bool pending = true;	/* when unsure, keep the local write */

	if (s) {
		bind_text_static(s, 1, model);
		bind_text_static(s, 2, pk);
		sqlite3_bind_int64(s, 3, seq);
		pending = sqlite3_step(s) == SQLITE_ROW;
		release(st, s);
	}
	return pending;
}

enum sh_err store_refresh(struct store *st, const char *model, const char *pk, const char *doc,
			  int64_t applied_seq)
{
	enum sh_err err = SH_OK;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	if (!pending_after_locked(st, model, pk, applied_seq))
		err = put_record_locked(st, model, pk, doc, clock_wall_ns());
	pthread_mutex_unlock(&st->lock);
	return err;
}

/* Write doc unless the record already holds exactly that; 1 when it changed. */
static int refresh_one_locked(struct store *st, const struct op *op)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO records(model, pk, doc, mtime_ns) VALUES(?1, ?2, ?3, ?4)"
				   " ON CONFLICT(model, pk) DO UPDATE SET doc = excluded.doc,"
				   " mtime_ns = excluded.mtime_ns WHERE records.doc IS NOT excluded.doc");

	if (!s)
		return -1;
	bind_text_static(s, 1, op->model);
	bind_text_static(s, 2, op->pk);
	bind_text_static(s, 3, op->returned);
	sqlite3_bind_int64(s, 4, clock_wall_ns());
	if (sqlite3_step(s) != SQLITE_DONE) {
		db_fail(st, "refresh");
		release(st, s);
		return -1;
	}
	release(st, s);
	return sqlite3_changes(st->db) > 0;
}

enum sh_err store_refresh_batch(struct store *st, const struct op *ops, size_t n,
				int64_t applied_seq, bool *changed)
{
	enum sh_err err;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	err = exec_sql(st, "BEGIN IMMEDIATE");
	for (size_t i = 0; i < n && !err; i++) {
		int rc = 0;

		changed[i] = false;
		if (ops[i].returned && !ops[i].dead &&
		    !pending_after_locked(st, ops[i].model, ops[i].pk, applied_seq))
			rc = refresh_one_locked(st, &ops[i]);
		if (rc < 0)
			err = SH_EIO;
		changed[i] = rc > 0;
	}
	if (!err)
		err = exec_sql(st, "COMMIT");
	if (err)
		exec_sql(st, "ROLLBACK");
	pthread_mutex_unlock(&st->lock);
	return err;
}

enum sh_err store_evict(struct store *st, const char *model, const char *pk)
{
	sqlite3_stmt *s;
	enum sh_err err;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	s = prep(st, "DELETE FROM records WHERE model = ?1 AND pk = ?2 AND NOT EXISTS"
		     " (SELECT 1 FROM outbox o WHERE o.model = ?1 AND o.pk = ?2)");
	if (s) {
		bind_text(s, 1, model);
		bind_text(s, 2, pk);
	}
	err = run(st, s);
	pthread_mutex_unlock(&st->lock);
	return err;
}

enum sh_err store_drop_synced(struct store *st, int64_t *dropped)
{
	enum sh_err err;

	*dropped = 0;
	if (lock_open(st) != SH_OK)
		return SH_EIO;
	err = exec_sql(st, drop_synced_sql);
	*dropped = err ? 0 : sqlite3_changes(st->db);
	pthread_mutex_unlock(&st->lock);
	return err;
}

static int64_t count_locked(struct store *st, const char *sql)
{
	sqlite3_stmt *s = prep(st, sql);
	int64_t v = 0;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	release(st, s);
	return v;
}

/* count_locked for a decision that deletes: -1 when the count failed. */
static int64_t count_or_fail_locked(struct store *st, const char *sql)
{
	sqlite3_stmt *s = prep(st, sql);
	int64_t v = -1;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	release(st, s);
	return v;
}

static void stats_locked(struct store *st, struct store_stats *stats)
{
	stats->pending = count_locked(st, "SELECT count(*) FROM outbox");
	stats->in_flight = count_locked(st, "SELECT count(*) FROM outbox WHERE relayed_ns > 0");
	stats->records = count_locked(st, "SELECT count(*) FROM records");
	stats->oldest_pending_ns = count_locked(st, "SELECT coalesce(min(mtime_ns), 0) FROM outbox");
}

enum sh_err store_stats(struct store *st, struct store_stats *stats)
{
	bool parked;

	memset(stats, 0, sizeof(*stats));
	if (lock_answer(st, &parked) != SH_OK)
		return SH_EIO;
	if (parked)
		*stats = st->parked.stats;
	else
		stats_locked(st, stats);
	pthread_mutex_unlock(&st->lock);
	return SH_OK;
}

/* A parked store's meta value: SH_ENOENT when it has none. */
static enum sh_err parked_meta(const struct parked *pk, const char *key, char **value)
{
	for (int i = 0; i < pk->nmeta; i++) {
		if (strcmp(pk->keys[i], key) == 0) {
			*value = strdup(pk->values[i]);
			return *value ? SH_OK : SH_ENOMEM;
		}
	}
	return SH_ENOENT;
}

enum sh_err store_pending(struct store *st, int64_t *pending)
{
	bool parked;

	*pending = 0;
	if (lock_answer(st, &parked) != SH_OK)
		return SH_EIO;
	*pending = parked ? st->parked.stats.pending
			  : count_locked(st, "SELECT count(*) FROM outbox");
	pthread_mutex_unlock(&st->lock);
	return SH_OK;
}

enum sh_err store_pending_fresh(struct store *st, int64_t *pending)
{
	*pending = 0;
	if (lock_open(st) != SH_OK)
		return SH_EIO;
	*pending = count_or_fail_locked(st, "SELECT count(*) FROM outbox");
	pthread_mutex_unlock(&st->lock);
	return *pending < 0 ? SH_EIO : SH_OK;
}

/* Unlink the block's files; SQLite is told to keep its WAL, so that closing
 * this connection later never deletes, by name, the WAL of a new block file
 * created at the same path in the meantime. */
static void unlink_files_locked(struct store *st)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	int persist = 1;
	char buf[4096];

	sqlite3_file_control(st->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", st->path, suffixes[i]);
		if (unlink(buf) != 0 && errno != ENOENT)
			sh_log(LOG_WARNING, "cannot remove '%s': %s", buf, strerror(errno));
	}
}

enum sh_err store_remove_if_idle(struct store *st, int64_t *pending, bool *removed)
{
	enum sh_err err;

	*pending = 0;
	*removed = false;
	if (lock_open(st) != SH_OK)
		return SH_EIO;
	/* The write lock: a writer of another process (sharded dlq retry) has
	 * either committed, and is counted, or waits until the files are gone. */
	err = exec_sql(st, "BEGIN IMMEDIATE");
	if (!err) {
		*pending = count_or_fail_locked(st, "SELECT count(*) FROM outbox");
		if (*pending < 0)
			err = SH_EIO;
		else if (*pending == 0)
			unlink_files_locked(st);
		*removed = !err && *pending == 0;
		exec_sql(st, "ROLLBACK");
	}
	pthread_mutex_unlock(&st->lock);
	return err;
}

enum sh_err store_meta_get(struct store *st, const char *key, char **value)
{
	sqlite3_stmt *s;
	enum sh_err err = SH_ENOENT;
	bool parked;

	*value = NULL;
	if (lock_answer(st, &parked) != SH_OK)
		return SH_EIO;
	if (parked) {
		err = parked_meta(&st->parked, key, value);
		pthread_mutex_unlock(&st->lock);
		return err;
	}
	s = prep(st, "SELECT value FROM meta WHERE key = ?1");
	if (!s) {
		err = SH_EIO;
	} else {
		bind_text(s, 1, key);
		if (sqlite3_step(s) == SQLITE_ROW) {
			*value = column_dup(s, 0);
			err = *value ? SH_OK : SH_ENOMEM;
		}
		release(st, s);
	}
	pthread_mutex_unlock(&st->lock);
	return err;
}

enum sh_err store_meta_set(struct store *st, const char *key, const char *value)
{
	enum sh_err err;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	err = meta_set_locked(st, key, value);
	pthread_mutex_unlock(&st->lock);
	return err;
}

static bool held_locked(struct store *st, const char *model, const char *pk)
{
	sqlite3_stmt *s = prep(st, "SELECT 1 FROM records WHERE model = ?1 AND pk = ?2");
	bool held = false;

	if (s) {
		bind_text(s, 1, model);
		bind_text(s, 2, pk);
		held = sqlite3_step(s) == SQLITE_ROW;
		release(st, s);
	}
	return held;
}

/* Write doc (NULL: drop) unless the record already reads so; changes made. */
static int remote_put_locked(struct store *st, const char *model, const char *pk, const char *doc)
{
	sqlite3_stmt *s = doc ? prep(st, "INSERT INTO records(model, pk, doc, mtime_ns)"
					 " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(model, pk) DO UPDATE"
					 " SET doc = excluded.doc, mtime_ns = excluded.mtime_ns"
					 " WHERE records.doc IS NOT excluded.doc")
			      : prep(st, "DELETE FROM records WHERE model = ?1 AND pk = ?2");
	int rc;

	if (!s)
		return -1;
	bind_text(s, 1, model);
	bind_text(s, 2, pk);
	if (doc) {
		bind_text(s, 3, doc);
		sqlite3_bind_int64(s, 4, clock_wall_ns());
	}
	rc = sqlite3_step(s);
	release(st, s);
	if (rc != SQLITE_DONE) {
		db_fail(st, "remote change");
		return -1;
	}
	return sqlite3_changes(st->db);
}

enum sh_err store_remote(struct store *st, const char *model, const char *pk, const char *doc,
			 bool add, enum store_remote_result *res)
{
	int changes = 0;

	*res = STORE_REMOTE_SAME;
	if (lock_open(st) != SH_OK)
		return SH_EIO;
	if (pending_after_locked(st, model, pk, INT64_MIN))
		*res = STORE_REMOTE_KEPT;
	else if (add || held_locked(st, model, pk))
		changes = remote_put_locked(st, model, pk, doc);
	pthread_mutex_unlock(&st->lock);
	if (changes > 0)
		*res = STORE_REMOTE_CHANGED;
	return changes < 0 ? SH_EIO : SH_OK;
}

bool store_has_pending(struct store *st, const char *model, const char *pk)
{
	bool pending;

	if (lock_open(st) != SH_OK)
		return true;	/* when unsure, keep the local write */
	pending = pending_after_locked(st, model, pk, INT64_MIN);
	pthread_mutex_unlock(&st->lock);
	return pending;
}

static void forget_answers(struct store *st)
{
	pthread_mutex_lock(&st->lock);
	st->parked.valid = false;
	pthread_mutex_unlock(&st->lock);
}

struct store_load {
	struct store *st;
	sqlite3 *db;
	sqlite3_stmt *insert;
	char *path;
};

static enum sh_err load_exec(struct store_load *ld, const char *sql)
{
	return exec_on(ld->db, ld->path, sql);
}

enum sh_err store_load_begin(struct store *st, bool replace, struct store_load **out)
{
	struct store_load *ld = calloc(1, sizeof(*ld));
	enum sh_err err = SH_EIO;

	*out = NULL;
	if (!ld || !(ld->path = strdup(st->path))) {
		free(ld);
		return SH_ENOMEM;
	}
	ld->st = st;
	forget_answers(st);	/* the load writes through a connection of its own */
	if (sqlite3_open_v2(st->path, &ld->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) ==
	    SQLITE_OK) {
		sqlite3_busy_timeout(ld->db, 30000);
		err = load_exec(ld, "BEGIN IMMEDIATE");
		if (!err && replace)
			err = load_exec(ld, drop_synced_sql);
		if (!err && sqlite3_prepare_v2(ld->db,
			"INSERT INTO records(model, pk, doc, mtime_ns) SELECT ?1, ?2, ?3, ?4"
			" WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE model = ?1 AND pk = ?2)"
			" ON CONFLICT(model, pk) DO UPDATE SET doc = excluded.doc,"
			" mtime_ns = excluded.mtime_ns", -1, &ld->insert, NULL) != SQLITE_OK)
			err = SH_EIO;
	}
	if (err) {
		store_load_end(ld, false);
		return err;
	}
	*out = ld;
	return SH_OK;
}

enum sh_err store_load_row(struct store_load *ld, const char *model, const char *pk,
			   const char *doc)
{
	int rc;

	sqlite3_reset(ld->insert);
	sqlite3_bind_text(ld->insert, 1, model, -1, SQLITE_STATIC);
	sqlite3_bind_text(ld->insert, 2, pk, -1, SQLITE_STATIC);
	sqlite3_bind_text(ld->insert, 3, doc, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ld->insert, 4, clock_wall_ns());
	rc = sqlite3_step(ld->insert);
	sqlite3_clear_bindings(ld->insert);
	if (rc != SQLITE_DONE) {
		sh_log(LOG_ERR, "block file '%s': load: %s", ld->path, sqlite3_errmsg(ld->db));
		return SH_EIO;
	}
	return SH_OK;
}

enum sh_err store_load_end(struct store_load *ld, bool commit)
{
	enum sh_err err = SH_OK;

	if (!ld)
		return SH_OK;
	sqlite3_finalize(ld->insert);
	if (ld->db) {
		if (commit)
			err = load_exec(ld, "COMMIT");
		if (!commit || err)
			sqlite3_exec(ld->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(ld->db);
	}
	/* Only now, with SQLite's write lock released: a writer may hold st's
	 * lock while it waits for that write lock (busy timeout), so taking
	 * st's lock before the COMMIT made both wait out the timeout. */
	if (ld->st)
		forget_answers(ld->st);
	free(ld->path);
	free(ld);
	return err;
}

enum sh_err store_expire(struct store *st, int64_t *dropped)
{
	enum sh_err err;

	*dropped = 0;
	if (lock_open(st) != SH_OK)
		return SH_EIO;
	err = exec_sql(st, drop_synced_sql);
	*dropped = err ? 0 : sqlite3_changes(st->db);
	if (!err)
		err = exec_sql(st, "VACUUM");
	if (!err)
		exec_sql(st, "PRAGMA wal_checkpoint(TRUNCATE)");
	pthread_mutex_unlock(&st->lock);
	return err;
}

enum sh_err store_meta_add(struct store *st, const char *key, int64_t delta)
{
	sqlite3_stmt *s;
	enum sh_err err;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	s = prep(st, "INSERT INTO meta(key, value) VALUES(?1, max(0, ?2))"
		     " ON CONFLICT(key) DO UPDATE SET value = max(0, CAST(value AS INTEGER) + ?2)");
	if (s) {
		bind_text(s, 1, key);
		sqlite3_bind_int64(s, 2, delta);
	}
	err = run(st, s);
	pthread_mutex_unlock(&st->lock);
	return err;
}

/* ---- reserved ids (store.h) ---------------------------------------------- */

static void ids_leases_free(struct store *st)
{
	while (st->leases) {
		struct ids_lease *l = st->leases;

		st->leases = l->next;
		free(l->model);
		free(l);
	}
}

static struct ids_lease *lease_find(struct store *st, const char *model)
{
	for (struct ids_lease *l = st->leases; l; l = l->next)
		if (strcmp(l->model, model) == 0)
			return l;
	return NULL;
}

/* id is in model's lease and not handed out yet: the file says handed (1),
 * and it is not, until store_ids_take gives it. */
static bool lease_holds(struct store *st, const char *model, int64_t id)
{
	struct ids_lease *l = lease_find(st, model);

	for (int i = l ? l->pos : 0; l && i < l->n; i++)
		if (l->ids[i] == id)
			return true;
	return false;
}

enum sh_err store_ids_add(struct store *st, const char *model, const int64_t *ids, size_t n)
{
	struct ids_lease *l;
	enum sh_err err;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	err = exec_sql(st, "BEGIN IMMEDIATE");
	for (size_t i = 0; !err && i < n; i++) {
		sqlite3_stmt *s = prep(st, "INSERT OR IGNORE INTO ids(model, id) VALUES(?1, ?2)");

		if (s) {
			bind_text(s, 1, model);
			sqlite3_bind_int64(s, 2, ids[i]);
		}
		err = run(st, s);
	}
	if (!err)
		err = exec_sql(st, "COMMIT");
	if (err)
		exec_sql(st, "ROLLBACK");
	if ((l = lease_find(st, model)))
		l->free = -1;
	pthread_mutex_unlock(&st->lock);
	return err;
}

static enum sh_err ids_free_locked(struct store *st, const char *model, int64_t *free_ids)
{
	sqlite3_stmt *s = prep(st, "SELECT count(*) FROM ids WHERE model = ?1 AND handed = 0");
	enum sh_err err = SH_EIO;

	if (!s)
		return SH_EIO;
	bind_text(s, 1, model);
	if (sqlite3_step(s) == SQLITE_ROW) {
		*free_ids = sqlite3_column_int64(s, 0);
		err = SH_OK;
	}
	release(st, s);
	return err;
}

/* Up to IDS_LEASE of the lowest free ids into l, marked handed (st locked,
 * in a transaction). */
static enum sh_err lease_mark_locked(struct store *st, struct ids_lease *l)
{
	sqlite3_stmt *s = prep(st, "SELECT id FROM ids WHERE model = ?1 AND handed = 0 "
				   "ORDER BY id LIMIT ?2");
	enum sh_err err = s ? SH_OK : SH_EIO;
	int rc = SQLITE_ROW;

	l->n = l->pos = 0;
	if (s) {
		bind_text(s, 1, l->model);
		sqlite3_bind_int(s, 2, IDS_LEASE);
		while (l->n < IDS_LEASE && (rc = sqlite3_step(s)) == SQLITE_ROW)
			l->ids[l->n++] = sqlite3_column_int64(s, 0);
		err = rc == SQLITE_ROW || rc == SQLITE_DONE ? SH_OK : SH_EIO;
		release(st, s);
	}
	for (int i = 0; !err && i < l->n; i++) {
		s = prep(st, "UPDATE ids SET handed = 1 WHERE model = ?1 AND id = ?2");
		if (s) {
			bind_text(s, 1, l->model);
			sqlite3_bind_int64(s, 2, l->ids[i]);
		}
		err = run(st, s);
	}
	if (!err)
		err = ids_free_locked(st, l->model, &l->free);
	if (!err && l->n == 0)
		err = SH_ENOENT;
	return err;
}

/* A new lease for l (st locked). Its commit reaches the disk before any of
 * its ids is handed out, whatever sync= says: a power loss that took it back
 * could hand them out again. */
static enum sh_err lease_take_locked(struct store *st, struct ids_lease *l)
{
	enum sh_err err = SH_OK;

	if (!st->sync_full)
		err = exec_sql(st, "PRAGMA synchronous=FULL");
	if (!err)
		err = exec_sql(st, "BEGIN IMMEDIATE");
	if (!err) {
		err = lease_mark_locked(st, l);
		if (!err)
			err = exec_sql(st, "COMMIT");
		if (err)
			exec_sql(st, "ROLLBACK");
	}
	if (!st->sync_full && exec_sql(st, "PRAGMA synchronous=NORMAL") && !err)
		err = SH_EIO;
	if (err)
		l->n = l->pos = 0;	/* rolled back: nothing of it is handed */
	return err;
}

static struct ids_lease *lease_get(struct store *st, const char *model)
{
	struct ids_lease *l = lease_find(st, model);

	if (l || !(l = calloc(1, sizeof(*l))))
		return l;
	if (!(l->model = strdup(model))) {
		free(l);
		return NULL;
	}
	l->free = -1;
	l->next = st->leases;
	st->leases = l;
	return l;
}

enum sh_err store_ids_take(struct store *st, const char *model, int64_t *id, int64_t *left)
{
	struct ids_lease *l;
	enum sh_err err = SH_OK;

	if (lock_open(st) != SH_OK)
		return SH_EIO;
	if (!(l = lease_get(st, model)))
		err = SH_ENOMEM;
	else if (l->pos == l->n)
		err = lease_take_locked(st, l);
	if (!err && l->free < 0)
		err = ids_free_locked(st, model, &l->free);
	if (!err) {
		*id = l->ids[l->pos++];
		*left = l->free + (l->n - l->pos);
	}
	pthread_mutex_unlock(&st->lock);
	return err;
}

bool store_ids_handed(struct store *st, const char *model, int64_t id)
{
	sqlite3_stmt *s;
	bool handed = false;

	if (lock_open(st) != SH_OK)
		return false;
	s = prep(st, "SELECT 1 FROM ids WHERE model = ?1 AND id = ?2 AND handed >= 1");
	if (s) {
		bind_text(s, 1, model);
		sqlite3_bind_int64(s, 2, id);
		handed = sqlite3_step(s) == SQLITE_ROW;
		release(st, s);
	}
	handed = handed && !lease_holds(st, model, id);
	pthread_mutex_unlock(&st->lock);
	return handed;
}

bool store_ids_unstored(struct store *st, const char *model, int64_t id)
{
	sqlite3_stmt *s;
	bool unstored = false;

	if (lock_open(st) != SH_OK)
		return false;
	s = prep(st, "SELECT 1 FROM ids WHERE model = ?1 AND id = ?2 AND handed = 1");
	if (s) {
		bind_text(s, 1, model);
		sqlite3_bind_int64(s, 2, id);
		unstored = sqlite3_step(s) == SQLITE_ROW;
		release(st, s);
	}
	unstored = unstored && !lease_holds(st, model, id);
	pthread_mutex_unlock(&st->lock);
	return unstored;
}

