/* otpd.c: the responder's main: arguments and configuration, library and
 * key initialisation, the listening socket, and the prefork supervisor
 * (respawns workers that die; on SIGTERM/SIGINT stops them gracefully). */
#include <errno.h>
#include <fcgiapp.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "crypto.h"
#include "keyring.h"
#include "log.h"
#include "metrics.h"
#include "validate.h"
#include "worker.h"

#define MAX_WORKERS 256
#define STOP_GRACE_SECONDS 30
#define RESPAWN_MS 1000		/* at most one start per slot this often */

struct slot {
	pid_t pid;		/* 0: no worker, one is started when due */
	int64_t started;	/* monotonic ms of the last start attempt */
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: otpd [options]\n"
	    "  -c, --config FILE      configuration file (default %s)\n"
	    "  -s, --socket ADDR      unix socket path or host:port; none:\n"
	    "                         systemd's socket (fd 3) or fd 0\n"
	    "  -n, --workers N        worker processes (default: CPUs)\n"
	    "  -d, --database CONN    PostgreSQL conninfo or URI\n"
	    "  -k, --key-file FILE    key file (see otpd-keygen)\n"
	    "  -b, --body-limit N     largest request body in bytes\n"
	    "  -e, --expires-max N    largest expiresInSeconds\n"
	    "  -l, --log-level LEVEL  error, warn, info or debug\n"
	    "      --keygen FILE      add a new current key to FILE and exit\n"
	    "  -h, --help             this text\n"
	    "  -V, --version          print the version\n",
	    CONFIG_DEFAULT_PATH);
}

static const struct option longopts[] = {
	{"config", required_argument, NULL, 'c'},
	{"socket", required_argument, NULL, 's'},
	{"workers", required_argument, NULL, 'n'},
	{"database", required_argument, NULL, 'd'},
	{"key-file", required_argument, NULL, 'k'},
	{"body-limit", required_argument, NULL, 'b'},
	{"expires-max", required_argument, NULL, 'e'},
	{"log-level", required_argument, NULL, 'l'},
	{"keygen", required_argument, NULL, 'K'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* flag letter -> setting name */
static const char *
flag_setting(int ch)
{
	switch (ch) {
	case 's':
		return "socket";
	case 'n':
		return "workers";
	case 'd':
		return "database";
	case 'k':
		return "key_file";
	case 'b':
		return "body_limit";
	case 'e':
		return "expires_max";
	case 'l':
		return "log_level";
	}
	return NULL;
}

static int
keygen(const char *path)
{
	char err[256];
	int32_t id;

	if (crypto_init() != RC_OK ||
	    keyring_generate(path, 0, &id, err, sizeof(err)) != RC_OK) {
		fprintf(stderr, "otpd: %s\n", err);
		return 1;
	}
	fprintf(stderr, "otpd: wrote key %d to %s (current)\n", (int)id, path);
	return 0;
}

/*
 * Parse the command line: the config file first (flags win over it), so
 * flags are collected and applied after the file is read.
 */
static int
load_settings(int argc, char **argv, struct config *cfg, int *done)
{
	struct config_flags flags = {0};
	const char *path = NULL;
	char err[512];
	int ch;

	*done = -1;
	while ((ch = getopt_long(argc, argv, "c:s:n:d:k:b:e:l:hV", longopts,
	    NULL)) != -1) {
		if (ch == 'c') {
			path = optarg;
		} else if (ch == 'K') {
			*done = keygen(optarg);
			return RC_OK;
		} else if (ch == 'h') {
			usage(stdout);
			*done = 0;
			return RC_OK;
		} else if (ch == 'V') {
			printf("otpd %s\n", PACKAGE_VERSION);
			*done = 0;
			return RC_OK;
		} else if (flag_setting(ch) == NULL ||
		    config_flag(&flags, flag_setting(ch), optarg) != RC_OK) {
			usage(stderr);
			*done = 2;
			return RC_OK;
		}
	}
	if (optind < argc) {
		usage(stderr);
		*done = 2;
		return RC_OK;
	}
	if (config_apply(cfg, path, &flags, err, sizeof(err)) != RC_OK) {
		fprintf(stderr, "otpd: %s\n", err);
		return RC_CONFIG;
	}
	return RC_OK;
}

/* the listening socket: configured, systemd's (fd 3) or inherited (fd 0) */
static int
open_listener(const struct config *cfg, int *unix_socket)
{
	const char *lfds = getenv("LISTEN_FDS"), *lpid = getenv("LISTEN_PID");
	struct stat sb;
	int fd;

	*unix_socket = 0;
	if (cfg->socket[0] != '\0') {
		if (strchr(cfg->socket, ':') == NULL) {
			/* a stale socket from an earlier run blocks bind() */
			if (stat(cfg->socket, &sb) == 0 && S_ISSOCK(sb.st_mode))
				unlink(cfg->socket);
			*unix_socket = 1;
		}
		fd = FCGX_OpenSocket(cfg->socket, 1024);
		if (fd < 0) {
			log_error("event=listen_failed socket=%s error=\"%s\"",
			    cfg->socket, strerror(errno));
			return -1;
		}
		if (*unix_socket && chmod(cfg->socket, 0660) != 0)
			log_warn("event=chmod_failed socket=%s", cfg->socket);
		return fd;
	}
	if (lfds != NULL && lpid != NULL && strcmp(lfds, "1") == 0 &&
	    strtol(lpid, NULL, 10) == (long)getpid())
		return 3;
	if (fstat(0, &sb) == 0 && S_ISSOCK(sb.st_mode))
		return 0;
	log_error("event=no_socket error=\"set socket, or start with a "
	    "listening socket on fd 0\"");
	return -1;
}

/* fork a worker; its pid, or 0 when fork failed */
static pid_t
spawn(int fd, const struct config *cfg, const struct keyring *kr)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(worker_run(fd, cfg, kr));
	if (pid > 0)
		return pid;
	log_error("event=fork_failed error=\"could not fork worker: %s\"",
	    strerror(errno));
	return 0;
}

/*
 * Start a worker in every empty slot whose last start is RESPAWN_MS old:
 * a worker that dies at once must not make a fork storm, and a fork that
 * failed (EAGAIN) is tried again rather than leaving the pool smaller.
 * When a slot stays empty, SIGALRM (waited for with the other signals)
 * brings us back when the first one is due.
 */
static void
fill_slots(struct slot *slots, int n, int fd, const struct config *cfg,
    const struct keyring *kr)
{
	struct itimerval it;
	int64_t now = clock_mono_ms(), wait = 0, left;
	int i;

	for (i = 0; i < n; i++) {
		if (slots[i].pid > 0)
			continue;
		left = RESPAWN_MS - (now - slots[i].started);
		if (left <= 0) {
			slots[i].started = now;
			slots[i].pid = spawn(fd, cfg, kr);
			if (slots[i].pid > 0)
				continue;
			/* the next fork would fail too: one log line a round */
			wait = RESPAWN_MS;
			break;
		}
		if (wait == 0 || left < wait)
			wait = left;
	}
	if (wait == 0)
		return;
	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = (time_t)(wait / 1000);
	it.it_value.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	setitimer(ITIMER_REAL, &it, NULL);
}

/* stop every worker: SIGTERM, a grace period, then SIGKILL */
static void
stop_workers(struct slot *slots, int n)
{
	struct timespec ts = {1, 0};
	sigset_t set;
	int i, alive, waited;

	for (i = 0; i < n; i++)
		if (slots[i].pid > 0)
			kill(slots[i].pid, SIGTERM);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (waited = 0; waited <= STOP_GRACE_SECONDS; waited++) {
		pid_t pid;

		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
			for (i = 0; i < n; i++)
				if (slots[i].pid == pid)
					slots[i].pid = 0;
		for (alive = 0, i = 0; i < n; i++)
			alive += slots[i].pid > 0;
		if (alive == 0)
			return;
		if (waited == STOP_GRACE_SECONDS)
			break;
		sigtimedwait(&set, NULL, &ts);
	}
	for (i = 0; i < n; i++)
		if (slots[i].pid > 0) {
			log_warn("event=worker_killed worker_pid=%d",
			    (int)slots[i].pid);
			kill(slots[i].pid, SIGKILL);
			waitpid(slots[i].pid, NULL, 0);
		}
}

/* reap dead workers; fill_slots() starts their replacements */
static void
reap(struct slot *slots, int n)
{
	pid_t pid;
	int i, status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < n; i++) {
			if (slots[i].pid != pid)
				continue;
			log_warn("event=worker_died worker_pid=%d status=%d",
			    (int)pid, status);
			slots[i].pid = 0;
		}
	}
}

