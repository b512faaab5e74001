/* test_ops.c - fs/ops.c's operations called directly, without a kernel.
 *
 * The struct fs is the test's own (an inode table, no engine); the libfuse
 * calls that need a real request, caller.c's look at the requesting process
 * and engine_catalog are replaced by the __wrap_ functions below (ld --wrap,
 * tests/CMakeLists.txt). Each operation's answer is the errno it replied.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fs.h"

static struct fs the_fs;
static struct catalog *cat;
static char request;		/* what a fuse_req_t points to: never looked at */
static int replied;		/* errno of the last reply, -1 before one */
static bool recursive_rm;	/* what caller_is_recursive_rm answers */

void *__wrap_fuse_req_userdata(fuse_req_t req);
int __wrap_fuse_reply_err(fuse_req_t req, int err);
bool __wrap_caller_is_recursive_rm(fuse_req_t req);
const struct catalog *__wrap_engine_catalog(const struct engine *e);

void *__wrap_fuse_req_userdata(fuse_req_t req)
{
	(void)req;
	return &the_fs;
}

int __wrap_fuse_reply_err(fuse_req_t req, int err)
{
	(void)req;
	replied = err;
	return 0;
}

bool __wrap_caller_is_recursive_rm(fuse_req_t req)
{
	(void)req;
	return recursive_rm;
}

const struct catalog *__wrap_engine_catalog(const struct engine *e)
{
	(void)e;
	return cat;
}

static int setup(void **state)
{
	struct model *m;

	(void)state;
	memset(&the_fs, 0, sizeof(the_fs));
	the_fs.nodes = nodes_new();
	cat = catalog_new("public");
	m = cat ? catalog_add_model(cat, "User") : NULL;
	if (!the_fs.nodes || !m || model_add_column(m, "id", "integer", "int4", true, false, true))
		return -1;
	recursive_rm = false;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	nodes_free(the_fs.nodes);
	catalog_free(cat);
	return 0;
}

/* A node the kernel looked up: child name of parent, of the given kind. */
static uint64_t add_node(uint64_t parent, const char *name, enum node_kind kind)
{
	struct node_ref proto = { .kind = kind }, ref;

	snprintf(proto.block, sizeof(proto.block), "%s", "b1");
	proto.model = kind == NODE_MODEL ? catalog_find(cat, "User") : NULL;
	assert_int_equal(nodes_lookup(the_fs.nodes, parent, name, &proto, &ref), SH_OK);
	return ref.ino;
}

/* Fill the stack below the caller with kind, so that a variable the next call
 * leaves unset reads as that kind rather than as whatever was there. */
static void __attribute__((noinline)) paint_stack(enum node_kind kind)
{
	volatile enum node_kind area[8192];

	for (size_t i = 0; i < sizeof(area) / sizeof(area[0]); i++)
		area[i] = kind;
}

static int do_rmdir(uint64_t parent, const char *name)
{
	replied = -1;
	paint_stack(NODE_BLOCK);
	sharded_ops.rmdir((fuse_req_t)&request, parent, name);
	return replied;
}

/* `rm -r` passes a block's model directories on its way to the block: they
 * "go" without a change; anything else in a block is not a directory to remove. */
static void test_rmdir_in_a_block(void **state)
{
	uint64_t block = add_node(1, "b1", NODE_BLOCK);

	(void)state;
	recursive_rm = true;
	assert_int_equal(do_rmdir(block, "User"), 0);
	assert_int_equal(do_rmdir(block, "Nope"), EPERM);
	recursive_rm = false;
	assert_int_equal(do_rmdir(block, "User"), EPERM);
}

/* The parent is not in the inode table: refused, whatever its node_ref would
 * have held (the stack says NODE_BLOCK, which used to be read and obeyed). */
static void test_rmdir_unknown_parent(void **state)
{
	(void)state;
	recursive_rm = true;
	assert_int_equal(do_rmdir(4242, "User"), EPERM);
	assert_int_equal(nodes_find(the_fs.nodes, 4242, "User"), 0);
}

/* opendir of a file is ENOTDIR (it was a local remap of SH_EINVAL). */
static void test_opendir_of_a_file(void **state)
{
	uint64_t block = add_node(1, "b1", NODE_BLOCK);
	uint64_t ttl = add_node(block, "ttl", NODE_CTL);
	struct fuse_file_info fi = { 0 };

	(void)state;
	replied = -1;
	sharded_ops.opendir((fuse_req_t)&request, ttl, &fi);
	assert_int_equal(replied, ENOTDIR);
}

/* rename out of a model directory is EXDEV, so that mv copies instead. */
static void test_rename_across_directories(void **state)
{
	uint64_t block = add_node(1, "b1", NODE_BLOCK);
	uint64_t model = add_node(block, "User", NODE_MODEL);

	(void)state;
	replied = -1;
	sharded_ops.rename((fuse_req_t)&request, model, "a.tmp", block, "a.tmp", 0);
	assert_int_equal(replied, EXDEV);
}

/* Every error maps to an errno that is not success; success maps to 0. */
static void test_errmap_total(void **state)
{
	(void)state;
	assert_int_equal(sh_errno(SH_OK), 0);
	for (int e = SH_OK + 1; e < SH_ERR_COUNT; e++)
		if (sh_errno((enum sh_err)e) == 0)
			fail_msg("sh_errno(%d) (%s) is 0", e, sh_strerror((enum sh_err)e));
	assert_int_equal(sh_errno(SH_ERR_COUNT), EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rmdir_in_a_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rmdir_unknown_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_opendir_of_a_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_across_directories, setup, teardown),
		cmocka_unit_test(test_errmap_total),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
