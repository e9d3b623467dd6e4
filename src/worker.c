/* worker.c: the FCGX_Accept_r loop of one worker process, per-request reset
 * and graceful stop.  A worker never exits because of a request or of the
 * database. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "otp.h"
#include "router.h"
#include "store.h"
#include "worker.h"

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t listen_sock = -1;

/*
 * Closing our copy of the listening socket (the master and the other
 * workers keep theirs) makes the accept() we may be blocked in fail with
 * EBADF when SA_RESTART restarts it, and any later one at once, so there is
 * no window between testing stopping and blocking in accept().  A request
 * that libfcgi has accepted and is still reading the parameters of, like
 * one being handled, goes on: its reads are restarted too.
 */
static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
	if (listen_sock >= 0) {
		close(listen_sock);
		listen_sock = -1;
	}
}

static void
install_handlers(int listen_fd)
{
	struct sigaction sa;
	sigset_t set;

	listen_sock = listen_fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	/* a request being read or written goes on undisturbed by the signal */
	sa.sa_flags = SA_RESTART;
	/* one on_stop at a time: the socket is closed once */
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGALRM);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int
worker_run(int listen_fd, const struct config *cfg, const struct keyring *kr)
{
	char method[16], path[80];
	struct timespec t0, t1;
	struct request r;
	struct app app;
	unsigned long seq = 0;
	int status = 0;

	memset(&app, 0, sizeof(app));
	app.cfg = cfg;
	app.kr = kr;
	app.st = store_new(cfg->database);
	if (app.st == NULL ||
	    http_request_init(&r, listen_fd, (size_t)cfg->body_limit) != RC_OK) {
		log_error("event=worker_init_failed error=\"out of memory\"");
		return 1;
	}
	install_handlers(listen_fd);
	log_debug("event=worker_started");
	while (!stopping) {
		if (FCGX_Accept_r(&r.fcgi) < 0) {
			if (stopping)
				break;	/* on_stop closed the socket */
			if (errno == EINTR)
				continue;
			log_error("event=accept_failed error=\"%s\"",
			    strerror(errno));
			status = 1;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		http_request_begin(&r, ++seq);
		router_dispatch(&app, &r);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		metrics_record(r.path, r.status, (double)(t1.tv_sec - t0.tv_sec) +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		log_info("event=request method=%s path=%s status=%d",
		    log_safe(r.method, method, sizeof(method)),
		    log_safe(r.path, path, sizeof(path)), r.status);
		FCGX_Finish_r(&r.fcgi);
		log_set_request(NULL);
	}
	store_free(app.st);
	buf_free(&r.body);
	buf_free(&r.out);
	return status;
}
