/* test_perm.c - uid=, gid=, umask= resolution and the modes they give (fs/perm.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "perm.h"

#define DUID 1234	/* the daemon's user and group, as the caller passes them */
#define DGID 5678

static char err[256];

static int resolve(const char *uid, const char *gid, const char *umask, bool allow_other,
		   struct perm *p)
{
	err[0] = '\0';
	return perm_resolve(uid, gid, umask, allow_other, DUID, DGID, p, err, sizeof(err));
}

static void assert_modes(const struct perm *p, mode_t rec, mode_t ro, mode_t dir)
{
	assert_int_equal(perm_mode(p, S_IFREG, 0666), S_IFREG | rec);
	assert_int_equal(perm_mode(p, S_IFREG, 0444), S_IFREG | ro);
	assert_int_equal(perm_mode(p, S_IFDIR, 0777), S_IFDIR | dir);
}

static void test_defaults(void **state)
{
	struct perm p;

	(void)state;
	assert_int_equal(resolve(NULL, NULL, NULL, false, &p), 0);
	assert_int_equal(p.uid, DUID);
	assert_int_equal(p.gid, DGID);
	assert_modes(&p, 0644, 0444, 0755);	/* as before the options existed */
}

static void test_allow_other_needs_an_owner(void **state)
{
	struct perm p;

	(void)state;
	assert_int_equal(resolve(NULL, NULL, NULL, true, &p), -1);
	assert_non_null(strstr(err, "allow_other needs uid="));
	assert_int_equal(resolve(NULL, "root", "022", true, &p), -1);	/* gid= is not an owner */
}

static void test_allow_other_shares_nothing_by_default(void **state)
{
	struct perm p;

	(void)state;
	assert_int_equal(resolve("root", NULL, NULL, true, &p), 0);
	assert_int_equal(p.uid, 0);
	assert_int_equal(p.gid, 0);	/* root's primary group */
	assert_modes(&p, 0640, 0440, 0750);
}

static void test_numbers(void **state)
{
	struct perm p;

	(void)state;
	assert_int_equal(resolve("0", NULL, NULL, false, &p), 0);
	assert_int_equal(p.gid, 0);	/* a known number: its primary group */
	assert_int_equal(resolve("3999999", NULL, NULL, false, &p), 0);
	assert_int_equal(p.uid, 3999999);
	assert_int_equal(p.gid, DGID);	/* unknown number: taken as is, the daemon's group */
	assert_int_equal(resolve("3999999", "3888888", NULL, false, &p), 0);
	assert_int_equal(p.gid, 3888888);
	assert_int_equal(resolve("4294967294", NULL, NULL, false, &p), 0);
	assert_int_equal(resolve("4294967295", NULL, NULL, false, &p), -1);	/* chown's "no change" */
	assert_int_equal(resolve("-1", NULL, NULL, false, &p), -1);
	assert_int_equal(resolve("", NULL, NULL, false, &p), -1);
}

static void test_unknown_names(void **state)
{
	struct perm p;

	(void)state;
	assert_int_equal(resolve("no-such-user-x7", NULL, NULL, false, &p), -1);
	assert_string_equal(err, "unknown user 'no-such-user-x7' (uid=)");
	assert_int_equal(resolve("12abc", NULL, NULL, false, &p), -1);
	assert_int_equal(resolve("root", "no-such-group-x7", NULL, false, &p), -1);
	assert_string_equal(err, "unknown group 'no-such-group-x7' (gid=)");
	assert_int_equal(resolve(NULL, "root", NULL, false, &p), 0);
	assert_int_equal(p.uid, DUID);
	assert_int_equal(p.gid, 0);
}

static void test_umask(void **state)
{
	struct perm p;

	(void)state;
	assert_int_equal(resolve("0", NULL, "007", true, &p), 0);
	assert_modes(&p, 0660, 0440, 0770);
	assert_int_equal(resolve("0", NULL, "0", false, &p), 0);
	assert_modes(&p, 0666, 0444, 0777);
	assert_int_equal(resolve("0", NULL, "077", false, &p), 0);
	assert_modes(&p, 0600, 0400, 0700);
	static const char *bad[] = { "0999", "1000", "", "x", "-1", "07a" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(resolve("0", NULL, bad[i], false, &p), -1);
		assert_non_null(strstr(err, "invalid umask"));
	}
}

/* Read-through: a class that may not read records must not be able to name one. */
static void test_no_search_without_read(void **state)
{
	struct perm p;

	(void)state;
	assert_int_equal(resolve("0", NULL, "066", false, &p), 0);
	assert_modes(&p, 0600, 0400, 0700);	/* not 0711 */
	assert_int_equal(resolve("0", NULL, "044", false, &p), 0);
	assert_modes(&p, 0622, 0400, 0722);	/* not 0733 */
	assert_int_equal(resolve("0", NULL, "011", false, &p), 0);
	assert_modes(&p, 0666, 0444, 0766);	/* may read, may not search: as asked */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_allow_other_needs_an_owner),
		cmocka_unit_test(test_allow_other_shares_nothing_by_default),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_unknown_names),
		cmocka_unit_test(test_umask),
		cmocka_unit_test(test_no_search_without_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
