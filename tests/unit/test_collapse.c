/* test_collapse.c - collapsing never changes meaning: random runs of writes,
 * applied one by one in seq order and applied as pg_apply does (collapse,
 * group, bisect with the fall-back to the writes a refused op stands for),
 * against a fake backend, must end with the same rows; an op is dead in the
 * batch only if it is dead one by one, and one dead one by one but not in the
 * batch was superseded (a later write of the record left its value behind).
 *
 * The fake backend holds a few records of a few fields. Its refusals are
 * those of PostgreSQL in kind: an upsert carrying "bad":1 (a check or foreign
 * key on a value), an insert without "a" (a NOT NULL column without a
 * default), a delete of a "pinned" record (one that existed before the batch
 * and that a child row references).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "batch.h"

#define NREC 3
#define NFIELD 4	/* a, b, bad, c */
#define MAXOPS 24
#define TRIALS 3000

static const char *const field_names[NFIELD] = { "a", "b", "bad", "c" };
static const char *const pks[NREC] = { "0", "1", "2" };

struct row {
	bool exists;
	bool has[NFIELD];
	int val[NFIELD];
};

struct db {
	struct row rows[NREC];
};

struct run {
	struct op ops[MAXOPS];
	struct row docs[MAXOPS];	/* each upsert's document, as fields */
	char text[MAXOPS][128];
	size_t n;
	bool pinned[NREC];
	struct db db;			/* the backend's state */
	bool dead[MAXOPS];
	bool unioned[MAXOPS];		/* applied with a union (batch_collapse) */
	size_t tries;
};

static uint64_t rng = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static int rec_of(const struct op *op)
{
	return op->pk[0] - '0';
}

/* The fields of a document as the op carries it (batch_collapse may have
 * made it the union of several). */
static struct row parse_doc(const char *text)
{
	struct row doc = { .exists = true };
	char name[16];

	for (int f = 0; f < NFIELD; f++) {
		const char *at;

		snprintf(name, sizeof(name), "\"%s\":", field_names[f]);
		if ((at = strstr(text, name)) != NULL) {
			doc.has[f] = true;
			doc.val[f] = atoi(at + strlen(name));
		}
	}
	return doc;
}

/* One op on db, as one statement would: false when refused (db unchanged). */
static bool apply_op(const struct run *r, struct db *db, size_t i)
{
	const struct op *op = &r->ops[i];
	struct row *row = &db->rows[rec_of(op)];
	const struct row parsed = op->doc ? parse_doc(op->doc) : (struct row){ 0 };
	const struct row *doc = &parsed;

	if (op->kind == OP_DELETE) {
		if (r->pinned[rec_of(op)] && row->exists)
			return false;
		memset(row, 0, sizeof(*row));
		return true;
	}
	if ((doc->has[2] && doc->val[2]) || (!row->exists && !doc->has[0]))
		return false;
	row->exists = true;
	for (int f = 0; f < NFIELD; f++) {
		if (doc->has[f]) {
			row->has[f] = true;
			row->val[f] = doc->val[f];
		}
	}
	return true;
}

/* batch_try_fn: all of idx or nothing; a record at most once (PostgreSQL's
 * ON CONFLICT cannot touch a row twice in one statement). */
static enum sh_err fake_try(void *ctx, const size_t *idx, size_t count, char **why)
{
	struct run *r = ctx;
	struct db next = r->db;
	bool seen[NREC] = { false };

	r->tries++;
	for (size_t k = 0; k < count; k++) {
		assert_false(seen[rec_of(&r->ops[idx[k]])]);
		seen[rec_of(&r->ops[idx[k]])] = true;
		if (!apply_op(r, &next, idx[k])) {
			*why = strdup("refused");
			return SH_OK;
		}
	}
	r->db = next;
	return SH_OK;
}

static void fake_dead(void *ctx, size_t i, char *why)
{
	struct run *r = ctx;

	free(why);
	assert_false(r->dead[i]);
	r->dead[i] = true;
}

/* The document text of a row, as the block would store it. */
static void doc_text(const struct row *doc, int rec, char *out, size_t len)
{
	int n = snprintf(out, len, "{\"id\":%d", rec);

	for (int f = 0; f < NFIELD; f++)
		if (doc->has[f])
			n += snprintf(out + n, len - (size_t)n, ",\"%s\":%d", field_names[f], doc->val[f]);
	snprintf(out + n, len - (size_t)n, "}");
}

