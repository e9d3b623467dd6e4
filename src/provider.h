/* provider.h: the delivery drivers, one const table of function pointers
 * per provider kind (smtp, sendgrid, twilio, webhook, file), the delivery
 * they work on, and the outcome they report.  The sender (sender.c) owns the
 * libcurl multi handle; a driver only configures one easy handle per
 * delivery and classifies its result. */
#ifndef OTPD_PROVIDER_H
#define OTPD_PROVIDER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "buf.h"
#include "rc.h"
#include "validate.h"

struct json_object;

#define PROVIDER_ERROR_MAX 300
#define PROVIDER_MSGID_MAX 200
#define PROVIDER_REQ_MAX (96 * 1024)	/* request body or mail message */
#define PROVIDER_RESP_MAX (16 * 1024)	/* response body kept for parsing */

enum provider_outcome {
	PROVIDER_SENT = 0,	/* the provider took the message */
	PROVIDER_RETRY,		/* transient: try again later */
	PROVIDER_FAILED,	/* permanent: never try again */
};

/* What a driver reports.  error is plain text for otp.outbox.last_error:
 * never a code or a credential. */
struct provider_result {
	enum provider_outcome outcome;
	int retry_after;	/* seconds the provider asked us to wait, or -1 */
	char message_id[PROVIDER_MSGID_MAX];
	char error[PROVIDER_ERROR_MAX];
};

/*
 * One delivery.  The sender fills the inputs; the driver builds its request
 * in the transfer state, which the sender wipes and releases when the
 * transfer is over (the request holds the code).
 */
struct delivery {
	/* inputs */
	const char *id;			/* job id, which is the otpId */
	enum channel channel;
	const char *destination;	/* already checked for the channel */
	const char *code;		/* plaintext; valid until finish() ends */
	size_t code_len;
	const char *subject;		/* rendered, one line; "" for sms */
	const char *text;		/* rendered message */
	const char *expires_at;		/* RFC 3339 UTC, as generate answered */
	time_t now;			/* wall clock for Date and signatures */
	/* transfer state */
	int64_t timeout_ms;		/* 0: the sender's default */
	struct buf req;			/* body or message sent */
	size_t req_off;			/* upload position (SMTP) */
	struct buf resp;		/* response body, capped */
	struct curl_slist *headers;
	struct curl_slist *rcpt;
	char retry_after[64];		/* Retry-After header, if any */
	char rate_reset[64];		/* X-RateLimit-Reset, if any */
	char message_id[PROVIDER_MSGID_MAX];	/* X-Message-Id, if any */
	char curl_error[CURL_ERROR_SIZE];
	void *state;			/* the driver's parsed config */
};

/* start() answers one of these. */
enum provider_start {
	PROVIDER_STARTED = 0,	/* easy is ready to be added to the multi */
	PROVIDER_DONE,		/* finished without a transfer: see res */
};

/*
 * A driver.  All functions get the provider's config as stored in
 * otp.providers (a JSON object).
 *  init:   parse config into *state (freed by fini); RC_CONFIG with a
 *          message in res->error when it is unusable.
 *  start:  build the request for d on easy (a fresh or reset handle with
 *          the sender's callbacks already set), or deliver at once and fill
 *          res (the file driver does); never keeps a pointer to d->code
 *          beyond finish().
 *  finish: classify the finished transfer (cc, and the response in d).
 *  fini:   release and wipe the state.
 */
struct provider {
	const char *kind;
	int (*init)(struct json_object *config, enum channel ch, void **state,
	    struct provider_result *res);
	enum provider_start (*start)(void *state, struct delivery *d,
	    CURL *easy, struct provider_result *res);
	void (*finish)(void *state, struct delivery *d, CURL *easy,
	    CURLcode cc, struct provider_result *res);
	void (*fini)(void *state);
};

extern const struct provider provider_smtp;
extern const struct provider provider_sendgrid;
extern const struct provider provider_twilio;
extern const struct provider provider_webhook;
extern const struct provider provider_file;

/* provider_find: the driver for kind, or NULL. */
const struct provider *provider_find(const char *kind);

