/* op.c - ownership helpers for struct op. */
#include <stdlib.h>
#include <stddef.h>
#include "op.h"

void op_release(struct op *op)
{
	if (!op)
		return;
	free(op->model);
	free(op->pk);
	free(op->doc);
	free(op->error);
	free(op->returned);
	op->model = op->pk = op->doc = op->error = op->returned = NULL;
}

void op_free_array(struct op *ops, size_t n)
{
	if (!ops)
		return;
	for (size_t i = 0; i < n; i++)
		op_release(&ops[i]);
	free(ops);
}
