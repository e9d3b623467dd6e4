/* otpd-keygen.c: creates the server key file, or adds a new current key
 * to it for rotation (see keyring.h for the format). */
/* PACKAGE_VERSION comes from configure, in DEFS or in an autoconf header;
 * the angle brackets find that header, not this directory's config.h (the
 * settings module, harmless here). */
#include <config.h>

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "crypto.h"
#include "keyring.h"

#ifndef PACKAGE_VERSION
#error "PACKAGE_VERSION is not defined: build through configure"
#endif

static void
usage(FILE *fp, int full)
{
	fprintf(fp, "usage: otpd-keygen [--create-only] FILE\n");
	if (!full)
		return;
	fprintf(fp,
	    "\n"
	    "Create the otpd key file FILE (mode 0600) holding key 1, or, if\n"
	    "FILE exists, add a new key with the next id that becomes the\n"
	    "current key; older keys stay to check what was made under them.\n"
	    "\n"
	    "  --create-only  fail if FILE already exists\n"
	    "  --help         show this text\n"
	    "  --version      show the version\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"create-only", no_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	char err[512];
	int32_t id = 0;
	int c, create_only = 0;

	for (;;) {
		c = getopt_long(argc, argv, "", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'c':
			create_only = 1;
			break;
		case 'h':
			usage(stdout, 1);
			return 0;
		case 'V':
			printf("otpd-keygen %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr, 0);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr, 0);
		return 2;
	}
	if (crypto_init() != RC_OK) {
		fprintf(stderr, "otpd-keygen: could not start libgcrypt\n");
		return 1;
	}
	if (keyring_generate(argv[optind], create_only, &id, err,
	    sizeof(err)) != RC_OK) {
		fprintf(stderr, "otpd-keygen: %s\n", err);
		return 1;
	}
	fprintf(stderr, "otpd-keygen: wrote key %d to %s (current)\n", (int)id,
	    argv[optind]);
	return 0;
}
