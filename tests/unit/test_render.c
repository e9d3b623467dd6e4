/* test_render.c: placeholders, built-in templates, one-line subjects and
 * size caps of render.c. */
#include <string.h>

#include "render.h"
#include "tap.h"

struct tcase {
	const char *tmpl;
	const char *want;
};

static const struct tcase cases[] = {
	{"{{code}}", "123456"},
	{"Code: {{code}}.", "Code: 123456."},
	{"{{code}}{{code}}", "123456123456"},
	{"{{minutes}} min", "5 min"},
	{"until {{expiresAt}}", "until 2030-01-02T03:04:05Z"},
	{"{{unknown}} {{code}}", "{{unknown}} 123456"},
	{"{{ code }}", "{{ code }}"},
	{"{{{code}}}", "{123456}"},
	{"{{code", "{{code"},
	{"}}{{", "}}{{"},
	{"", ""},
	{"ÄÖÜ {{code}} €", "ÄÖÜ 123456 €"},
};

int
main(void)
{
	struct render_vars v = {"123456", 6, 5, "2030-01-02T03:04:05Z"};
	struct buf out, subject, text;
	const char *s, *b;
	size_t i;
	int rc;

	buf_init(&out, 1024);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&out);
		rc = render_template(cases[i].tmpl, &v, &out);
		ok(rc == RC_OK && strcmp(out.data != NULL ? out.data : "",
		    cases[i].want) == 0, cases[i].tmpl);
	}
	buf_free(&out);

	buf_init(&out, 8);
	ok(render_template("{{code}}{{code}}", &v, &out) == RC_TOO_LARGE,
	    "the cap holds");
	buf_free(&out);

	render_builtin(CHANNEL_SMS, &s, &b);
	ok(s == NULL && strstr(b, "{{code}}") != NULL, "built-in sms");
	render_builtin(CHANNEL_EMAIL, &s, &b);
	ok(s != NULL && strstr(b, "{{code}}") != NULL &&
	    strstr(b, "{{minutes}}") != NULL, "built-in email");

	buf_init(&subject, RENDER_SUBJECT_MAX);
	buf_init(&text, RENDER_TEXT_MAX);
	rc = render_message(CHANNEL_EMAIL, " Code\r\nBcc: x@y.z\t{{code}} ",
	    "Body {{code}}\n", &v, &subject, &text);
	ok(rc == RC_OK && strcmp(subject.data, "Code  Bcc: x@y.z 123456") == 0,
	    "a subject becomes one trimmed line");
	ok(strcmp(text.data, "Body 123456\n") == 0, "the body keeps its lines");

	rc = render_message(CHANNEL_EMAIL, NULL, NULL, &v, &subject, &text);
	ok(rc == RC_OK && strcmp(subject.data, "Your verification code") == 0 &&
	    strstr(text.data, "123456") != NULL &&
	    strstr(text.data, "5 minutes") != NULL &&
	    strstr(text.data, "2030-01-02T03:04:05Z") != NULL,
	    "built-in email renders");
	rc = render_message(CHANNEL_SMS, "ignored", NULL, &v, &subject, &text);
	ok(rc == RC_OK && subject.len == 0 &&
	    strncmp(text.data, "Your verification code is 123456.", 33) == 0,
	    "sms has no subject");
	rc = render_message(CHANNEL_EMAIL, "", "x {{code}}", &v, &subject,
	    &text);
	ok(rc == RC_OK && strcmp(subject.data, "Your verification code") == 0,
	    "an empty subject template falls back to the built-in one");
	buf_free(&subject);
	buf_free(&text);
	return done_testing();
}
