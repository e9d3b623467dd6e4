/* worker.h: one prefork worker: its FCGX_Accept_r loop and graceful stop. */
#ifndef OTPD_WORKER_H
#define OTPD_WORKER_H

struct config;
struct keyring;

/* worker_run: serve requests on listen_fd until SIGTERM or SIGINT, then
 * finish the request in progress and return the exit status.  Call in the
 * child right after fork(), with the supervisor's signals (SIGTERM, SIGINT,
 * SIGCHLD, SIGHUP, SIGALRM) blocked; it unblocks them and opens its own
 * database connection. */
int worker_run(int listen_fd, const struct config *cfg,
    const struct keyring *kr);

#endif
