/* test_validate.c: unit tests of the request checks and their exact
 * messages, the seed contract's error table first. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "jsonv.h"
#include "tap.h"
#include "validate.h"

#define M_CHANNEL "OTP channel is required and must be either 'Email' or 'Sms'."
#define M_PROVIDER "Provider is required."
#define M_PROVIDER_STR "Provider must be a string."
#define M_DEST "Destination (email or phone number) is required."
#define M_DEST_STR "Destination must be a string."
#define M_TYPE "OTP type is required."
#define M_TYPE_STR "OTP type must be a string."
#define M_LENGTH "OTP length is required."
#define M_LENGTH_INT "OTP length must be an integer."
#define M_EXPIRES "ExpiresInSeconds is required."
#define M_EXPIRES_INT "ExpiresInSeconds must be an integer."
#define M_TEMPLATE_STR "TemplateId must be a string."
#define M_EMAIL "Invalid email format. It must be like name@example.com."
#define M_PHONE "Invalid phone number format. Must start with country code"
#define M_TYPE_VALUE "OTP type must be either 'Numeric' or 'Alphanumeric'."
#define M_LENGTH_RANGE "OTP length must be between 4 and 12."
#define M_EXPIRES_POS "ExpiresInSeconds must be greater than zero."
#define M_EXPIRES_MAX "ExpiresInSeconds must be at most 86400."
#define M_TEMPLATE_LEN "TemplateId must be between 1 and 200 characters."
#define M_PROVIDER_UNKNOWN "Provider not found for this client and channel."
#define M_TEMPLATE_UNKNOWN "Template not found for this client and channel."
#define M_OTPID "OtpId is required."
#define M_OTPID_STR "OtpId must be a string."
#define M_OTP "Otp is required."
#define M_OTP_STR "Otp must be a string."

/* A body and the messages it must produce; n 0 means RC_OK expected. */
struct body_case {
	const char *name;
	const char *body;
	int n;
	const char *msg0;
	const char *msg1;
};

/* The generate error table of compacto-otp-api.md, row by row. */
static const struct body_case seed_generate[] = {
	{ "seed: missing channel",
	    "{\"provider\":\"generic\",\"destination\":\"test@ejemplo.com\","
	    "\"type\":\"alphanumeric\",\"length\":8,\"expiresInSeconds\":300}",
	    1, M_CHANNEL, NULL },
	{ "seed: missing destination",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"type\":\"alphanumeric\",\"length\":8,\"expiresInSeconds\":300}",
	    1, M_DEST, NULL },
	{ "seed: missing type",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"destination\":\"test@ejemplo.com\",\"length\":8,"
	    "\"expiresInSeconds\":300}",
	    1, M_TYPE, NULL },
	{ "seed: missing length",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"destination\":\"test@ejemplo.com\",\"type\":\"alphanumeric\","
	    "\"expiresInSeconds\":300}",
	    1, M_LENGTH, NULL },
	{ "seed: missing expiresInSeconds",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"destination\":\"test@ejemplo.com\",\"type\":\"alphanumeric\","
	    "\"length\":8}",
	    1, M_EXPIRES, NULL },
	{ "seed: invalid email format",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"destination\":\"testejemplo.com\",\"type\":\"alphanumeric\","
	    "\"length\":8,\"expiresInSeconds\":300}",
	    1, M_EMAIL, NULL },
	{ "seed: invalid phone format (sms)",
	    "{\"channel\":\"sms\",\"provider\":\"generic\","
	    "\"destination\":\"test@ejemplo.com\",\"type\":\"alphanumeric\","
	    "\"length\":8,\"expiresInSeconds\":300}",
	    1, M_PHONE, NULL },
	{ "seed: unknown provider passes (the store answers it)",
	    "{\"channel\":\"email\",\"provider\":\"emailsenderotp\","
	    "\"destination\":\"test@ejemplo.com\",\"type\":\"alphanumeric\","
	    "\"length\":8,\"expiresInSeconds\":300}",
	    0, NULL, NULL },
	{ "seed: length out of range",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"destination\":\"test@ejemplo.com\",\"type\":\"alphanumeric\","
	    "\"length\":2,\"expiresInSeconds\":300}",
	    1, M_LENGTH_RANGE, NULL },
	{ "seed: non-positive expiration",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"destination\":\"test@ejemplo.com\",\"type\":\"alphanumeric\","
	    "\"length\":4,\"expiresInSeconds\":0}",
	    1, M_EXPIRES_POS, NULL },
	{ "seed: collection example body",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"destination\":\"wajb96@gmail.com\",\"type\":\"alphanumeric\","
	    "\"length\":8,\"expiresInSeconds\":300,"
	    "\"templateId\":\"otp-default-a1562ab2\"}",
	    0, NULL, NULL },
	{ "seed: valid request example",
	    "{\n  \"channel\": \"email\",\n  \"provider\": \"generic\",\n"
	    "  \"destination\": \"test@ejemplo.com\",\n"
	    "  \"type\": \"alphanumeric\",\n  \"length\": 8,\n"
	    "  \"expiresInSeconds\": 300\n}\n",
	    0, NULL, NULL },
};

/* Bodies built as {"channel":C,"provider":P,...} with one field changed. */
#define GEN(ch, pr, de, ty, le, ex)                                      \
	"{\"channel\":" ch ",\"provider\":" pr ",\"destination\":" de      \
	",\"type\":" ty ",\"length\":" le ",\"expiresInSeconds\":" ex "}"
#define OK_CH "\"email\""
#define OK_PR "\"generic\""
#define OK_DE "\"test@ejemplo.com\""
#define OK_TY "\"numeric\""
#define OK_LE "6"
#define OK_EX "300"

