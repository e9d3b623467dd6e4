/* provider_http.c: the HTTP drivers: sendgrid (v3 mail/send), twilio
 * (2010-04-01 Messages) and webhook (signed JSON POST), and what they share:
 * the JSON delivery body, the signature, Retry-After, and the mapping of a
 * finished transfer to sent / retry / failed. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "config.h"
#include "crypto.h"
#include "jsonv.h"
#include "provider.h"

#define HTTP_URL_MAX 2048
#define HTTP_RETRY_AFTER_MAX 86400
#define HTTP_HEADERS_MAX 32

struct http_state {
	char url[HTTP_URL_MAX];
	const char *secret;		/* webhook */
	const char *api_key;		/* sendgrid */
	const char *account_sid;	/* twilio */
	const char *auth_token;		/* twilio */
	const char *from;		/* twilio From */
	const char *service_sid;	/* twilio MessagingServiceSid */
	const char *ca_file;
	char from_addr[VALIDATE_EMAIL_MAX + 1];	/* sendgrid */
	char from_name[256];			/* sendgrid */
	struct json_object *headers;	/* webhook extra headers (borrowed) */
	int64_t timeout_ms;
};

/* Shared pieces ---------------------------------------------------------- */

int
provider_http_body(struct buf *out, const struct delivery *d)
{
	int rc;

	rc = buf_puts(out, "{\"id\":");
	if (rc == RC_OK)
		rc = buf_json_string(out, d->id, strlen(d->id));
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"otpId\":");
	if (rc == RC_OK)
		rc = buf_json_string(out, d->id, strlen(d->id));
	if (rc == RC_OK)
		rc = buf_printf(out, ",\"channel\":\"%s\",\"destination\":",
		    channel_name(d->channel));
	if (rc == RC_OK)
		rc = buf_json_string(out, d->destination,
		    strlen(d->destination));
	if (rc == RC_OK && d->channel == CHANNEL_EMAIL) {
		rc = buf_puts(out, ",\"subject\":");
		if (rc == RC_OK)
			rc = buf_json_string(out, d->subject,
			    strlen(d->subject));
	}
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"text\":");
	if (rc == RC_OK)
		rc = buf_json_string(out, d->text, strlen(d->text));
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"code\":");
	if (rc == RC_OK)
		rc = buf_json_string(out, d->code, d->code_len);
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"expiresAt\":");
	if (rc == RC_OK)
		rc = buf_json_string(out, d->expires_at, strlen(d->expires_at));
	if (rc == RC_OK)
		rc = buf_puts(out, "}");
	return rc;
}

int
provider_http_sign(const char *secret, size_t secret_len, time_t t,
    const char *body, size_t body_len, char *out, size_t outlen)
{
	uint8_t mac[CRYPTO_TAG_LEN];
	char hex[2 * CRYPTO_TAG_LEN + 1];
	struct buf msg;
	int rc, n;

	buf_init(&msg, body_len + 32);
	rc = buf_printf(&msg, "%lld.", (long long)t);
	if (rc == RC_OK)
		rc = buf_append(&msg, body, body_len);
	if (rc == RC_OK)
		rc = crypto_hmac_sha256(secret, secret_len, msg.data, msg.len,
		    mac);
	if (msg.data != NULL)
		crypto_wipe(msg.data, msg.cap);
	buf_free(&msg);
	if (rc != RC_OK)
		return rc;
	crypto_hex(mac, sizeof(mac), hex);
	n = snprintf(out, outlen, "t=%lld,v1=%s", (long long)t, hex);
	return n > 0 && (size_t)n < outlen ? RC_OK : RC_TOO_LARGE;
}

/* value without surrounding blanks into v (vlen bytes); 0 if empty or
 * too long */
static int
header_trim(const char *value, char *v, size_t vlen)
{
	size_t n;

	while (*value == ' ' || *value == '\t')
		value++;
	n = strlen(value);
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= vlen)
		return 0;
	memcpy(v, value, n);
	v[n] = '\0';
	return 1;
}

int
provider_http_retry_after(const char *value, time_t now, int max)
{
	char v[64];
	int64_t secs;
	time_t when;

	if (!header_trim(value, v, sizeof(v)))
		return -1;
	if (isdigit((unsigned char)v[0])) {
		if (parse_int64(v, 0, INT32_MAX, &secs) != RC_OK)
			return -1;
	} else {
		when = curl_getdate(v, NULL);
		if (when == (time_t)-1)
			return -1;
		secs = when > now ? (int64_t)(when - now) : 0;
	}
	return secs > max ? max : (int)secs;
}

