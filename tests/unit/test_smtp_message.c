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
	test_message();
	test_address();
	test_http();
	test_table();
	return done_testing();
}