static bool subsets;	/* updates carry only the fields they set */

/* Random writes as the engine makes them: each upsert's document is the
 * block's copy of the record with the new keys merged on (with subsets, an
 * update of a record the copy holds carries only the keys it sets, as
 * doc_prepare_update makes it); a delete drops the copy, so the next upsert
 * starts from nothing. */
static void generate(struct run *r)
{
	struct row local[NREC];

	memset(r, 0, sizeof(*r));
	for (int k = 0; k < NREC; k++) {
		if (rnd(3) != 0) {
			r->db.rows[k] = (struct row){ .exists = true, .has = { true, true }, .val = { 1, 1 } };
			r->pinned[k] = rnd(3) == 0;	/* a child row references it */
		}
		local[k] = r->db.rows[k];
	}
	r->n = 1 + rnd(MAXOPS);
	for (size_t i = 0; i < r->n; i++) {
		int k = (int)rnd(NREC);
		struct op *op = &r->ops[i];

		op->seq = (int64_t)i + 1;
		op->model = (char *)"User";
		op->pk = (char *)pks[k];
		if (local[k].exists && rnd(4) == 0) {
			op->kind = OP_DELETE;
			memset(&local[k], 0, sizeof(local[k]));
			continue;
		}
		op->kind = OP_UPSERT;
		bool update = subsets && local[k].exists;
		struct row set = { .exists = true };

		local[k].exists = true;
		for (int f = 0; f < NFIELD; f++) {
			if (rnd(2)) {
				local[k].has[f] = set.has[f] = true;
				local[k].val[f] = set.val[f] = f == 2 ? rnd(5) == 0 : (int)rnd(100);
			}
		}
		r->docs[i] = update ? set : local[k];
		doc_text(&r->docs[i], k, r->text[i], sizeof(r->text[i]));
		op->doc = r->text[i];
	}
}

static void apply_one_by_one(struct run *r)
{
	for (size_t i = 0; i < r->n; i++)
		r->dead[i] = !apply_op(r, &r->db, i);
}

static void apply_batched(struct run *r)
{
	size_t order[MAXOPS], prev[MAXOPS], norder, ngroups;
	struct batch_group groups[MAXOPS];
	const struct batch_bisect_ops ops = {
		.try_range = fake_try, .dead = fake_dead, .ops = r->ops, .prev = prev,
	};

	assert_int_equal(batch_collapse(r->ops, r->n, order, &norder, prev), SH_OK);
	assert_int_equal(batch_group(r->ops, order, norder, groups, &ngroups), SH_OK);
	for (size_t g = 0; g < ngroups; g++)
		assert_int_equal(batch_bisect(order + groups[g].first, groups[g].count, &ops, r), SH_OK);
	for (size_t i = 0; i < r->n; i++) {	/* the unions are the batch's */
		if (r->ops[i].own_doc) {
			r->unioned[i] = true;
			free(r->ops[i].doc);
			r->ops[i].doc = r->ops[i].own_doc;
			r->ops[i].own_doc = NULL;
		}
	}
}

/* Did a write of record k refused one by one go into a later write's union
 * that was applied? Its columns are then in the row, as the block's copy
 * held them (and as the whole document of the last write carried them
 * before updates carried only their columns): an update refused alone
 * because the row was missing, folded into the run that re-creates it. */
static bool lost_refusal(const struct run *seq, const struct run *bat, int k)
{
	for (size_t i = 0; i < seq->n; i++)
		if (rec_of(&seq->ops[i]) == k && seq->dead[i] && !bat->dead[i] &&
		    (bat->ops[i].superseded || bat->unioned[i]))
			return true;
	return false;
}

static void batched_as_one_by_one(void)
{
	unsigned fallbacks = 0;

	for (int t = 0; t < TRIALS; t++) {
		struct run seq, bat;

		generate(&seq);
		bat = seq;
		for (size_t i = 0; i < bat.n; i++)
			bat.ops[i].doc = bat.ops[i].kind == OP_UPSERT ? bat.text[i] : NULL;
		apply_one_by_one(&seq);
		apply_batched(&bat);
		for (int k = 0; k < NREC; k++) {
			if (memcmp(&seq.db.rows[k], &bat.db.rows[k], sizeof(struct row)) != 0 &&
			    !(subsets && lost_refusal(&seq, &bat, k)))
				fail_msg("trial %d: record %d differs", t, k);
		}
		for (size_t i = 0; i < seq.n; i++) {
			if (bat.dead[i] && !seq.dead[i])
				fail_msg("trial %d: op %zu dead only in the batch", t, i);
			if (seq.dead[i] && !bat.dead[i] && !bat.ops[i].superseded &&
			    !(subsets && bat.unioned[i]))
				fail_msg("trial %d: op %zu lost its refusal", t, i);
			fallbacks += bat.dead[i] && !bat.ops[i].superseded;
		}
	}
	assert_true(fallbacks > 100);	/* refusals were exercised */
}

