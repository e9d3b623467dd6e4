/* buf.c: growable, capped byte buffers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

/* grow so that need more bytes plus a NUL fit */
static int
buf_reserve(struct buf *b, size_t need)
{
	size_t want, ncap;
	char *p;

	if (need > b->max - b->len)
		return RC_TOO_LARGE;
	want = b->len + need + 1;
	if (want <= b->cap)
		return RC_OK;
	ncap = b->cap ? b->cap : 256;
	while (ncap < want)
		ncap *= 2;
	p = realloc(b->data, ncap);
	if (p == NULL)
		return RC_NOMEM;
	b->data = p;
	b->cap = ncap;
	return RC_OK;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	int rc;

	rc = buf_reserve(b, n);
	if (rc != RC_OK)
		return rc;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return RC_OK;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return RC_INTERNAL;
	rc = buf_reserve(b, (size_t)n);
	if (rc != RC_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return RC_OK;
}

int
buf_json_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, start;
	int rc;

	rc = buf_append(b, "\"", 1);
	for (i = 0, start = 0; rc == RC_OK && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		rc = buf_append(b, s + start, i - start);
		if (rc != RC_OK)
			break;
		esc[0] = '\\';
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			elen = 6;
			break;
		}
		rc = buf_append(b, esc, elen);
		start = i + 1;
	}
	if (rc == RC_OK)
		rc = buf_append(b, s + start, n - start);
	if (rc == RC_OK)
		rc = buf_append(b, "\"", 1);
	return rc;
}