int
provider_http_rate_reset(const char *value, time_t now, int max)
{
	char v[64];
	int64_t when, secs;

	if (!header_trim(value, v, sizeof(v)) ||
	    parse_int64(v, 0, INT64_MAX, &when) != RC_OK)
		return -1;
	secs = when > (int64_t)now ? when - (int64_t)now : 0;
	return secs > max ? max : (int)secs;
}

/* the text of the first error a provider's JSON answer carries, scrubbed */
static void
http_error_detail(const struct delivery *d, const char *kind, char *out,
    size_t outlen)
{
	struct json_tokener *tok;
	struct json_object *root = NULL, *v, *e;
	const char *msg = NULL;
	char clean[200];
	int64_t code = 0;

	out[0] = '\0';
	if (d->resp.len == 0 || (tok = json_tokener_new_ex(JSONV_MAX_DEPTH)) ==
	    NULL)
		return;
	root = json_tokener_parse_ex(tok, d->resp.data, (int)d->resp.len);
	json_tokener_free(tok);
	if (root == NULL || !json_object_is_type(root, json_type_object))
		goto out;
	/* twilio: {"code": 21211, "message": "..."} */
	if (jsonv_int(root, "code", 0, INT32_MAX, &code) != JSONV_OK)
		code = 0;
	if (json_object_object_get_ex(root, "message", &v) &&
	    json_object_is_type(v, json_type_string))
		msg = json_object_get_string(v);
	/* sendgrid: {"errors": [{"message": "...", "field": ...}]} */
	if (msg == NULL && json_object_object_get_ex(root, "errors", &v) &&
	    json_object_is_type(v, json_type_array) &&
	    json_object_array_length(v) > 0 &&
	    (e = json_object_array_get_idx(v, 0)) != NULL &&
	    json_object_is_type(e, json_type_object) &&
	    json_object_object_get_ex(e, "message", &v) &&
	    json_object_is_type(v, json_type_string))
		msg = json_object_get_string(v);
	if (msg == NULL)
		goto out;
	provider_scrub(msg, d->code, d->code_len, clean, sizeof(clean));
	if (code != 0)
		snprintf(out, outlen, ": %s error %lld: %s", kind,
		    (long long)code, clean);
	else
		snprintf(out, outlen, ": %s", clean);
out:
	json_object_put(root);
}

/*
 * Map a finished transfer to an outcome.  Returns 1 for a 2xx answer (the
 * caller decides what success needs); otherwise res is filled: connection
 * errors, timeouts, 5xx and 429 are transient (Retry-After honoured), any
 * other answer is permanent.
 */
static int
http_classify(const struct delivery *d, CURL *easy, CURLcode cc,
    const char *kind, struct provider_result *res)
{
	char detail[220];
	long status = 0;

	if (cc != CURLE_OK) {
		provider_result_set(res, (cc == CURLE_URL_MALFORMAT ||
		    cc == CURLE_UNSUPPORTED_PROTOCOL) ? PROVIDER_FAILED :
		    PROVIDER_RETRY, "%s: %s", kind, d->curl_error[0] ?
		    d->curl_error : curl_easy_strerror(cc));
		return 0;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status <= 299)
		return 1;
	http_error_detail(d, kind, detail, sizeof(detail));
	if (status == 429 || (status >= 500 && status <= 599)) {
		provider_result_set(res, PROVIDER_RETRY, "HTTP %ld%s", status,
		    detail);
		res->retry_after = provider_http_retry_after(d->retry_after,
		    d->now, HTTP_RETRY_AFTER_MAX);
	} else {
		provider_result_set(res, PROVIDER_FAILED, "HTTP %ld%s", status,
		    detail);
	}
	return 0;
}

/* the options every HTTP driver sets */
static void
http_setopts(const struct http_state *st, struct delivery *d, CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_URL, st->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (st->ca_file != NULL)
		curl_easy_setopt(easy, CURLOPT_CAINFO, st->ca_file);
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, d->req.data);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)d->req.len);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, d->headers);
	d->timeout_ms = st->timeout_ms;
}

