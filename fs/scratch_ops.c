/* scratch_ops.c - FUSE requests on scratch files (see scratch.h). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "scratch.h"

/* One open scratch file: a reference to the shared content. */
struct scratch_handle {
	struct open_file of;	/* first */
	struct scratch *s;
	struct scratches *ss;
};

static void handle_release(struct open_file *of)
{
	struct scratch_handle *h = (struct scratch_handle *)of;

	scratch_put(h->ss, h->s);
	free(h);
}

_Static_assert(sizeof(((struct node_ref *)0)->pk) > SCRATCH_NAME_MAX,
	       "a node holds any scratch name");

/* Open s for the kernel through h: the handle takes over the reference. Cannot fail. */
static void attach(struct fs *fs, struct scratch_handle *h, struct scratch *s,
		   struct fuse_file_info *fi)
{
	h->s = s;
	h->ss = fs->scratch;
	h->of.kind = OPEN_SCRATCH;
	fs_open_track(fs, &h->of, handle_release);
	fi->fh = (uintptr_t)h;
	fi->direct_io = 0;
}

static void scratch_proto(struct node_ref *proto, const struct node_ref *dir, const char *name)
{
	memset(proto, 0, sizeof(*proto));
	proto->kind = NODE_SCRATCH;
	proto->model = dir->model;
	memcpy(proto->block, dir->block, sizeof(proto->block));
	snprintf(proto->pk, sizeof(proto->pk), "%s", name);
}

/* Everything that can fail comes before the file exists, and the file is made last:
 * a refused create leaves no name behind (and truncates nothing). */
void sops_create(fuse_req_t req, struct fs *fs, fuse_ino_t parent, const struct node_ref *dir,
		 const char *name, struct fuse_file_info *fi)
{
	struct node_ref proto, ref;
	struct fuse_entry_param e;
	struct scratch_handle *h;
	struct scratch *s;
	enum sh_err rc;

	if (strlen(name) > SCRATCH_NAME_MAX) {
		reply_err(req, SH_ENAMETOOLONG);
		return;
	}
	scratch_proto(&proto, dir, name);
	h = calloc(1, sizeof(*h));
	if (!h || nodes_lookup(fs->nodes, parent, name, &proto, &ref) != SH_OK) {
		free(h);
		reply_err(req, SH_ENOMEM);
		return;
	}
	/* the mount's owner and modes, not the creator's: as records (perm.h) */
	rc = scratch_create(fs->scratch, dir->block, dir->model->name, name,
			    perm_mode(&fs->perm, S_IFREG, 0666), fs->perm.uid, fs->perm.gid,
			    (fi->flags & O_EXCL) != 0, &s);
	if (rc) {
		nodes_forget(fs->nodes, ref.ino, 1);	/* the lookup counted above */
		free(h);
		reply_err(req, rc);
		return;
	}
	if (fi->flags & O_TRUNC)
		scratch_truncate(fs->scratch, s, 0);	/* to 0: no cap applies, cannot fail */
	attach(fs, h, s, fi);
	memset(&e, 0, sizeof(e));
	e.ino = ref.ino;
	scratch_stat(s, ref.ino, &e.attr);
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fuse_reply_create(req, &e, fi);
}

void sops_open(fuse_req_t req, struct fs *fs, const struct node_ref *r, struct fuse_file_info *fi)
{
	struct scratch *s = scratch_get(fs->scratch, r->block, r->model->name, r->pk);
	struct scratch_handle *h;

	if (!s) {
		reply_err(req, SH_ENOENT);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		scratch_put(fs->scratch, s);
		reply_err(req, SH_ENOMEM);
		return;
	}
	if (fi->flags & O_TRUNC)
		scratch_truncate(fs->scratch, s, 0);
	attach(fs, h, s, fi);
	fuse_reply_open(req, fi);
}

void sops_read(fuse_req_t req, struct open_file *of, size_t size, off_t off)
{
	struct scratch *s = ((struct scratch_handle *)of)->s;

	pthread_mutex_lock(&s->lock);
	if ((size_t)off >= s->len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, s->buf + off, s->len - (size_t)off < size ? s->len - (size_t)off : size);
	pthread_mutex_unlock(&s->lock);
}

void sops_write(fuse_req_t req, struct fs *fs, struct open_file *of, const char *buf, size_t size,
		off_t off, int append)
{
	struct scratch *s = ((struct scratch_handle *)of)->s;
	enum sh_err rc;

	if (append) {
		pthread_mutex_lock(&s->lock);
		off = (off_t)s->len;
		pthread_mutex_unlock(&s->lock);
	}
	rc = scratch_write(fs->scratch, s, buf, size, off);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_write(req, size);
}

void sops_release(fuse_req_t req, struct fs *fs, struct open_file *of)
{
	fs_open_untrack(fs, of);
	handle_release(of);
	reply_err(req, SH_OK);
}

enum sh_err sops_stat(struct fs *fs, const struct node_ref *r, struct stat *st)
{
	struct scratch *s = scratch_get(fs->scratch, r->block, r->model->name, r->pk);

	if (!s)
		return SH_ENOENT;
	scratch_stat(s, r->ino, st);
	scratch_put(fs->scratch, s);
	return SH_OK;
}

/* Scratch files take what any file takes: size, mode, owner, times. */
static enum sh_err apply_attr(struct fs *fs, struct scratch *s, const struct stat *attr,
			      int to_set)
{
	enum sh_err rc = SH_OK;

	if (to_set & FUSE_SET_ATTR_SIZE)
		rc = scratch_truncate(fs->scratch, s, attr->st_size);
	pthread_mutex_lock(&s->lock);
	if (to_set & FUSE_SET_ATTR_MODE)
		s->mode = S_IFREG | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		s->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		s->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_MTIME)
		s->mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		clock_gettime(CLOCK_REALTIME, &s->mtime);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void sops_setattr(fuse_req_t req, struct fs *fs, const struct node_ref *r, struct stat *attr,
		  int to_set)
{
	struct scratch *s = scratch_get(fs->scratch, r->block, r->model->name, r->pk);
	struct stat st;
	enum sh_err rc;

	if (!s) {
		reply_err(req, SH_ENOENT);
		return;
	}
	rc = apply_attr(fs, s, attr, to_set);
	scratch_stat(s, r->ino, &st);
	scratch_put(fs->scratch, s);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, 0);
}