static const struct body_case generate_cases[] = {
	{ "channel Email", GEN("\"Email\"", OK_PR, OK_DE, OK_TY, OK_LE, OK_EX),
	    0, NULL, NULL },
	{ "channel EMAIL", GEN("\"EMAIL\"", OK_PR, OK_DE, OK_TY, OK_LE, OK_EX),
	    0, NULL, NULL },
	{ "channel eMaIl", GEN("\"eMaIl\"", OK_PR, OK_DE, OK_TY, OK_LE, OK_EX),
	    0, NULL, NULL },
	{ "channel Sms", GEN("\"Sms\"", OK_PR, "\"+573001112233\"", OK_TY,
	    OK_LE, OK_EX), 0, NULL, NULL },
	{ "channel SMS", GEN("\"SMS\"", OK_PR, "\"+573001112233\"", OK_TY,
	    OK_LE, OK_EX), 0, NULL, NULL },
	{ "channel fax", GEN("\"fax\"", OK_PR, OK_DE, OK_TY, OK_LE, OK_EX),
	    1, M_CHANNEL, NULL },
	{ "channel e-mail", GEN("\"e-mail\"", OK_PR, OK_DE, OK_TY, OK_LE,
	    OK_EX), 1, M_CHANNEL, NULL },
	{ "channel with a space", GEN("\"email \"", OK_PR, OK_DE, OK_TY, OK_LE,
	    OK_EX), 1, M_CHANNEL, NULL },
	{ "channel empty", GEN("\"\"", OK_PR, OK_DE, OK_TY, OK_LE, OK_EX),
	    1, M_CHANNEL, NULL },
	{ "channel fullwidth", GEN("\"\xef\xbc\xa5mail\"", OK_PR, OK_DE, OK_TY,
	    OK_LE, OK_EX), 1, M_CHANNEL, NULL },
	{ "type Numeric", GEN(OK_CH, OK_PR, OK_DE, "\"Numeric\"", OK_LE, OK_EX),
	    0, NULL, NULL },
	{ "type NUMERIC", GEN(OK_CH, OK_PR, OK_DE, "\"NUMERIC\"", OK_LE, OK_EX),
	    0, NULL, NULL },
	{ "type Alphanumeric", GEN(OK_CH, OK_PR, OK_DE, "\"Alphanumeric\"",
	    OK_LE, OK_EX), 0, NULL, NULL },
	{ "type ALPHANUMERIC", GEN(OK_CH, OK_PR, OK_DE, "\"ALPHANUMERIC\"",
	    OK_LE, OK_EX), 0, NULL, NULL },
	{ "type alpha", GEN(OK_CH, OK_PR, OK_DE, "\"alpha\"", OK_LE, OK_EX),
	    1, M_TYPE_VALUE, NULL },
	{ "type with a space", GEN(OK_CH, OK_PR, OK_DE, "\"numeric \"", OK_LE,
	    OK_EX), 1, M_TYPE_VALUE, NULL },
	{ "type empty", GEN(OK_CH, OK_PR, OK_DE, "\"\"", OK_LE, OK_EX),
	    1, M_TYPE, NULL },
	{ "provider empty", GEN(OK_CH, "\"\"", OK_DE, OK_TY, OK_LE, OK_EX),
	    1, M_PROVIDER, NULL },
	{ "provider blank", GEN(OK_CH, "\"  \"", OK_DE, OK_TY, OK_LE, OK_EX),
	    1, M_PROVIDER, NULL },
	{ "provider with U+0000", GEN(OK_CH, "\"a\\u0000b\"", OK_DE, OK_TY,
	    OK_LE, OK_EX), 1, M_PROVIDER_STR, NULL },
	{ "destination empty", GEN(OK_CH, OK_PR, "\"\"", OK_TY, OK_LE, OK_EX),
	    1, M_DEST, NULL },
	{ "destination with U+0000", GEN(OK_CH, OK_PR,
	    "\"test@ejemplo.com\\u0000x\"", OK_TY, OK_LE, OK_EX),
	    1, M_DEST_STR, NULL },
	{ "email with CRLF", GEN(OK_CH, OK_PR,
	    "\"test@ejemplo.com\\r\\nBcc: x@evil.com\"", OK_TY, OK_LE, OK_EX),
	    1, M_EMAIL, NULL },
	{ "email with unicode", GEN(OK_CH, OK_PR, "\"jos\\u00e9@ejemplo.com\"",
	    OK_TY, OK_LE, OK_EX), 1, M_EMAIL, NULL },
	{ "phone for email", GEN(OK_CH, OK_PR, "\"+573001112233\"", OK_TY,
	    OK_LE, OK_EX), 1, M_EMAIL, NULL },
	{ "phone without plus", GEN("\"sms\"", OK_PR, "\"573001112233\"",
	    OK_TY, OK_LE, OK_EX), 1, M_PHONE, NULL },
	{ "bad channel skips destination format", GEN("\"fax\"", OK_PR,
	    "\"nonsense\"", OK_TY, OK_LE, OK_EX), 1, M_CHANNEL, NULL },
	{ "length 4", GEN(OK_CH, OK_PR, OK_DE, OK_TY, "4", OK_EX),
	    0, NULL, NULL },
	{ "length 12", GEN(OK_CH, OK_PR, OK_DE, OK_TY, "12", OK_EX),
	    0, NULL, NULL },
	{ "length 3", GEN(OK_CH, OK_PR, OK_DE, OK_TY, "3", OK_EX),
	    1, M_LENGTH_RANGE, NULL },
	{ "length 13", GEN(OK_CH, OK_PR, OK_DE, OK_TY, "13", OK_EX),
	    1, M_LENGTH_RANGE, NULL },
	{ "length 0", GEN(OK_CH, OK_PR, OK_DE, OK_TY, "0", OK_EX),
	    1, M_LENGTH_RANGE, NULL },
	{ "length -8", GEN(OK_CH, OK_PR, OK_DE, OK_TY, "-8", OK_EX),
	    1, M_LENGTH_RANGE, NULL },
	{ "length 4294967302 (int wrap)", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    "4294967302", OK_EX), 1, M_LENGTH_RANGE, NULL },
	{ "length 99999999999999999999", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    "99999999999999999999", OK_EX), 1, M_LENGTH_RANGE, NULL },
	{ "length -99999999999999999999", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    "-99999999999999999999", OK_EX), 1, M_LENGTH_RANGE, NULL },
	{ "length 8.0", GEN(OK_CH, OK_PR, OK_DE, OK_TY, "8.0", OK_EX),
	    1, M_LENGTH_INT, NULL },
	{ "length 1e400", GEN(OK_CH, OK_PR, OK_DE, OK_TY, "1e400", OK_EX),
	    1, M_LENGTH_INT, NULL },
	{ "expires 1", GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, "1"),
	    0, NULL, NULL },
	{ "expires 86400", GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, "86400"),
	    0, NULL, NULL },
	{ "expires 86401", GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, "86401"),
	    1, M_EXPIRES_MAX, NULL },
	{ "expires -5", GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, "-5"),
	    1, M_EXPIRES_POS, NULL },
	{ "expires -0", GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, "-0"),
	    1, M_EXPIRES_POS, NULL },
	{ "expires 4294967596 (int wrap)", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    OK_LE, "4294967596"), 1, M_EXPIRES_MAX, NULL },
	{ "expires 99999999999999999999", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    OK_LE, "99999999999999999999"), 1, M_EXPIRES_MAX, NULL },
	{ "expires -99999999999999999999", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    OK_LE, "-99999999999999999999"), 1, M_EXPIRES_POS, NULL },
	{ "expires -9223372036854775809", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    OK_LE, "-9223372036854775809"), 1, M_EXPIRES_POS, NULL },
	{ "expires -9223372036854775808", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    OK_LE, "-9223372036854775808"), 1, M_EXPIRES_POS, NULL },
	{ "expires 9223372036854775807", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    OK_LE, "9223372036854775807"), 1, M_EXPIRES_MAX, NULL },
	{ "length -9223372036854775808", GEN(OK_CH, OK_PR, OK_DE, OK_TY,
	    "-9223372036854775808", OK_EX), 1, M_LENGTH_RANGE, NULL },
	{ "huge length and huge negative expires", GEN(OK_CH, OK_PR, OK_DE,
	    OK_TY, "99999999999999999999", "-99999999999999999999"),
	    2, M_LENGTH_RANGE, M_EXPIRES_POS },
	{ "expires 300.5", GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, "300.5"),
	    1, M_EXPIRES_INT, NULL },
	{ "two missing: channel and type",
	    "{\"provider\":\"generic\",\"destination\":\"test@ejemplo.com\","
	    "\"length\":8,\"expiresInSeconds\":300}",
	    2, M_CHANNEL, M_TYPE },
	{ "two missing: length and expiresInSeconds",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"destination\":\"test@ejemplo.com\",\"type\":\"numeric\"}",
	    2, M_LENGTH, M_EXPIRES },
	{ "empty body: six in order", "{}", 6, M_CHANNEL, M_PROVIDER },
	{ "missing before formats: bad email, no expires",
	    "{\"channel\":\"email\",\"provider\":\"generic\","
	    "\"destination\":\"bad\",\"type\":\"numeric\",\"length\":8}",
	    2, M_EXPIRES, M_EMAIL },
	{ "formats in field order: email, type, length, expires",
	    GEN(OK_CH, OK_PR, "\"bad\"", "\"x\"", "2", "0"),
	    4, M_EMAIL, M_TYPE_VALUE },
	{ "range then template length",
	    "{\"channel\":\"sms\",\"provider\":\"generic\","
	    "\"destination\":\"+573001112233\",\"type\":\"numeric\","
	    "\"length\":99,\"expiresInSeconds\":300,\"templateId\":\"\"}",
	    2, M_LENGTH_RANGE, M_TEMPLATE_LEN },
	{ "every field wrong",
	    "{\"channel\":1,\"provider\":2,\"destination\":3,\"type\":4,"
	    "\"length\":\"5\",\"expiresInSeconds\":\"6\",\"templateId\":7}",
	    7, M_CHANNEL, M_PROVIDER_STR },
	{ "templateId null is absent", "{\"channel\":\"email\","
	    "\"provider\":\"generic\",\"destination\":\"test@ejemplo.com\","
	    "\"type\":\"numeric\",\"length\":6,\"expiresInSeconds\":300,"
	    "\"templateId\":null}", 0, NULL, NULL },
	{ "unknown fields ignored", "{\"channel\":\"email\","
	    "\"provider\":\"generic\",\"destination\":\"test@ejemplo.com\","
	    "\"type\":\"numeric\",\"length\":6,\"expiresInSeconds\":300,"
	    "\"extra\":[1,{}]}", 0, NULL, NULL },
};

