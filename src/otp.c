/* otp.c: the generate, validate and health endpoints: authentication order,
 * code issue (random code, HMAC tag, sealed copy for the outbox) and code
 * checks with attempt limits.  SQL lives in store.c, HTTP in http.c. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
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
 * A refused request with a key: 401 (or 503) beats every other answer, so
 * the key is checked first.  Only refusals pay for this look-up; a good
 * request is authenticated by the statement that serves it.
 */
static void
reply_refused(struct app *app, struct request *r,
    const uint8_t key_hash[CRYPTO_TAG_LEN], int err, const char *message,
    const struct verrors *errs)
{
	int64_t client_id;
	int rc;

	rc = store_auth(app->st, key_hash, &client_id);
	if (rc != RC_OK)
		reply_rc(r, rc);
	else
		http_reply_error(r, err, message, errs, NULL);
}

/*
 * The steps every authenticated POST shares: a key must be present, the
 * body must be read whole and parse as a JSON object.  On failure the answer
 * is written and NULL returned; otherwise the caller owns the object.
 */
static struct json_object *
read_json_body(struct app *app, struct request *r,
    uint8_t key_hash[CRYPTO_TAG_LEN])
{
	struct json_object *obj = NULL;
	const char *message;
	int rc;

	if (r->api_key == NULL) {
		http_reply_error(r, RC_UNAUTHORIZED, MSG_KEY, NULL, NULL);
		return NULL;
	}
	crypto_sha256(r->api_key, strlen(r->api_key), key_hash);
	rc = http_read_body(r);
	if (rc == RC_MEDIA_TYPE) {
		message = "Content-Type must be application/json.";
	} else if (rc == RC_TOO_LARGE) {
		message = "Request body is too large.";
	} else if (rc != RC_OK) {
		rc = RC_INVALID;
		message = "Request body does not match its Content-Length.";
	} else if (jsonv_parse(r->body.data ? r->body.data : "", r->body.len,
	    &obj) != RC_OK) {
		rc = RC_INVALID;
		message = MSG_NOT_OBJECT;
	} else {
		return obj;
	}
	reply_refused(app, r, key_hash, rc, message, NULL);
	return NULL;
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

/* the client id last seen for this key hash, or 0 */
static struct otp_client_hint *
client_hint(struct app *app, const uint8_t key_hash[CRYPTO_TAG_LEN])
{
	return &app->hints[key_hash[0] % OTP_CLIENT_CACHE];
}

static int64_t
client_hint_get(struct app *app, const uint8_t key_hash[CRYPTO_TAG_LEN])
{
	struct otp_client_hint *h = client_hint(app, key_hash);

	if (memcmp(h->key_hash, key_hash, CRYPTO_TAG_LEN) != 0)
		return 0;
	return h->client_id;
}

static void
client_hint_set(struct app *app, const uint8_t key_hash[CRYPTO_TAG_LEN],
    int64_t client_id)
{
	struct otp_client_hint *h = client_hint(app, key_hash);

	memcpy(h->key_hash, key_hash, CRYPTO_TAG_LEN);
	h->client_id = client_id;
}

/*
 * Draw a code for c->client_id, tag it and seal it for the outbox; the
 * plaintext is wiped before returning.
 */
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
    const struct generate_req *g, const struct store_issued *done)
{
	struct buf *o = &r->out;
	int e = 0;

	buf_reset(o);
	e |= buf_printf(o, "{\"otpId\":\"%s\",\"destination\":", otp_id);
	e |= buf_json_string(o, g->destination, g->destination_len);
	e |= buf_printf(o, ",\"createdAt\":\"%s\",\"expiresAt\":\"%s\"}",
	    done->created, done->expires);
	if (e != 0)
		reply_rc(r, RC_INTERNAL);
	else
		http_reply(r, 200, NULL, o->data, o->len);
}

/*
 * One round trip in the usual case: the tag and the sealed copy are made
 * for the client this key belonged to last time, and the statement checks
 * that.  When it answers "stale" (first use in this worker, or a changed
 * key), they are made again for the client it names.
 */
