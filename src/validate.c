/* validate.c: pure checks of the generate and validate bodies (presence,
 * JSON types, email / E.164 / UUID formats, ranges) that produce the exact
 * messages of the Compacto OTP contract, in its order.  No I/O. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jsonv.h"
#include "validate.h"

#define MSG_CHANNEL \
	"OTP channel is required and must be either 'Email' or 'Sms'."
#define MSG_PROVIDER_REQUIRED	"Provider is required."
#define MSG_PROVIDER_STRING	"Provider must be a string."
#define MSG_DEST_REQUIRED \
	"Destination (email or phone number) is required."
#define MSG_DEST_STRING		"Destination must be a string."
#define MSG_TYPE_REQUIRED	"OTP type is required."
#define MSG_TYPE_STRING		"OTP type must be a string."
#define MSG_LENGTH_REQUIRED	"OTP length is required."
#define MSG_LENGTH_INT		"OTP length must be an integer."
#define MSG_EXPIRES_REQUIRED	"ExpiresInSeconds is required."
#define MSG_EXPIRES_INT		"ExpiresInSeconds must be an integer."
#define MSG_TEMPLATE_STRING	"TemplateId must be a string."
#define MSG_EMAIL \
	"Invalid email format. It must be like name@example.com."
#define MSG_PHONE \
	"Invalid phone number format. Must start with country code"
#define MSG_TYPE_VALUE \
	"OTP type must be either 'Numeric' or 'Alphanumeric'."
#define MSG_LENGTH_RANGE	"OTP length must be between 4 and 12."
#define MSG_EXPIRES_POSITIVE	"ExpiresInSeconds must be greater than zero."
#define MSG_TEMPLATE_LENGTH \
	"TemplateId must be between 1 and 200 characters."
#define MSG_PROVIDER_UNKNOWN \
	"Provider not found for this client and channel."
#define MSG_TEMPLATE_UNKNOWN \
	"Template not found for this client and channel."
#define MSG_OTPID_REQUIRED	"OtpId is required."
#define MSG_OTPID_STRING	"OtpId must be a string."
#define MSG_OTP_REQUIRED	"Otp is required."
#define MSG_OTP_STRING		"Otp must be a string."

#define EMAIL_LOCAL_MAX 64
#define EMAIL_LABEL_MAX 63
#define E164_DIGITS_MIN 7
#define E164_DIGITS_MAX 15
#define UUID_LEN 36

/* Set once at start-up by validate_set_expires_max(); workers only read. */
static int expires_max = 86400;
static char expires_max_msg[64] = "ExpiresInSeconds must be at most 86400.";

/* What phase 1 learnt about a generate body, for phase 2 and the result. */
struct gen_state {
	struct generate_req r;
	bool channel_ok;
	bool provider_ok;	/* a string that may name a provider */
	bool provider_long;	/* a string too long to name one */
	bool dest_ok;
	bool type_ok;
	bool template_ok;
	enum jsonv_found length_f;
	enum jsonv_found expires_f;
	const char *type_s;
	size_t type_len;
	size_t template_len;
	int64_t length;
	int64_t expires;
};

/* verrors_add: keep n equal to the number of messages stored, so callers
 * may walk msg[0 .. n); the bodies checked here raise at most seven. */
static void
verrors_add(struct verrors *errs, const char *msg)
{
	if (errs->n < VERRORS_MAX)
		errs->msg[errs->n++] = msg;
}

static char
ascii_lower(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (char)(c - 'A' + 'a');
	return c;
}

static bool
ascii_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
ascii_alnum(char c)
{
	c = ascii_lower(c);
	return ascii_digit(c) || (c >= 'a' && c <= 'z');
}

static bool
ascii_xdigit(char c)
{
	c = ascii_lower(c);
	return ascii_digit(c) || (c >= 'a' && c <= 'f');
}

/* ascii_ieq: s[0 .. len) equals the lower-case literal lit, in any case;
 * only ASCII letters fold, so no locale can widen the match. */
