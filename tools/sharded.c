/* sharded.c - the sharded command-line tool.
 *
 * For now it only answers --help and --version; the status, dlq, cleanup,
 * generate and bench commands are still to come (see the issue tracker).
 */
#include <stdio.h>
#include <string.h>

#include "version.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sharded [--help] [--version] <command> [<args>]\n"
		"\n"
		"sharded talks to a sharded mount, its PostgreSQL and its Redis.\n"
		"No commands are available in this version; see mount.sharded(8)\n"
		"and the README for using the mount itself.\n");
}

int main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("sharded %s\n", SHARDED_VERSION);
		return 0;
	}
	if (argc < 2)
		fprintf(stderr, "sharded: missing command\n");
	else
		fprintf(stderr, "sharded: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
