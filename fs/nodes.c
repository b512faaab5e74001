/* nodes.c - inode table: two chained hash indexes over one set of nodes. */
#include "nodes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS_MIN 1024

struct nodes {
	pthread_mutex_t lock;
	struct node **by_ino, **by_name;
	size_t nbuckets, count;
	uint64_t next_ino;
};

static size_t hash_ino(uint64_t ino, size_t n)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ULL) >> 17) % n;
}

static size_t hash_name(uint64_t parent, const char *name, size_t n)
{
	uint64_t h = 1469598103934665603ULL ^ parent;	/* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h % n);
}

static void link_ino(struct nodes *t, struct node *n)
{
	size_t h = hash_ino(n->ino, t->nbuckets);

	n->next_ino = t->by_ino[h];
	t->by_ino[h] = n;
}

static void link_name(struct nodes *t, struct node *n)
{
	size_t h = hash_name(n->parent, n->name, t->nbuckets);

	n->next_name = t->by_name[h];
	t->by_name[h] = n;
	n->linked = 1;
}

static void unlink_name(struct nodes *t, struct node *n)
{
	struct node **p = &t->by_name[hash_name(n->parent, n->name, t->nbuckets)];

	while (*p && *p != n)
		p = &(*p)->next_name;
	if (*p)
		*p = n->next_name;
	n->linked = 0;
}

static void unlink_ino(struct nodes *t, struct node *n)
{
	struct node **p = &t->by_ino[hash_ino(n->ino, t->nbuckets)];

	while (*p && *p != n)
		p = &(*p)->next_ino;
	if (*p)
		*p = n->next_ino;
}

static struct node *find_ino(struct nodes *t, uint64_t ino)
{
	struct node *n = t->by_ino[hash_ino(ino, t->nbuckets)];

	while (n && n->ino != ino)
		n = n->next_ino;
	return n;
}

static struct node *find_name(struct nodes *t, uint64_t parent, const char *name)
{
	struct node *n = t->by_name[hash_name(parent, name, t->nbuckets)];

	while (n && (n->parent != parent || strcmp(n->name, name) != 0))
		n = n->next_name;
	return n;
}

static void node_free(struct node *n)
{
	free(n->name);
	free(n->block);
	free(n->pk);
	free(n);
}

/* Double the buckets when the table gets dense; on failure keep the old size. */
static void grow(struct nodes *t)
{
	size_t old = t->nbuckets, nb = old * 2;
	struct node **bi = calloc(nb, sizeof(*bi)), **bn = calloc(nb, sizeof(*bn));
	struct node **oi = t->by_ino, **on = t->by_name;

	if (!bi || !bn) {
		free(bi);
		free(bn);
		return;
	}
	t->by_ino = bi;
	t->by_name = bn;
	t->nbuckets = nb;
	for (size_t i = 0; i < old; i++) {
		for (struct node *n = oi[i], *next; n; n = next) {
			next = n->next_ino;
			link_ino(t, n);
			if (n->linked)
				link_name(t, n);
		}
	}
	free(oi);
	free(on);
}

/* s (NULL: "") into dst[0..cap), cut to fit as snprintf would: a FUSE
 * request looks up a few nodes and snprintf cost some 300 instructions a
 * copy. */
static void copy_str(char *dst, size_t cap, const char *s)
{
	size_t len = s ? strnlen(s, cap - 1) : 0;

	memcpy(dst, s ? s : "", len);
	dst[len] = '\0';
}

static void copy_ref(const struct node *n, struct node_ref *ref)
{
	memset(ref, 0, sizeof(*ref));
	ref->ino = n->ino;
	ref->kind = n->kind;
	ref->model = n->model;
	ref->ctl = n->ctl;
	copy_str(ref->block, sizeof(ref->block), n->block);
	copy_str(ref->pk, sizeof(ref->pk), n->pk);
}

struct nodes *nodes_new(void)
{
	struct nodes *t = calloc(1, sizeof(*t));
	struct node *root;

	if (!t)
		return NULL;
	t->nbuckets = BUCKETS_MIN;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_name = calloc(t->nbuckets, sizeof(*t->by_name));
	root = calloc(1, sizeof(*root));
	if (!t->by_ino || !t->by_name || !root || !(root->name = strdup(""))) {
		free(root);
		free(t->by_ino);
		free(t->by_name);
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	root->ino = 1;
	root->kind = NODE_ROOT;
	root->nlookup = 1;
	link_ino(t, root);
	t->count = 1;
	t->next_ino = 2;
	return t;
}

void nodes_free(struct nodes *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct node *n = t->by_ino[i], *next; n; n = next) {
			next = n->next_ino;
			node_free(n);
		}
	}
	free(t->by_ino);
	free(t->by_name);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

enum sh_err nodes_get(struct nodes *t, uint64_t ino, struct node_ref *ref)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (n)
		copy_ref(n, ref);
	pthread_mutex_unlock(&t->lock);
	return n ? SH_OK : SH_ENOENT;
}

