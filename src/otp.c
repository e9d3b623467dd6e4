/* otp.c: the generate, validate and health endpoints: authentication order,
 * code issue (random code, HMAC tag, sealed copy for the outbox) and code
 * checks with attempt limits.  SQL lives in store.c, HTTP in http.c. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "crypto.h"
#include "http.h"
#include "jsonv.h"
#include "keyring.h"
#include "log.h"
#include "otp.h"
#include "store.h"
#include "validate.h"

#define MSG_KEY "Invalid or missing API key."
#define MSG_UNAVAILABLE "Service temporarily unavailable."
#define MSG_INTERNAL "Internal server error."
#define MSG_NOT_OBJECT "Request body must be a JSON object."
#define MSG_INVALID_OTP "Invalid OTP or expired."
#define MSG_LOCKED "Too many failed attempts. Try again later."
#define MSG_PROVIDER "Provider not found for this client and channel."
#define MSG_TEMPLATE "Template not found for this client and channel."

/* answer a failure from below (store, crypto) that is not the client's */
static void
reply_rc(struct request *r, int rc)
{
	switch (rc) {
	case RC_UNAUTHORIZED:
		http_reply_error(r, rc, MSG_KEY, NULL, NULL);
		break;
	case RC_UNAVAILABLE:
		http_reply_error(r, rc, MSG_UNAVAILABLE, NULL, NULL);
		break;
	default:
		http_reply_error(r, RC_INTERNAL, MSG_INTERNAL, NULL, NULL);
		break;
	}
}

/*
 * The steps every authenticated POST shares: a key must be present, the
 * body must be read whole and parse as a JSON object.  On failure the answer
 * is written and NULL returned; otherwise the caller owns the object.
 */
static struct json_object *
read_json_body(struct request *r, uint8_t key_hash[CRYPTO_TAG_LEN])
{
	struct json_object *obj = NULL;
	int rc;

	if (r->api_key == NULL) {
		http_reply_error(r, RC_UNAUTHORIZED, MSG_KEY, NULL, NULL);
		return NULL;
	}
	crypto_sha256(r->api_key, strlen(r->api_key), key_hash);
	rc = http_read_body(r);
	if (rc == RC_MEDIA_TYPE) {
		http_reply_error(r, rc, "Content-Type must be application/json.",
		    NULL, NULL);
		return NULL;
	}
	if (rc == RC_TOO_LARGE) {
		http_reply_error(r, rc, "Request body is too large.", NULL,
		    NULL);
		return NULL;
	}
	if (rc != RC_OK) {
		http_reply_error(r, RC_INVALID,
		    "Request body does not match its Content-Length.", NULL,
		    NULL);
		return NULL;
	}
	if (jsonv_parse(r->body.data ? r->body.data : "", r->body.len, &obj) !=
	    RC_OK) {
		http_reply_error(r, RC_INVALID, MSG_NOT_OBJECT, NULL, NULL);
		return NULL;
	}
	return obj;
}

/* a body that failed validation: 401 beats 400 for an unknown key */
static void
reply_invalid(struct app *app, struct request *r,
    const uint8_t key_hash[CRYPTO_TAG_LEN], const char *message,
    const struct verrors *errs)
{
	int64_t client_id;
	int rc;

	rc = store_auth(app->st, key_hash, &client_id);
	if (rc != RC_OK)
		reply_rc(r, rc);
	else
		http_reply_error(r, RC_INVALID, message, errs, NULL);
}

size_t
otp_outbox_aad(char *out, size_t outlen, const char *otp_id,
    int64_t client_id, const char *channel, const char *destination)
{
	int n;

	n = snprintf(out, outlen, "otpd/outbox/v1\n%s\n%lld\n%s\n%s", otp_id,
	    (long long)client_id, channel, destination);
	if (n < 0 || (size_t)n >= outlen)
		return 0;
	return (size_t)n;
}

