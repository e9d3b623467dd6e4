/* render.h: the text of a delivery: a template's {{code}}, {{minutes}} and
 * {{expiresAt}} filled in, or the built-in template of the channel when the
 * client has none.  Pure string work: no I/O. */
#ifndef OTPD_RENDER_H
#define OTPD_RENDER_H

#include <stddef.h>

#include "buf.h"
#include "rc.h"
#include "validate.h"

#define RENDER_SUBJECT_MAX 998		/* bytes of a rendered subject */
#define RENDER_TEXT_MAX (32 * 1024)	/* bytes of a rendered text */

/* What the placeholders stand for.  code is the plaintext code (not
 * NUL-terminated necessarily); the caller wipes it and the output. */
struct render_vars {
	const char *code;
	size_t code_len;
	int minutes;		/* {{minutes}}: the code's lifetime */
	const char *expires_at;	/* {{expiresAt}}: RFC 3339 UTC text */
};

/* render_template: append tmpl (a NUL-terminated UTF-8 string) to out with
 * every {{code}}, {{minutes}} and {{expiresAt}} replaced; any other "{{"
 * is copied as it is.  RC_TOO_LARGE when out's cap is reached. */
int render_template(const char *tmpl, const struct render_vars *v,
    struct buf *out) WARN_UNUSED;

/* render_builtin: the built-in subject (NULL for sms) and body for ch. */
void render_builtin(enum channel ch, const char **subject,
    const char **body);

/*
 * render_message: fill subject (email only; left empty for sms) and text
 * from the client's template (subject_tmpl and body_tmpl, either NULL for
 * the built-in one).  The subject becomes one line: CR, LF, tabs and other
 * control characters turn into spaces and surrounding blanks are trimmed.
 * The caller initialises both buffers (their caps bound the output:
 * RENDER_SUBJECT_MAX and RENDER_TEXT_MAX) and wipes and frees them.
 */
int render_message(enum channel ch, const char *subject_tmpl,
    const char *body_tmpl, const struct render_vars *v, struct buf *subject,
    struct buf *text) WARN_UNUSED;

#endif