/* add "name: value" to d->headers; value NULL disables a header curl
 * would add by itself ("name:") */
static int
http_header(struct delivery *d, const char *name, const char *value)
{
	struct curl_slist *l;
	struct buf h;
	int rc;

	buf_init(&h, 8192);
	rc = buf_printf(&h, "%s:%s%s", name, value != NULL ? " " : "",
	    value != NULL ? value : "");
	if (rc == RC_OK) {
		l = curl_slist_append(d->headers, h.data);
		if (l == NULL)
			rc = RC_NOMEM;
		else
			d->headers = l;
	}
	if (h.data != NULL)
		crypto_wipe(h.data, h.cap);	/* may hold a credential */
	buf_free(&h);
	return rc;
}

/* base_url (default def) + path into st->url; RC_CONFIG if unusable */
static int
http_url(struct http_state *st, const char *base, const char *def,
    const char *path, const char *kind, struct provider_result *res)
{
	size_t n;
	int w;

	if (base == NULL)
		base = def;
	if (base == NULL) {
		provider_result_set(res, PROVIDER_FAILED, "%s provider config: "
		    "no url", kind);
		return RC_CONFIG;
	}
	n = strlen(base);
	while (path[0] != '\0' && n > 0 && base[n - 1] == '/')
		n--;
	if (strncmp(base, "http://", 7) != 0 &&
	    strncmp(base, "https://", 8) != 0) {
		provider_result_set(res, PROVIDER_FAILED, "%s provider config: "
		    "the url must start with http:// or https://", kind);
		return RC_CONFIG;
	}
	w = snprintf(st->url, sizeof(st->url), "%.*s%s", (int)n, base, path);
	if (w < 0 || (size_t)w >= sizeof(st->url)) {
		provider_result_set(res, PROVIDER_FAILED, "%s provider config: "
		    "the url is too long", kind);
		return RC_CONFIG;
	}
	return RC_OK;
}

/* "Authorization: Bearer <key>" */
static int
http_bearer(struct delivery *d, const char *key)
{
	struct buf v;
	int rc;

	buf_init(&v, 8192);
	rc = buf_printf(&v, "Bearer %s", key);
	if (rc == RC_OK)
		rc = http_header(d, "Authorization", v.data);
	if (v.data != NULL)
		crypto_wipe(v.data, v.cap);
	buf_free(&v);
	return rc;
}

static void
http_fini(void *state)
{
	free(state);
}

/* SendGrid: POST {base_url}/v3/mail/send ----------------------------------- */

static int
sendgrid_init(struct json_object *config, enum channel ch, void **statep,
    struct provider_result *res)
{
	struct http_state *st;
	const char *from = NULL, *base = NULL;
	int rc;

	*statep = NULL;
	if (ch != CHANNEL_EMAIL) {
		provider_result_set(res, PROVIDER_FAILED,
		    "sendgrid provider sends email only");
		return RC_CONFIG;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return RC_NOMEM;
	rc = provider_config_string(config, "sendgrid", "api_key", 1,
	    &st->api_key, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "sendgrid", "from", 1,
		    &from, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "sendgrid", "base_url", 0,
		    &base, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "sendgrid", "ca_file", 0,
		    &st->ca_file, res);
	if (rc == RC_OK)
		rc = provider_config_timeout(config, "sendgrid",
		    &st->timeout_ms, res);
	if (rc == RC_OK)
		rc = http_url(st, base, "https://api.sendgrid.com",
		    "/v3/mail/send", "sendgrid", res);
	if (rc == RC_OK && provider_address(from, st->from_addr,
	    sizeof(st->from_addr), st->from_name,
	    sizeof(st->from_name)) != RC_OK) {
		provider_result_set(res, PROVIDER_FAILED, "sendgrid provider "
		    "config: \"from\" is not an address or Name <address>");
		rc = RC_CONFIG;
	}
	if (rc != RC_OK) {
		free(st);
		return rc;
	}
	*statep = st;
	return RC_OK;
}

/* {"personalizations":[{"to":[{"email":...}]}],"from":{"email":...,
 * "name":...},"subject":...,"content":[{"type":"text/plain","value":...}]} */
static int
sendgrid_body(const struct http_state *st, const struct delivery *d,
    struct buf *out)
{
	int rc;