/* draw the code, tag it and seal it for the outbox; the code is wiped */
static int
issue_code(struct app *app, const struct generate_req *g,
    struct store_code *c, uint8_t *tag, uint8_t *sealed)
{
	const struct keyring_key *k = keyring_current(app->kr);
	char code[VALIDATE_LENGTH_MAX + 1], aad[512];
	size_t aadlen;
	int rc;

	if (k == NULL)
		return RC_CONFIG;
	aadlen = otp_outbox_aad(aad, sizeof(aad), c->otp_id, c->client_id,
	    c->channel, c->destination);
	if (aadlen == 0)
		return RC_INTERNAL;
	rc = crypto_code(code, (size_t)g->length, g->type == OTP_NUMERIC ?
	    CRYPTO_NUMERIC : CRYPTO_ALPHANUMERIC);
	if (rc == RC_OK)
		rc = crypto_code_tag(k->mac, c->client_id, c->otp_id, code,
		    (size_t)g->length, tag);
	if (rc == RC_OK)
		rc = crypto_seal(k->enc, aad, aadlen, code, (size_t)g->length,
		    sealed);
	crypto_wipe(code, sizeof(code));
	c->key_id = k->id;
	c->tag = tag;
	c->sealed = sealed;
	c->sealed_len = (size_t)g->length + CRYPTO_SEAL_OVERHEAD;
	return rc;
}

static void
reply_generated(struct request *r, const char *otp_id,
    const struct generate_req *g, const char *created, const char *expires)
{
	struct buf *o = &r->out;
	int e = 0;

	buf_reset(o);
	e |= buf_printf(o, "{\"otpId\":\"%s\",\"destination\":", otp_id);
	e |= buf_json_string(o, g->destination, g->destination_len);
	e |= buf_printf(o, ",\"createdAt\":\"%s\",\"expiresAt\":\"%s\"}",
	    created, expires);
	if (e != 0)
		reply_rc(r, RC_INTERNAL);
	else
		http_reply(r, 200, NULL, o->data, o->len);
}

void
otp_generate(struct app *app, struct request *r)
{
	uint8_t key_hash[CRYPTO_TAG_LEN], tag[CRYPTO_TAG_LEN];
	uint8_t sealed[VALIDATE_LENGTH_MAX + CRYPTO_SEAL_OVERHEAD];
	char otp_id[CRYPTO_UUID_LEN + 1];
	char created[STORE_TIME_MAX], expires[STORE_TIME_MAX];
	struct store_issue_ctx ctx;
	struct store_code c;
	struct generate_req g;
	struct verrors errs;
	struct json_object *body;
	int rc;

	body = read_json_body(r, key_hash);
	if (body == NULL)
		return;
	if (validate_generate(body, &g, &errs) != RC_OK) {
		reply_invalid(app, r, key_hash, errs.msg[0], &errs);
		goto out;
	}
	rc = store_issue_lookup(app->st, key_hash, channel_name(g.channel),
	    g.provider, g.template_id, &ctx);
	if (rc != RC_OK) {
		reply_rc(r, rc);
		goto out;
	}
	if (ctx.provider_id == 0 || (g.template_id != NULL &&
	    !ctx.template_found)) {
		const char *msg = ctx.provider_id == 0 ? MSG_PROVIDER :
		    MSG_TEMPLATE;

		http_reply_error(r, RC_INVALID, msg, NULL, NULL);
		goto out;
	}
	rc = crypto_uuid(otp_id);
	memset(&c, 0, sizeof(c));
	c.otp_id = otp_id;
	c.client_id = ctx.client_id;
	c.provider_id = ctx.provider_id;
	c.channel = channel_name(g.channel);
	c.destination = g.destination;
	c.expires_in = g.expires_in;
	c.max_attempts = ctx.max_attempts;
	c.lock_seconds = ctx.lock_seconds;
	c.template_id = ctx.template_found ? ctx.template_id : NULL;
	if (rc == RC_OK)
		rc = issue_code(app, &g, &c, tag, sealed);
	if (rc != RC_OK) {
		log_error("event=issue_failed error=\"%s\"", rc_str(rc));
		reply_rc(r, RC_INTERNAL);
		goto out;
	}
	rc = store_issue_insert(app->st, &c, created, expires);
	if (rc != RC_OK)
		reply_rc(r, rc);
	else
		reply_generated(r, otp_id, &g, created, expires);
out:
	json_object_put(body);
}