static struct node *add(struct nodes *t, uint64_t parent, const char *name,
			const struct node_ref *proto)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->name = strdup(name);
	n->block = strdup(proto->block);
	n->pk = strdup(proto->pk);
	if (!n->name || !n->block || !n->pk) {
		node_free(n);
		return NULL;
	}
	n->ino = t->next_ino++;
	n->parent = parent;
	n->kind = proto->kind;
	n->model = proto->model;
	n->ctl = proto->ctl;
	if (t->count >= t->nbuckets)
		grow(t);
	link_ino(t, n);
	link_name(t, n);
	t->count++;
	return n;
}

enum sh_err nodes_lookup(struct nodes *t, uint64_t parent, const char *name,
			 const struct node_ref *proto, struct node_ref *ref)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_name(t, parent, name);
	if (!n)
		n = add(t, parent, name, proto);
	if (n) {
		n->nlookup++;
		copy_ref(n, ref);
	}
	pthread_mutex_unlock(&t->lock);
	return n ? SH_OK : SH_ENOMEM;
}

uint64_t nodes_find(struct nodes *t, uint64_t parent, const char *name)
{
	struct node *n;
	uint64_t ino;

	pthread_mutex_lock(&t->lock);
	n = find_name(t, parent, name);
	ino = n ? n->ino : 0;
	pthread_mutex_unlock(&t->lock);
	return ino;
}

bool nodes_forget(struct nodes *t, uint64_t ino, uint64_t count)
{
	struct node *n;
	bool gone = false;

	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (n && n->kind != NODE_ROOT) {
		n->nlookup = n->nlookup > count ? n->nlookup - count : 0;
		if (n->nlookup == 0) {
			if (n->linked)
				unlink_name(t, n);
			unlink_ino(t, n);
			node_free(n);
			t->count--;
			gone = true;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return gone;
}

void nodes_unlink(struct nodes *t, uint64_t parent, const char *name)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_name(t, parent, name);
	if (n)
		unlink_name(t, n);
	pthread_mutex_unlock(&t->lock);
}

void nodes_children(struct nodes *t, uint64_t parent,
		    void (*fn)(void *ctx, uint64_t ino, const char *name), void *ctx)
{
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct node *n = t->by_name[i]; n; n = n->next_name)
			if (n->parent == parent)
				fn(ctx, n->ino, n->name);
	pthread_mutex_unlock(&t->lock);
}

enum sh_err nodes_rename(struct nodes *t, uint64_t parent, const char *name, uint64_t newparent,
			 const char *newname, const struct node_ref *proto)
{
	struct node *n, *victim;
	char *nname = strdup(newname), *npk = strdup(proto->pk);
	enum sh_err rc = nname && npk ? SH_ENOENT : SH_ENOMEM;

	pthread_mutex_lock(&t->lock);
	n = find_name(t, parent, name);
	if (n && nname && npk) {
		victim = find_name(t, newparent, newname);
		if (victim && victim != n)
			unlink_name(t, victim);
		unlink_name(t, n);
		free(n->name);
		free(n->pk);
		n->name = nname;
		n->pk = npk;
		nname = npk = NULL;
		n->parent = newparent;
		n->kind = proto->kind;
		n->model = proto->model;
		link_name(t, n);
		rc = SH_OK;
	}
	pthread_mutex_unlock(&t->lock);
	free(nname);
	free(npk);
	return rc;
}
