/* otpd-sender.c: the sender's main: arguments and configuration (the same
 * file and key file as otpd), library and key initialisation, then the
 * delivery loop of sender.c in one of its modes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "crypto.h"
#include "keyring.h"
#include "log.h"
#include "sender.h"

#define PROG "otpd-sender"
#define FOR_MAX_SECONDS (366LL * 86400)

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: " PROG " [options] [--once | --follow | --for SECONDS]\n"
	    "\n"
	    "Delivers the codes that otpd queued in the outbox.\n"
	    "\n"
	    "      --once             deliver what is due now, then exit\n"
	    "      --follow           run until SIGTERM (the default)\n"
	    "      --for SECONDS      run for SECONDS, then stop as on "
	    "SIGTERM\n"
	    "  -c, --config FILE      configuration file (default %s)\n"
	    "  -d, --database CONN    PostgreSQL conninfo or URI\n"
	    "  -k, --key-file FILE    key file (see otpd-keygen)\n"
	    "  -p, --parallel N       deliveries in flight at once\n"
	    "  -l, --log-level LEVEL  error, warn, info or debug\n"
	    "  -h, --help             this text\n"
	    "  -V, --version          print the version\n"
	    "\n"
	    "Exit status: 0 when the run went well (failed deliveries "
	    "included),\n"
	    "1 on a fatal error (configuration, key file, database "
	    "unreachable\n"
	    "with --once), 2 on a usage error.\n",
	    CONFIG_DEFAULT_PATH);
}

enum { OPT_ONCE = 256, OPT_FOLLOW, OPT_FOR };

static const struct option longopts[] = {
	{"once", no_argument, NULL, OPT_ONCE},
	{"follow", no_argument, NULL, OPT_FOLLOW},
	{"for", required_argument, NULL, OPT_FOR},
	{"config", required_argument, NULL, 'c'},
	{"database", required_argument, NULL, 'd'},
	{"key-file", required_argument, NULL, 'k'},
	{"parallel", required_argument, NULL, 'p'},
	{"log-level", required_argument, NULL, 'l'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* flag letter -> setting name */
static const char *
flag_setting(int ch)
{
	switch (ch) {
	case 'd':
		return "database";
	case 'k':
		return "key_file";
	case 'p':
		return "sender_parallel";
	case 'l':
		return "log_level";
	}
	return NULL;
}

/* the mode flags; more than one is a usage error */
static int
set_mode(struct sender_opts *o, int *nmodes, int ch, const char *arg)
{
	(*nmodes)++;
	if (ch == OPT_ONCE) {
		o->mode = SENDER_ONCE;
	} else if (ch == OPT_FOLLOW) {
		o->mode = SENDER_FOLLOW;
	} else {
		o->mode = SENDER_FOR;
		if (parse_int64(arg, 1, FOR_MAX_SECONDS, &o->for_seconds) !=
		    RC_OK) {
			fprintf(stderr, PROG ": --for needs a number of "
			    "seconds from 1 to %lld\n", FOR_MAX_SECONDS);
			return RC_INVALID;
		}
	}
	return *nmodes > 1 ? RC_INVALID : RC_OK;
}

/*
 * Parse the command line: the config file first (flags win over it), so
 * flags are collected and applied after the file is read.  *done >= 0 asks
 * main to exit with that status.
 */
static int
load_settings(int argc, char **argv, struct config *cfg,
    struct sender_opts *o, int *done)
{
	struct config_flags flags = {0};
	const char *path = NULL;
	char err[512];
	int ch, nmodes = 0;

	*done = -1;
	o->mode = SENDER_FOLLOW;
	while ((ch = getopt_long(argc, argv, "c:d:k:p:l:hV", longopts,
	    NULL)) != -1) {
		if (ch == 'c') {
			path = optarg;
		} else if (ch == OPT_ONCE || ch == OPT_FOLLOW ||
		    ch == OPT_FOR) {
			if (set_mode(o, &nmodes, ch, optarg) != RC_OK)
				goto usage;
		} else if (ch == 'h') {
			usage(stdout);
			*done = 0;
			return RC_OK;
		} else if (ch == 'V') {
			printf(PROG " %s\n", PACKAGE_VERSION);
			*done = 0;
			return RC_OK;
		} else if (flag_setting(ch) == NULL ||
		    config_flag(&flags, flag_setting(ch), optarg) != RC_OK) {
			goto usage;
		}
	}
	if (optind < argc)
		goto usage;
	if (config_apply(cfg, path, &flags, err, sizeof(err)) != RC_OK) {
		fprintf(stderr, PROG ": %s\n", err);
		return RC_CONFIG;
	}
	return RC_OK;
usage:
	usage(stderr);
	*done = 2;
	return RC_OK;
}

int
main(int argc, char **argv)
{
	struct sender_opts opts;
	struct config cfg;
	struct keyring kr;
	char err[512];
	int done, rc;

	memset(&opts, 0, sizeof(opts));
	if (config_init(&cfg) != RC_OK ||
	    load_settings(argc, argv, &cfg, &opts, &done) != RC_OK) {
		config_free(&cfg);
		return 1;
	}
	if (done >= 0) {
		config_free(&cfg);
		return done;
	}
	log_set_level((enum log_level)log_parse_level(cfg.log_level));
	if (crypto_init() != RC_OK) {
		fprintf(stderr, PROG ": could not initialise libgcrypt\n");
		config_free(&cfg);
		return 1;
	}
	if (keyring_load(&kr, cfg.key_file, err, sizeof(err)) != RC_OK) {
		fprintf(stderr, PROG ": %s\n", err);
		config_free(&cfg);
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, PROG ": could not initialise libcurl\n");
		keyring_wipe(&kr);
		config_free(&cfg);
		return 1;
	}
	rc = sender_run(&cfg, &kr, &opts);
	curl_global_cleanup();
	keyring_wipe(&kr);
	config_free(&cfg);
	return rc == RC_OK ? 0 : 1;
}
