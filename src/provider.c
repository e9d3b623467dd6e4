/* provider.c: what the delivery drivers share: the table of drivers by
 * kind, reading their JSON config, addresses, and result texts. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "jsonv.h"
#include "provider.h"

static const struct provider *const providers[] = {
	&provider_smtp,
	&provider_sendgrid,
	&provider_twilio,
	&provider_webhook,
	&provider_file,
};

const struct provider *
provider_find(const char *kind)
{
	size_t i;

	for (i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
		if (strcmp(providers[i]->kind, kind) == 0)
			return providers[i];
	return NULL;
}

void
provider_result_set(struct provider_result *res,
    enum provider_outcome outcome, const char *fmt, ...)
{
	va_list ap;

	res->outcome = outcome;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
}

static int
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

int
provider_config_string(struct json_object *config, const char *kind,
    const char *key, int required, const char **val,
    struct provider_result *res)
{
	enum jsonv_found f;
	size_t len;

	*val = NULL;
	f = jsonv_string(config, key, val, &len);
	if (f == JSONV_MISSING && !required)
		return RC_OK;
	if (f == JSONV_OK && len > 0 && !has_control(*val))
		return RC_OK;
	*val = NULL;
	provider_result_set(res, PROVIDER_FAILED, "%s provider config: "
	    "\"%s\" %s", kind, key, f == JSONV_MISSING ? "is missing" :
	    "must be a non-empty one-line string");
	return RC_CONFIG;
}

int
provider_config_timeout(struct json_object *config, const char *kind,
    int64_t *ms, struct provider_result *res)
{
	enum jsonv_found f;

	*ms = 0;
	f = jsonv_int(config, "timeout_ms", 100, 600000, ms);
	if (f == JSONV_OK || f == JSONV_MISSING)
		return RC_OK;
	*ms = 0;
	provider_result_set(res, PROVIDER_FAILED, "%s provider config: "
	    "\"timeout_ms\" must be an integer from 100 to 600000", kind);
	return RC_CONFIG;
}

int
provider_address(const char *from, char *addr, size_t addrlen, char *name,
    size_t namelen)
{
	const char *lt, *gt, *a = from, *n = from;
	size_t alen = strlen(from), nlen = 0;

	addr[0] = name[0] = '\0';
	if (has_control(from))
		return RC_INVALID;
	lt = strchr(from, '<');
	if (lt != NULL) {
		gt = strchr(lt, '>');
		if (gt == NULL || gt[1] != '\0')
			return RC_INVALID;
		a = lt + 1;
		alen = (size_t)(gt - a);
		nlen = (size_t)(lt - from);
		while (nlen > 0 && (n[nlen - 1] == ' ' || n[nlen - 1] == '\t'))
			nlen--;
		while (nlen > 0 && (*n == ' ' || *n == '\t')) {
			n++;
			nlen--;
		}
		/* a display name already in quotes loses them */
		if (nlen >= 2 && n[0] == '"' && n[nlen - 1] == '"') {
			n++;
			nlen -= 2;
		}
	}
	if (!validate_email(a, alen) || alen >= addrlen || nlen >= namelen)
		return RC_INVALID;
	memcpy(addr, a, alen);
	addr[alen] = '\0';
	memcpy(name, n, nlen);
	name[nlen] = '\0';
	return RC_OK;
}

void
provider_scrub(const char *s, const char *code, size_t code_len, char *out,
    size_t outlen)
{
	size_t o = 0;

	if (outlen == 0)
		return;
	while (*s != '\0' && o + 1 < outlen) {
		if (code_len > 0 && strncmp(s, code, code_len) == 0) {
			if (o + 3 >= outlen)
				break;
			memcpy(out + o, "***", 3);
			o += 3;
			s += code_len;
			continue;
		}
		out[o++] = ((unsigned char)*s >= 0x20 &&
		    (unsigned char)*s < 0x7f) ? *s : '?';
		s++;
	}
	out[o] = '\0';
}
