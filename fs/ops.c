/* ops.c - the FUSE low-level operations: kernel requests -> engine calls.
 *
 * Record files are read from a snapshot taken at open and written into a
 * per-open buffer that is validated and committed as one document at
 * flush (close) time, so a refusal reaches the program as close()'s errno
 * and a half-written document is never stored. Control files are applied at
 * write() time (sysfs style: a write is the whole value).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs.h"
#include "kcache.h"
#include "scratch.h"
#include "wbuf.h"

#define UNKNOWN_INO 0xffffffffULL
/* How long a writer waits for the readers of a record using the page cache
 * to close it (kcache.h): cat-like readers take microseconds. */
#define WRITER_WAIT_MS 2000
/* records=ro: what a control file may grow by between its GETATTR and READ */
#define CTL_GROWTH 4096

/* One open file. */
struct handle {
	struct open_file of;	/* first: the registry's view of it */
	pthread_mutex_t lock;
	struct node_ref ref;
	char *buf;		/* record: document + "\n", or control-file text */
	size_t len, cap;
	int dirty;		/* record: buf holds an uncommitted change */
	int written;		/* record: write() or truncate happened, not just O_TRUNC */
	int sequential;		/* record: started empty and every write appended */
	enum sh_err write_err;	/* record: SH_ETOOBIG or SH_ENOSPC refused a write:
				 * nothing is stored, close() fails with it (logged once) */
	struct wbudget *budget;	/* record: what charged was taken from */
	size_t charged;		/* record: bytes of buf counted in the budget */
	int kc_reader;		/* record: a cached open (kcache.h) */
	int kc_writer;		/* record: an open that may write, counted in kcache */
	int created;		/* record: made by this open (CREATE), not stored yet */
	struct engine_kept *kept;	/* record: what the last write's check merged */
};

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

_Thread_local bool fs_request_thread;

static void count(fuse_req_t req, enum fs_op op)
{
	fs_request_thread = true;
	atomic_fetch_add_explicit(&fs_of(req)->requests[op], 1, memory_order_relaxed);
}

void fs_open_track(struct fs *fs, struct open_file *f, void (*release)(struct open_file *f))
{
	f->release = release;
	pthread_mutex_lock(&fs->open_lock);
	f->next = fs->open_files.next;
	f->prev = &fs->open_files;
	fs->open_files.next->prev = f;
	fs->open_files.next = f;
	pthread_mutex_unlock(&fs->open_lock);
}

void fs_open_untrack(struct fs *fs, struct open_file *f)
{
	pthread_mutex_lock(&fs->open_lock);
	f->prev->next = f->next;
	f->next->prev = f->prev;
	pthread_mutex_unlock(&fs->open_lock);
}

void fs_open_release_all(struct fs *fs)
{
	while (fs->open_files.next != &fs->open_files) {
		struct open_file *f = fs->open_files.next;

		fs_open_untrack(fs, f);
		f->release(f);
	}
}

/* ---- names --------------------------------------------------------------- */

static bool ctl_from_name(const char *name, enum ctl_file *f)
{
	for (int i = 0; i < CTL_COUNT; i++) {
		if (strcmp(ctl_name(i), name) == 0) {
			*f = i;
			return true;
		}
	}
	return false;
}

/* ---- attributes ---------------------------------------------------------- */

/* Owner, group and mode are the mount's (uid=, gid=, umask=), whoever made
 * the file: widest is what the umask takes bits from (perm.h). */
static void fill_common(struct fs *fs, struct stat *st, uint64_t ino, mode_t type, mode_t widest)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = perm_mode(&fs->perm, type, widest);
	st->st_nlink = S_ISDIR(type) ? 2 : 1;
	st->st_uid = fs->perm.uid;
	st->st_gid = fs->perm.gid;
	st->st_blksize = 4096;
}

static void set_time(struct stat *st, int64_t ns)
{
	st->st_mtim.tv_sec = ns / 1000000000;
	st->st_mtim.tv_nsec = ns % 1000000000;
	st->st_atim = st->st_ctim = st->st_mtim;
}

static enum sh_err with_block(struct fs *fs, const char *id, struct block **b)
{
	return engine_block_get(fs->engine, id, b);
}

/* local: from the block alone (a record someone has open was looked up, and
 * so read through, already) */
static enum sh_err record_attr(struct fs *fs, const struct node_ref *r, bool local,
			       struct stat *st, uint64_t *fp)
{
	struct block *b;
	char *doc = NULL;
	int64_t mtime = 0;
	enum sh_err err = with_block(fs, r->block, &b);

	if (err)
		return err;
	if (local)
		err = engine_get_local(fs->engine, b, r->model, r->pk, &doc, &mtime);
	else
		err = engine_get(fs->engine, b, r->model, r->pk, &doc, &mtime);
	engine_block_put(b);
	if (err)
		return err;
	/* records=ro: no write bits, so that the kernel refuses a write open
	 * (but root's) before it copies the bytes into the shared pages */
	fill_common(fs, st, r->ino, S_IFREG, fs->records_ro ? 0444 : 0666);
	st->st_size = (off_t)strlen(doc) + 1;
	st->st_blocks = (st->st_size + 511) / 512;
	set_time(st, mtime);
	if (fp) {	/* of what a read returns: the document and its newline */
		doc[st->st_size - 1] = '\n';
		*fp = kcache_fp(doc, (size_t)st->st_size);
	}
	free(doc);
	return SH_OK;
}

static const char *const op_names[FS_OP_COUNT] = {
	[FS_OP_LOOKUP] = "lookup", [FS_OP_FORGET] = "forget", [FS_OP_GETATTR] = "getattr",
	[FS_OP_SETATTR] = "setattr", [FS_OP_OPEN] = "open", [FS_OP_CREATE] = "create",
	[FS_OP_READ] = "read", [FS_OP_WRITE] = "write", [FS_OP_FLUSH] = "flush",
	[FS_OP_RELEASE] = "release", [FS_OP_FSYNC] = "fsync", [FS_OP_OPENDIR] = "opendir",
	[FS_OP_READDIR] = "readdir", [FS_OP_RELEASEDIR] = "releasedir", [FS_OP_OTHER] = "other",
};

/* The engine's metrics and then the FUSE requests by opcode. */
static enum sh_err metrics_with_requests(struct fs *fs, char **text)
{
	char part[FS_OP_COUNT * 64 + 1024], *all;
	unsigned long long opens[KCACHE_OPEN_KINDS];
	size_t n = 0;
	enum sh_err err = engine_ctl_read(fs->engine, NULL, CTL_METRICS, text);