static bool
ascii_ieq(const char *s, size_t len, const char *lit)
{
	size_t i;

	if (strlen(lit) != len)
		return false;
	for (i = 0; i < len; i++)
		if (ascii_lower(s[i]) != lit[i])
			return false;
	return true;
}

static bool
blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* utf8_chars: code points in a string jsonv_string() found valid UTF-8;
 * PostgreSQL's length() counts the same way. */
static size_t
utf8_chars(const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

/* string_field: a required string; empty or all blank counts as missing
 * (as .NET's [Required] does), a U+0000 inside as the wrong type. */
static bool
string_field(struct json_object *body, const char *key, const char **s,
    size_t *len, const char *missing, const char *wrong, struct verrors *errs)
{
	switch (jsonv_string(body, key, s, len)) {
	case JSONV_OK:
		if (!blank(*s, *len))
			return true;
		verrors_add(errs, missing);
		return false;
	case JSONV_MISSING:
		verrors_add(errs, missing);
		return false;
	case JSONV_WRONG_TYPE:
	case JSONV_BAD_VALUE:
		break;
	}
	verrors_add(errs, wrong);
	return false;
}

/* int_field: a required integer; a value beyond int64 comes back as
 * JSONV_BAD_VALUE, clamped, and is judged by the range check of phase 2. */
static enum jsonv_found
int_field(struct json_object *body, const char *key, int64_t *v,
    const char *missing, const char *wrong, struct verrors *errs)
{
	enum jsonv_found f;

	f = jsonv_int(body, key, INT64_MIN, INT64_MAX, v);
	if (f == JSONV_MISSING)
		verrors_add(errs, missing);
	else if (f == JSONV_WRONG_TYPE)
		verrors_add(errs, wrong);
	return f;
}

/* gen_channel: an unknown channel value gets the same message as a missing
 * one, so it is reported with the presence problems. */
static void
gen_channel(struct json_object *body, struct gen_state *st,
    struct verrors *errs)
{
	const char *s;
	size_t len;

	st->channel_ok = false;
	if (jsonv_string(body, "channel", &s, &len) == JSONV_OK) {
		if (ascii_ieq(s, len, "email")) {
			st->r.channel = CHANNEL_EMAIL;
			st->channel_ok = true;
		} else if (ascii_ieq(s, len, "sms")) {
			st->r.channel = CHANNEL_SMS;
			st->channel_ok = true;
		}
	}
	if (!st->channel_ok)
		verrors_add(errs, MSG_CHANNEL);
}

/* gen_provider: a name longer than any stored one was still given, so it
 * is not "required" but not found, reported in phase 2. */
static void
gen_provider(struct json_object *body, struct gen_state *st,
    struct verrors *errs)
{
	size_t len;

	st->provider_ok = false;
	st->provider_long = false;
	if (!string_field(body, "provider", &st->r.provider, &len,
	    MSG_PROVIDER_REQUIRED, MSG_PROVIDER_STRING, errs))
		return;
	if (utf8_chars(st->r.provider, len) > VALIDATE_NAME_MAX)
		st->provider_long = true;
	else
		st->provider_ok = true;
}

static void
gen_template(struct json_object *body, struct gen_state *st,
    struct verrors *errs)
{
	enum jsonv_found f;

	st->template_ok = false;
	f = jsonv_string(body, "templateId", &st->r.template_id,
	    &st->template_len);
	if (f == JSONV_OK)
		st->template_ok = true;
	else if (f != JSONV_MISSING)
		verrors_add(errs, MSG_TEMPLATE_STRING);
}

/* gen_presence: phase 1, missing and wrong-typed fields in field order. */
static void
gen_presence(struct json_object *body, struct gen_state *st,
    struct verrors *errs)
{
	gen_channel(body, st, errs);
	gen_provider(body, st, errs);
	st->dest_ok = string_field(body, "destination", &st->r.destination,
	    &st->r.destination_len, MSG_DEST_REQUIRED, MSG_DEST_STRING, errs);
	st->type_ok = string_field(body, "type", &st->type_s, &st->type_len,
	    MSG_TYPE_REQUIRED, MSG_TYPE_STRING, errs);
	st->length_f = int_field(body, "length", &st->length,
	    MSG_LENGTH_REQUIRED, MSG_LENGTH_INT, errs);
	st->expires_f = int_field(body, "expiresInSeconds", &st->expires,
	    MSG_EXPIRES_REQUIRED, MSG_EXPIRES_INT, errs);
	gen_template(body, st, errs);
}

static void
gen_destination(struct gen_state *st, struct verrors *errs)
{
	const char *d = st->r.destination;
	size_t len = st->r.destination_len;

	if (!st->channel_ok || !st->dest_ok)
		return;
	if (st->r.channel == CHANNEL_EMAIL && !validate_email(d, len))
		verrors_add(errs, MSG_EMAIL);
	else if (st->r.channel == CHANNEL_SMS && !validate_e164(d, len))
		verrors_add(errs, MSG_PHONE);
}

/* gen_template_named: a templateId that may name a stored template */
static bool
gen_template_named(const struct gen_state *st)
{
	return st->template_ok && st->template_len > 0 &&
	    utf8_chars(st->r.template_id, st->template_len) <=
	    VALIDATE_NAME_MAX;
}

/*
 * gen_names: between the formats and the ranges, as in the seed's table.
 * Only a valid channel can be looked up; a provider too long to be stored
 * needs no look-up to be unknown.
 */
static void
gen_names(const struct gen_state *st, const struct gen_found *found,
    struct verrors *errs)
{
	if (!st->channel_ok)
		return;
	if (st->provider_long ||
	    (found != NULL && st->provider_ok && !found->provider))
		verrors_add(errs, MSG_PROVIDER_UNKNOWN);
	if (found != NULL && gen_template_named(st) && !found->template_id)
		verrors_add(errs, MSG_TEMPLATE_UNKNOWN);
}

/*
 * gen_ranges: phase 2, formats, names and ranges in field order.  An
 * integer beyond int64 comes back from jsonv_int() clamped, so its sign
 * still picks the message.
 */
static void
gen_ranges(struct gen_state *st, const struct gen_found *found,
    struct verrors *errs)
{
	bool length_set, expires_set;

	gen_destination(st, errs);
	if (st->type_ok) {
		if (ascii_ieq(st->type_s, st->type_len, "numeric"))
			st->r.type = OTP_NUMERIC;
		else if (ascii_ieq(st->type_s, st->type_len, "alphanumeric"))
			st->r.type = OTP_ALPHANUMERIC;
		else
			verrors_add(errs, MSG_TYPE_VALUE);
	}
	gen_names(st, found, errs);
	length_set = st->length_f == JSONV_OK ||
	    st->length_f == JSONV_BAD_VALUE;
	expires_set = st->expires_f == JSONV_OK ||
	    st->expires_f == JSONV_BAD_VALUE;
	if (length_set && (st->length < VALIDATE_LENGTH_MIN ||
	    st->length > VALIDATE_LENGTH_MAX))
		verrors_add(errs, MSG_LENGTH_RANGE);
	if (expires_set && st->expires <= 0)
		verrors_add(errs, MSG_EXPIRES_POSITIVE);
	else if (expires_set && st->expires > expires_max)
		verrors_add(errs, expires_max_msg);
	if (st->template_ok && !gen_template_named(st))
		verrors_add(errs, MSG_TEMPLATE_LENGTH);
}

const char *
channel_name(enum channel c)
{
	return c == CHANNEL_SMS ? "sms" : "email";
}

int
validate_generate(struct json_object *body, const struct gen_found *found,
    struct generate_req *req, struct verrors *errs)
{
	struct gen_state st;

	memset(req, 0, sizeof(*req));
	memset(errs, 0, sizeof(*errs));
	memset(&st, 0, sizeof(st));
	gen_presence(body, &st, errs);
	gen_ranges(&st, found, errs);
	if (errs->n > 0) {
		/* what the caller may look up to have it reported */
		if (st.channel_ok) {
			req->channel = st.r.channel;
			if (st.provider_ok)
				req->provider = st.r.provider;
			if (gen_template_named(&st))
				req->template_id = st.r.template_id;
		}
		return RC_INVALID;
	}
	st.r.length = (int)st.length;
	st.r.expires_in = (int)st.expires;
	if (!st.template_ok)
		st.r.template_id = NULL;
	*req = st.r;
	return RC_OK;
}

/* validate_set_expires_max: a value below 1 would refuse every request, so
 * it is raised to 1. */
void
validate_set_expires_max(int seconds)
{
	if (seconds < 1)
		seconds = 1;
	expires_max = seconds;
	snprintf(expires_max_msg, sizeof(expires_max_msg),
	    "ExpiresInSeconds must be at most %d.", seconds);
}

int
validate_validate(struct json_object *body, struct validate_req *req,
    struct verrors *errs)
{
	struct validate_req r;
	const char *id = NULL;
	size_t id_len = 0, i;
	bool id_ok, uuid_ok;

	memset(req, 0, sizeof(*req));
	memset(errs, 0, sizeof(*errs));
	memset(&r, 0, sizeof(r));
	id_ok = string_field(body, "otpId", &id, &id_len, MSG_OTPID_REQUIRED,
	    MSG_OTPID_STRING, errs);
	if (!string_field(body, "otp", &r.otp, &r.otp_len, MSG_OTP_REQUIRED,
	    MSG_OTP_STRING, errs) || !id_ok)
		return RC_INVALID;
	/* a malformed id never reaches the buffer: otp_id stays "" */
	uuid_ok = validate_uuid(id, id_len);
	if (uuid_ok)
		for (i = 0; i < UUID_LEN; i++)
			r.otp_id_buf[i] = ascii_lower(id[i]);
	r.otp_id_wellformed = uuid_ok && r.otp_len <= VALIDATE_OTP_MAX;
	*req = r;
	req->otp_id = req->otp_id_buf;
	return RC_OK;
}

static bool
email_local_ok(const char *s, size_t len)
{
	size_t i;
	unsigned char c;

	/* dot-atom: no leading, trailing or doubled dot */
	if (len < 1 || len > EMAIL_LOCAL_MAX || s[0] == '.' ||
	    s[len - 1] == '.')
		return false;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
		if (strchr("()<>,;:\\\"[]@", c) != NULL)
			return false;
		if (c == '.' && s[i + 1] == '.')
			return false;
	}
	return true;
}

