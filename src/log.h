/* log.h: one line per event on stderr, as key=value pairs, with the level,
 * the process id and the current request id.  Callers never pass a code,
 * an API key or a provider credential. */
#ifndef OTPD_LOG_H
#define OTPD_LOG_H

#include <stddef.h>

enum log_level {
	LOGL_ERROR = 0,
	LOGL_WARN,
	LOGL_INFO,
	LOGL_DEBUG,
};

/* log_set_level / log_parse_level: the threshold; parse accepts "error",
 * "warn", "info", "debug" and returns -1 for anything else. */
void log_set_level(enum log_level level);
int log_parse_level(const char *s);

/* log_set_request: the request id put on every line until cleared with
 * NULL.  The string is copied. */
void log_set_request(const char *id);

/* log_msg: emit "ts=... level=... pid=... [req=...] " followed by the
 * formatted text, which should itself be key=value pairs ("event=x k=v").
 * Untrusted strings must pass through log_safe() first. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* log_safe: copy at most outlen - 1 bytes of s into out, replacing bytes
 * that are not printable ASCII, spaces, quotes and '=' with '?'.  Returns
 * out, so it can be used inline. */
const char *log_safe(const char *s, char *out, size_t outlen);

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
