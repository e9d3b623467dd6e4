/* render.c: template rendering for deliveries ({{code}}, {{minutes}},
 * {{expiresAt}}) and the built-in templates. */
#include <stdio.h>
#include <string.h>

#include "render.h"

static const char builtin_email_subject[] = "Your verification code";
static const char builtin_email_body[] =
    "Your verification code is {{code}}.\n"
    "\n"
    "It is valid for {{minutes}} minutes, until {{expiresAt}}.\n"
    "\n"
    "If you did not ask for this code, you can ignore this message.\n";
static const char builtin_sms_body[] =
    "Your verification code is {{code}}. "
    "It is valid for {{minutes}} minutes.";

void
render_builtin(enum channel ch, const char **subject, const char **body)
{
	if (ch == CHANNEL_SMS) {
		*subject = NULL;
		*body = builtin_sms_body;
	} else {
		*subject = builtin_email_subject;
		*body = builtin_email_body;
	}
}

/* append the value of the placeholder at p (length *len), or return 0 */
static int
render_placeholder(const char *p, const struct render_vars *v,
    struct buf *out, size_t *len, int *rc)
{
	char num[16];

	if (strncmp(p, "{{code}}", 8) == 0) {
		*len = 8;
		*rc = buf_append(out, v->code, v->code_len);
		return 1;
	}
	if (strncmp(p, "{{minutes}}", 11) == 0) {
		*len = 11;
		snprintf(num, sizeof(num), "%d", v->minutes);
		*rc = buf_puts(out, num);
		return 1;
	}
	if (strncmp(p, "{{expiresAt}}", 13) == 0) {
		*len = 13;
		*rc = buf_puts(out, v->expires_at);
		return 1;
	}
	return 0;
}

int
render_template(const char *tmpl, const struct render_vars *v,
    struct buf *out)
{
	const char *p = tmpl, *open;
	size_t len;
	int rc = RC_OK;

	while (rc == RC_OK && *p != '\0') {
		open = strstr(p, "{{");
		if (open == NULL) {
			rc = buf_puts(out, p);
			break;
		}
		rc = buf_append(out, p, (size_t)(open - p));
		if (rc != RC_OK)
			break;
		if (render_placeholder(open, v, out, &len, &rc)) {
			p = open + len;
		} else {
			/* not ours: keep the first brace, look again after it */
			rc = buf_append(out, "{", 1);
			p = open + 1;
		}
	}
	return rc;
}

/* make s one line: control characters to spaces, blanks trimmed */
static void
render_one_line(struct buf *s)
{
	size_t i, start = 0, end;

	for (i = 0; i < s->len; i++) {
		unsigned char c = (unsigned char)s->data[i];

		if (c < 0x20 || c == 0x7f)
			s->data[i] = ' ';
	}
	while (start < s->len && s->data[start] == ' ')
		start++;
	end = s->len;
	while (end > start && s->data[end - 1] == ' ')
		end--;
	if (start > 0)
		memmove(s->data, s->data + start, end - start);
	s->len = end - start;
	if (s->data != NULL)
		s->data[s->len] = '\0';
}

int
render_message(enum channel ch, const char *subject_tmpl,
    const char *body_tmpl, const struct render_vars *v, struct buf *subject,
    struct buf *text)
{
	const char *bs, *bb;
	int rc;

	buf_reset(subject);
	buf_reset(text);
	render_builtin(ch, &bs, &bb);
	if (body_tmpl == NULL)
		body_tmpl = bb;
	rc = render_template(body_tmpl, v, text);
	if (rc != RC_OK || ch == CHANNEL_SMS)
		return rc;
	if (subject_tmpl == NULL || subject_tmpl[0] == '\0')
		subject_tmpl = bs;
	rc = render_template(subject_tmpl, v, subject);
	if (rc == RC_OK)
		render_one_line(subject);
	return rc;
}
