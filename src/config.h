/* config.h: settings shared by otpd and otpd-sender: one table of name,
 * type, default and bounds; values come from the defaults, then the
 * configuration file (key = value), then command-line flags. */
#ifndef OTPD_CONFIG_H
#define OTPD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "rc.h"

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/otpd/otpd.conf"

struct config {
	char *database;		/* libpq conninfo; "" uses PG* variables */
	char *socket;		/* unix path or host:port; "" means fd 0 */
	char *key_file;
	char *log_level;
	int64_t workers;	/* 0: one per CPU */
	int64_t body_limit;	/* bytes */
	int64_t expires_max;	/* largest expiresInSeconds */
	/* otpd-sender */
	int64_t sender_parallel;	/* deliveries in flight at once */
	int64_t sender_batch;		/* most jobs claimed per round trip */
	int64_t sender_max_attempts;	/* then a job is marked failed */
	int64_t sender_lease_seconds;	/* a claim lasts this long */
	int64_t sender_poll_ms;		/* look for due jobs at least this often */
	int64_t sender_timeout_ms;	/* one delivery, unless the provider's
					 * config sets timeout_ms */
	int64_t sender_backoff_ms;	/* first retry delay (before jitter) */
	int64_t sender_backoff_max_ms;	/* longest retry delay */
};

/* config_init: fill c with the defaults (strings are allocated). */
int config_init(struct config *c) WARN_UNUSED;

/* config_set: set one setting by name from text, checking type and range.
 * err (errlen bytes, caller-owned) gets the reason on RC_CONFIG. */
int config_set(struct config *c, const char *key, const char *value,
    char *err, size_t errlen) WARN_UNUSED;

/* config_load: read "key = value" lines from path ('#' starts a comment;
 * values may be double-quoted).  An unknown key is an error. */
int config_load(struct config *c, const char *path, char *err,
    size_t errlen) WARN_UNUSED;

#define CONFIG_FLAGS_MAX 64

/* Settings given as command-line flags, applied after the file. */
struct config_flags {
	int n;
	const char *kv[CONFIG_FLAGS_MAX][2];	/* borrowed from argv */
};

/* config_flag: remember key = value (argv strings) for config_apply. */
int config_flag(struct config_flags *f, const char *key, const char *value)
    WARN_UNUSED;

/* config_apply: read path, or CONFIG_DEFAULT_PATH when path is NULL and
 * that file exists, then the flags in order, so that flags win. */
int config_apply(struct config *c, const char *path,
    const struct config_flags *f, char *err, size_t errlen) WARN_UNUSED;

/* config_free: release the strings held by c. */
void config_free(struct config *c);

/* parse_int64: parse all of s as a decimal integer in [min, max]. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
    WARN_UNUSED;

#endif
