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

bool plan_parse_entry(const char *id, const char *const *fields, size_t nfields,
		      struct plan_entry *e)
{
	const char *seq, *base, *kind, *model, *pk, *doc;

	memset(e, 0, sizeof(*e));
	if (!id || strlen(id) >= sizeof(e->id))
		return false;
	seq = field(fields, nfields, "seq"), base = field(fields, nfields, "base");
	kind = field(fields, nfields, "op"), model = field(fields, nfields, "model");
	pk = field(fields, nfields, "pk"), doc = field(fields, nfields, "doc");
	if (!kind || !model || !pk || strlen(kind) != 1 ||
	    (kind[0] != OP_UPSERT && kind[0] != OP_DELETE) || (kind[0] == OP_UPSERT && !doc))
		return false;
	if (!parse_int(seq, &e->op.seq) || !parse_int(base, &e->base))
		return false;
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->op.kind = kind[0];
	e->op.model = strdup(model);
	e->op.pk = strdup(pk);
	e->op.doc = doc && kind[0] == OP_UPSERT ? strdup(doc) : NULL;
	if (!e->op.model || !e->op.pk || (kind[0] == OP_UPSERT && !e->op.doc)) {
		op_release(&e->op);
		return false;
	}
	return true;
}

static int by_seq(const void *a, const void *b)
{
	const struct plan_entry *x = a, *y = b;

	return (x->op.seq > y->op.seq) - (x->op.seq < y->op.seq);
}

void plan_sort(struct plan_entry *es, size_t n)
{
	if (n > 1)
		qsort(es, n, sizeof(*es), by_seq);
}

size_t plan_make(const struct plan_entry *es, size_t n, int64_t applied, size_t *pick,
		 size_t *npick)
{
	int64_t expect = 0;
	size_t i;

	*npick = 0;
	for (i = 0; i < n; i++) {
		int64_t seq = es[i].op.seq;

		if (!expect)
			expect = applied >= es[i].base ? applied + 1 : es[i].base + 1;
		if (seq < expect)
			continue;	/* already applied, or a second copy */
		if (seq != expect)
			break;		/* gap */
		pick[(*npick)++] = i;
		expect++;
	}
	return i;
}

void plan_free_entries(struct plan_entry *es, size_t n)
{
	if (!es)
		return;
	for (size_t i = 0; i < n; i++)
		op_release(&es[i].op);
	free(es);
}