	if (err)
		return err;
	n += (size_t)snprintf(part, sizeof(part), "# HELP sharded_fuse_requests_total Kernel "
			      "requests answered, by opcode.\n"
			      "# TYPE sharded_fuse_requests_total counter\n");
	for (int i = 0; i < FS_OP_COUNT && n < sizeof(part); i++)
		n += (size_t)snprintf(part + n, sizeof(part) - n,
				      "sharded_fuse_requests_total{op=\"%s\"} %llu\n", op_names[i],
				      atomic_load(&fs->requests[i]));
	kcache_counts(fs->kcache, opens);
	if (n < sizeof(part))
		snprintf(part + n, sizeof(part) - n,
			 "# HELP sharded_record_read_opens_total Read-only opens of records, by whether "
			 "the kernel's page cache served them (kept: its pages too).\n"
			 "# TYPE sharded_record_read_opens_total counter\n"
			 "sharded_record_read_opens_total{cache=\"kept\"} %llu\n"
			 "sharded_record_read_opens_total{cache=\"filled\"} %llu\n"
			 "sharded_record_read_opens_total{cache=\"bypassed\"} %llu\n",
			 opens[KCACHE_KEPT], opens[KCACHE_FILLED], opens[KCACHE_DIRECT]);
	if (asprintf(&all, "%s%s", *text, part) < 0)
		return SH_ENOMEM;
	free(*text);
	*text = all;
	return SH_OK;
}

/* A control file's current text; the metrics file belongs to no block. */
static enum sh_err ctl_text(struct fs *fs, const struct node_ref *r, char **text)
{
	struct block *b = NULL;
	enum sh_err err;

	if (r->ctl == CTL_METRICS)
		return metrics_with_requests(fs, text);
	err = with_block(fs, r->block, &b);
	if (err)
		return err;
	if (r->ctl == CTL_NEXT_ID)
		err = engine_next_id(fs->engine, b, r->model, text);
	else
		err = engine_ctl_read(fs->engine, b, r->ctl, text);
	engine_block_put(b);
	return err;
}

static enum sh_err ctl_attr(struct fs *fs, const struct node_ref *r, struct stat *st)
{
	char *text = NULL;
	enum sh_err err = SH_OK;

	/* each read of .next-id hands out an id: a stat must not take one */
	if (r->ctl != CTL_NEXT_ID)
		err = ctl_text(fs, r, &text);
	else if (!(text = strdup("")))
		err = SH_ENOMEM;
	if (err)
		return err;
	fill_common(fs, st, r->ino, S_IFREG, ctl_writable(r->ctl) ? 0666 : 0444);
	st->st_size = (off_t)strlen(text);
	/* opened with no request, a control file is read through the page cache
	 * up to this size, from text made again at READ: room for it to grow
	 * (a shorter READ sets the size); the new mtime drops the old pages */
	if (fs->no_open)
		st->st_size += CTL_GROWTH;
	set_time(st, clock_wall_ns());
	free(text);
	return SH_OK;
}

static enum sh_err node_attr(struct fs *fs, const struct node_ref *r, struct stat *st,
			     uint64_t *fp)
{
	struct block *b;

	if (fp)
		*fp = 0;
	switch (r->kind) {
	case NODE_ROOT:
		fill_common(fs, st, r->ino, S_IFDIR, 0777);
		set_time(st, fs->mount_ns);
		return SH_OK;
	case NODE_BLOCK:
	case NODE_MODEL:
		if (with_block(fs, r->block, &b))
			return SH_ENOENT;
		engine_block_put(b);
		fill_common(fs, st, r->ino, S_IFDIR, 0777);
		set_time(st, fs->mount_ns);
		return SH_OK;
	case NODE_CTL:
		return ctl_attr(fs, r, st);
	case NODE_RECORD:
		return record_attr(fs, r, false, st, fp);
	case NODE_SCRATCH:
		return sops_stat(fs, r, st);
	}
	return SH_EIO;
}

/* .next-id's attributes never change (its size reads 0: a stat takes no
 * id), so the kernel keeps them and its opens come without a GETATTR. */
static double attr_timeout(struct fs *fs, const struct node_ref *r)
{
	if (r->kind == NODE_CTL && r->ctl == CTL_NEXT_ID)
		return fs->attr_timeout;
	return r->kind == NODE_CTL || r->kind == NODE_SCRATCH ? 0.0 : fs->attr_timeout;
}

/* A record's attributes as the kernel may keep them (kcache.h): the size a
 * cached open needs, and no timeout when they may not be kept. */
static double record_attr_timeout(struct fs *fs, uint64_t ino, uint64_t fp, struct stat *st)
{
	bool cacheable;

	st->st_size = (off_t)kcache_attr(fs->kcache, ino, fp, (size_t)st->st_size, &cacheable);
	st->st_blocks = (st->st_size + 511) / 512;
	return cacheable ? fs->attr_timeout : 0.0;
}

/* ---- lookup -------------------------------------------------------------- */

/* What would child name of parent be? Fills proto; SH_ENOENT if nothing. */
static enum sh_err resolve(struct fs *fs, const struct node_ref *parent, const char *name,
			   struct node_ref *proto)
{
	struct scratch *sc;
	struct block *b;
	char why[160];

	memset(proto, 0, sizeof(*proto));
	snprintf(proto->block, sizeof(proto->block), "%s", parent->block);
	switch (parent->kind) {
	case NODE_ROOT:
		if (strcmp(name, ctl_name(CTL_METRICS)) == 0) {
			proto->kind = NODE_CTL;
			proto->ctl = CTL_METRICS;
			return SH_OK;
		}
		if (strlen(name) > ENGINE_BLOCK_ID_MAX || with_block(fs, name, &b))
			return SH_ENOENT;
		engine_block_put(b);
		snprintf(proto->block, sizeof(proto->block), "%s", name);
		proto->kind = NODE_BLOCK;
		return SH_OK;
	case NODE_BLOCK:
		proto->kind = NODE_CTL;
		if (ctl_from_name(name, &proto->ctl))
			return SH_OK;
		proto->kind = NODE_MODEL;
		proto->model = catalog_find(engine_catalog(fs->engine), name);
		return proto->model ? SH_OK : SH_ENOENT;
	case NODE_MODEL:
		proto->model = parent->model;
		if (strcmp(name, ENGINE_NEXT_ID_NAME) == 0) {
			proto->kind = NODE_CTL;
			proto->ctl = CTL_NEXT_ID;
			return engine_has_next_id(parent->model) ? SH_OK : SH_ENOENT;
		}
		if (strlen(name) < sizeof(proto->pk) && (sc = scratch_get(fs->scratch, parent->block,
						parent->model->name, name))) {
			scratch_put(fs->scratch, sc);
			proto->kind = NODE_SCRATCH;
			snprintf(proto->pk, sizeof(proto->pk), "%s", name);
			return SH_OK;
		}
		proto->kind = NODE_RECORD;
		return engine_record_key(fs->engine, parent->block, parent->model, name, proto->pk,
					 sizeof(proto->pk), why, sizeof(why)) == SH_OK ? SH_OK
										: SH_ENOENT;
	default:
		return SH_ENOENT;
	}
}

static void reply_entry(fuse_req_t req, struct fs *fs, const struct node_ref *ref,
			const struct stat *st, uint64_t fp)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = ref->ino;
	e.attr = *st;
	e.attr.st_ino = ref->ino;
	e.attr_timeout = ref->kind == NODE_RECORD ? record_attr_timeout(fs, ref->ino, fp, &e.attr)
						  : attr_timeout(fs, ref);
	e.entry_timeout = fs->entry_timeout;
	fuse_reply_entry(req, &e);
}