static int
issue(struct app *app, const uint8_t key_hash[CRYPTO_TAG_LEN],
    const struct generate_req *g, char *otp_id, struct store_issued *done)
{
	uint8_t tag[CRYPTO_TAG_LEN];
	uint8_t sealed[VALIDATE_LENGTH_MAX + CRYPTO_SEAL_OVERHEAD];
	struct store_code c;
	int rc, tries;

	memset(&c, 0, sizeof(c));
	c.key_hash = key_hash;
	c.client_id = client_hint_get(app, key_hash);
	c.channel = channel_name(g->channel);
	c.provider = g->provider;
	c.template_id = g->template_id;
	c.otp_id = otp_id;
	c.destination = g->destination;
	c.expires_in = g->expires_in;
	for (tries = 0; tries < 2; tries++) {
		rc = crypto_uuid(otp_id);
		if (rc == RC_OK)
			rc = issue_code(app, g, &c, tag, sealed);
		if (rc != RC_OK) {
			log_error("event=issue_failed error=\"%s\"", rc_str(rc));
			return RC_INTERNAL;
		}
		c.notify = clock_mono_ms() - app->notified_ms >=
		    OTP_NOTIFY_INTERVAL_MS;
		rc = store_issue(app->st, &c, done);
		if (rc == RC_OK && done->result == ISSUE_OK && c.notify)
			app->notified_ms = clock_mono_ms();
		if (rc != RC_OK || done->result != ISSUE_STALE)
			break;
		client_hint_set(app, key_hash, done->client_id);
		c.client_id = done->client_id;
	}
	crypto_wipe(sealed, sizeof(sealed));
	return rc;
}

/* answer body again with what the database said of its names */
static void
reply_names(struct request *r, struct json_object *body,
    const struct store_names *names)
{
	struct gen_found found = {names->provider_found,
	    names->template_found};
	struct generate_req g;
	struct verrors errs;

	/* RC_OK cannot happen: names says a name is missing */
	if (validate_generate(body, &found, &g, &errs) == RC_OK ||
	    errs.n == 0)
		reply_rc(r, RC_INTERNAL);
	else
		http_reply_error(r, RC_INVALID, errs.msg[0], &errs, NULL);
}

/*
 * A generate body that failed validation.  Its provider and template are
 * looked up (with the key) so that an unknown one is listed with the other
 * problems, in its place; with neither to look up only the key is checked.
 */
static void
reply_invalid_generate(struct app *app, struct request *r,
    const uint8_t key_hash[CRYPTO_TAG_LEN], struct json_object *body,
    const struct generate_req *g, const struct verrors *errs)
{
	struct store_names names;
	int rc;

	if (g->provider == NULL && g->template_id == NULL) {
		reply_refused(app, r, key_hash, RC_INVALID, errs->msg[0], errs);
		return;
	}
	rc = store_names(app->st, key_hash, channel_name(g->channel),
	    g->provider, g->template_id, &names);
	if (rc != RC_OK) {
		reply_rc(r, rc);
		return;
	}
	reply_names(r, body, &names);
}

void
otp_generate(struct app *app, struct request *r)
{
	char otp_id[CRYPTO_UUID_LEN + 1];
	uint8_t key_hash[CRYPTO_TAG_LEN];
	struct store_issued done;
	struct generate_req g;
	struct verrors errs;
	struct json_object *body;
	int rc;

	body = read_json_body(app, r, key_hash);
	if (body == NULL)
		return;
	if (validate_generate(body, NULL, &g, &errs) != RC_OK) {
		reply_invalid_generate(app, r, key_hash, body, &g, &errs);
		goto out;
	}
	rc = issue(app, key_hash, &g, otp_id, &done);
	if (rc != RC_OK) {
		reply_rc(r, rc);
	} else if (done.result == ISSUE_NOT_FOUND) {
		/* every other check passed: only the names can be listed */
		reply_names(r, body, &done.names);
	} else if (done.result == ISSUE_OK) {
		reply_generated(r, otp_id, &g, &done);
	} else {
		reply_rc(r, RC_INTERNAL);	/* stale twice: a race, rare */
	}
out:
	json_object_put(body);
}

