/* buf.h: growable byte buffers with a hard size cap, and JSON string
 * escaping into them. */
#ifndef OTPD_BUF_H
#define OTPD_BUF_H

#include <stddef.h>

#include "rc.h"

struct buf {
	char *data;	/* always NUL-terminated when data != NULL */
	size_t len;
	size_t cap;
	size_t max;	/* len never exceeds max */
};

/* buf_init: an empty buffer that may grow to max bytes. */
void buf_init(struct buf *b, size_t max);

/* buf_reset: empty b but keep its memory for reuse. */
void buf_reset(struct buf *b);

/* buf_free: release b's memory; b is empty afterwards. */
void buf_free(struct buf *b);

/* buf_append: append n bytes; RC_TOO_LARGE past the cap, RC_NOMEM. */
int buf_append(struct buf *b, const void *p, size_t n) WARN_UNUSED;

/* buf_puts: append a C string. */
int buf_puts(struct buf *b, const char *s) WARN_UNUSED;

/* buf_printf: append formatted text. */
int buf_printf(struct buf *b, const char *fmt, ...) WARN_UNUSED
    __attribute__((format(printf, 2, 3)));

/* buf_json_string: append s (n bytes, valid UTF-8) as a quoted JSON string,
 * escaping '"', '\\' and control characters. */
int buf_json_string(struct buf *b, const char *s, size_t n) WARN_UNUSED;

#endif
