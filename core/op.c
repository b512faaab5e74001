/* op.c - ownership helpers for struct op. */
#include <stdlib.h>
#include <stddef.h>
#include "op.h"

const char *op_origin(const struct op *op)
{
	return op->origin[0] ? op->origin : OP_ORIGIN_LEGACY;
}

bool op_origin_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n > 0 && n < OP_ORIGIN_MAX;
}

void op_release(struct op *op)
{
	if (!op)
		return;
	free(op->model);
	free(op->pk);
	free(op->doc);
	free(op->error);
	free(op->returned);
	free(op->own_doc);
	op->model = op->pk = op->doc = op->error = op->returned = op->own_doc = NULL;
}

void op_free_array(struct op *ops, size_t n)
{
	if (!ops)
		return;
	for (size_t i = 0; i < n; i++)
		op_release(&ops[i]);
	free(ops);
}