static int
supervise(int fd, const struct config *cfg, const struct keyring *kr)
{
	struct slot slots[MAX_WORKERS];
	sigset_t set;
	int n, i, sig;

	n = cfg->workers > 0 ? (int)cfg->workers :
	    (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > MAX_WORKERS)
		n = MAX_WORKERS;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGALRM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	memset(slots, 0, sizeof(slots));
	for (i = 0; i < n; i++)
		slots[i].started = clock_mono_ms() - RESPAWN_MS; /* due now */
	fill_slots(slots, n, fd, cfg, kr);
	log_info("event=started workers=%d", n);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGCHLD)
			reap(slots, n);
		if (sig == SIGCHLD || sig == SIGALRM)
			fill_slots(slots, n, fd, cfg, kr);
	}
	log_info("event=stopping");
	stop_workers(slots, n);
	return 0;
}

/* start-up: every failure here ends the process with a message */
static int
run(struct config *cfg, struct keyring *kr)
{
	char err[512];
	int fd, unix_socket, status;

	log_set_level((enum log_level)log_parse_level(cfg->log_level));
	validate_set_expires_max((int)cfg->expires_max);
	if (crypto_init() != RC_OK) {
		fprintf(stderr, "otpd: could not initialise libgcrypt\n");
		return 1;
	}
	if (keyring_load(kr, cfg->key_file, err, sizeof(err)) != RC_OK) {
		fprintf(stderr, "otpd: %s\n", err);
		return 1;
	}
	if (metrics_init() != RC_OK || FCGX_Init() != 0) {
		fprintf(stderr, "otpd: could not initialise libfcgi\n");
		return 1;
	}
	fd = open_listener(cfg, &unix_socket);
	if (fd < 0)
		return 1;
	status = supervise(fd, cfg, kr);
	close(fd);
	if (unix_socket)
		unlink(cfg->socket);
	log_info("event=stopped");
	return status;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct keyring kr;
	int done, status;

	memset(&kr, 0, sizeof(kr));
	if (config_init(&cfg) != RC_OK ||
	    load_settings(argc, argv, &cfg, &done) != RC_OK)
		status = 1;
	else if (done >= 0)
		status = done;
	else
		status = run(&cfg, &kr);
	keyring_wipe(&kr);
	config_free(&cfg);
	return status;
}