/* One field of the valid body, for the wrong-type sweep. */
struct field {
	const char *key;
	const char *good;
	const char *missing;	/* NULL: optional */
	const char *wrong;
	bool is_int;
};

static const struct field fields[] = {
	{ "channel", "\"email\"", M_CHANNEL, M_CHANNEL, false },
	{ "provider", "\"generic\"", M_PROVIDER, M_PROVIDER_STR, false },
	{ "destination", "\"test@ejemplo.com\"", M_DEST, M_DEST_STR, false },
	{ "type", "\"alphanumeric\"", M_TYPE, M_TYPE_STR, false },
	{ "length", "8", M_LENGTH, M_LENGTH_INT, true },
	{ "expiresInSeconds", "300", M_EXPIRES, M_EXPIRES_INT, true },
	{ "templateId", "\"otp-default-a1562ab2\"", NULL, M_TEMPLATE_STR,
	    false },
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static const char *const wrong_for_string[] = {
	"8", "8.0", "true", "false", "[]", "[\"email\"]", "{}",
	"{\"a\":\"email\"}",
};
static const char *const wrong_for_int[] = {
	"\"8\"", "8.0", "8e0", "1e400", "true", "[]", "[8]", "{}",
};

static const struct body_case validate_cases[] = {
	{ "seed: collection example",
	    "{\"otpId\":\"c4f8814c-7a9d-4e13-b7d8-d4e66d272611\","
	    "\"otp\":\"z4dGyBPQ\"}", 0, NULL, NULL },
	{ "seed: missing otpId", "{\"otp\":\"n2gR\"}", 1, M_OTPID, NULL },
	{ "seed: missing otp",
	    "{\"otpId\":\"7dd25d97-1ae3-49a7-8aa7-54211a3fecac\"}",
	    1, M_OTP, NULL },
	{ "seed: incorrect or expired passes (the store answers it)",
	    "{\"otpId\":\"7dd25d97-1ae3-49a7-8aa7-54211a3fecac\","
	    "\"otp\":\"n2gR\"}", 0, NULL, NULL },
	{ "seed: too many attempts passes (the store answers it)",
	    "{\"otpId\":\"c0d1c4ad-b46c-4e27-8731-625d381e7182\","
	    "\"otp\":\"rIayv2gN\"}", 0, NULL, NULL },
	{ "both missing, in order", "{}", 2, M_OTPID, M_OTP },
	{ "otpId null", "{\"otpId\":null,\"otp\":\"n2gR\"}", 1, M_OTPID,
	    NULL },
	{ "otpId empty", "{\"otpId\":\"\",\"otp\":\"n2gR\"}", 1, M_OTPID,
	    NULL },
	{ "otpId number", "{\"otpId\":123,\"otp\":\"n2gR\"}", 1, M_OTPID_STR,
	    NULL },
	{ "otpId array", "{\"otpId\":[],\"otp\":\"n2gR\"}", 1, M_OTPID_STR,
	    NULL },
	{ "otpId object", "{\"otpId\":{},\"otp\":\"n2gR\"}", 1, M_OTPID_STR,
	    NULL },
	{ "otp null", "{\"otpId\":\"7dd25d97-1ae3-49a7-8aa7-54211a3fecac\","
	    "\"otp\":null}", 1, M_OTP, NULL },
	{ "otp empty", "{\"otpId\":\"7dd25d97-1ae3-49a7-8aa7-54211a3fecac\","
	    "\"otp\":\"\"}", 1, M_OTP, NULL },
	{ "otp number", "{\"otpId\":\"7dd25d97-1ae3-49a7-8aa7-54211a3fecac\","
	    "\"otp\":1234}", 1, M_OTP_STR, NULL },
	{ "otp bool", "{\"otpId\":\"7dd25d97-1ae3-49a7-8aa7-54211a3fecac\","
	    "\"otp\":true}", 1, M_OTP_STR, NULL },
	{ "otp with U+0000",
	    "{\"otpId\":\"7dd25d97-1ae3-49a7-8aa7-54211a3fecac\","
	    "\"otp\":\"12\\u000034\"}", 1, M_OTP_STR, NULL },
	{ "both wrong type", "{\"otpId\":1,\"otp\":2}", 2, M_OTPID_STR,
	    M_OTP_STR },
};

/* A string for validate_email / validate_e164 / validate_uuid. */
struct fmt_case {
	const char *name;
	const char *s;
	bool good;
};

static const struct fmt_case email_cases[] = {
	{ "plain", "test@ejemplo.com", true },
	{ "gmail", "wajb96@gmail.com", true },
	{ "plus tag and subdomain", "a.b+tag@mail.example.co", true },
	{ "apostrophe", "o'brien@example.ie", true },
	{ "hyphen and digits in domain", "x@my-host2.example.com", true },
	{ "punycode", "x@xn--80ak6aa92e.xn--p1ai", true },
	{ "upper case", "Test@Ejemplo.COM", true },
	{ "no at", "testejemplo.com", false },
	{ "two at", "a@b@example.com", false },
	{ "no dot in domain", "a@localhost", false },
	{ "empty local", "@example.com", false },
	{ "empty domain", "a@", false },
	{ "empty label", "a@example..com", false },
	{ "leading dot in domain", "a@.example.com", false },
	{ "trailing dot in domain", "a@example.com.", false },
	{ "space in local", "a b@example.com", false },
	{ "space in domain", "a@exa mple.com", false },
	{ "leading space", " a@example.com", false },
	{ "CRLF inside", "a@example.com\r\nBcc: x@evil.com", false },
	{ "LF inside", "a\n@example.com", false },
	{ "tab inside", "a\t@example.com", false },
	{ "DEL inside", "a\x7f@example.com", false },
	{ "leading dot in local", ".a@example.com", false },
	{ "trailing dot in local", "a.@example.com", false },
	{ "double dot in local", "a..b@example.com", false },
	{ "label starts with hyphen", "a@-example.com", false },
	{ "label ends with hyphen", "a@example-.com", false },
	{ "underscore in domain", "a@exam_ple.com", false },
	{ "quote in local", "a\"b@example.com", false },
	{ "parenthesis in local", "a(b)@example.com", false },
	{ "angle brackets", "<a@example.com>", false },
	{ "comma", "a,b@example.com", false },
	{ "unicode local", "jos\xc3\xa9@example.com", false },
	{ "unicode domain", "a@ex\xc3\xa1mple.com", false },
	{ "numeric tld", "a@1.2.3.4", false },
	{ "ip literal", "a@[127.0.0.1]", false },
	{ "empty", "", false },
};

static const struct fmt_case phone_cases[] = {
	{ "colombia", "+573001112233", true },
	{ "7 digits", "+1234567", true },
	{ "15 digits", "+123456789012345", true },
	{ "no plus", "573001112233", false },
	{ "leading zero", "+0573001112233", false },
	{ "6 digits", "+123456", false },
	{ "16 digits", "+1234567890123456", false },
	{ "letters", "+57300abc2233", false },
	{ "spaces", "+57 300 111 2233", false },
	{ "hyphens", "+57-300-111-2233", false },
	{ "double plus", "++573001112233", false },
	{ "trailing newline", "+573001112233\n", false },
	{ "plus only", "+", false },
	{ "email", "test@ejemplo.com", false },
	{ "empty", "", false },
};

static const struct fmt_case uuid_cases[] = {
	{ "lower", "c4f8814c-7a9d-4e13-b7d8-d4e66d272611", true },
	{ "upper", "C4F8814C-7A9D-4E13-B7D8-D4E66D272611", true },
	{ "mixed", "c4F8814c-7a9D-4e13-b7D8-d4e66D272611", true },
	{ "no hyphens", "c4f8814c7a9d4e13b7d8d4e66d272611", false },
	{ "35 characters", "c4f8814c-7a9d-4e13-b7d8-d4e66d27261", false },
	{ "37 characters", "c4f8814c-7a9d-4e13-b7d8-d4e66d2726111", false },
	{ "non-hex g", "g4f8814c-7a9d-4e13-b7d8-d4e66d272611", false },
	{ "hyphen moved", "c4f8814-c7a9d-4e13-b7d8-d4e66d272611", false },
	{ "braces", "{c4f8814c-7a9d-4e13-b7d8-d4e66d2726}", false },
	{ "empty", "", false },
};

/* run_generate: parse body (must parse) and check it. */
static int
run_generate(const char *body, struct generate_req *req, struct verrors *e,
    struct json_object **objp)
{
	*objp = NULL;
	if (jsonv_parse(body, strlen(body), objp) != RC_OK) {
		memset(e, 0, sizeof(*e));
		return RC_INTERNAL;
	}
	return validate_generate(*objp, NULL, req, e);
}

static bool
errs_match(int rc, const struct verrors *e, const struct body_case *c)
{
	if (e->n < 0 || e->n > VERRORS_MAX)
		return false;
	if (c->n == 0)
		return rc == RC_OK && e->n == 0;
	if (rc != RC_INVALID || e->n != c->n)
		return false;
	if (strcmp(e->msg[0], c->msg0) != 0)
		return false;
	return c->msg1 == NULL || strcmp(e->msg[1], c->msg1) == 0;
}

static void
test_generate_table(const struct body_case *cases, size_t n)
{
	struct generate_req req;
	struct json_object *obj;
	struct verrors e;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		rc = run_generate(cases[i].body, &req, &e, &obj);
		ok(errs_match(rc, &e, &cases[i]), cases[i].name);
		if (rc == RC_INVALID && (req.destination != NULL ||
		    req.length != 0 || req.expires_in != 0))
			ok(0, "req cleared on failure");
		json_object_put(obj);
	}
}