static void test_batched_as_one_by_one(void **state)
{
	(void)state;
	subsets = false;
	batched_as_one_by_one();
}

/* The same with updates that carry only what they set: the collapsed write
 * carries the union of the run's columns, and a refused one falls back to its
 * own. */
static void test_subsets_batched_as_one_by_one(void **state)
{
	(void)state;
	subsets = true;
	batched_as_one_by_one();
	subsets = false;
}

/* Delete, then re-create with fewer fields: the row holds exactly the new
 * document; a refused re-creation leaves the row deleted. */
static void test_recreate_exactly(void **state)
{
	struct run r = { 0 };
	size_t i;

	(void)state;
	r.db.rows[0] = (struct row){ .exists = true, .has = { true, true }, .val = { 5, 6 } };
	r.n = 2;
	r.ops[0] = (struct op){ .seq = 1, .kind = OP_DELETE, .model = (char *)"User", .pk = (char *)"0" };
	r.ops[1] = (struct op){ .seq = 2, .kind = OP_UPSERT, .model = (char *)"User", .pk = (char *)"0" };
	r.docs[1] = (struct row){ .exists = true, .has = { true }, .val = { 7 } };
	doc_text(&r.docs[1], 0, r.text[1], sizeof(r.text[1]));
	r.ops[1].doc = r.text[1];
	apply_batched(&r);
	assert_true(r.db.rows[0].exists);
	assert_false(r.db.rows[0].has[1]);	/* not the deleted row's b */
	assert_int_equal(r.db.rows[0].val[0], 7);

	memset(&r.db, 0, sizeof(r.db));
	r.db.rows[0] = (struct row){ .exists = true, .has = { true, true }, .val = { 5, 6 } };
	r.docs[1].has[2] = true;	/* "bad":1: the re-creation is refused */
	r.docs[1].val[2] = 1;
	doc_text(&r.docs[1], 0, r.text[1], sizeof(r.text[1]));
	for (i = 0; i < 2; i++)
		r.ops[i].superseded = r.dead[i] = false;
	apply_batched(&r);
	assert_false(r.db.rows[0].exists);	/* the acknowledged delete happened */
	assert_true(r.dead[1]);
	assert_false(r.dead[0]);
}

/* A valid write, then at once a refused one of the same record: the valid one
 * applies, only the refused one is dead; and with no refusal, one try. */
static void test_refused_write_spares_the_valid_one(void **state)
{
	struct run r = { 0 };

	(void)state;
	r.db.rows[0] = (struct row){ .exists = true, .has = { true, true }, .val = { 1, 1 } };
	r.n = 2;
	for (int i = 0; i < 2; i++) {
		r.ops[i] = (struct op){ .seq = i + 1, .kind = OP_UPSERT, .model = (char *)"User",
					.pk = (char *)"0" };
		r.docs[i] = (struct row){ .exists = true, .has = { true, true, i == 1 },
					  .val = { 250, 1, 1 } };
		doc_text(&r.docs[i], 0, r.text[i], sizeof(r.text[i]));
		r.ops[i].doc = r.text[i];
	}
	apply_batched(&r);
	assert_int_equal(r.db.rows[0].val[0], 250);
	assert_false(r.dead[0]);
	assert_true(r.dead[1]);
	assert_false(r.ops[0].superseded);
	assert_int_equal(r.tries, 3);	/* the pair, then each alone */

	r.tries = 0;
	r.docs[1].has[2] = false;
	doc_text(&r.docs[1], 0, r.text[1], sizeof(r.text[1]));
	r.ops[0].superseded = r.ops[1].superseded = r.dead[1] = false;
	apply_batched(&r);
	assert_int_equal(r.tries, 1);
	assert_true(r.ops[0].superseded);
}

