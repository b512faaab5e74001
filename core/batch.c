/* batch.c - collapse and grouping of ops for pg_apply (see batch.h).
 *
 * Collapse is one pass over the ops with an open-addressing hash table of
 * (model, pk) -> the record's chain (its surviving delete and upsert, by
 * position in the output order): one allocation per call. Ops a later delete
 * replaces leave holes in the order, squeezed out at the end.
 * Grouping compares each upsert's key set with its predecessor's, so every
 * document is scanned once, with one scratch allocation per call.
 * Bisection recurses into halves, so its depth is log2 of the group size.
 */
#include "batch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_ws(const char *p);
static const char *string_end(const char *p);
static const char *skip_value(const char *p);
static int key_cmp(const void *a, const void *b);

static uint64_t key_hash(const struct op *op)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (const unsigned char *s = (const unsigned char *)op->model; *s; s++)
		h = (h ^ *s) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;	/* separator: never a byte of a name */
	for (const unsigned char *s = (const unsigned char *)op->pk; *s; s++)
		h = (h ^ *s) * 1099511628211ULL;
	return h;
}

static bool same_record(const struct op *a, const struct op *b)
{
	return strcmp(a->model, b->model) == 0 && strcmp(a->pk, b->pk) == 0;
}

/* Table size: a power of two at least twice n, so probes stay short. */
static size_t table_size(size_t n)
{
	size_t size = 16;

	while (size < 2 * n)
		size *= 2;
	return size;
}

/* One record's ops so far: positions in order + 1 (0 = none) of its
 * surviving delete and upsert, and its latest op. */
struct chain {
	size_t del, ups;
	size_t last;
	char run_kind;	/* the kind of the first op of the current run of writes */
};

/* The chain of ops[i]'s record; a new one when the record is new. */
static struct chain *chain_of(const struct op *ops, size_t i, size_t *slots, size_t mask,
			      struct chain *chains, size_t *nchains)
{
	size_t h;

	for (h = key_hash(&ops[i]) & mask; slots[h]; h = (h + 1) & mask)
		if (same_record(&ops[chains[slots[h] - 1].last], &ops[i]))
			return &chains[slots[h] - 1];
	chains[*nchains] = (struct chain){ .last = BATCH_NONE };
	slots[h] = ++*nchains;
	return &chains[*nchains - 1];
}

/* The op at order position pos + 1 is replaced by a later one: a hole. */
static void supersede(struct op *ops, size_t *order, size_t pos)
{
	if (!pos)
		return;
	ops[order[pos - 1]].superseded = true;
	order[pos - 1] = BATCH_NONE;
}

/* One top-level member of a JSON object: its key, and its text from the
 * key's opening quote to the end of its value. */
struct member {
	struct batch_key key;
	const char *start, *end;
};

/* The members of doc, in document order; -1 as batch_doc_keys. */
static int doc_members(const char *doc, struct member *mem, size_t cap)
{
	const char *p = doc ? skip_ws(doc) : NULL;
	size_t n = 0;

	if (!p || *p++ != '{')
		return -1;
	for (p = skip_ws(p); *p != '}'; n++) {
		const char *end;

		if (n == cap || *p != '"' || !(end = string_end(p)))
			return -1;
		mem[n].key = (struct batch_key){ p + 1, (size_t)(end - p - 1) };
		mem[n].start = p;
		p = skip_ws(end + 1);
		if (*p != ':' || !(p = skip_value(p + 1)))
			return -1;
		mem[n].end = p;
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
		else if (*p != '}')
			return -1;
	}
	return (int)n;
}

static int member_cmp(const void *a, const void *b)
{
	return key_cmp(&((const struct member *)a)->key, &((const struct member *)b)->key);
}

/* Mark (start = NULL) the members of a, sorted, that b, sorted, also has;
 * returns the bytes of those left. */
static size_t drop_shadowed(struct member *a, int na, const struct member *b, int nb)
{
	size_t left = 0;

	for (int i = 0, j = 0; i < na; i++) {
		while (j < nb && member_cmp(&b[j], &a[i]) < 0)
			j++;
		if (j < nb && member_cmp(&b[j], &a[i]) == 0)
			a[i].start = NULL;
		else
			left += (size_t)(a[i].end - a[i].start) + 1;
	}
	return left;
}