/* build_body: the valid body with field skip replaced by val (or left out
 * when val is NULL). */
static void
build_body(char *buf, size_t size, size_t skip, const char *val)
{
	size_t i, used = 0;
	int w;

	buf[0] = '\0';
	for (i = 0; i < NFIELDS; i++) {
		if (i == skip && val == NULL)
			continue;
		w = snprintf(buf + used, size - used, "%s\"%s\":%s",
		    used == 0 ? "{" : ",", fields[i].key,
		    i == skip ? val : fields[i].good);
		if (w < 0 || (size_t)w >= size - used)
			return;
		used += (size_t)w;
	}
	snprintf(buf + used, size - used, "}");
}

static void
sweep_one(size_t f, const char *val, const char *expect)
{
	struct body_case c;
	struct generate_req req;
	struct json_object *obj;
	struct verrors e;
	char body[512], name[160];
	int rc;

	build_body(body, sizeof(body), f, val);
	if (f < NFIELDS)
		snprintf(name, sizeof(name), "%s = %s", fields[f].key,
		    val != NULL ? val : "(absent)");
	else
		snprintf(name, sizeof(name), "all fields valid");
	c.name = name;
	c.body = body;
	c.n = expect != NULL ? 1 : 0;
	c.msg0 = expect;
	c.msg1 = NULL;
	rc = run_generate(body, &req, &e, &obj);
	ok(errs_match(rc, &e, &c), name);
	json_object_put(obj);
}

