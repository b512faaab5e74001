/* test_ids_batch.c - a create (OP_CREATE) is never merged into a row someone
 * else made: batch_collapse gives a run of writes the kind of its first op,
 * and batch_bisect's fall-back applies a later write of a refused create only
 * over the row that create inserted.
 *
 * The fake backend holds one record: a create of an existing row is refused
 * (unique_violation), an upsert carrying "bad" is refused (a CHECK), a delete
 * always succeeds.
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

#define MAXOPS 8

struct fake {
	struct op ops[MAXOPS];
	size_t n;
	bool exists;
	int value;		/* the row's "a" */
	bool dead[MAXOPS];
};

static void add(struct fake *f, char kind, const char *doc)
{
	struct op *op = &f->ops[f->n];

	memset(op, 0, sizeof(*op));
	op->seq = (int64_t)f->n + 1;
	op->kind = kind;
	op->model = strdup("Ticket");
	op->pk = strdup("7");
	op->doc = doc ? strdup(doc) : NULL;
	f->n++;
}

static bool apply_one(const struct op *op, bool *exists, int *value)
{
	if (op->kind == OP_DELETE) {
		*exists = false;
		return true;
	}
	if ((op->kind == OP_CREATE && *exists) || strstr(op->doc, "bad"))
		return false;
	*exists = true;
	*value = atoi(strchr(op->doc, ':') + 1);
	return true;
}

static enum sh_err fake_try(void *ctx, const size_t *idx, size_t count, char **why)
{
	struct fake *f = ctx;
	bool exists = f->exists;
	int value = f->value;

	for (size_t k = 0; k < count; k++) {
		if (!apply_one(&f->ops[idx[k]], &exists, &value)) {
			*why = strdup("refused");
			return SH_OK;
		}
	}
	f->exists = exists;
	f->value = value;
	return SH_OK;
}

static void fake_dead(void *ctx, size_t i, char *why)
{
	struct fake *f = ctx;

	free(why);
	assert_false(f->dead[i]);
	f->dead[i] = true;
}

/* Collapse, group and bisect f's ops as pg_apply does; the number of dead ops. */
static int run(struct fake *f)
{
	size_t order[MAXOPS], prev[MAXOPS], norder, ngroups;
	struct batch_group groups[MAXOPS];
	const struct batch_bisect_ops bops = {
		.try_range = fake_try, .dead = fake_dead, .ops = f->ops, .prev = prev,
	};
	int dead = 0;

	assert_int_equal(batch_collapse(f->ops, f->n, order, &norder, prev), SH_OK);
	assert_int_equal(batch_group(f->ops, order, norder, groups, &ngroups), SH_OK);
	for (size_t g = 0; g < ngroups; g++)
		assert_int_equal(batch_bisect(order + groups[g].first, groups[g].count, &bops, f),
				 SH_OK);
	for (size_t i = 0; i < f->n; i++)
		dead += f->dead[i];
	for (size_t i = 0; i < f->n; i++)
		op_release(&f->ops[i]);
	return dead;
}

/* Someone else inserted the row: the create and every write after it are dead. */
static void test_create_run_on_someone_elses_row(void **state)
{
	struct fake f = { .exists = true, .value = 99 };

	(void)state;
	add(&f, OP_CREATE, "{\"a\":1}");
	add(&f, OP_UPSERT, "{\"a\":2}");
	add(&f, OP_UPSERT, "{\"a\":3}");
	assert_int_equal(run(&f), 3);
	assert_int_equal(f.value, 99);
}

/* Nobody else: the run is applied, its last value wins. */
static void test_create_run_applied(void **state)
{
	struct fake f = { 0 };

	(void)state;
	add(&f, OP_CREATE, "{\"a\":1}");
	add(&f, OP_UPSERT, "{\"a\":2}");
	add(&f, OP_UPSERT, "{\"a\":3}");
	assert_int_equal(run(&f), 0);
	assert_true(f.exists);
	assert_int_equal(f.value, 3);
}

/* The run's last write is refused for its value: the create and the write
 * before are applied (the later one over the created row), the last is dead. */
static void test_create_run_last_refused(void **state)
{
	struct fake f = { 0 };

	(void)state;
	add(&f, OP_CREATE, "{\"a\":1}");
	add(&f, OP_UPSERT, "{\"a\":2}");
	add(&f, OP_UPSERT, "{\"a\":3,\"bad\":1}");
	assert_int_equal(run(&f), 1);
	assert_true(f.dead[2]);
	assert_int_equal(f.value, 2);
}

/* An upsert run (the block had read the row) stays an upsert run. */
static void test_upsert_run_merges(void **state)
{
	struct fake f = { .exists = true, .value = 99 };

	(void)state;
	add(&f, OP_UPSERT, "{\"a\":1}");
	add(&f, OP_UPSERT, "{\"a\":2}");
	assert_int_equal(run(&f), 0);
	assert_int_equal(f.value, 2);
}

/* Delete, then create: the create follows the delete, and succeeds. */
static void test_delete_then_create(void **state)
{
	struct fake f = { .exists = true, .value = 99 };

	(void)state;
	add(&f, OP_DELETE, NULL);
	add(&f, OP_CREATE, "{\"a\":5}");
	add(&f, OP_UPSERT, "{\"a\":6}");
	assert_int_equal(run(&f), 0);
	assert_int_equal(f.value, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_run_on_someone_elses_row),
		cmocka_unit_test(test_create_run_applied),
		cmocka_unit_test(test_create_run_last_refused),
		cmocka_unit_test(test_upsert_run_merges),
		cmocka_unit_test(test_delete_then_create),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
