/* log.c: key=value event lines on stderr, written with one write(2) each so
 * that lines from several worker processes never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level log_level = LOGL_INFO;
static char log_req[40];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
log_set_level(enum log_level level)
{
	log_level = level;
}

int
log_parse_level(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void
log_set_request(const char *id)
{
	if (id == NULL)
		log_req[0] = '\0';
	else
		snprintf(log_req, sizeof(log_req), "%s", id);
}

const char *
log_safe(const char *s, char *out, size_t outlen)
{
	size_t i;

	if (outlen == 0)
		return out;
	for (i = 0; s != NULL && s[i] != '\0' && i + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c > 0x20 && c < 0x7f && c != '"' && c != '=') ?
		    (char)c : '?';
	}
	out[i] = '\0';
	return out;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t n;
	int w;

	if (level > log_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	w = snprintf(line + n, sizeof(line) - n, ".%03dZ level=%s pid=%d%s%s ",
	    (int)(tv.tv_usec / 1000), level_names[level], (int)getpid(),
	    log_req[0] ? " req=" : "", log_req);
	if (w > 0)
		n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
	va_start(ap, fmt);
	w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (w > 0)
		n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* one write per line; a short write to stderr is not worth a retry */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