/* test_wrong_types: every field absent, null and of every wrong type. */
static void
test_wrong_types(void)
{
	const char *const *vals;
	size_t f, i, nv;

	sweep_one(NFIELDS, NULL, NULL);
	for (f = 0; f < NFIELDS; f++) {
		sweep_one(f, NULL, fields[f].missing);
		sweep_one(f, "null", fields[f].missing);
		vals = fields[f].is_int ? wrong_for_int : wrong_for_string;
		nv = fields[f].is_int ?
		    sizeof(wrong_for_int) / sizeof(wrong_for_int[0]) :
		    sizeof(wrong_for_string) / sizeof(wrong_for_string[0]);
		for (i = 0; i < nv; i++)
			sweep_one(f, vals[i], fields[f].wrong);
	}
}

static void
test_generate_fields(void)
{
	struct generate_req req;
	struct json_object *obj;
	struct verrors e;
	int rc;

	rc = run_generate(GEN("\"SMS\"", "\"twilio\"", "\"+573001112233\"",
	    "\"Alphanumeric\"", "12", "600"), &req, &e, &obj);
	ok(rc == RC_OK && req.channel == CHANNEL_SMS &&
	    strcmp(req.provider, "twilio") == 0 &&
	    strcmp(req.destination, "+573001112233") == 0 &&
	    req.destination_len == 13 && req.type == OTP_ALPHANUMERIC &&
	    req.length == 12 && req.expires_in == 600 &&
	    req.template_id == NULL, "sms request fields");
	ok(strcmp(channel_name(req.channel), "sms") == 0, "channel_name sms");
	json_object_put(obj);
	rc = run_generate(seed_generate[10].body, &req, &e, &obj);
	ok(rc == RC_OK && req.channel == CHANNEL_EMAIL &&
	    req.type == OTP_ALPHANUMERIC && req.length == 8 &&
	    req.expires_in == 300 && req.template_id != NULL &&
	    strcmp(req.template_id, "otp-default-a1562ab2") == 0,
	    "email request fields with templateId");
	ok(strcmp(channel_name(CHANNEL_EMAIL), "email") == 0,
	    "channel_name email");
	json_object_put(obj);
	rc = validate_generate(NULL, NULL, &req, &e);
	ok(rc == RC_INVALID && e.n == 6 && strcmp(e.msg[0], M_CHANNEL) == 0 &&
	    strcmp(e.msg[5], M_EXPIRES) == 0, "NULL body: all required");
}