/* compare the submitted code with the stored tag, in constant time */
static bool
code_matches(struct app *app, const struct store_code_state *s,
    const struct validate_req *v)
{
	const struct keyring_key *k = keyring_find(app->kr, s->key_id);
	uint8_t tag[CRYPTO_TAG_LEN];
	bool match;

	if (k == NULL) {
		log_warn("event=unknown_key key_id=%d", (int)s->key_id);
		return false;
	}
	if (crypto_code_tag(k->mac, s->client_id, v->otp_id, v->otp,
	    v->otp_len, tag) != RC_OK)
		return false;
	match = crypto_equal(tag, s->tag, CRYPTO_TAG_LEN) == 1;
	crypto_wipe(tag, sizeof(tag));
	return match;
}

/* a code that cannot be compared now: note why, then answer */
static void
reply_not_comparable(struct app *app, struct request *r,
    const struct validate_req *v, const struct store_code_state *s)
{
	char retry[48];
	const char *outcome = s->consumed ? "consumed" :
	    s->expired ? "expired" : "locked";
	int rc;

	rc = store_attempt_note(app->st, v->otp_id, outcome);
	if (rc != RC_OK) {
		reply_rc(r, rc);
		return;
	}
	if (!s->locked || s->consumed || s->expired) {
		http_reply_error(r, RC_INVALID, MSG_INVALID_OTP, NULL, NULL);
		return;
	}
	snprintf(retry, sizeof(retry), "Retry-After: %d", s->retry_after);
	http_reply_error(r, RC_LOCKED, MSG_LOCKED, NULL, retry);
}

void
otp_validate(struct app *app, struct request *r)
{
	static const char ok[] =
	    "{\"success\":true,\"message\":\"OTP validated successfully.\"}";
	uint8_t key_hash[CRYPTO_TAG_LEN];
	struct store_code_state s;
	struct validate_req v;
	struct verrors errs;
	struct json_object *body;
	bool match, applied;
	int rc;

	body = read_json_body(r, key_hash);
	if (body == NULL)
		return;
	if (validate_validate(body, &v, &errs) != RC_OK) {
		reply_invalid(app, r, key_hash, errs.msg[0], &errs);
		goto out;
	}
	if (!v.otp_id_wellformed) {
		reply_invalid(app, r, key_hash, MSG_INVALID_OTP, NULL);
		goto out;
	}
	rc = store_verify_lookup(app->st, key_hash, v.otp_id, &s);
	if (rc != RC_OK) {
		reply_rc(r, rc);
		goto out;
	}
	if (!s.found) {
		http_reply_error(r, RC_INVALID, MSG_INVALID_OTP, NULL, NULL);
		goto out;
	}
	if (s.consumed || s.expired || s.locked) {
		reply_not_comparable(app, r, &v, &s);
		goto out;
	}
	match = code_matches(app, &s, &v);
	rc = store_verify_finish(app->st, v.otp_id, s.client_id, match,
	    &applied);
	if (rc != RC_OK)
		reply_rc(r, rc);
	else if (match && applied)
		http_reply(r, 200, NULL, ok, sizeof(ok) - 1);
	else
		http_reply_error(r, RC_INVALID, MSG_INVALID_OTP, NULL, NULL);
out:
	json_object_put(body);
}

void
otp_health(struct app *app, struct request *r)
{
	static const char ok[] = "{\"status\":\"ok\"}";
	int rc;

	rc = store_ping(app->st);
	if (rc != RC_OK)
		reply_rc(r, RC_UNAVAILABLE);
	else
		http_reply(r, 200, NULL, ok, sizeof(ok) - 1);
}
