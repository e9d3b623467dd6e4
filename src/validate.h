/* validate.h: pure checks of request bodies (no I/O): field presence and
 * types, email and E.164 formats, ranges.  Produces the exact messages of
 * the Compacto OTP contract, in its order. */
#ifndef OTPD_VALIDATE_H
#define OTPD_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rc.h"

struct json_object;

#define VERRORS_MAX 16
#define VALIDATE_LENGTH_MIN 4
#define VALIDATE_LENGTH_MAX 12
#define VALIDATE_EMAIL_MAX 254
#define VALIDATE_NAME_MAX 200	/* provider and template names */
#define VALIDATE_OTP_MAX 64	/* longest "otp" string worth hashing */

enum channel { CHANNEL_EMAIL = 0, CHANNEL_SMS = 1 };
enum otp_type { OTP_NUMERIC = 0, OTP_ALPHANUMERIC = 1 };

/* Messages are static strings; errors never hold a pointer into the body. */
struct verrors {
	int n;
	const char *msg[VERRORS_MAX];
};

/* A checked generate body.  Strings are borrowed from the json object. */
struct generate_req {
	enum channel channel;
	const char *provider;
	const char *destination;
	size_t destination_len;
	enum otp_type type;
	int length;
	int expires_in;
	const char *template_id;	/* NULL when not given */
};

struct validate_req {
	const char *otp_id;	/* a canonical lower-case UUID when valid */
	const char *otp;
	size_t otp_len;
	bool otp_id_wellformed;	/* false: answer "Invalid OTP or expired." */
	char otp_id_buf[37];
};

/* channel_name: "email" or "sms". */
const char *channel_name(enum channel c);

/* What the database said of a generate body's names for the key's client
 * and the body's channel. */
struct gen_found {
	bool provider;		/* the provider exists */
	bool template_id;	/* the templateId exists (or none was named) */
};

/* validate_generate: check a generate body against the largest
 * expiresInSeconds set by validate_set_expires_max().  Returns RC_OK with
 * *req filled, or RC_INVALID with errs filled: first every missing /
 * wrong-typed field in the order channel, provider, destination, type,
 * length, expiresInSeconds, templateId; then, as in the seed's table, the
 * formats (destination, type), the names (provider, templateId: only with a
 * valid channel) and the ranges (length, expiresInSeconds, templateId).
 * found NULL: the names were not looked up and only a provider too long to
 * exist is reported unknown; otherwise what found says is missing is.
 * On RC_INVALID *req is cleared except for the names worth looking up: with
 * a valid channel, channel is set, and provider / template_id point to a
 * given name of 1 to VALIDATE_NAME_MAX characters (else NULL); the caller
 * looks those up and calls again with found.  The exact texts:
 *   "OTP channel is required and must be either 'Email' or 'Sms'."
 *       (missing, wrong type, or a value other than email/sms in any case)
 *   "Provider is required."
 *   "Destination (email or phone number) is required."
 *   "OTP type is required."
 *   "OTP length is required."
 *   "ExpiresInSeconds is required."
 *   "Invalid email format. It must be like name@example.com."
 *   "Invalid phone number format. Must start with country code"
 *   "OTP type must be either 'Numeric' or 'Alphanumeric'."
 *   "Provider not found for this client and channel."
 *       (also for a provider longer than VALIDATE_NAME_MAX)
 *   "Template not found for this client and channel."
 *   "OTP length must be between 4 and 12."
 *   "ExpiresInSeconds must be greater than zero."
 *   "ExpiresInSeconds must be at most <expires_max>." (see note)
 * and for wrong JSON types: "Provider must be a string.", "Destination must
 * be a string.", "OTP type must be a string.", "OTP length must be an
 * integer.", "ExpiresInSeconds must be an integer.", "TemplateId must be a
 * string.", for an empty provider: "Provider is required.", and for a
 * templateId that is empty or longer than VALIDATE_NAME_MAX: "TemplateId
 * must be between 1 and 200 characters.".  An integer beyond int64 is out
 * of range on the side of its sign.  A string holding U+0000 counts as the
 * wrong type for its field.
 * Note: the "at most" message is built once per process into a static
 * buffer by validate_set_expires_max(); it is not built per request. */
int validate_generate(struct json_object *body, const struct gen_found *found,
    struct generate_req *req, struct verrors *errs) WARN_UNUSED;

/* validate_set_expires_max: set the largest expiresInSeconds (default
 * 86400) and its message.  Call at start-up. */
void validate_set_expires_max(int seconds);

/* validate_validate: check a validate body: "OtpId is required." then
 * "Otp is required." (missing, null, empty or wrong type: "OtpId must be a
 * string." / "Otp must be a string." for the wrong type).  An otpId that is
 * not a UUID, or an otp longer than VALIDATE_OTP_MAX, is NOT an error here:
 * otp_id_wellformed is false and the caller answers the same as for a wrong
 * code.  An upper-case UUID is accepted and lower-cased into a buffer inside
 * req, so req->otp_id points into req itself. */
int validate_validate(struct json_object *body, struct validate_req *req,
    struct verrors *errs) WARN_UNUSED;

/* validate_email: one '@', a non-empty local part, a dotted domain of
 * letters, digits, '-' and '.', no empty labels, no spaces or control
 * characters, at most VALIDATE_EMAIL_MAX bytes. */
bool validate_email(const char *s, size_t len);

/* validate_e164: '+', then 7 to 15 digits in all, the first not '0'. */
bool validate_e164(const char *s, size_t len);

/* validate_uuid: 36 characters 8-4-4-4-12 of hex digits, any case. */
bool validate_uuid(const char *s, size_t len);

#endif
