/* sender.h: the delivery loop of otpd-sender: claim due outbox jobs, open
 * their sealed codes, render, hand them to the provider drivers over one
 * libcurl multi handle (bounded parallelism, reused connections), and record
 * the outcomes; woken by LISTEN otpd_outbox with a polling fallback. */
#ifndef OTPD_SENDER_H
#define OTPD_SENDER_H

#include <stdint.h>

#include "rc.h"

struct config;
struct keyring;

enum sender_mode {
	SENDER_ONCE = 0,	/* drain what is due now, then return */
	SENDER_FOLLOW,		/* until SIGTERM or SIGINT */
	SENDER_FOR,		/* follow for a number of seconds */
};

struct sender_opts {
	enum sender_mode mode;
	int64_t for_seconds;	/* SENDER_FOR */
};

/*
 * sender_run: run the loop with cfg's sender_* settings (borrowed for the
 * duration) and a copy of the keys in kr, which is re-read from
 * cfg->key_file when a job names a key id it does not hold (a rotation
 * while it runs); the copy is wiped at the end.  Call after
 * curl_global_init() and
 * crypto_init(); installs handlers for SIGTERM and SIGINT, on which it stops
 * claiming, hands back the jobs it has not started, lets the deliveries in
 * flight finish, records their outcomes and returns.  Returns RC_OK, or
 * RC_UNAVAILABLE when SENDER_ONCE cannot reach the database, or another
 * code for a fatal start-up failure.  Deliveries that fail are not fatal.
 */
int sender_run(const struct config *cfg, const struct keyring *kr,
    const struct sender_opts *opts) WARN_UNUSED;

#endif
