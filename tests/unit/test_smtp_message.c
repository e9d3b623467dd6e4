/* test_smtp_message.c: what the delivery drivers build: RFC 5322 messages
 * (headers, RFC 2047 encoded-words, quoted-printable, refusal of CR/LF),
 * "from" addresses, the webhook body and signature, Retry-After, and the
 * scrubbing of error texts. */
#include <stdio.h>
#include <string.h>

#include "provider.h"
#include "tap.h"

static int
has(const struct buf *b, const char *s)
{
	return b->data != NULL && strstr(b->data, s) != NULL;
}

static void
test_encode(void)
{
	struct buf b;
	size_t i, n;
	char line[400];
	const char *p, *e;
	int longest = 0;

	buf_init(&b, 8192);
	ok(provider_smtp_encode_header(&b, "Plain subject") == RC_OK &&
	    strcmp(b.data, "Plain subject") == 0, "ASCII goes as it is");
	buf_reset(&b);
	ok(provider_smtp_encode_header(&b, "Ihr Bestätigungscode") == RC_OK &&
	    strcmp(b.data, "=?UTF-8?B?SWhyIEJlc3TDpHRpZ3VuZ3Njb2Rl?=") == 0,
	    "UTF-8 becomes a B encoded-word");
	buf_reset(&b);
	ok(provider_smtp_encode_header(&b, "a =?x?q?y?= b") == RC_OK &&
	    strncmp(b.data, "=?UTF-8?B?", 10) == 0,
	    "text that looks like an encoded-word is encoded");
	buf_reset(&b);
	/* 40 three-byte characters: words must split between characters */
	for (i = 0, n = 0; i < 40; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "€");
	ok(provider_smtp_encode_header(&b, line) == RC_OK, "long UTF-8");
	for (p = b.data; *p != '\0'; p = *e != '\0' ? e + 3 : e) {
		e = strstr(p, "\r\n ");
		if (e == NULL)
			e = p + strlen(p);
		if (e - p > longest)
			longest = (int)(e - p);
		ok(e - p >= 12 && strncmp(p, "=?UTF-8?B?", 10) == 0 &&
		    strncmp(e - 2, "?=", 2) == 0, "each fold is one word");
		/* 45 bytes of input per word: 15 whole characters */
		ok((e - p - 12) % 4 == 0, "whole base64 quanta");
	}
	ok(longest <= 75, "encoded-words are at most 75 characters");
	buf_free(&b);
}

/* the value of base64 digit c, or -1 */
static int
b64_digit(char c)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c != '\0' ? strchr(digits, c) : NULL;

	return p != NULL ? (int)(p - digits) : -1;
}

/* decode n base64 characters at s onto out (room for outmax bytes) */
static size_t
b64_decode(const char *s, size_t n, unsigned char *out, size_t outmax)
{
	size_t i, k = 0;
	unsigned v = 0;
	int bits = 0, d;

	for (i = 0; i < n && s[i] != '='; i++) {
		d = b64_digit(s[i]);
		if (d < 0)
			return (size_t)-1;
		v = (v << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (k == outmax)
				return (size_t)-1;
			out[k++] = (unsigned char)(v >> bits);
		}
	}
	return k;
}