static void put_member(char *u, size_t *at, const struct member *m)
{
	size_t n = (size_t)(m->end - m->start);

	if (*at > 1)
		u[(*at)++] = ',';
	memcpy(u + *at, m->start, n);
	*at += n;
}

/* Scratch for the members of two documents. */
struct members {
	struct member *a, *b;
};

/* later laid over earlier: earlier's members later does not name, then
 * later's. *out is NULL when later already names every key of earlier (or
 * either is not an object we can scan: later stands alone, as before). */
static enum sh_err doc_union(const char *earlier, const char *later, struct members *sc,
			     char **out)
{
	int na = doc_members(earlier, sc->a, BATCH_MAX_KEYS);
	int nb = doc_members(later, sc->b, BATCH_MAX_KEYS);
	size_t len = 2, at = 1;
	char *u;

	*out = NULL;
	if (na < 0 || nb < 0)
		return SH_OK;
	qsort(sc->a, (size_t)na, sizeof(*sc->a), member_cmp);
	qsort(sc->b, (size_t)nb, sizeof(*sc->b), member_cmp);
	len += drop_shadowed(sc->a, na, sc->b, nb);
	if (len == 2)
		return SH_OK;
	len += strlen(later);
	if (!(u = malloc(len + 1)))
		return SH_ENOMEM;
	u[0] = '{';
	for (int i = 0; i < na; i++)
		if (sc->a[i].start)
			put_member(u, &at, &sc->a[i]);
	for (int i = 0; i < nb; i++)
		put_member(u, &at, &sc->b[i]);
	u[at++] = '}';
	u[at] = 0;
	*out = u;
	return SH_OK;
}

/* ops[i] takes the place of s, the survivor of its record's run: its
 * document becomes the union of both (an update carries only the columns it
 * sets, so the run's last write no longer carries every column of the run). */
static enum sh_err take_columns(struct op *ops, size_t s, size_t i, struct members *sc)
{
	char *u;
	enum sh_err rc;

	if (!sc)
		return SH_OK;
	rc = doc_union(ops[s].doc, ops[i].doc, sc, &u);
	if (rc != SH_OK || !u)
		return rc;
	ops[i].own_doc = ops[i].doc;
	ops[i].doc = u;
	return SH_OK;
}

static void add_to_chain(struct op *ops, size_t i, struct chain *c, size_t *order, size_t *len)
{
	if (ops[i].kind == OP_DELETE) {
		/* stands for all before it, in its own place */
		supersede(ops, order, c->del);
		supersede(ops, order, c->ups);
		order[(*len)++] = i;
		c->del = *len;
		c->ups = 0;
	} else if (c->ups) {
		/* the run's last value, in the run's first place, and of the run's
		 * first kind: writes after a create are part of the create until
		 * PostgreSQL has it (never merged into a row someone else made) */
		ops[order[c->ups - 1]].superseded = true;
		order[c->ups - 1] = i;
		ops[i].kind = c->run_kind;
	} else {
		order[(*len)++] = i;
		c->ups = *len;
		c->run_kind = ops[i].kind;
	}
}

enum sh_err batch_collapse(struct op *ops, size_t n, size_t *order, size_t *norder, size_t *prev)
{
	size_t size, mask, *slots, nchains = 0, len = 0;	/* slots: chain + 1; 0 = empty */
	struct chain *chains;
	struct members sc;
	enum sh_err rc = SH_OK;