	rc = buf_puts(out, "{\"personalizations\":[{\"to\":[{\"email\":");
	if (rc == RC_OK)
		rc = buf_json_string(out, d->destination,
		    strlen(d->destination));
	if (rc == RC_OK)
		rc = buf_puts(out, "}]}],\"from\":{\"email\":");
	if (rc == RC_OK)
		rc = buf_json_string(out, st->from_addr, strlen(st->from_addr));
	if (rc == RC_OK && st->from_name[0] != '\0') {
		rc = buf_puts(out, ",\"name\":");
		if (rc == RC_OK)
			rc = buf_json_string(out, st->from_name,
			    strlen(st->from_name));
	}
	if (rc == RC_OK)
		rc = buf_puts(out, "},\"subject\":");
	if (rc == RC_OK)
		rc = buf_json_string(out, d->subject, strlen(d->subject));
	if (rc == RC_OK)
		rc = buf_puts(out, ",\"content\":[{\"type\":\"text/plain\","
		    "\"value\":");
	if (rc == RC_OK)
		rc = buf_json_string(out, d->text, strlen(d->text));
	if (rc == RC_OK)
		rc = buf_puts(out, "}]}");
	return rc;
}

static enum provider_start
sendgrid_start(void *state, struct delivery *d, CURL *easy,
    struct provider_result *res)
{
	struct http_state *st = state;
	int rc;

	rc = sendgrid_body(st, d, &d->req);
	if (rc == RC_OK)
		rc = http_bearer(d, st->api_key);
	if (rc == RC_OK)
		rc = http_header(d, "Content-Type", "application/json");
	if (rc == RC_OK)
		rc = http_header(d, "Expect", NULL);
	if (rc != RC_OK) {
		provider_result_set(res, PROVIDER_FAILED, "could not build the "
		    "request: %s", rc_str(rc));
		return PROVIDER_DONE;
	}
	http_setopts(st, d, easy);
	return PROVIDER_STARTED;
}

static void
sendgrid_finish(void *state, struct delivery *d, CURL *easy, CURLcode cc,
    struct provider_result *res)
{
	long status = 0;
	int reset;

	(void)state;
	if (!http_classify(d, easy, cc, "sendgrid", res)) {
		/* SendGrid's 429 says when the limit resets, not Retry-After;
		 * of the two, the later one wins */
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
		reset = provider_http_rate_reset(d->rate_reset, d->now,
		    HTTP_RETRY_AFTER_MAX);
		if (cc == CURLE_OK && status == 429 && reset > res->retry_after)
			res->retry_after = reset;
		return;
	}
	res->outcome = PROVIDER_SENT;
	provider_scrub(d->message_id, NULL, 0, res->message_id,
	    sizeof(res->message_id));
}

const struct provider provider_sendgrid = {
	"sendgrid", sendgrid_init, sendgrid_start, sendgrid_finish, http_fini,
};

/* Twilio: POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json -------- */

static int
alnum_only(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s))
			return 0;
	return 1;
}

static int
twilio_init(struct json_object *config, enum channel ch, void **statep,
    struct provider_result *res)
{
	struct http_state *st;
	const char *base = NULL;
	char path[256];
	int rc;

	*statep = NULL;
	if (ch != CHANNEL_SMS) {
		provider_result_set(res, PROVIDER_FAILED,
		    "twilio provider sends sms only");
		return RC_CONFIG;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return RC_NOMEM;
	rc = provider_config_string(config, "twilio", "account_sid", 1,
	    &st->account_sid, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "twilio", "auth_token", 1,
		    &st->auth_token, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "twilio", "from", 0,
		    &st->from, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "twilio",
		    "messaging_service_sid", 0, &st->service_sid, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "twilio", "base_url", 0,
		    &base, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "twilio", "ca_file", 0,
		    &st->ca_file, res);
	if (rc == RC_OK)
		rc = provider_config_timeout(config, "twilio", &st->timeout_ms,
		    res);
	if (rc == RC_OK && (!alnum_only(st->account_sid) ||
	    strlen(st->account_sid) > 64 || (st->from == NULL &&
	    st->service_sid == NULL))) {
		provider_result_set(res, PROVIDER_FAILED, "twilio provider "
		    "config: needs an alphanumeric \"account_sid\" and "
		    "\"from\" or \"messaging_service_sid\"");
		rc = RC_CONFIG;
	}
	if (rc == RC_OK) {
		snprintf(path, sizeof(path), "/2010-04-01/Accounts/%s/"
		    "Messages.json", st->account_sid);
		rc = http_url(st, base, "https://api.twilio.com", path,
		    "twilio", res);
	}
	if (rc != RC_OK) {
		free(st);
		return rc;
	}
	*statep = st;
	return RC_OK;
}

/* append "&key=value" (no '&' first), value percent-encoded */
static int
form_field(struct buf *out, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	char enc[3];
	int rc;

	rc = buf_printf(out, "%s%s=", out->len > 0 ? "&" : "", key);
	for (p = (const unsigned char *)value; rc == RC_OK && *p != '\0';
	    p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' ||
		    *p == '~') {
			rc = buf_append(out, p, 1);
		} else {
			enc[0] = '%';
			enc[1] = hex[*p >> 4];
			enc[2] = hex[*p & 15];
			rc = buf_append(out, enc, 3);
		}
	}
	return rc;
}