/*
 * The tag of the submitted code under every key of the key file, since the
 * row says which key it was issued under; and their ids as an int[] literal.
 */
static int
candidate_tags(struct app *app, int64_t client_id,
    const struct validate_req *v, uint8_t *tags, char *ids, size_t idslen)
{
	const struct keyring *kr = app->kr;
	size_t used = 0;
	int i, n, rc = RC_OK;

	ids[used++] = '{';
	for (i = 0; i < kr->n && rc == RC_OK; i++) {
		rc = crypto_code_tag(kr->keys[i].mac, client_id, v->otp_id,
		    v->otp, v->otp_len, tags + (size_t)i * CRYPTO_TAG_LEN);
		n = snprintf(ids + used, idslen - used, "%s%d", i ? "," : "",
		    (int)kr->keys[i].id);
		if (n < 0 || (size_t)n >= idslen - used - 1)
			return RC_INTERNAL;
		used += (size_t)n;
	}
	ids[used++] = '}';
	ids[used] = '\0';
	return rc;
}

/* one round trip in the usual case; see issue() for "stale" */
static int
verify(struct app *app, const uint8_t key_hash[CRYPTO_TAG_LEN],
    const struct validate_req *v, struct store_verified *out)
{
	uint8_t tags[KEYRING_MAX * CRYPTO_TAG_LEN];
	char ids[KEYRING_MAX * 12 + 3];
	int64_t client_id = client_hint_get(app, key_hash);
	size_t tags_len = (size_t)app->kr->n * CRYPTO_TAG_LEN;
	int rc, tries;

	for (tries = 0; tries < 2; tries++) {
		rc = candidate_tags(app, client_id, v, tags, ids, sizeof(ids));
		if (rc != RC_OK)
			break;
		rc = store_verify(app->st, key_hash, client_id, v->otp_id, ids,
		    tags, tags_len, out);
		if (rc != RC_OK || out->verdict != VERDICT_STALE)
			break;
		client_hint_set(app, key_hash, out->client_id);
		client_id = out->client_id;
	}
	crypto_wipe(tags, sizeof(tags));
	return rc;
}

void
otp_validate(struct app *app, struct request *r)
{
	static const char ok[] =
	    "{\"success\":true,\"message\":\"OTP validated successfully.\"}";
	uint8_t key_hash[CRYPTO_TAG_LEN];
	struct store_verified out;
	struct validate_req v;
	struct verrors errs;
	struct json_object *body;
	char retry[48];
	int rc;

	body = read_json_body(app, r, key_hash);
	if (body == NULL)
		return;
	if (validate_validate(body, &v, &errs) != RC_OK) {
		reply_refused(app, r, key_hash, RC_INVALID, errs.msg[0],
		    &errs);
		goto out;
	}
	if (!v.otp_id_wellformed) {
		reply_refused(app, r, key_hash, RC_INVALID, MSG_INVALID_OTP,
		    NULL);
		goto out;
	}
	rc = verify(app, key_hash, &v, &out);
	if (rc != RC_OK) {
		reply_rc(r, rc);
	} else if (out.verdict == VERDICT_OK) {
		http_reply(r, 200, NULL, ok, sizeof(ok) - 1);
	} else if (out.verdict == VERDICT_LOCKED) {
		snprintf(retry, sizeof(retry), "Retry-After: %d",
		    out.retry_after);
		http_reply_error(r, RC_LOCKED, MSG_LOCKED, NULL, retry);
	} else if (out.verdict == VERDICT_STALE) {
		reply_rc(r, RC_INTERNAL);	/* stale twice: a race, rare */
	} else {
		http_reply_error(r, RC_INVALID, MSG_INVALID_OTP, NULL, NULL);
	}
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