/* name_case: a provider or templateId of n copies of unit. */
static void
name_case(const char *key, const char *unit, size_t n, const char *expect,
    const char *name)
{
	struct body_case c;
	struct generate_req req;
	struct json_object *obj;
	struct verrors e;
	char body[2048];
	size_t used, i, ul = strlen(unit);
	int rc;

	used = (size_t)snprintf(body, sizeof(body), "{\"channel\":\"email\","
	    "\"destination\":\"test@ejemplo.com\",\"type\":\"numeric\","
	    "\"length\":6,\"expiresInSeconds\":300,%s\"%s\":\"",
	    strcmp(key, "provider") == 0 ? "" : "\"provider\":\"generic\",",
	    key);
	for (i = 0; i < n && used + ul + 3 < sizeof(body); i++) {
		memcpy(body + used, unit, ul);
		used += ul;
	}
	memcpy(body + used, "\"}", 3);
	c.name = name;
	c.body = body;
	c.n = expect != NULL ? 1 : 0;
	c.msg0 = expect;
	c.msg1 = NULL;
	rc = run_generate(body, &req, &e, &obj);
	ok(errs_match(rc, &e, &c), name);
	json_object_put(obj);
}

static void
test_names(void)
{
	name_case("provider", "p", 200, NULL, "provider of 200 characters");
	name_case("provider", "p", 201, M_PROVIDER_UNKNOWN,
	    "provider of 201 characters: given, so not found");
	name_case("provider", "\xc3\xa9", 200, NULL,
	    "provider of 200 two-byte characters");
	name_case("templateId", "t", 1, NULL, "templateId of 1 character");
	name_case("templateId", "t", 200, NULL,
	    "templateId of 200 characters");
	name_case("templateId", "t", 201, M_TEMPLATE_LEN,
	    "templateId of 201 characters");
	name_case("templateId", "\xe2\x82\xac", 200, NULL,
	    "templateId of 200 three-byte characters");
	name_case("templateId", "\xe2\x82\xac", 201, M_TEMPLATE_LEN,
	    "templateId of 201 three-byte characters");
	name_case("templateId", "t", 0, M_TEMPLATE_LEN, "templateId empty");
}

/* found_case: body checked again with what the database said. */
static void
found_case(const char *body, bool provider, bool template_id, int n,
    const char *const *want, const char *name)
{
	struct gen_found found = {provider, template_id};
	struct generate_req req;
	struct json_object *obj = NULL;
	struct verrors e;
	int good, i, rc;

	if (jsonv_parse(body, strlen(body), &obj) != RC_OK) {
		ok(0, name);
		return;
	}
	rc = validate_generate(obj, &found, &req, &e);
	good = n == 0 ? rc == RC_OK : rc == RC_INVALID && e.n == n;
	for (i = 0; good && i < n; i++)
		good = strcmp(e.msg[i], want[i]) == 0;
	ok(good, name);
	json_object_put(obj);
}

/* GEN with a templateId "t1" */
#define GENT(ch, pr, de, ty, le, ex)                                     \
	"{\"channel\":" ch ",\"provider\":" pr ",\"destination\":" de      \
	",\"type\":" ty ",\"length\":" le ",\"expiresInSeconds\":" ex      \
	",\"templateId\":\"t1\"}"

/* test_found: an unknown provider or template in the seed's place, after
 * the formats and before the ranges, in message and list alike. */