/* is p (n bytes) whole UTF-8 characters, none cut at either end? */
static int
utf8_whole(const unsigned char *p, size_t n)
{
	size_t i = 0, len, k;

	while (i < n) {
		len = p[i] < 0x80 ? 1 : (p[i] & 0xe0) == 0xc0 ? 2 :
		    (p[i] & 0xf0) == 0xe0 ? 3 : (p[i] & 0xf8) == 0xf0 ? 4 : 0;
		if (len == 0 || i + len > n)
			return 0;
		for (k = 1; k < len; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

/* does every line of the header section of msg have at most 78
 * characters? */
static int
header_lines_ok(const char *msg)
{
	const char *end = strstr(msg, "\r\n\r\n"), *p, *e;

	if (end == NULL)
		return 0;
	for (p = msg; p <= end; p = e + 2) {
		e = strstr(p, "\r\n");
		if (e - p > 78)
			return 0;
	}
	return 1;
}

/*
 * Decode the encoded-words that open the header field name (its value up
 * to the first token that is not one) into out; 0 unless there is at least
 * one, each decodes to whole UTF-8 characters and out is big enough.
 */
static int
decode_field(const char *msg, const char *name, char *out, size_t outlen)
{
	char key[40];
	const char *p, *q;
	size_t k = 0, got;

	snprintf(key, sizeof(key), "\r\n%s: ", name);
	p = strstr(msg, key);
	if (p == NULL)
		return 0;
	p += strlen(key);
	while (strncmp(p, "=?UTF-8?B?", 10) == 0) {
		q = strstr(p + 10, "?=");
		if (q == NULL)
			return 0;
		got = b64_decode(p + 10, (size_t)(q - p - 10),
		    (unsigned char *)out + k, outlen - 1 - k);
		if (got == (size_t)-1 || got == 0 ||
		    !utf8_whole((unsigned char *)out + k, got))
			return 0;
		k += got;
		p = q + 2;
		if (strncmp(p, "\r\n ", 3) == 0)
			p += 3;
		else if (*p == ' ')
			p++;
	}
	out[k] = '\0';
	return k > 0;
}

/* long non-ASCII headers are folded within 78 characters a line */
static void
test_folding(void)
{
	static const char *const chars[] = {"a", "\xc3\x9f", "\xe2\x82\xac",
	    "\xf0\x9f\x99\x82"};	/* a ß € 🙂 */
	struct smtp_message m;
	struct buf b;
	char subject[600], name[200], got[700];
	size_t i, n;

	memset(&m, 0, sizeof(m));
	m.from_addr = "otp@example.com";
	m.to = "user@example.org";
	m.text = "x";
	m.message_id = "id-1@example.com";
	m.date = 1700000000;
	buf_init(&b, 65536);

	for (i = 0, n = 0; i < 70; i++)		/* 140 bytes of ä */
		n += (size_t)snprintf(subject + n, sizeof(subject) - n,
		    "\xc3\xa4");
	m.subject = subject;
	m.from_name = "Acme";
	ok(provider_smtp_message(&b, &m) == RC_OK && header_lines_ok(b.data),
	    "long non-ASCII subject: every header line <= 78");
	ok(decode_field(b.data, "Subject", got, sizeof(got)) &&
	    strcmp(got, subject) == 0, "long non-ASCII subject decodes back");

	for (i = 0, n = 0; i < 40; i++)		/* 80 bytes of Ü */
		n += (size_t)snprintf(name + n, sizeof(name) - n, "\xc3\x9c");
	m.subject = "Your code";
	m.from_name = name;
	buf_reset(&b);
	ok(provider_smtp_message(&b, &m) == RC_OK && header_lines_ok(b.data),
	    "long non-ASCII display name: every header line <= 78");
	ok(decode_field(b.data, "From", got, sizeof(got)) &&
	    strcmp(got, name) == 0 && has(&b, " <otp@example.com>\r\n"),
	    "long non-ASCII display name decodes back, address follows");

	for (i = 0, n = 0; i < 101; i++)	/* 1 to 4 bytes in turn */
		n += (size_t)snprintf(subject + n, sizeof(subject) - n, "%s",
		    chars[i % 4]);
	m.subject = subject;
	m.from_name = "Acme";
	buf_reset(&b);
	ok(provider_smtp_message(&b, &m) == RC_OK && header_lines_ok(b.data),
	    "mixed 1-4 byte subject: every header line <= 78");
	ok(decode_field(b.data, "Subject", got, sizeof(got)) &&
	    strcmp(got, subject) == 0,
	    "mixed 1-4 byte subject decodes back, no character split");

	memset(subject, 'x', 100);
	subject[100] = '\0';
	buf_reset(&b);
	ok(provider_smtp_message(&b, &m) == RC_OK && header_lines_ok(b.data) &&
	    decode_field(b.data, "Subject", got, sizeof(got)) &&
	    strcmp(got, subject) == 0,
	    "ASCII too long for one line is encoded and folded");
	buf_free(&b);
}

static void
test_message(void)
{
	struct smtp_message m;
	struct buf b;
	char lng[1200];

	memset(&m, 0, sizeof(m));
	m.from_addr = "otp@example.com";
	m.from_name = "Acme \"Login\"";
	m.to = "user@example.org";
	m.subject = "Your code";
	m.text = "Code 123456\n.\nbye";
	m.message_id = "id-1@example.com";
	m.date = 1700000000;
	buf_init(&b, 65536);
	ok(provider_smtp_message(&b, &m) == RC_OK, "a message");
	ok(strncmp(b.data, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n", 39) == 0,
	    "Date in RFC 5322 form, UTC");
	ok(has(&b, "\r\nFrom: \"Acme \\\"Login\\\"\" <otp@example.com>\r\n"),
	    "From with a quoted display name");
	ok(has(&b, "\r\nTo: <user@example.org>\r\n"), "To");
	ok(has(&b, "\r\nSubject: Your code\r\n"), "Subject");
	ok(has(&b, "\r\nMessage-ID: <id-1@example.com>\r\n"), "Message-ID");
	ok(has(&b, "\r\nMIME-Version: 1.0\r\n"), "MIME-Version");
	ok(has(&b, "\r\nContent-Type: text/plain; charset=UTF-8\r\n"),
	    "Content-Type");
	ok(has(&b, "\r\nContent-Transfer-Encoding: 7bit\r\n"), "7bit for ASCII");
	ok(has(&b, "\r\n\r\nCode 123456\r\n.\r\nbye\r\n"),
	    "body with CRLF, dots left to libcurl");

	buf_reset(&b);
	m.from_name = "Ünïcode";
	m.text = "Grüße 123456 \nend";
	ok(provider_smtp_message(&b, &m) == RC_OK &&
	    has(&b, "From: =?UTF-8?B?w5xuw69jb2Rl?= <otp@example.com>\r\n"),
	    "a UTF-8 display name is encoded");
	ok(has(&b, "Content-Transfer-Encoding: quoted-printable\r\n") &&
	    has(&b, "\r\n\r\nGr=C3=BC=C3=9Fe 123456=20\r\nend\r\n"),
	    "quoted-printable body, trailing space encoded");

	buf_reset(&b);
	memset(lng, 'a', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	m.text = lng;
	ok(provider_smtp_message(&b, &m) == RC_OK &&
	    has(&b, "quoted-printable") && has(&b, "=\r\n"),
	    "a line over 998 bytes gets soft breaks");

	m.text = "x";
	m.to = "user@example.org\r\nBcc: evil@example.org";
	buf_reset(&b);
	ok(provider_smtp_message(&b, &m) == RC_INVALID && b.len == 0,
	    "CRLF in To is refused, nothing written");
	m.to = "user@example.org";
	m.subject = "a\nb";
	ok(provider_smtp_message(&b, &m) == RC_INVALID, "LF in Subject");
	m.subject = "ok";
	m.from_name = "x\rBcc: y";
	ok(provider_smtp_message(&b, &m) == RC_INVALID, "CR in the name");
	buf_free(&b);
}

static void
test_address(void)
{
	char a[300], n[300];

	ok(provider_address("otp@example.com", a, sizeof(a), n, sizeof(n)) ==
	    RC_OK && strcmp(a, "otp@example.com") == 0 && n[0] == '\0',
	    "a bare address");
	ok(provider_address("  Acme Login  <otp@example.com>", a, sizeof(a), n,
	    sizeof(n)) == RC_OK && strcmp(a, "otp@example.com") == 0 &&
	    strcmp(n, "Acme Login") == 0, "Name <address>");
	ok(provider_address("\"Acme\" <otp@example.com>", a, sizeof(a), n,
	    sizeof(n)) == RC_OK && strcmp(n, "Acme") == 0, "quotes dropped");
	ok(provider_address("Acme <otp@example.com> x", a, sizeof(a), n,
	    sizeof(n)) == RC_INVALID, "text after >");
	ok(provider_address("otp@example.com\r\nBcc: x@y.z", a, sizeof(a), n,
	    sizeof(n)) == RC_INVALID, "CRLF");
	ok(provider_address("not an address", a, sizeof(a), n, sizeof(n)) ==
	    RC_INVALID, "no @");
}

static void
test_http(void)
{
	struct delivery d;
	struct buf b;
	char sig[128], out[64];

	ok(provider_http_sign("whsec", 5, 1700000000, "{\"a\":1}", 7, sig,
	    sizeof(sig)) == RC_OK && strcmp(sig, "t=1700000000,v1=8ad37ba1560"
	    "48ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032") == 0,
	    "webhook signature");

	memset(&d, 0, sizeof(d));
	d.id = "0f8fad5b-d9cb-469f-a165-70867728950e";
	d.channel = CHANNEL_EMAIL;
	d.destination = "a\"b@example.com";
	d.code = "12345678";
	d.code_len = 6;
	d.subject = "S";
	d.text = "line1\nline2";
	d.expires_at = "2030-01-01T00:00:00.000000Z";
	buf_init(&b, 4096);
	ok(provider_http_body(&b, &d) == RC_OK && strcmp(b.data,
	    "{\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\","
	    "\"otpId\":\"0f8fad5b-d9cb-469f-a165-70867728950e\","
	    "\"channel\":\"email\",\"destination\":\"a\\\"b@example.com\","
	    "\"subject\":\"S\",\"text\":\"line1\\nline2\",\"code\":\"123456\","
	    "\"expiresAt\":\"2030-01-01T00:00:00.000000Z\"}") == 0,
	    "webhook body, code_len bytes of the code");
	buf_reset(&b);
	d.channel = CHANNEL_SMS;
	ok(provider_http_body(&b, &d) == RC_OK && !has(&b, "subject"),
	    "sms body has no subject");
	buf_free(&b);

	ok(provider_http_retry_after("7", 1000, 3600) == 7, "delta-seconds");
	ok(provider_http_retry_after(" 120 ", 1000, 60) == 60, "capped");
	ok(provider_http_retry_after("", 1000, 60) == -1, "empty");
	ok(provider_http_retry_after("soon", 1000, 60) == -1, "garbage");
	ok(provider_http_retry_after("-5", 1000, 60) == -1, "negative");
	ok(provider_http_retry_after("Wed, 21 Oct 2015 07:28:30 GMT",
	    1445412480, 3600) == 30, "HTTP-date");
	ok(provider_http_rate_reset("1700000007", 1700000000, 3600) == 7,
	    "X-RateLimit-Reset: Unix time");
	ok(provider_http_rate_reset(" 1700009999 ", 1700000000, 3600) == 3600,
	    "X-RateLimit-Reset capped");
	ok(provider_http_rate_reset("1600000000", 1700000000, 3600) == 0,
	    "X-RateLimit-Reset passed");
	ok(provider_http_rate_reset("", 1700000000, 3600) == -1 &&
	    provider_http_rate_reset("soon", 1700000000, 3600) == -1 &&
	    provider_http_rate_reset("-5", 1700000000, 3600) == -1,
	    "X-RateLimit-Reset empty or garbage");

	provider_scrub("bad code 123456 in 123456!", "123456", 6, out,
	    sizeof(out));
	ok(strcmp(out, "bad code *** in ***!") == 0, "the code is scrubbed");
	provider_scrub("tab\there\xc3\xa4", NULL, 0, out, sizeof(out));
	ok(strcmp(out, "tab?here??") == 0, "printable ASCII only");
	provider_scrub("0123456789", NULL, 0, out, 5);
	ok(strcmp(out, "0123") == 0, "capped");
}

static void
test_table(void)
{
	ok(provider_find("smtp") == &provider_smtp &&
	    provider_find("sendgrid") == &provider_sendgrid &&
	    provider_find("twilio") == &provider_twilio &&
	    provider_find("webhook") == &provider_webhook &&
	    provider_find("file") == &provider_file, "every kind has a driver");
	ok(provider_find("pigeon") == NULL, "unknown kind");
}

int
main(void)
{
	test_encode();
	test_folding();
	test_message();
	test_address();
	test_http();
	test_table();
	return done_testing();
}