	*norder = 0;
	if (n > BATCH_MAX_OPS)
		return SH_ETOOBIG;
	size = table_size(n);
	mask = size - 1;
	slots = calloc(size, sizeof(*slots));
	chains = malloc((n ? n : 1) * sizeof(*chains));
	sc.a = malloc(2 * BATCH_MAX_KEYS * sizeof(*sc.a));
	sc.b = sc.a + BATCH_MAX_KEYS;
	if (!slots || !chains || !sc.a) {
		free(slots);
		free(chains);
		free(sc.a);
		return SH_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct chain *c;

		prev[i] = BATCH_NONE;
		if (ops[i].skipped)
			continue;
		c = chain_of(ops, i, slots, mask, chains, &nchains);
		prev[i] = c->last;
		c->last = i;
		if (c->ups && op_kind_writes(ops[i].kind) &&
		    (rc = take_columns(ops, order[c->ups - 1], i, &sc)) != SH_OK)
			break;
		add_to_chain(ops, i, c, order, &len);
	}
	for (size_t j = 0; j < len && rc == SH_OK; j++)
		if (order[j] != BATCH_NONE)
			order[(*norder)++] = order[j];
	free(slots);
	free(chains);
	free(sc.a);
	return rc;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* p at an opening quote; returns the closing quote, or NULL. */
static const char *string_end(const char *p)
{
	for (p++; *p && *p != '"'; p++)
		if (*p == '\\' && !*++p)
			return NULL;
	return *p ? p : NULL;
}

/* Skip a nested object or array; p at its opening bracket. */
static const char *skip_container(const char *p)
{
	size_t depth = 0;

	for (; *p; p++) {
		if (*p == '"') {
			p = string_end(p);
			if (!p)
				return NULL;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if ((*p == '}' || *p == ']') && --depth == 0) {
			return p + 1;
		}
	}
	return NULL;
}

/* Skip one JSON value (already validated elsewhere, so this is lenient). */
static const char *skip_value(const char *p)
{
	const char *start;

	p = skip_ws(p);
	if (*p == '"') {
		p = string_end(p);
		return p ? p + 1 : NULL;
	}
	if (*p == '{' || *p == '[')
		return skip_container(p);
	for (start = p; *p && !strchr(",}] \t\r\n", *p); p++)
		;
	return p > start ? p : NULL;
}

static int key_cmp(const void *a, const void *b)
{
	const struct batch_key *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->p, y->p, x->len);
}

/* Parse one "key": value member at p; returns what follows the value. */
static const char *scan_member(const char *p, struct batch_key *key)
{
	const char *end;

	p = skip_ws(p);
	if (*p != '"')
		return NULL;
	end = string_end(p);
	if (!end)
		return NULL;
	key->p = p + 1;
	key->len = (size_t)(end - p - 1);
	p = skip_ws(end + 1);
	if (*p != ':')
		return NULL;
	p = skip_value(p + 1);
	return p ? skip_ws(p) : NULL;
}

int batch_doc_keys(const char *doc, struct batch_key *keys, size_t cap)
{
	const char *p;
	size_t n = 0;

	if (!doc)
		return -1;
	p = skip_ws(doc);
	if (*p++ != '{')
		return -1;
	p = skip_ws(p);
	while (*p != '}') {
		if (n == cap)
			return -1;
		p = scan_member(p, &keys[n++]);
		if (!p || (*p != ',' && *p != '}'))
			return -1;
		if (*p == ',')
			p++;
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	return (int)n;
}

static bool same_keys(const struct batch_key *a, int na, const struct batch_key *b, int nb)
{
	if (na < 0 || nb < 0 || na != nb)
		return false;
	for (int i = 0; i < na; i++)
		if (key_cmp(&a[i], &b[i]) != 0)
			return false;
	return true;
}

/* Scratch for the key sets of the current and the previous upsert. */
struct keysets {
	struct batch_key *cur, *prev;
	int ncur, nprev;
};

/* Does a go into the same statement as b, its predecessor in the order? */
static bool joins(const struct op *a, const struct op *b, struct keysets *ks)
{
	if (a->kind != b->kind || strcmp(a->model, b->model) != 0)
		return false;
	if (!op_kind_writes(a->kind))
		return true;
	return same_keys(ks->cur, ks->ncur, ks->prev, ks->nprev);
}

static void swap_keysets(struct keysets *ks)
{
	struct batch_key *t = ks->cur;

	ks->cur = ks->prev;
	ks->prev = t;
	ks->nprev = ks->ncur;
}

static bool group_full(const struct batch_group *g, size_t bytes, const struct op *next)
{
	size_t len = next->doc ? strlen(next->doc) : 0;

	return g->count >= BATCH_GROUP_MAX_OPS || bytes + len > BATCH_GROUP_MAX_BYTES;
}

enum sh_err batch_group(const struct op *ops, const size_t *order, size_t norder,
			struct batch_group *groups, size_t *ngroups)
{
	struct keysets ks = { .nprev = -1 };
	struct batch_group *g = NULL;
	size_t bytes = 0;

	*ngroups = 0;
	if (norder > BATCH_MAX_OPS)
		return SH_ETOOBIG;
	ks.cur = malloc(2 * BATCH_MAX_KEYS * sizeof(*ks.cur));
	if (!ks.cur)
		return SH_ENOMEM;
	ks.prev = ks.cur + BATCH_MAX_KEYS;
	for (size_t i = 0; i < norder; i++) {
		const struct op *op = &ops[order[i]];

		ks.ncur = op_kind_writes(op->kind) ? batch_doc_keys(op->doc, ks.cur, BATCH_MAX_KEYS) : 0;
		if (!g || !joins(op, &ops[order[i - 1]], &ks) || group_full(g, bytes, op)) {
			g = &groups[(*ngroups)++];
			g->first = i;
			g->count = 0;
			bytes = 0;
		}
		g->count++;
		bytes += op->doc ? strlen(op->doc) : 0;
		swap_keysets(&ks);
	}
	free(ks.cur < ks.prev ? ks.cur : ks.prev);
	return SH_OK;
}

static enum sh_err refused_alone(size_t i, char *why, const struct batch_bisect_ops *ops,
				 void *ctx, bool *applied);

/* Try op j alone, over the state its record had before j's segment;
 * *applied: j was applied in the end (else it is dead). */
static enum sh_err apply_alone(size_t j, const struct batch_bisect_ops *ops, void *ctx,
			       bool *applied)
{
	char *why = NULL;
	enum sh_err rc = ops->try_range(ctx, &j, 1, &why);

	*applied = true;
	if (rc != SH_OK) {
		free(why);
		return rc;
	}
	ops->ops[j].superseded = false;
	return why ? refused_alone(j, why, ops, ctx, applied) : SH_OK;
}

/* i and p, the op before it, are writes of one run that began with a create
 * (batch_collapse gave them its kind): i follows p only if p was applied,
 * and then over the row p inserted, as an upsert. */
static bool follow_create(size_t i, bool create_run, bool p_applied,
			  const struct batch_bisect_ops *ops, void *ctx)
{
	if (!create_run)
		return true;
	if (!p_applied) {
		ops->dead(ctx, i, strdup("not applied: the create of this record before it was refused"));
		return false;
	}
	ops->ops[i].kind = OP_UPSERT;
	return true;
}

/* op is tried again after the writes it stood for: with its own columns. */
static void own_columns(struct op *op)
{
	if (!op->own_doc)
		return;
	free(op->doc);
	op->doc = op->own_doc;
	op->own_doc = NULL;
}

/* Op i is refused on its own. When it stands for earlier writes of its
 * record, those were acknowledged one by one and must not go with it: they
 * are applied first, as the ops that stand for them (p, the one just before
 * i, and when i is a delete and p an upsert, the delete before p's run),
 * each falling back the same way when refused; then i is tried again over
 * what they left, and is dead if refused still. A run of upserts whose last
 * is refused thus costs a few tries, not one per write: the one before it
 * stands for the rest. The recursion is as deep as the refused writes of one
 * record in a row (at most a batch). */
static enum sh_err refused_alone(size_t i, char *why, const struct batch_bisect_ops *ops,
				 void *ctx, bool *applied)
{
	size_t p = ops->prev ? ops->prev[i] : BATCH_NONE, d = p;
	bool p_applied = true, d_applied, create_run;
	enum sh_err rc;

	*applied = false;
	if (p == BATCH_NONE || (op_kind_writes(ops->ops[i].kind) && ops->ops[p].kind == OP_DELETE)) {
		ops->dead(ctx, i, why);	/* stands for itself only */
		return SH_OK;
	}
	free(why);
	create_run = ops->ops[i].kind == OP_CREATE && ops->ops[p].kind == OP_CREATE;
	/* a delete stands for all before it: for the delete before p's run too */
	while (ops->ops[i].kind == OP_DELETE && d != BATCH_NONE && op_kind_writes(ops->ops[d].kind))
		d = ops->prev[d];
	rc = d != p && d != BATCH_NONE && ops->ops[i].kind == OP_DELETE
		     ? apply_alone(d, ops, ctx, &d_applied) : SH_OK;
	if (rc == SH_OK)
		rc = apply_alone(p, ops, ctx, &p_applied);
	if (rc != SH_OK)
		return rc;
	own_columns(&ops->ops[i]);
	if (!follow_create(i, create_run, p_applied, ops, ctx))
		return SH_OK;
	why = NULL;
	rc = ops->try_range(ctx, &i, 1, &why);
	if (rc != SH_OK || !why) {
		free(why);
		*applied = rc == SH_OK;
		return rc;
	}
	ops->dead(ctx, i, why);
	return SH_OK;
}

/* A refused range is split in halves until the one bad op is found: about
 * 2 log2(n) tries per bad op instead of n. */
enum sh_err batch_bisect(const size_t *idx, size_t count, const struct batch_bisect_ops *ops,
			 void *ctx)
{
	char *why = NULL;
	size_t half = count / 2;
	bool applied;
	enum sh_err rc;

	if (count == 0)
		return SH_OK;
	rc = ops->try_range(ctx, idx, count, &why);
	if (rc != SH_OK || !why) {
		free(why);	/* NULL unless the try broke its contract */
		return rc;
	}
	if (count == 1)
		return refused_alone(idx[0], why, ops, ctx, &applied);
	free(why);
	if (ops->reset)
		ops->reset(ctx, idx, count);
	rc = batch_bisect(idx, half, ops, ctx);
	return rc ? rc : batch_bisect(idx + half, count - half, ops, ctx);
}

static bool same_key(const char *const *a, const char *const *b, size_t nkey)
{
	for (size_t k = 0; k < nkey; k++)
		if (strcmp(a[k], b[k]) != 0)
			return false;
	return true;
}

/* A key of want, for sorting: its parts and its op. */
struct keyed {
	const char *const *parts;
	size_t nkey, op;
};

static int keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;

	for (size_t k = 0; k < x->nkey; k++) {
		int c = strcmp(x->parts[k], y->parts[k]);

		if (c)
			return c;
	}
	return 0;
}

/* The rows not in want's order: each looked up in a sorted copy of want. */
static enum sh_err match_sorted(const char *const *got, size_t nrows, const char *const *want,
				size_t count, size_t nkey, size_t *pos, size_t *matched)
{
	struct keyed *sorted = malloc((count ? count : 1) * sizeof(*sorted));

	if (!sorted)
		return SH_ENOMEM;
	for (size_t i = 0; i < count; i++)
		sorted[i] = (struct keyed){ want + i * nkey, nkey, i };
	qsort(sorted, count, sizeof(*sorted), keyed_cmp);
	*matched = 0;
	for (size_t r = 0; r < nrows; r++) {
		struct keyed key = { got + r * nkey, nkey, 0 }, *hit;

		hit = bsearch(&key, sorted, count, sizeof(*sorted), keyed_cmp);
		pos[r] = hit ? hit->op : BATCH_NONE;
		*matched += hit != NULL;
	}
	free(sorted);
	return SH_OK;
}

enum sh_err batch_match_keys(const char *const *got, size_t nrows, const char *const *want,
			     size_t count, size_t nkey, size_t *pos, size_t *matched)
{
	size_t r;

	*matched = 0;
	for (r = 0; r < nrows && r < count; r++) {
		if (!same_key(got + r * nkey, want + r * nkey, nkey))
			break;
		pos[r] = r;
	}
	if (r == nrows) {
		*matched = nrows;
		return SH_OK;
	}
	return match_sorted(got, nrows, want, count, nkey, pos, matched);
}