static void two_updates(struct run *r, const char *first, const char *second)
{
	memset(r, 0, sizeof(*r));
	r->db.rows[0] = (struct row){ .exists = true, .has = { true, true }, .val = { 1, 1 } };
	r->n = 2;
	snprintf(r->text[0], sizeof(r->text[0]), "%s", first);
	snprintf(r->text[1], sizeof(r->text[1]), "%s", second);
	for (int i = 0; i < 2; i++)
		r->ops[i] = (struct op){ .seq = i + 1, .kind = OP_UPSERT, .model = (char *)"User",
					 .pk = (char *)"0", .doc = r->text[i] };
}

/* Updates of different columns of one record collapse into one write that
 * sets both; whole documents (the later names every key of the earlier)
 * are not copied; a refused column does not take the other's write along. */
static void test_union_of_columns(void **state)
{
	size_t order[2], prev[2], norder;
	struct run r;

	(void)state;
	two_updates(&r, "{\"id\":0,\"a\":5}", "{\"id\":0,\"b\":6,\"a\":7}");
	assert_int_equal(batch_collapse(r.ops, 2, order, &norder, prev), SH_OK);
	assert_null(r.ops[1].own_doc);	/* it names every key of the first */

	two_updates(&r, "{\"id\":0,\"a\":5,\"c\":2}", "{\"id\":0,\"b\":6,\"c\":3}");
	assert_int_equal(batch_collapse(r.ops, 2, order, &norder, prev), SH_OK);
	assert_int_equal(norder, 1);
	assert_string_equal(r.ops[1].doc, "{\"a\":5,\"b\":6,\"c\":3,\"id\":0}");
	assert_ptr_equal(r.ops[1].own_doc, r.text[1]);
	free(r.ops[1].doc);

	two_updates(&r, "{\"id\":0,\"a\":5}", "{\"id\":0,\"b\":6}");
	apply_batched(&r);
	assert_int_equal(r.tries, 1);
	assert_int_equal(r.db.rows[0].val[0], 5);
	assert_int_equal(r.db.rows[0].val[1], 6);

	two_updates(&r, "{\"id\":0,\"bad\":1,\"a\":5}", "{\"id\":0,\"b\":6}");
	apply_batched(&r);
	assert_true(r.dead[0]);
	assert_false(r.dead[1]);
	assert_int_equal(r.db.rows[0].val[0], 1);	/* not the refused write's a */
	assert_int_equal(r.db.rows[0].val[1], 6);
	assert_string_equal(r.ops[1].doc, r.text[1]);
}

/* A record written 5,000 times in one batch, every write refused (a bad
 * value once written is carried by every later document): each is dead once,
 * in about two tries each, and the fall-back's recursion holds. */
static enum sh_err refuse_all(void *ctx, const size_t *idx, size_t count, char **why)
{
	size_t *tries = ctx;

	(void)idx;
	(void)count;
	++*tries;
	*why = strdup("refused");
	return SH_OK;
}

static size_t ndead;

static void count_dead(void *ctx, size_t i, char *why)
{
	(void)ctx;
	(void)i;
	free(why);
	ndead++;
}

static void test_long_refused_run(void **state)
{
	enum { N = 5000 };
	struct op *ops = calloc(N, sizeof(*ops));
	size_t *order = calloc(N, sizeof(*order)), *prev = calloc(N, sizeof(*prev)), norder, tries = 0;
	const struct batch_bisect_ops bops = {
		.try_range = refuse_all, .dead = count_dead, .ops = ops, .prev = prev,
	};

	(void)state;
	assert_non_null(ops);
	for (int i = 0; i < N; i++)
		ops[i] = (struct op){ .seq = i + 1, .kind = OP_UPSERT, .model = (char *)"User",
				      .pk = (char *)"1", .doc = (char *)"{\"id\":1,\"bad\":1}" };
	assert_int_equal(batch_collapse(ops, N, order, &norder, prev), SH_OK);
	assert_int_equal(norder, 1);
	assert_int_equal(batch_bisect(order, 1, &bops, &tries), SH_OK);
	assert_int_equal(ndead, N);
	assert_int_equal(tries, 2 * N - 1);
	for (int i = 0; i < N; i++)
		assert_false(ops[i].superseded);
	free(ops);
	free(order);
	free(prev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batched_as_one_by_one),
		cmocka_unit_test(test_subsets_batched_as_one_by_one),
		cmocka_unit_test(test_union_of_columns),
		cmocka_unit_test(test_recreate_exactly),
		cmocka_unit_test(test_refused_write_spares_the_valid_one),
		cmocka_unit_test(test_long_refused_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