static void
test_found(void)
{
	static const char *const p_len[] = {M_PROVIDER_UNKNOWN,
	    M_LENGTH_RANGE};
	static const char *const p_exp[] = {M_PROVIDER_UNKNOWN,
	    M_EXPIRES_POS};
	static const char *const p_email[] = {M_EMAIL, M_PROVIDER_UNKNOWN};
	static const char *const p_all[] = {M_EMAIL, M_TYPE_VALUE,
	    M_PROVIDER_UNKNOWN, M_TEMPLATE_UNKNOWN, M_LENGTH_RANGE,
	    M_EXPIRES_POS};
	static const char *const t_len[] = {M_TEMPLATE_UNKNOWN,
	    M_LENGTH_RANGE};
	static const char *const p_only[] = {M_PROVIDER_UNKNOWN};
	static const char *const pt[] = {M_PROVIDER_UNKNOWN,
	    M_TEMPLATE_UNKNOWN};
	static const char *const chan[] = {M_CHANNEL, M_LENGTH_RANGE};
	static const char *const miss[] = {M_DEST, M_PROVIDER_UNKNOWN};
	static const char *const long_p[] = {M_EMAIL, M_PROVIDER_UNKNOWN,
	    M_LENGTH_RANGE};
	char body[1024], lp[202];

	found_case(GEN(OK_CH, OK_PR, OK_DE, OK_TY, "2", OK_EX), false, true,
	    2, p_len, "unknown provider before the length range");
	found_case(GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, "0"), false, true,
	    2, p_exp, "unknown provider before the expiry range");
	found_case(GEN(OK_CH, OK_PR, "\"bad\"", OK_TY, OK_LE, OK_EX), false,
	    true, 2, p_email, "unknown provider after the email format");
	found_case(GENT(OK_CH, OK_PR, "\"bad\"", "\"x\"", "2", "0"), false,
	    false, 6, p_all, "every problem in order");
	found_case(GENT(OK_CH, OK_PR, OK_DE, OK_TY, "2", OK_EX), true, false,
	    2, t_len, "unknown template before the length range");
	found_case(GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, OK_EX), false, true,
	    1, p_only, "unknown provider alone");
	found_case(GENT(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, OK_EX), false,
	    false, 2, pt, "provider, then template");
	found_case(GENT(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, OK_EX), true, true,
	    0, NULL, "both found: valid");
	found_case(GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE, OK_EX), true, false,
	    0, NULL, "no templateId: template not reported");
	found_case(GEN("\"fax\"", OK_PR, OK_DE, OK_TY, "2", OK_EX), false,
	    false, 2, chan, "no valid channel: names not reported");
	found_case("{\"channel\":\"email\",\"provider\":\"nope\","
	    "\"type\":\"numeric\",\"length\":6,\"expiresInSeconds\":300}",
	    false, true, 2, miss, "unknown provider after a missing field");
	memset(lp, 'p', 201);
	lp[201] = '\0';
	snprintf(body, sizeof(body), "{\"channel\":\"email\","
	    "\"provider\":\"%s\",\"destination\":\"bad\","
	    "\"type\":\"numeric\",\"length\":2,\"expiresInSeconds\":300}",
	    lp);
	found_case(body, true, true, 3, long_p,
	    "provider of 201 characters: not found, in its place");
}

/* test_names_to_look_up: on failure req keeps only the names worth
 * looking up, and only with a valid channel. */
static void
test_names_to_look_up(void)
{
	struct generate_req req;
	struct json_object *obj;
	struct verrors e;
	char body[1024], lp[202];
	int rc;

	rc = run_generate("{\"channel\":\"SMS\",\"provider\":\"generic\","
	    "\"destination\":\"x\",\"type\":\"numeric\",\"length\":2,"
	    "\"expiresInSeconds\":300,\"templateId\":\"t1\"}", &req, &e,
	    &obj);
	ok(rc == RC_INVALID && req.channel == CHANNEL_SMS &&
	    req.provider != NULL && strcmp(req.provider, "generic") == 0 &&
	    req.template_id != NULL && strcmp(req.template_id, "t1") == 0,
	    "failure keeps channel, provider and templateId");
	json_object_put(obj);
	rc = run_generate("{\"channel\":\"fax\",\"provider\":\"generic\","
	    "\"templateId\":\"t1\"}", &req, &e, &obj);
	ok(rc == RC_INVALID && req.provider == NULL && req.template_id == NULL,
	    "no valid channel: nothing to look up");
	json_object_put(obj);
	memset(lp, 'p', 201);
	lp[201] = '\0';
	snprintf(body, sizeof(body), "{\"channel\":\"email\","
	    "\"provider\":\"%s\",\"templateId\":\"\"}", lp);
	rc = run_generate(body, &req, &e, &obj);
	ok(rc == RC_INVALID && req.provider == NULL && req.template_id == NULL,
	    "over-long provider and empty templateId: nothing to look up");
	json_object_put(obj);
}

static void
test_expires_max(void)
{
	static const struct body_case c600[] = {
		{ "max 600: 600 passes", GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE,
		    "600"), 0, NULL, NULL },
		{ "max 600: 601 refused", GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE,
		    "601"), 1, "ExpiresInSeconds must be at most 600.", NULL },
	};
	static const struct body_case c86400[] = {
		{ "max back to 86400", GEN(OK_CH, OK_PR, OK_DE, OK_TY, OK_LE,
		    "86401"), 1, M_EXPIRES_MAX, NULL },
	};

	validate_set_expires_max(600);
	test_generate_table(c600, 2);
	validate_set_expires_max(86400);
	test_generate_table(c86400, 1);
}

/* fixed_email: an email of exactly len bytes, local part local bytes. */
static void
fixed_email(char *buf, size_t len, size_t local)
{
	size_t i, label = 0;

	memset(buf, 'a', local);
	buf[local] = '@';
	for (i = local + 1; i < len; i++) {
		/* labels of 60 letters with dots between, ending ".com" */
		if (i >= len - 4) {
			buf[i] = ".com"[i - (len - 4)];
			continue;
		}
		buf[i] = label == 60 ? '.' : 'b';
		label = label == 60 ? 0 : label + 1;
	}
	buf[len] = '\0';
}