/* Count a lookup of child name and reply with its entry. */
static void enter(fuse_req_t req, struct fs *fs, fuse_ino_t parent, const char *name,
		  const struct node_ref *proto)
{
	struct node_ref ref;
	struct stat st;
	uint64_t fp;
	enum sh_err err;

	err = node_attr(fs, proto, &st, &fp);
	if (!err)
		err = nodes_lookup(fs->nodes, parent, name, proto, &ref);
	if (err)
		reply_err(req, err);
	else
		reply_entry(req, fs, &ref, &st, fp);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count(req, FS_OP_LOOKUP);
	struct fs *fs = fs_of(req);
	struct node_ref p, proto;
	enum sh_err err = nodes_get(fs->nodes, parent, &p);

	if (!err)
		err = resolve(fs, &p, name, &proto);
	if (err) {
		reply_err(req, err);
		return;
	}
	proto.ino = 0;
	enter(req, fs, parent, name, &proto);
}

static void forget_one(struct fs *fs, uint64_t ino, uint64_t nlookup)
{
	if (nodes_forget(fs->nodes, ino, nlookup))
		kcache_forget(fs->kcache, ino);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	count(req, FS_OP_FORGET);
	forget_one(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t n, struct fuse_forget_data *forgets)
{
	count(req, FS_OP_FORGET);
	for (size_t i = 0; i < n; i++)
		forget_one(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* The size a record has for a program writing it: what it wrote so far.
 * Lets fstat() of a file just created (not yet a record) succeed. */
static bool written_size(struct fs *fs, uint64_t ino, off_t *size)
{
	bool found = false;

	pthread_mutex_lock(&fs->open_lock);
	for (struct open_file *f = fs->open_files.next; !found && f != &fs->open_files; f = f->next) {
		struct handle *h = (struct handle *)f;

		if (f->kind != OPEN_FILE || h->ref.ino != ino || h->ref.kind != NODE_RECORD)
			continue;
		pthread_mutex_lock(&h->lock);
		if (h->dirty) {
			*size = (off_t)h->len;
			found = true;
		}
		pthread_mutex_unlock(&h->lock);
	}
	pthread_mutex_unlock(&fs->open_lock);
	return found;
}

static void getattr_reply(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node_ref r;
	struct stat st;
	uint64_t fp = 0;
	enum sh_err err;
	off_t size;
	double timeout;

	(void)fi;	/* the kernel rarely sends it: look for writers by inode instead */
	err = nodes_get(fs->nodes, ino, &r);
	if (err) {
		reply_err(req, err);
		return;
	}
	if (r.kind == NODE_RECORD && written_size(fs, ino, &size))
		err = record_attr(fs, &r, true, &st, &fp);
	else
		err = node_attr(fs, &r, &st, &fp);
	timeout = err ? 0.0 : r.kind == NODE_RECORD ? record_attr_timeout(fs, ino, fp, &st)
						    : attr_timeout(fs, &r);
	if (err == SH_ENOENT && r.kind == NODE_RECORD && written_size(fs, ino, &size)) {
		/* a record being created shows what was written so far, for no
		 * time: close() stores the document merged, maybe of another size;
		 * an existing one keeps its stored size until close() replaces it */
		fill_common(fs, &st, ino, S_IFREG, 0666);
		st.st_size = size;
		err = SH_OK;
	}
	if (err)
		reply_err(req, err);
	else
		fuse_reply_attr(req, &st, timeout);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count(req, FS_OP_GETATTR);
	getattr_reply(req, ino, fi);
}

/* ---- directories --------------------------------------------------------- */

struct listing {
	struct open_file of;	/* first: the registry's view of it */
	/* Held while a reply is sent from buf: the kernel may pass the reply to
	 * the program, which may close the directory (releasedir on another
	 * thread) before writev() has returned here. */
	pthread_mutex_t lock;
	fuse_req_t req;
	char *buf;		/* packed entries, as readdir replies carry them */
	size_t len, cap;
	size_t *ends;		/* ends[i]: where entry i stops (and i + 1 starts) */
	const struct model *model;	/* whose records are listed */
	size_t n, ncap;
	int failed;
};

static enum sh_err list_grow_ends(struct listing *l)
{
	size_t cap = l->ncap ? l->ncap * 2 : 64;
	size_t *grown;

	if (l->n < l->ncap)
		return SH_OK;
	grown = realloc(l->ends, cap * sizeof(*grown));
	if (!grown)
		return SH_ENOMEM;
	l->ends = grown;
	l->ncap = cap;
	return SH_OK;
}

/* Append one entry, growing the buffer; the whole listing is built once at opendir. */
static void list_add(struct listing *l, const char *name, mode_t mode)
{
	struct stat st = { .st_ino = UNKNOWN_INO, .st_mode = mode };
	size_t need = fuse_add_direntry(l->req, NULL, 0, name, NULL, 0);

	if (l->failed || (l->failed = list_grow_ends(l) != SH_OK))
		return;
	if (l->len + need > l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4096;
		char *grown;

		while (cap < l->len + need)
			cap *= 2;
		grown = realloc(l->buf, cap);
		if (!grown) {
			l->failed = 1;
			return;
		}
		l->buf = grown;
		l->cap = cap;
	}
	/* offsets are positions in the buffer: the next entry starts there */
	fuse_add_direntry(l->req, l->buf + l->len, need, name, &st, (off_t)(l->len + need));
	l->len += need;
	l->ends[l->n++] = l->len;
}

static void list_free(struct listing *l);

static void list_release(struct open_file *f)
{
	list_free((struct listing *)f);
}

static void list_free(struct listing *l)
{
	pthread_mutex_lock(&l->lock);
	pthread_mutex_unlock(&l->lock);
	pthread_mutex_destroy(&l->lock);
	free(l->buf);
	free(l->ends);
	free(l);
}

static int list_record(void *ctx, const char *pk, size_t doc_len, int64_t mtime_ns)
{
	struct listing *l = ctx;
	char name[ENGINE_NAME_MAX + 1];

	(void)doc_len;
	(void)mtime_ns;
	(void)engine_record_name(l->model, pk, name, sizeof(name));	/* always fits */
	list_add(l, name, S_IFREG);
	return l->failed;
}

static void list_scratch(void *ctx, const char *name)
{
	list_add(ctx, name, S_IFREG);
}

static void list_block(void *ctx, const char *id)
{
	list_add(ctx, id, S_IFDIR);
}

static enum sh_err list_dir(struct fs *fs, const struct node_ref *r, struct listing *l)
{
	const struct catalog *cat = engine_catalog(fs->engine);
	struct block *b;
	enum sh_err err = SH_OK;

	list_add(l, ".", S_IFDIR);
	list_add(l, "..", S_IFDIR);
	if (r->kind == NODE_ROOT) {
		list_add(l, ctl_name(CTL_METRICS), S_IFREG);
		if (engine_block_list(fs->engine, list_block, l))
			return SH_ENOMEM;
		return l->failed ? SH_ENOMEM : SH_OK;
	}
	if (with_block(fs, r->block, &b))
		return SH_ENOENT;
	if (r->kind == NODE_BLOCK) {
		for (int i = 0; i < CTL_COUNT; i++)
			list_add(l, ctl_name(i), S_IFREG);
		for (size_t i = 0; i < cat->nmodels; i++)
			list_add(l, cat->models[i].name, S_IFDIR);
	} else {
		l->model = r->model;
		err = engine_list(fs->engine, b, r->model, list_record, l);
		scratch_list(fs->scratch, r->block, r->model->name, list_scratch, l);
	}
	engine_block_put(b);
	return err ? err : l->failed ? SH_ENOMEM : SH_OK;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count(req, FS_OP_OPENDIR);
	struct fs *fs = fs_of(req);
	struct listing *l = calloc(1, sizeof(*l));
	struct node_ref r;
	enum sh_err err;

	if (!l) {
		reply_err(req, SH_ENOMEM);
		return;
	}
	l->req = req;
	l->of.kind = OPEN_DIR;
	pthread_mutex_init(&l->lock, NULL);
	err = nodes_get(fs->nodes, ino, &r);
	if (!err && r.kind != NODE_ROOT && r.kind != NODE_BLOCK && r.kind != NODE_MODEL)
		err = SH_ENOTDIR;
	if (!err)
		err = list_dir(fs, &r, l);
	if (err) {
		list_free(l);
		reply_err(req, err);
		return;
	}
	fs_open_track(fs, &l->of, list_release);
	fi->fh = (uintptr_t)l;
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	count(req, FS_OP_READDIR);
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;
	size_t start = (size_t)off, lo = 0, hi, end;

	(void)ino;
	if (start >= l->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* first entry that ends after start, then whole entries while they fit */
	hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->ends[mid] <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	end = start;
	while (lo < l->n && l->ends[lo] - start <= size)
		end = l->ends[lo++];
	pthread_mutex_lock(&l->lock);
	fuse_reply_buf(req, l->buf + start, end - start);
	pthread_mutex_unlock(&l->lock);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count(req, FS_OP_RELEASEDIR);
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;

	(void)ino;
	fs_open_untrack(fs_of(req), &l->of);
	list_free(l);
	reply_err(req, SH_OK);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	count(req, FS_OP_OTHER);
	struct fs *fs = fs_of(req);
	struct node_ref p, proto;
	enum sh_err err;

	(void)mode;
	if (nodes_get(fs->nodes, parent, &p) != SH_OK || p.kind != NODE_ROOT) {
		reply_err(req, SH_EPERM);
		return;
	}
	err = engine_block_create(fs->engine, name);
	if (err) {
		reply_err(req, err);
		return;
	}
	memset(&proto, 0, sizeof(proto));
	proto.kind = NODE_BLOCK;
	snprintf(proto.block, sizeof(proto.block), "%s", name);
	enter(req, fs, parent, name, &proto);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count(req, FS_OP_OTHER);
	struct fs *fs = fs_of(req);
	struct node_ref p;
	enum sh_err err = nodes_get(fs->nodes, parent, &p);	/* p is unset when it fails */

	if (err || p.kind != NODE_ROOT) {
		/* a model directory: `rm -r` passes it on the way to the block */
		err = !err && p.kind == NODE_BLOCK && caller_is_recursive_rm(req) &&
		      catalog_find(engine_catalog(fs->engine), name) ? SH_OK : SH_EPERM;
		if (!err)
			nodes_unlink(fs->nodes, parent, name);
		reply_err(req, err);
		return;
	}
	err = engine_block_remove(fs->engine, name);
	if (!err) {
		nodes_unlink(fs->nodes, parent, name);
		scratch_drop_block(fs->scratch, name);
	}
	reply_err(req, err);
}

/* ---- files --------------------------------------------------------------- */

static struct handle *handle_new(const struct node_ref *r)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	h->ref = *r;
	return h;
}

/* buf goes: its bytes go back to the budget of write buffers. */
static void handle_uncharge(struct handle *h)
{
	if (h->budget && h->charged)
		wbudget_give(h->budget, h->charged);
	h->charged = 0;
}

/* Count a writer of r, after the readers using the page cache are gone. */
static void writer_wait(struct fs *fs, const struct node_ref *r)
{
	if (!kcache_open_write(fs->kcache, r->ino, WRITER_WAIT_MS))
		sh_log(LOG_WARNING, "block '%s': %s %s is still open for reading after %d ms; "
		       "writing it anyway (that reader may read it cut short)", r->block,
		       r->model->name, r->pk, WRITER_WAIT_MS);
}

/* The open is over for kcache (release, or a failed open). */
static void handle_kc_close(struct fs *fs, struct handle *h)
{
	if (h->kc_reader)
		kcache_close_read(fs->kcache, h->ref.ino);
	if (h->kc_writer)
		kcache_close_write(fs->kcache, h->ref.ino);
	h->kc_reader = h->kc_writer = 0;
}

static void handle_free(struct handle *h)
{
	engine_kept_free(h->kept);
	handle_uncharge(h);
	pthread_mutex_destroy(&h->lock);
	free(h->buf);
	free(h);
}

static void handle_release(struct open_file *f)
{
	handle_free((struct handle *)f);
}

/* Make buf hold at least n bytes, within the document cap and the budget
 * of all write buffers (SH_ENOSPC beyond it, like scratch files). */
static enum sh_err reserve(struct fs *fs, struct handle *h, size_t n)
{
	char *grown;
	size_t cap;

	if (n > fs->max_doc)
		return SH_ETOOBIG;
	if (n <= h->cap)
		return SH_OK;
	cap = h->cap ? h->cap : 256;
	while (cap < n)
		cap *= 2;
	if (cap > fs->max_doc)
		cap = fs->max_doc;
	if (cap > h->charged && !wbudget_take(&fs->wbuf, cap - h->charged))
		return SH_ENOSPC;
	h->budget = &fs->wbuf;
	if (cap > h->charged)
		h->charged = cap;
	grown = realloc(h->buf, cap);
	if (!grown)
		return SH_ENOMEM;	/* charged stays: it covers the buffer kept */
	h->buf = grown;
	h->cap = cap;
	return SH_OK;
}

/* Put text (taking ownership) into h as its content. */
static enum sh_err handle_take(struct handle *h, char *text, int add_newline)
{
	size_t n = strlen(text);

	handle_uncharge(h);	/* a document read in is not a write buffer */
	free(h->buf);
	if (add_newline) {
		char *grown = realloc(text, n + 2);

		if (!grown)
			free(text);
		text = grown;
		if (text) {
			text[n++] = '\n';
			text[n] = '\0';
		}
	}
	h->buf = text;
	h->len = text ? n : 0;
	h->cap = text ? n + 1 : 0;
	return text ? SH_OK : SH_ENOMEM;
}

static enum sh_err load_content(struct fs *fs, struct handle *h)
{
	struct block *b;
	char *text = NULL;
	enum sh_err err;

	if (h->ref.kind == NODE_CTL) {
		err = ctl_text(fs, &h->ref, &text);
	} else if (!(err = with_block(fs, h->ref.block, &b))) {
		err = engine_get(fs->engine, b, h->ref.model, h->ref.pk, &text, NULL);
		engine_block_put(b);
	}
	if (!err)
		err = handle_take(h, text, h->ref.kind == NODE_RECORD);
	return err;
}

/* ---- records=ro: files opened with no request ----------------------------
 *
 * With -o records=ro the first OPEN is answered ENOSYS (FUSE_CAP_NO_OPEN_SUPPORT):
 * the kernel then opens every file itself, keeps its pages (FOPEN_KEEP_CACHE)
 * and sends no OPEN or RELEASE, so a cached record is read with no request.
 * Nothing here changes a record: its page cache and size, shared by every
 * open, change only by invalidations, which reach the kernel before the
 * change is acknowledged (notify.c). No open holds a snapshot, so a read that
 * overlaps a change may mix two versions (docs/guarantees.md). A refused
 * write's bytes sit in the shared pages until its WRITE fails (the kernel
 * copies them first): records show no write bits, which stops all but root
 * before that. READ, WRITE
 * and FLUSH come with fh 0: they are served from the node alone. The O_TRUNC
 * of an open comes as a SETATTR (ATOMIC_O_TRUNC is not asked for: with it the
 * kernel would empty the file for every reader without asking). */

static enum sh_err ctl_write(struct fs *fs, struct handle *h, const char *buf, size_t size,
			     off_t off);

/* A record write on a records=ro mount: refused, logged and counted. */
static bool ro_refused(struct fs *fs, const struct node_ref *r)
{
	if (!fs->records_ro)
		return false;
	engine_refused(fs->engine, r->block, r->model ? r->model->name : "", r->pk,
		       "records are read-only on this mount (records=ro)");
	return true;
}

/* READ with no handle: the node's content now, at off. */
static void ro_read(fuse_req_t req, struct fs *fs, fuse_ino_t ino, size_t size, off_t off)
{
	struct node_ref r;
	struct handle *h = NULL;
	enum sh_err err = nodes_get(fs->nodes, ino, &r);

	if (!err && r.kind != NODE_RECORD && r.kind != NODE_CTL)
		err = r.kind == NODE_SCRATCH ? SH_EROFS : SH_EISDIR;	/* none made here */
	if (!err && r.kind == NODE_CTL && r.ctl == CTL_NEXT_ID)
		err = SH_EROFS;	/* an id is for a create; the page cache would hand one out twice */
	if (!err && !(h = handle_new(&r)))
		err = SH_ENOMEM;
	if (!err)
		err = load_content(fs, h);
	if (err)
		reply_err(req, err);
	else if ((size_t)off >= h->len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, h->buf + off, h->len - (size_t)off < size ? h->len - (size_t)off : size);
	if (h)
		handle_free(h);
}

/* WRITE with no handle: a control file's value; a record's is refused. */
static void ro_write(fuse_req_t req, struct fs *fs, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off)
{
	struct node_ref r;
	struct handle *h = NULL;
	enum sh_err err = nodes_get(fs->nodes, ino, &r);

	if (!err && r.kind == NODE_CTL) {
		err = (h = handle_new(&r)) ? ctl_write(fs, h, buf, size, off) : SH_ENOMEM;
		if (h)
			handle_free(h);
		/* `invalidate`: acknowledged once the kernel has dropped what
		 * changed (a control file's write holds no directory lock) */
		if (!err)
			notifier_flush(fs->notifier);
	} else if (!err) {
		if (r.kind == NODE_RECORD)
			ro_refused(fs, &r);
		err = SH_EROFS;
	}
	if (err)
		reply_err(req, err);
	else
		fuse_reply_write(req, size);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count(req, FS_OP_OPEN);
	struct fs *fs = fs_of(req);
	struct node_ref r;
	struct handle *h;
	enum sh_err err = SH_OK;

	if (fs->no_open) {
		/* the kernel opens this and every later file itself, with
		 * FOPEN_KEEP_CACHE, and sends no RELEASE (see "records=ro" above) */
		reply_err(req, SH_ENOSYS);
		return;
	}
	err = nodes_get(fs->nodes, ino, &r);
	if (err) {
		reply_err(req, err);
		return;
	}
	if (r.kind == NODE_SCRATCH) {
		sops_open(req, fs, &r, fi);
		return;
	}
	if (r.kind != NODE_RECORD && r.kind != NODE_CTL) {
		reply_err(req, SH_EISDIR);
		return;
	}
	if (r.kind == NODE_CTL && (fi->flags & O_ACCMODE) != O_RDONLY && !ctl_writable(r.ctl)) {
		reply_err(req, SH_EACCES);
		return;
	}
	if (r.kind == NODE_RECORD && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) &&
	    ro_refused(fs, &r)) {
		reply_err(req, SH_EROFS);
		return;
	}
	h = handle_new(&r);
	if (!h) {
		reply_err(req, SH_ENOMEM);
		return;
	}
	if (r.kind == NODE_RECORD && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))) {
		writer_wait(fs, &r);	/* before the snapshot: see kcache.h */
		h->kc_writer = 1;
	}
	if (r.kind == NODE_RECORD && (fi->flags & O_TRUNC))
		h->dirty = h->sequential = 1;	/* empty unless something is written */
	else
		err = load_content(fs, h);
	if (err) {
		handle_kc_close(fs, h);
		handle_free(h);
		reply_err(req, err);
		return;
	}
	fs_open_track(fs, &h->of, handle_release);
	fi->fh = (uintptr_t)h;
	/* Control files change size, and a record being written by one program
	 * must not be cut to that writer's length for another (the kernel's page
	 * cache and size are shared by every open, and a writer's O_TRUNC sets the
	 * size to zero for all): they bypass the page cache. A reader uses it
	 * when kcache.h says the kernel's pages and size fit its snapshot. */
	fi->direct_io = 1;
	if (r.kind == NODE_RECORD && !h->kc_writer) {
		bool keep;

		h->kc_reader = kcache_open_read(fs->kcache, ino, kcache_fp(h->buf, h->len), h->len,
						&keep);
		fi->direct_io = !h->kc_reader;
		fi->keep_cache = h->kc_reader && keep;
	}
	/* nothing to commit for a reader: the kernel then skips FLUSH at close */
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
	fuse_reply_open(req, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	count(req, FS_OP_CREATE);
	struct fs *fs = fs_of(req);
	struct node_ref p = { .kind = NODE_ROOT }, proto, ref;
	struct fuse_entry_param e;
	struct handle *h;
	char why[160];

	(void)mode;	/* the creator's: every file has the mount's modes (perm.h) */
	if (nodes_get(fs->nodes, parent, &p) != SH_OK || p.kind != NODE_MODEL) {
		reply_err(req, p.kind == NODE_BLOCK || p.kind == NODE_ROOT ? SH_EPERM : SH_ENOENT);
		return;
	}
	if (fs->records_ro) {
		/* a record, or a scratch file that could only become one */
		engine_refused(fs->engine, p.block, p.model->name, NULL,
			       "records are read-only on this mount (records=ro)");
		reply_err(req, SH_EROFS);
		return;
	}
	if (strcmp(name, ENGINE_NEXT_ID_NAME) == 0) {
		reply_err(req, engine_has_next_id(p.model) ? SH_EEXIST : SH_EPERM);
		return;
	}
	switch (engine_record_key(fs->engine, p.block, p.model, name, proto.pk, sizeof(proto.pk),
				  why, sizeof(why))) {
	case SH_OK:
		break;
	case SH_EINVAL:
		engine_refused(fs->engine, p.block, p.model->name, NULL, why);
		reply_err(req, SH_EINVAL);
		return;
	default:
		sops_create(req, fs, parent, &p, name, fi);
		return;
	}
	if (resolve(fs, &p, name, &proto) != SH_OK ||
	    engine_check_key(p.model, proto.pk, why, sizeof(why)) != SH_OK) {
		engine_refused(fs->engine, p.block, p.model->name, proto.pk,
			       proto.kind == NODE_RECORD ? why : "not a record name");
		reply_err(req, SH_EINVAL);
		return;
	}
	if (nodes_lookup(fs->nodes, parent, name, &proto, &ref) != SH_OK ||
	    !(h = handle_new(&ref))) {
		reply_err(req, SH_ENOMEM);
		return;
	}
	h->dirty = h->sequential = 1;
	kcache_created(fs->kcache, ref.ino);
	kcache_open_write(fs->kcache, ref.ino, 0);	/* a new inode: nobody reads it */
	h->kc_writer = 1;
	memset(&e, 0, sizeof(e));
	fill_common(fs, &e.attr, ref.ino, S_IFREG, 0666);
	set_time(&e.attr, clock_wall_ns());
	e.ino = ref.ino;
	/* Mode and owner are the mount's and never change, so they may be kept:
	 * the kernel then skips the GETATTR of open's permission check. The size
	 * (0) is the kernel's own to move: each write marks it stale, so a stat
	 * asks. If close() stores nothing, commit_request drops them again. */
	e.attr_timeout = fs->attr_timeout;
	e.entry_timeout = fs->entry_timeout;
	h->created = 1;
	fs_open_track(fs, &h->of, handle_release);
	fi->fh = (uintptr_t)h;
	fuse_reply_create(req, &e, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	count(req, FS_OP_READ);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (!h) {
		ro_read(req, fs_of(req), ino, size, off);
		return;
	}
	if (h->of.kind == OPEN_SCRATCH) {
		sops_read(req, &h->of, size, off);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if ((size_t)off >= h->len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, h->buf + off, h->len - (size_t)off < size ? h->len - (size_t)off : size);
	pthread_mutex_unlock(&h->lock);
}

static enum sh_err ctl_write(struct fs *fs, struct handle *h, const char *buf, size_t size,
			     off_t off)
{
	struct block *b;
	enum sh_err err;

	if (!ctl_writable(h->ref.ctl))
		return SH_EACCES;
	if (off != 0)
		return SH_EINVAL;	/* a write is the whole value */
	err = with_block(fs, h->ref.block, &b);
	if (!err) {
		err = engine_ctl_write(fs->engine, b, h->ref.ctl, buf, size);
		engine_block_put(b);
	}
	return err;
}

/* A writer that started from empty and only appends learns of a document
 * that can never be valid at write() time: shells ignore close() errors. */
static enum sh_err check_sequential(struct fs *fs, struct handle *h)
{
	struct block *b;
	enum sh_err err = with_block(fs, h->ref.block, &b);

	if (err)
		return err;
	err = engine_check_keep(fs->engine, b, h->ref.model, h->ref.pk, h->buf, h->len, &h->kept);
	engine_block_put(b);
	if (err)
		h->dirty = 0;	/* refused here: close() must not store it */
	return err;
}

static enum sh_err record_write(struct fs *fs, struct handle *h, const char *buf, size_t size,
				off_t off)
{
	size_t end = (size_t)off + size;
	enum sh_err rc = h->write_err;

	if (!rc && wbuf_write_refused((size_t)off, size, fs->max_doc, fs->max_write, fs->page))
		rc = SH_ETOOBIG;	/* whole: the kernel would count earlier parts as written */
	if (!rc)
		rc = reserve(fs, h, end);
	if ((rc == SH_ETOOBIG || rc == SH_ENOSPC) && !h->write_err) {
		/* refused once, here; close() must not store what came before */
		engine_refused(fs->engine, h->ref.block, h->ref.model->name, h->ref.pk,
			       rc == SH_ETOOBIG ? "document above the max_doc cap"
					   : "the write buffers of all open records are full");
		h->write_err = rc;
		h->dirty = 0;
		/* nothing will be stored: a new record must not stay in the
		 * kernel's directory cache (as for a refused document) */
		notifier_change(fs, h->ref.block, h->ref.model->name, h->ref.pk, true);
	}
	if (rc)
		return rc;
	if ((size_t)off != h->len)
		h->sequential = 0;
	if ((size_t)off > h->len)
		memset(h->buf + h->len, ' ', (size_t)off - h->len);	/* a hole reads as blanks */
	memcpy(h->buf + off, buf, size);
	if (end > h->len)
		h->len = end;
	h->dirty = h->written = 1;
	return h->sequential ? check_sequential(fs, h) : SH_OK;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	count(req, FS_OP_WRITE);
	struct fs *fs = fs_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	enum sh_err rc;

	if (!h) {
		ro_write(req, fs, ino, buf, size, off);
		return;
	}
	if (h->of.kind == OPEN_SCRATCH) {
		sops_write(req, fs, &h->of, buf, size, off, (fi->flags & O_APPEND) != 0);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (fi->flags & O_APPEND)
		off = (off_t)h->len;
	rc = h->ref.kind == NODE_CTL ? ctl_write(fs, h, buf, size, off)
				     : record_write(fs, h, buf, size, off);
	pthread_mutex_unlock(&h->lock);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_write(req, size);
}

/* Validate and store what was written; clears dirty either way so a refused
 * document is reported once, by the close() that caused it. An open with
 * O_TRUNC and no write leaves the record as it was: the shell's
 * "echo x > f" closes a duplicate of the descriptor before it writes. */
static enum sh_err handle_commit(struct fs *fs, struct handle *h)
{
	struct block *b;
	enum sh_err err;

	if (h->write_err)
		return h->write_err;	/* a write was refused: nothing was stored */
	if (!h->dirty || h->ref.kind != NODE_RECORD || (!h->written && h->len == 0))
		return SH_OK;
	h->dirty = 0;
	err = with_block(fs, h->ref.block, &b);
	if (!err) {
		err = engine_put_kept(fs->engine, b, h->ref.model, h->ref.pk, h->buf ? h->buf : "",
				      h->len, h->kept);
		engine_block_put(b);
	}
	engine_kept_free(h->kept);
	h->kept = NULL;
	if (!err) {
		kcache_written(fs->kcache, h->ref.ino, h->sequential, h->len);
		h->created = 0;	/* a record now: what the kernel was told holds */
	}
	/* The kernel's idea of the size came from the writer, but it marked size
	 * and mtime stale itself at every write and O_TRUNC open, so the next
	 * stat asks; dropping all attributes here would also cost the next open
	 * a GETATTR (the mode, for default_permissions). A refused new record
	 * must not stay in the kernel's directory cache. */
	if (err)
		notifier_change(fs, h->ref.block, h->ref.model->name, h->ref.pk, true);
	return err;
}

/* A file this open created holds no record yet (nothing written, or refused):
 * the attributes its CREATE gave the kernel, kept for attr_timeout, must not
 * let a stat see it after close(). Sent from here, before the reply, so that
 * no stat after close() can miss it: an inode invalidation with no page
 * range takes no lock a FLUSH could hold (only LOOKUP, CREATE and the like
 * are unsafe to notify from, fuse_lowlevel.h). The next stat asks, and
 * GETATTR answers what the block holds. */
static void forget_created_attr(struct fs *fs, struct handle *h)
{
	int rc;

	if (!fs->se)
		return;
	rc = fuse_lowlevel_notify_inval_inode(fs->se, h->ref.ino, -1, 0);
	if (rc && rc != -ENOENT)
		sh_log(LOG_WARNING, "block '%s': %s %s: dropping the attributes of a file created "
		       "with nothing stored failed: %s", h->ref.block, h->ref.model->name, h->ref.pk,
		       strerror(-rc));
}

/* flush (every close) and fsync: store what was written, answer with the verdict. */
static void commit_request(fuse_req_t req, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	enum sh_err rc = SH_OK;

	if (h && h->of.kind != OPEN_SCRATCH) {	/* scratch files live in memory only */
		pthread_mutex_lock(&h->lock);
		rc = handle_commit(fs_of(req), h);
		if (h->created)
			forget_created_attr(fs_of(req), h);
		pthread_mutex_unlock(&h->lock);
	}
	reply_err(req, rc);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count(req, FS_OP_FLUSH);
	(void)ino;
	if (!fi->fh) {
		reply_err(req, SH_ENOSYS);	/* opened with no request: nothing to commit, ever */
		return;
	}
	commit_request(req, fi);
}

static void fop_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count(req, FS_OP_RELEASE);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)ino;
	if (!h) {
		reply_err(req, SH_OK);	/* opened with no request (the kernel sends none) */
		return;
	}
	if (h->of.kind == OPEN_SCRATCH) {
		sops_release(req, fs_of(req), &h->of);
		return;
	}
	pthread_mutex_lock(&h->lock);
	handle_commit(fs_of(req), h);	/* no flush came (e.g. the writer was killed) */
	pthread_mutex_unlock(&h->lock);
	handle_kc_close(fs_of(req), h);
	fs_open_untrack(fs_of(req), &h->of);
	handle_free(h);
	reply_err(req, SH_OK);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	count(req, FS_OP_FSYNC);
	(void)ino;
	(void)datasync;
	commit_request(req, fi);
}

/* Resize what h holds; new bytes read as blanks, which JSON ignores. */
static enum sh_err resize_handle(struct fs *fs, struct handle *h, off_t size)
{
	enum sh_err rc = SH_OK;

	pthread_mutex_lock(&h->lock);
	if ((size_t)size > h->len && !(rc = reserve(fs, h, (size_t)size)))
		memset(h->buf + h->len, ' ', (size_t)size - h->len);
	if (!rc) {
		h->len = (size_t)size;
		h->sequential = size == 0;
		h->dirty = h->written = 1;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* truncate(2) of a record nobody has open: a write of the shortened (or
 * blank-padded) document, validated like any other. */
static enum sh_err truncate_record(struct fs *fs, const struct node_ref *r, off_t size)
{
	struct handle *h = handle_new(r);
	enum sh_err err;

	if (!h)
		return SH_ENOMEM;
	writer_wait(fs, r);	/* the kernel sets the size to our answer */
	h->kc_writer = 1;
	err = load_content(fs, h);
	if (!err)
		err = resize_handle(fs, h, size);
	if (!err)
		err = handle_commit(fs, h);
	handle_kc_close(fs, h);
	handle_free(h);
	return err;
}

/* chmod/chown that change nothing succeed (cp -p and mv across file systems
 * copy them); any real change is refused. */
static bool same_owner_and_mode(struct fs *fs, const struct node_ref *r, const struct stat *attr,
				int to_set)
{
	struct stat st;

	if (!(to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		return true;
	if (node_attr(fs, r, &st, NULL) != SH_OK)
		fill_common(fs, &st, r->ino, S_IFREG, 0666);	/* being created */
	return (!(to_set & FUSE_SET_ATTR_MODE) || (attr->st_mode & 07777) == (st.st_mode & 07777)) &&
	       (!(to_set & FUSE_SET_ATTR_UID) || attr->st_uid == st.st_uid) &&
	       (!(to_set & FUSE_SET_ATTR_GID) || attr->st_gid == st.st_gid);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	count(req, FS_OP_SETATTR);
	struct fs *fs = fs_of(req);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct node_ref r;
	enum sh_err rc = SH_OK;

	if (h && h->of.kind != OPEN_FILE)
		h = NULL;	/* e.g. a scratch file's handle after its rename onto a record */
	rc = nodes_get(fs->nodes, ino, &r);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	if (r.kind == NODE_SCRATCH) {
		sops_setattr(req, fs, &r, attr, to_set);
		return;
	}
	if (!same_owner_and_mode(fs, &r, attr, to_set))
		rc = SH_EPERM;	/* a record's mode and owner are the mount's */
	else if ((to_set & FUSE_SET_ATTR_SIZE) && r.kind == NODE_RECORD && ro_refused(fs, &r))
		rc = SH_EROFS;	/* also an O_TRUNC open: it comes as this SETATTR */
	else if ((to_set & FUSE_SET_ATTR_SIZE) && r.kind == NODE_RECORD)
		rc = h ? resize_handle(fs, h, attr->st_size) : truncate_record(fs, &r, attr->st_size);
	else if ((to_set & FUSE_SET_ATTR_SIZE) && !(r.kind == NODE_CTL && attr->st_size == 0))
		rc = SH_EPERM;	/* truncating a control file before writing it is harmless */
	if (rc) {
		reply_err(req, rc);
		return;
	}
	/* times are the record's own: accepted and ignored */
	getattr_reply(req, ino, fi);
}

/* `rm -r` inside a block (caller.c): a record's unlink drops the block's copy
 * of it, never the row; control files and model directories "go" without a
 * change, so that rm reaches the block's rmdir, which drops the rest. */
static enum sh_err recursive_unlink(struct fs *fs, const struct node_ref *p,
				    const struct node_ref *proto)
{
	struct block *b;
	enum sh_err err;

	if (proto->kind == NODE_CTL)
		return SH_OK;
	if (proto->kind != NODE_RECORD)
		return SH_EPERM;
	err = with_block(fs, p->block, &b);
	if (!err) {
		err = engine_evict(fs->engine, b, proto->model, proto->pk);
		engine_block_put(b);
	}
	return err;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count(req, FS_OP_OTHER);
	struct fs *fs = fs_of(req);
	struct node_ref p, proto;
	struct block *b;
	enum sh_err err;

	if (nodes_get(fs->nodes, parent, &p) != SH_OK ||
	    (p.kind != NODE_MODEL && p.kind != NODE_BLOCK)) {
		reply_err(req, SH_EPERM);
		return;
	}
	err = resolve(fs, &p, name, &proto);
	if (!err && p.kind == NODE_MODEL && proto.kind == NODE_CTL) {
		reply_err(req, SH_EPERM);	/* .next-id */
		return;
	}
	if (!err && proto.kind != NODE_SCRATCH && caller_is_recursive_rm(req)) {
		err = recursive_unlink(fs, &p, &proto);
		if (!err)
			nodes_unlink(fs->nodes, parent, name);
		reply_err(req, err);
		return;
	}
	if (p.kind != NODE_MODEL) {
		reply_err(req, SH_EPERM);	/* a control file */
		return;
	}
	if (!err && proto.kind == NODE_SCRATCH) {
		err = scratch_unlink(fs->scratch, p.block, p.model->name, name);
		if (!err)
			nodes_unlink(fs->nodes, parent, name);
		reply_err(req, err);
		return;
	}
	if (!err && proto.kind == NODE_RECORD && ro_refused(fs, &proto))
		err = SH_EROFS;
	if (!err)
		err = with_block(fs, p.block, &b);
	if (!err) {
		err = engine_delete(fs->engine, b, proto.model, proto.pk);
		engine_block_put(b);
	}
	if (!err)
		nodes_unlink(fs->nodes, parent, name);
	reply_err(req, err);
}

/* A scratch file renamed onto "<key>.json": a record write of its content.
 * Refused, it changes nothing and the scratch file stays; a refused document
 * is SH_EBADMSG, because rename(2) callers read EINVAL as "into its own
 * subdirectory". */
static enum sh_err scratch_to_record(struct fs *fs, const struct node_ref *dir, const char *from,
			     const char *pk)
{
	struct scratch *sc = scratch_get(fs->scratch, dir->block, dir->model->name, from);
	struct block *b;
	char *body;
	size_t len = 0;
	enum sh_err err;

	if (!sc)
		return SH_ENOENT;
	body = scratch_copy(sc, &len);
	scratch_put(fs->scratch, sc);
	if (!body)
		return SH_ENOMEM;
	err = with_block(fs, dir->block, &b);
	if (!err) {
		err = engine_put(fs->engine, b, dir->model, pk, body, len);
		engine_block_put(b);
	}
	free(body);
	if (!err)
		scratch_unlink(fs->scratch, dir->block, dir->model->name, from);
	return err == SH_EINVAL ? SH_EBADMSG : err;
}

/* What rename does (README, "Renames"):
 * - only within one model directory (else EXDEV, so mv copies);
 * - scratch -> scratch: a rename, replacing the target;
 * - scratch -> "<key>.json": a validated record write;
 * - a record cannot be renamed (its name is its key): EPERM. */
static enum sh_err do_rename(struct fs *fs, fuse_ino_t parent, const char *name,
			     fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct node_ref p, src, dst;
	char why[160];
	enum sh_err rc;

	if (nodes_get(fs->nodes, parent, &p) != SH_OK)
		return SH_ENOENT;
	if (p.kind != NODE_MODEL)
		return SH_EPERM;
	if (newparent != parent)
		return SH_EXDEV;
	if (flags & RENAME_EXCHANGE)
		return SH_EINVAL;
	if (resolve(fs, &p, name, &src) != SH_OK)
		return SH_ENOENT;
	if (src.kind != NODE_SCRATCH)
		return SH_EPERM;
	if (resolve(fs, &p, newname, &dst) != SH_OK)
		dst.kind = NODE_SCRATCH;	/* a new scratch name */
	else if (dst.kind == NODE_CTL)
		return SH_EPERM;	/* .next-id */
	if ((flags & RENAME_NOREPLACE) && node_attr(fs, &dst, &(struct stat){ 0 }, NULL) == SH_OK)
		return SH_EEXIST;
	rc = engine_record_key(fs->engine, p.block, p.model, newname, dst.pk, sizeof(dst.pk), why,
			       sizeof(why));
	if (rc == SH_EINVAL) {
		engine_refused(fs->engine, p.block, p.model->name, NULL, why);
		rc = SH_EBADMSG;
	} else if (dst.kind == NODE_SCRATCH || rc != SH_OK) {
		rc = scratch_rename(fs->scratch, p.block, p.model->name, name, newname);
		dst.kind = NODE_SCRATCH;
		snprintf(dst.pk, sizeof(dst.pk), "%s", newname);
	} else if (engine_check_key(p.model, dst.pk, why, sizeof(why)) != SH_OK) {
		engine_refused(fs->engine, p.block, p.model->name, dst.pk, why);
		rc = SH_EBADMSG;
	} else {
		rc = scratch_to_record(fs, &p, name, dst.pk);
	}
	if (!rc)
		nodes_rename(fs->nodes, parent, name, newparent, newname, &dst);
	return rc;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	count(req, FS_OP_OTHER);
	reply_err(req, do_rename(fs_of(req), parent, name, newparent, newname, flags));
}

/* Hard links, symbolic links and device nodes have no meaning here. */
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	count(req, FS_OP_OTHER);
	(void)ino, (void)newparent, (void)newname;
	reply_err(req, SH_EPERM);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	count(req, FS_OP_OTHER);
	(void)link, (void)parent, (void)name;
	reply_err(req, SH_EPERM);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	count(req, FS_OP_OTHER);
	(void)parent, (void)name, (void)mode, (void)rdev;
	reply_err(req, SH_EPERM);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	count(req, FS_OP_OTHER);
	struct statvfs st;

	(void)ino;
	memset(&st, 0, sizeof(st));
	st.f_bsize = st.f_frsize = 4096;
	st.f_namemax = 255;
	st.f_files = engine_block_count(fs_of(req)->engine);
	fuse_reply_statfs(req, &st);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	fs->max_write = conn->max_write;	/* the largest piece of a write() */
	/* O_TRUNC comes with the open: without it the kernel sends a truncate
	 * that names no handle, which cannot be told from truncate(2) */
	if ((conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) && !fs->records_ro)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* records=ro: opens with no request (see above); auto_inval_data makes
	 * every read check the attributes, which for a control file (no
	 * timeout, a new mtime each time) drops its pages, and costs a record
	 * nothing while its attributes are valid */
	fs->no_open = fs->records_ro && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT);
	if (fs->no_open)
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT | FUSE_CAP_AUTO_INVAL_DATA;
}

const struct fuse_lowlevel_ops sharded_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.rename = op_rename,
	.link = op_link,
	.symlink = op_symlink,
	.mknod = op_mknod,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = fop_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
};