static enum provider_start
twilio_start(void *state, struct delivery *d, CURL *easy,
    struct provider_result *res)
{
	struct http_state *st = state;
	int rc;

	if (!validate_e164(d->destination, strlen(d->destination))) {
		provider_result_set(res, PROVIDER_FAILED, "destination "
		    "refused: not an E.164 phone number");
		return PROVIDER_DONE;
	}
	rc = form_field(&d->req, "To", d->destination);
	if (rc == RC_OK && st->service_sid != NULL)
		rc = form_field(&d->req, "MessagingServiceSid",
		    st->service_sid);
	if (rc == RC_OK && st->from != NULL)
		rc = form_field(&d->req, "From", st->from);
	if (rc == RC_OK)
		rc = form_field(&d->req, "Body", d->text);
	if (rc == RC_OK)
		rc = http_header(d, "Content-Type",
		    "application/x-www-form-urlencoded");
	if (rc == RC_OK)
		rc = http_header(d, "Accept", "application/json");
	if (rc == RC_OK)
		rc = http_header(d, "Expect", NULL);
	if (rc != RC_OK) {
		provider_result_set(res, PROVIDER_FAILED, "could not build the "
		    "request: %s", rc_str(rc));
		return PROVIDER_DONE;
	}
	http_setopts(st, d, easy);
	curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(easy, CURLOPT_USERNAME, st->account_sid);
	curl_easy_setopt(easy, CURLOPT_PASSWORD, st->auth_token);
	return PROVIDER_STARTED;
}

/* the "sid" of a created Message resource */
static void
twilio_sid(const struct delivery *d, char *out, size_t outlen)
{
	struct json_tokener *tok;
	struct json_object *root = NULL;
	const char *sid;
	size_t len;

	out[0] = '\0';
	tok = json_tokener_new_ex(JSONV_MAX_DEPTH);
	if (tok == NULL || d->resp.len == 0) {
		if (tok != NULL)
			json_tokener_free(tok);
		return;
	}
	root = json_tokener_parse_ex(tok, d->resp.data, (int)d->resp.len);
	json_tokener_free(tok);
	if (root != NULL && json_object_is_type(root, json_type_object) &&
	    jsonv_string(root, "sid", &sid, &len) == JSONV_OK)
		provider_scrub(sid, NULL, 0, out, outlen);
	json_object_put(root);
}

static void
twilio_finish(void *state, struct delivery *d, CURL *easy, CURLcode cc,
    struct provider_result *res)
{
	(void)state;
	if (!http_classify(d, easy, cc, "twilio", res))
		return;
	res->outcome = PROVIDER_SENT;
	twilio_sid(d, res->message_id, sizeof(res->message_id));
}

const struct provider provider_twilio = {
	"twilio", twilio_init, twilio_start, twilio_finish, http_fini,
};

/* Webhook: POST url, signed JSON ----------------------------------------- */

static const char *const reserved_headers[] = {"content-type",
    "content-length", "host", "transfer-encoding", "expect",
    "x-otp-signature", NULL};

/* a header name: RFC 9110 token characters, not one we set ourselves */
static int
header_name_ok(const char *name)
{
	const char *p;
	int i;

	if (*name == '\0' || strlen(name) > 100)
		return 0;
	for (p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) &&
		    strchr("!#$%&'*+-.^_`|~", *p) == NULL)
			return 0;
	for (i = 0; reserved_headers[i] != NULL; i++)
		if (strcasecmp(name, reserved_headers[i]) == 0)
			return 0;
	return 1;
}