static void
test_email(void)
{
	char buf[300];
	size_t i;

	for (i = 0; i < sizeof(email_cases) / sizeof(email_cases[0]); i++)
		ok(validate_email(email_cases[i].s, strlen(email_cases[i].s)) ==
		    email_cases[i].good, email_cases[i].name);
	fixed_email(buf, 254, 64);
	ok(validate_email(buf, 254), "email of 254 bytes");
	fixed_email(buf, 255, 64);
	ok(!validate_email(buf, 255), "email of 255 bytes");
	fixed_email(buf, 80, 65);
	ok(!validate_email(buf, 80), "local part of 65 bytes");
	fixed_email(buf, 80, 64);
	ok(validate_email(buf, 80), "local part of 64 bytes");
	ok(!validate_email("", 0) && validate_email("a@b.co", 6),
	    "email edge lengths");
	ok(!validate_email("a@b.co", 4), "email length is honoured");
	ok(!validate_email(NULL, 0), "email NULL");
}

static void
test_phone_uuid(void)
{
	size_t i;

	for (i = 0; i < sizeof(phone_cases) / sizeof(phone_cases[0]); i++)
		ok(validate_e164(phone_cases[i].s, strlen(phone_cases[i].s)) ==
		    phone_cases[i].good, phone_cases[i].name);
	ok(!validate_e164(NULL, 0), "phone NULL");
	for (i = 0; i < sizeof(uuid_cases) / sizeof(uuid_cases[0]); i++)
		ok(validate_uuid(uuid_cases[i].s, strlen(uuid_cases[i].s)) ==
		    uuid_cases[i].good, uuid_cases[i].name);
}

static void
test_validate_table(void)
{
	struct validate_req req;
	struct json_object *obj;
	struct verrors e;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(validate_cases) / sizeof(validate_cases[0]);
	    i++) {
		obj = NULL;
		if (jsonv_parse(validate_cases[i].body,
		    strlen(validate_cases[i].body), &obj) != RC_OK) {
			ok(0, validate_cases[i].name);
			continue;
		}
		rc = validate_validate(obj, &req, &e);
		ok(errs_match(rc, &e, &validate_cases[i]) &&
		    (rc != RC_OK || req.otp_id_wellformed),
		    validate_cases[i].name);
		json_object_put(obj);
	}
}

/* run_validate: parse and check body; RC_INTERNAL if it does not parse.
 * req borrows from *objp, which the caller frees. */
static int
run_validate(const char *body, struct validate_req *req,
    struct json_object **objp)
{
	struct verrors e;

	*objp = NULL;
	if (jsonv_parse(body, strlen(body), objp) != RC_OK)
		return RC_INTERNAL;
	return validate_validate(*objp, req, &e);
}

static void
test_validate_fields(void)
{
	static const char otp64[] =
	    "0123456789012345678901234567890123456789012345678901234567890123";
	struct validate_req req;
	struct json_object *obj;
	char body[256];
	int rc;

	rc = run_validate("{\"otpId\":\"C4F8814C-7A9D-4E13-B7D8-D4E66D272611\","
	    "\"otp\":\"z4dGyBPQ\"}", &req, &obj);
	ok(rc == RC_OK && req.otp_id_wellformed &&
	    req.otp_id == req.otp_id_buf &&
	    strcmp(req.otp_id, "c4f8814c-7a9d-4e13-b7d8-d4e66d272611") == 0,
	    "upper-case uuid normalised into req");
	ok(rc == RC_OK && req.otp_len == 8 && req.otp != NULL &&
	    strcmp(req.otp, "z4dGyBPQ") == 0, "otp and its length");
	json_object_put(obj);
	rc = run_validate("{\"otpId\":\"not-a-uuid\",\"otp\":\"1234\"}", &req,
	    &obj);
	ok(rc == RC_OK && !req.otp_id_wellformed && req.otp_id != NULL &&
	    req.otp_id[0] == '\0', "malformed uuid: not wellformed");
	json_object_put(obj);
	rc = run_validate("{\"otpId\":\"{c4f8814c-7a9d-4e13-b7d8-d4e66d2726}\","
	    "\"otp\":\"1234\"}", &req, &obj);
	ok(rc == RC_OK && !req.otp_id_wellformed,
	    "braced uuid: not wellformed");
	json_object_put(obj);
	snprintf(body, sizeof(body), "{\"otpId\":"
	    "\"c4f8814c-7a9d-4e13-b7d8-d4e66d272611\",\"otp\":\"%s\"}", otp64);
	rc = run_validate(body, &req, &obj);
	ok(rc == RC_OK && req.otp_id_wellformed && req.otp_len == 64,
	    "otp of 64 bytes: wellformed");
	json_object_put(obj);
	snprintf(body, sizeof(body), "{\"otpId\":"
	    "\"c4f8814c-7a9d-4e13-b7d8-d4e66d272611\",\"otp\":\"%sX\"}", otp64);
	rc = run_validate(body, &req, &obj);
	ok(rc == RC_OK && !req.otp_id_wellformed && req.otp_len == 65,
	    "over-long otp: not wellformed");
	json_object_put(obj);
}

int
main(void)
{
	test_generate_table(seed_generate,
	    sizeof(seed_generate) / sizeof(seed_generate[0]));
	test_generate_table(generate_cases,
	    sizeof(generate_cases) / sizeof(generate_cases[0]));
	test_wrong_types();
	test_generate_fields();
	test_names();
	test_found();
	test_names_to_look_up();
	test_expires_max();
	test_email();
	test_phone_uuid();
	test_validate_table();
	test_validate_fields();
	return done_testing();
}
