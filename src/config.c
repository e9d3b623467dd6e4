/* config.c: the settings table and the "key = value" file reader. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

enum setting_type { SET_STRING, SET_INT, SET_LEVEL };

struct setting {
	const char *name;
	enum setting_type type;
	size_t offset;
	const char *def;
	int64_t min, max;
};

static const struct setting settings[] = {
	{"database", SET_STRING, offsetof(struct config, database), "", 0, 0},
	{"socket", SET_STRING, offsetof(struct config, socket), "", 0, 0},
	{"key_file", SET_STRING, offsetof(struct config, key_file),
	    SYSCONFDIR "/otpd/otpd.key", 0, 0},
	{"log_level", SET_LEVEL, offsetof(struct config, log_level), "info",
	    0, 0},
	{"workers", SET_INT, offsetof(struct config, workers), "0", 0, 256},
	{"body_limit", SET_INT, offsetof(struct config, body_limit), "16384",
	    256, 1048576},
	{"expires_max", SET_INT, offsetof(struct config, expires_max),
	    "86400", 1, 31536000},
	{"sender_parallel", SET_INT, offsetof(struct config, sender_parallel),
	    "16", 1, 1024},
	{"sender_batch", SET_INT, offsetof(struct config, sender_batch), "64",
	    1, 1000},
	{"sender_max_attempts", SET_INT,
	    offsetof(struct config, sender_max_attempts), "8", 1, 100},
	{"sender_lease_seconds", SET_INT,
	    offsetof(struct config, sender_lease_seconds), "60", 2, 3600},
	{"sender_poll_ms", SET_INT, offsetof(struct config, sender_poll_ms),
	    "2000", 10, 600000},
	{"sender_timeout_ms", SET_INT,
	    offsetof(struct config, sender_timeout_ms), "10000", 100, 600000},
	{"sender_backoff_ms", SET_INT,
	    offsetof(struct config, sender_backoff_ms), "2000", 10, 3600000},
	{"sender_backoff_max_ms", SET_INT,
	    offsetof(struct config, sender_backoff_max_ms), "600000", 10,
	    86400000},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

int
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	long long v;
	char *end;

	*out = 0;
	if (s == NULL || *s == '\0')
		return RC_INVALID;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return RC_INVALID;
	*out = v;
	return RC_OK;
}

int
config_init(struct config *c)
{
	char err[128];
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NSETTINGS; i++)
		if (config_set(c, settings[i].name, settings[i].def, err,
		    sizeof(err)) != RC_OK)
			return RC_INTERNAL;
	return RC_OK;
}

int
config_set(struct config *c, const char *key, const char *value, char *err,
    size_t errlen)
{
	const struct setting *s = NULL;
	char *copy, **sp;
	size_t i;

	for (i = 0; i < NSETTINGS; i++)
		if (strcmp(settings[i].name, key) == 0)
			s = &settings[i];
	if (s == NULL) {
		snprintf(err, errlen, "unknown setting \"%s\"", key);
		return RC_CONFIG;
	}
	if (s->type == SET_INT) {
		int64_t *ip = (int64_t *)(void *)((char *)c + s->offset);

		if (parse_int64(value, s->min, s->max, ip) != RC_OK) {
			snprintf(err, errlen, "%s must be an integer from %lld "
			    "to %lld", key, (long long)s->min,
			    (long long)s->max);
			return RC_CONFIG;
		}
		return RC_OK;
	}
	if (s->type == SET_LEVEL && log_parse_level(value) < 0) {
		snprintf(err, errlen, "%s must be error, warn, info or debug",
		    key);
		return RC_CONFIG;
	}
	copy = strdup(value);
	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return RC_NOMEM;
	}
	sp = (char **)(void *)((char *)c + s->offset);
	free(*sp);
	*sp = copy;
	return RC_OK;
}

/* trim leading and trailing blanks in place */
static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
	    e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int
config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	char line[4096], sub[512];
	FILE *f;
	int lineno = 0, rc = RC_OK;

	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "could not open \"%s\": %s", path,
		    strerror(errno));
		return RC_CONFIG;
	}
	while (rc == RC_OK && fgets(line, sizeof(line), f) != NULL) {
		char *key, *val, *eq;
		size_t vlen;

		lineno++;
		key = trim(line);
		if (*key == '#' || *key == '\0')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%d: expected key = value",
			    path, lineno);
			rc = RC_CONFIG;
			break;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		vlen = strlen(val);
		if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
			val[vlen - 1] = '\0';
			val++;
		}
		rc = config_set(c, key, val, sub, sizeof(sub));
		if (rc != RC_OK)
			snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
	}
	fclose(f);
	return rc;
}

int
config_flag(struct config_flags *f, const char *key, const char *value)
{
	if (f->n >= CONFIG_FLAGS_MAX)
		return RC_INVALID;
	f->kv[f->n][0] = key;
	f->kv[f->n][1] = value;
	f->n++;
	return RC_OK;
}

int
config_apply(struct config *c, const char *path,
    const struct config_flags *f, char *err, size_t errlen)
{
	int i, rc;

	if (path == NULL && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = CONFIG_DEFAULT_PATH;
	if (path != NULL) {
		rc = config_load(c, path, err, errlen);
		if (rc != RC_OK)
			return rc;
	}
	for (i = 0; i < f->n; i++) {
		rc = config_set(c, f->kv[i][0], f->kv[i][1], err, errlen);
		if (rc != RC_OK)
			return rc;
	}
	return RC_OK;
}

void
config_free(struct config *c)
{
	size_t i;

	for (i = 0; i < NSETTINGS; i++) {
		if (settings[i].type != SET_INT) {
			char **sp = (char **)(void *)((char *)c +
			    settings[i].offset);

			free(*sp);
			*sp = NULL;
		}
	}
}