/* provider_config_string: config[key] as a string in *val, borrowed from
 * config.  Absent (or null): *val = NULL and RC_OK, unless required.  A
 * value of another type, empty, or holding a control character is
 * RC_CONFIG; res->error names the key (never its value). */
int provider_config_string(struct json_object *config, const char *kind,
    const char *key, int required, const char **val,
    struct provider_result *res) WARN_UNUSED;

/* provider_config_timeout: config "timeout_ms" (100..600000) in *ms, or 0
 * when absent; RC_CONFIG otherwise. */
int provider_config_timeout(struct json_object *config, const char *kind,
    int64_t *ms, struct provider_result *res) WARN_UNUSED;

/* provider_result_set: fill res with outcome and a formatted error. */
void provider_result_set(struct provider_result *res,
    enum provider_outcome outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* provider_address: split a "from" setting, either "addr@example.com" or
 * "Display Name <addr@example.com>", into its address and display name
 * (either may be written to buffers of addrlen / namelen bytes).  RC_INVALID
 * unless the address passes validate_email() and neither part holds a
 * control character. */
int provider_address(const char *from, char *addr, size_t addrlen,
    char *name, size_t namelen) WARN_UNUSED;

/* provider_smtp_encode_header: append the value of an unstructured header
 * (Subject, a display name) to out, continuing the line out ends with (the
 * field name): as it is when it is printable ASCII that fits on that line,
 * else as RFC 2047 "=?UTF-8?B?...?=" encoded-words of at most 75
 * characters, folded with CRLF SP so that no line exceeds 78 characters and
 * no UTF-8 character is split between words.  value must be one line of
 * UTF-8. */
int provider_smtp_encode_header(struct buf *out, const char *value)
    WARN_UNUSED;

/* The inputs of one mail message. */
struct smtp_message {
	const char *from_addr;	/* envelope and header address */
	const char *from_name;	/* display name, may be "" */
	const char *to;		/* the destination address */
	const char *subject;	/* one line of UTF-8 */
	const char *text;	/* UTF-8 body, LF or CRLF line ends */
	const char *message_id;	/* without the angle brackets */
	time_t date;
};

/* provider_smtp_message: append an RFC 5322 message to out: Date, From, To,
 * Subject, Message-ID, MIME-Version, Content-Type text/plain; charset=UTF-8,
 * Content-Transfer-Encoding (7bit when the body is ASCII with short lines,
 * else quoted-printable), Auto-Submitted, then the body with CRLF line ends.
 * RC_INVALID if an address or the subject holds CR, LF or another control
 * character (nothing is appended then). */
int provider_smtp_message(struct buf *out, const struct smtp_message *m)
    WARN_UNUSED;

/* provider_http_body: append the JSON object the webhook and file drivers
 * send: {"id","otpId","channel","destination","subject" (email only),
 * "text","code","expiresAt"}. */
int provider_http_body(struct buf *out, const struct delivery *d)
    WARN_UNUSED;

/* provider_http_sign: write the X-OTP-Signature value for body sent at t,
 * "t=<t>,v1=<hex HMAC-SHA-256(secret, "<t>.<body>")>", into out (outlen
 * bytes, at least 100). */
int provider_http_sign(const char *secret, size_t secret_len, time_t t,
    const char *body, size_t body_len, char *out, size_t outlen)
    WARN_UNUSED;

/* provider_http_retry_after: seconds a Retry-After value (delta-seconds or
 * an HTTP-date) asks for, at most max; -1 when absent or unparsable. */
int provider_http_retry_after(const char *value, time_t now, int max);

/* provider_http_rate_reset: seconds until the Unix time in an
 * X-RateLimit-Reset value (SendGrid's 429 carries it instead of
 * Retry-After), 0 if it has passed, at most max; -1 when absent or
 * unparsable. */
int provider_http_rate_reset(const char *value, time_t now, int max);

/* provider_scrub: copy s into out (outlen bytes) as printable ASCII
 * (other bytes become '?') with every occurrence of the code (code_len
 * bytes, may be 0) replaced by "***". */
void provider_scrub(const char *s, const char *code, size_t code_len,
    char *out, size_t outlen);

#endif
