/* nodes.h - the inode table of the mount.
 *
 * Every name the kernel has looked up gets a node with a stable inode number
 * (never reused while mounted). A node is found by its number or by (parent,
 * name), and is freed when the kernel forgets its last lookup. The tree:
 *   1                     root          one directory per block
 *   <block>/              NODE_BLOCK    control files and one directory per model
 *   <block>/ttl ...       NODE_CTL
 *   <block>/<Model>/      NODE_MODEL
 *   <block>/<Model>/<pk>.json   NODE_RECORD
 *   <block>/<Model>/<other>     NODE_SCRATCH (pk holds the name; scratch.h)
 */
#ifndef SHARDED_NODES_H
#define SHARDED_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

enum node_kind { NODE_ROOT, NODE_BLOCK, NODE_CTL, NODE_MODEL, NODE_RECORD, NODE_SCRATCH };

struct node {
	uint64_t ino;
	uint64_t parent;
	char *name;
	enum node_kind kind;
	uint64_t nlookup;
	char *block;			/* block id, for every kind but the root */
	const struct model *model;	/* NODE_MODEL, NODE_RECORD */
	char *pk;			/* NODE_RECORD */
	enum ctl_file ctl;		/* NODE_CTL */
	int linked;			/* still reachable by (parent, name) */
	struct node *next_ino, *next_name;	/* hash chains */
};

/* A copy of a node's identity, safe to use after the table lock is released. */
struct node_ref {
	uint64_t ino;
	enum node_kind kind;
	char block[ENGINE_BLOCK_ID_MAX + 1];
	const struct model *model;
	char pk[ENGINE_KEY_MAX + 1];
	enum ctl_file ctl;
};

struct nodes;

struct nodes *nodes_new(void);
void nodes_free(struct nodes *t);

/* Copy node ino into *ref; SH_ENOENT (and *ref untouched) when unknown. */
enum sh_err nodes_get(struct nodes *t, uint64_t ino, struct node_ref *ref);

/* Find or add the child name of parent, count one lookup, copy it into *ref.
 * The identity fields come from proto (ino and lookups are the table's).
 * SH_ENOMEM when a new node cannot be made. */
enum sh_err nodes_lookup(struct nodes *t, uint64_t parent, const char *name,
			 const struct node_ref *proto, struct node_ref *ref);

/* The inode of child name of parent, or 0 when not in the table. */
uint64_t nodes_find(struct nodes *t, uint64_t parent, const char *name);

/* The kernel dropped n lookups of ino; true when that was its last. */
bool nodes_forget(struct nodes *t, uint64_t ino, uint64_t n);

/* Rename: the node at (parent, name) now answers to (newparent, newname) as
 * proto says (a scratch file renamed onto a record becomes that record). A
 * node already at the new name is unlinked. SH_ENOENT if no node had the old
 * name, SH_ENOMEM when the new name cannot be copied. */
enum sh_err nodes_rename(struct nodes *t, uint64_t parent, const char *name, uint64_t newparent,
			 const char *newname, const struct node_ref *proto);

/* The name no longer exists (unlink, rmdir); the inode lives on until forgotten. */
void nodes_unlink(struct nodes *t, uint64_t parent, const char *name);

/* Call fn for every linked child of parent (under the table lock: fn must not call back). */
void nodes_children(struct nodes *t, uint64_t parent,
		    void (*fn)(void *ctx, uint64_t ino, const char *name), void *ctx);

#endif