static bool
email_label_ok(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > EMAIL_LABEL_MAX || s[0] == '-' ||
	    s[len - 1] == '-')
		return false;
	for (i = 0; i < len; i++)
		if (!ascii_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* email_domain_ok: two or more labels; the last one (the TLD) must hold a
 * letter, so "a@1.2.3.4" is not taken for an address. */
static bool
email_domain_ok(const char *s, size_t len)
{
	size_t i, start = 0, tld = 0, labels = 0;

	for (i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (!email_label_ok(s + start, i - start))
			return false;
		labels++;
		tld = start;
		start = i + 1;
	}
	if (labels < 2)
		return false;
	for (i = tld; i < len; i++)
		if (!ascii_digit(s[i]))
			return true;
	return false;
}

bool
validate_email(const char *s, size_t len)
{
	const char *at;
	size_t local;

	if (s == NULL || len < 1 || len > VALIDATE_EMAIL_MAX)
		return false;
	at = memchr(s, '@', len);
	if (at == NULL)
		return false;
	local = (size_t)(at - s);
	if (memchr(at + 1, '@', len - local - 1) != NULL)
		return false;
	return email_local_ok(s, local) &&
	    email_domain_ok(at + 1, len - local - 1);
}

bool
validate_e164(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len < 1 + E164_DIGITS_MIN ||
	    len > 1 + E164_DIGITS_MAX)
		return false;
	if (s[0] != '+' || s[1] == '0')
		return false;
	for (i = 1; i < len; i++)
		if (!ascii_digit(s[i]))
			return false;
	return true;
}

bool
validate_uuid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len != UUID_LEN)
		return false;
	for (i = 0; i < len; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!ascii_xdigit(s[i])) {
			return false;
		}
	}
	return true;
}
