/* plan.c - parsing stream entries and planning what to apply (plan.h). */
#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *field(const char *const *fields, size_t nfields, const char *name)
{
	for (size_t i = 0; i + 1 < nfields; i += 2)
		if (fields[i] && strcmp(fields[i], name) == 0)
			return fields[i + 1];
	return NULL;
}

/* A whole decimal int64, nothing before or after it. */
static bool parse_int(const char *s, int64_t *v)
{
	char *end;
	long long x;

	if (!s || !*s)
		return false;
	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*v = x;
	return true;
}

/* An origin field: absent gives "" (legacy, or after nothing); "" only with allow_empty. */
static bool parse_origin(const char *v, bool allow_empty, char *out)
{
	if (!v || (!*v && allow_empty)) {
		out[0] = 0;
		return true;
	}
	if (!op_origin_valid(v))
		return false;
	snprintf(out, OP_ORIGIN_MAX, "%s", v);
	return true;
}

static bool parse_lineage(const char *const *fields, size_t nfields, struct op *op)
{
	const char *seq = field(fields, nfields, "seq"), *base = field(fields, nfields, "base");
	const char *after_seq = field(fields, nfields, "after_seq");

	if (!parse_int(seq, &op->seq) || !parse_int(base, &op->base))
		return false;
	if (!parse_origin(field(fields, nfields, "origin"), false, op->origin) ||
	    !parse_origin(field(fields, nfields, "after"), true, op->after))
		return false;
	if (op->after[0])
		return parse_int(after_seq, &op->after_seq);
	return !after_seq || parse_int(after_seq, &op->after_seq);
}

bool plan_parse_entry(const char *id, const char *const *fields, size_t nfields,
		      struct plan_entry *e)
{
	const char *kind, *model, *pk, *doc;

	memset(e, 0, sizeof(*e));
	if (!id || strlen(id) >= sizeof(e->id))
		return false;
	kind = field(fields, nfields, "op"), model = field(fields, nfields, "model");
	pk = field(fields, nfields, "pk"), doc = field(fields, nfields, "doc");
	if (!kind || !model || !pk || strlen(kind) != 1 ||
	    (!op_kind_writes(kind[0]) && kind[0] != OP_DELETE) || (op_kind_writes(kind[0]) && !doc))
		return false;
	if (!parse_lineage(fields, nfields, &e->op)) {
		memset(e, 0, sizeof(*e));
		return false;
	}
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->op.kind = kind[0];
	e->op.model = strdup(model);
	e->op.pk = strdup(pk);
	e->op.doc = doc && op_kind_writes(kind[0]) ? strdup(doc) : NULL;
	if (!e->op.model || !e->op.pk || (op_kind_writes(kind[0]) && !e->op.doc)) {
		op_release(&e->op);
		memset(e, 0, sizeof(*e));
		return false;
	}
	return true;
}

static int by_origin_seq(const void *a, const void *b)
{
	const struct plan_entry *x = a, *y = b;
	int c = strcmp(op_origin(&x->op), op_origin(&y->op));

	if (c)
		return c;
	return (x->op.seq > y->op.seq) - (x->op.seq < y->op.seq);
}

void plan_sort(struct plan_entry *es, size_t n)
{
	if (n > 1)
		qsort(es, n, sizeof(*es), by_origin_seq);
}

int plan_origin_cmp(const void *a, const void *b)
{
	return strcmp(((const struct plan_origin *)a)->origin, ((const struct plan_origin *)b)->origin);
}

#define by_origin plan_origin_cmp

size_t plan_origins(const struct plan_entry *es, size_t n, struct plan_origin *out)
{
	size_t k = 0, m = 0;

	for (size_t i = 0; i < n; i++) {
		snprintf(out[k++].origin, OP_ORIGIN_MAX, "%s", op_origin(&es[i].op));
		if (es[i].op.after[0])
			snprintf(out[k++].origin, OP_ORIGIN_MAX, "%s", es[i].op.after);
	}
	if (k > 1)
		qsort(out, k, sizeof(*out), by_origin);
	for (size_t i = 0; i < k; i++) {
		if (m && strcmp(out[m - 1].origin, out[i].origin) == 0)
			continue;
		out[m] = out[i];
		out[m++].applied = 0;
	}
	return m;
}

static struct plan_origin *find_origin(struct plan_origin *origins, size_t n, const char *origin)
{
	struct plan_origin key;

	snprintf(key.origin, sizeof(key.origin), "%s", origin);
	return bsearch(&key, origins, n, sizeof(*origins), by_origin);
}

struct planner {
	const struct plan_entry *es;
	struct plan_origin *origins;
	size_t norigins;
	enum plan_verdict *verdict;
	size_t *pick, *npick;
};

/* Has the write this origin's first one comes after been applied? */
static bool after_applied(struct planner *p, const struct op *op)
{
	struct plan_origin *o;

	if (!op->after[0])
		return true;
	o = find_origin(p->origins, p->norigins, op->after);
	return o && o->applied >= op->after_seq;
}

/* Decide what can be decided of one origin's entries es[from..to); true if
 * anything was. */
static bool advance(struct planner *p, size_t from, size_t to)
{
	struct plan_origin *o = find_origin(p->origins, p->norigins, op_origin(&p->es[from].op));
	bool progress = false;

	for (size_t i = from; o && i < to; i++) {
		const struct op *op = &p->es[i].op;
		int64_t expect = (o->applied > op->base ? o->applied : op->base) + 1;

		if (p->verdict[i] != PLAN_WAIT)
			continue;
		if (op->seq <= o->applied) {
			p->verdict[i] = PLAN_SKIP;
		} else if (op->seq != expect || (op->seq == op->base + 1 && !after_applied(p, op))) {
			break;	/* a missing entry, of this origin or of the one it follows */
		} else {
			p->verdict[i] = PLAN_APPLY;
			p->pick[(*p->npick)++] = i;
			o->applied = op->seq;
		}
		progress = true;
	}
	return progress;
}

size_t plan_make(const struct plan_entry *es, size_t n, struct plan_origin *origins,
		 size_t norigins, enum plan_verdict *verdict, size_t *pick, size_t *npick)
{
	struct planner p = { es, origins, norigins, verdict, pick, npick };
	size_t waiting = 0;
	bool progress = true;

	*npick = 0;
	for (size_t i = 0; i < n; i++)
		verdict[i] = PLAN_WAIT;
	/* an origin whose first write waits on another origin's is looked at
	 * again once that one moved: at most one more round per origin */
	while (progress) {
		progress = false;
		for (size_t i = 0, end; i < n; i = end) {
			for (end = i + 1; end < n && strcmp(op_origin(&es[end].op),
							    op_origin(&es[i].op)) == 0; end++)
				;
			if (advance(&p, i, end))
				progress = true;
		}
	}
	for (size_t i = 0; i < n; i++)
		waiting += verdict[i] == PLAN_WAIT;
	return waiting;
}

void plan_free_entries(struct plan_entry *es, size_t n)
{
	if (!es)
		return;
	for (size_t i = 0; i < n; i++)
		op_release(&es[i].op);
	free(es);
}