/* check the "headers" object: string values of one line each */
static int
webhook_headers_check(struct json_object *headers)
{
	struct json_object_iterator it, end;
	const char *v;
	int n = 0;

	if (!json_object_is_type(headers, json_type_object))
		return RC_CONFIG;
	it = json_object_iter_begin(headers);
	end = json_object_iter_end(headers);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		struct json_object *val = json_object_iter_peek_value(&it);

		if (++n > HTTP_HEADERS_MAX ||
		    !header_name_ok(json_object_iter_peek_name(&it)) ||
		    !json_object_is_type(val, json_type_string))
			return RC_CONFIG;
		for (v = json_object_get_string(val); *v != '\0'; v++)
			if ((unsigned char)*v < 0x20 || *v == 0x7f)
				return RC_CONFIG;
	}
	return RC_OK;
}

static int
webhook_init(struct json_object *config, enum channel ch, void **statep,
    struct provider_result *res)
{
	struct http_state *st;
	const char *url = NULL;
	struct json_object *h;
	int rc;

	(void)ch;
	*statep = NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return RC_NOMEM;
	rc = provider_config_string(config, "webhook", "url", 1, &url, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "webhook", "secret", 1,
		    &st->secret, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "webhook", "ca_file", 0,
		    &st->ca_file, res);
	if (rc == RC_OK)
		rc = provider_config_timeout(config, "webhook",
		    &st->timeout_ms, res);
	if (rc == RC_OK)
		rc = http_url(st, url, NULL, "", "webhook", res);
	if (rc == RC_OK && json_object_object_get_ex(config, "headers", &h) &&
	    h != NULL) {
		if (webhook_headers_check(h) != RC_OK) {
			provider_result_set(res, PROVIDER_FAILED, "webhook "
			    "provider config: \"headers\" must map header "
			    "names to one-line strings");
			rc = RC_CONFIG;
		}
		st->headers = h;
	}
	if (rc != RC_OK) {
		free(st);
		return rc;
	}
	*statep = st;
	return RC_OK;
}

static int
webhook_extra_headers(const struct http_state *st, struct delivery *d)
{
	struct json_object_iterator it, end;
	int rc = RC_OK;

	if (st->headers == NULL)
		return RC_OK;
	it = json_object_iter_begin(st->headers);
	end = json_object_iter_end(st->headers);
	for (; rc == RC_OK && !json_object_iter_equal(&it, &end);
	    json_object_iter_next(&it))
		rc = http_header(d, json_object_iter_peek_name(&it),
		    json_object_get_string(json_object_iter_peek_value(&it)));
	return rc;
}

static enum provider_start
webhook_start(void *state, struct delivery *d, CURL *easy,
    struct provider_result *res)
{
	struct http_state *st = state;
	char sig[128];
	int rc;

	rc = provider_http_body(&d->req, d);
	if (rc == RC_OK)
		rc = provider_http_sign(st->secret, strlen(st->secret), d->now,
		    d->req.data, d->req.len, sig, sizeof(sig));
	if (rc == RC_OK)
		rc = http_header(d, "Content-Type", "application/json");
	if (rc == RC_OK)
		rc = http_header(d, "X-OTP-Signature", sig);
	if (rc == RC_OK)
		rc = http_header(d, "Expect", NULL);
	if (rc == RC_OK)
		rc = webhook_extra_headers(st, d);
	if (rc != RC_OK) {
		provider_result_set(res, PROVIDER_FAILED, "could not build the "
		    "request: %s", rc_str(rc));
		return PROVIDER_DONE;
	}
	http_setopts(st, d, easy);
	return PROVIDER_STARTED;
}

static void
webhook_finish(void *state, struct delivery *d, CURL *easy, CURLcode cc,
    struct provider_result *res)
{
	(void)state;
	if (!http_classify(d, easy, cc, "webhook", res))
		return;
	res->outcome = PROVIDER_SENT;
	provider_scrub(d->message_id, NULL, 0, res->message_id,
	    sizeof(res->message_id));
}

const struct provider provider_webhook = {
	"webhook", webhook_init, webhook_start, webhook_finish, http_fini,
};
