/* http.h: one FastCGI request as the handlers see it: CGI parameters, the
 * capped body, and the JSON answer.  The one place that maps a result code
 * to an HTTP status. */
#ifndef OTPD_HTTP_H
#define OTPD_HTTP_H

#include <fcgiapp.h>
#include <stddef.h>

#include "buf.h"
#include "rc.h"

struct verrors;

struct request {
	FCGX_Request fcgi;
	const char *method;	/* borrowed from the FastCGI environment */
	char path[256];		/* REQUEST_URI without the query string */
	const char *content_type;	/* NULL when absent */
	const char *api_key;	/* NULL when absent or empty */
	char id[33];		/* request id for logs */
	int status;		/* set once the answer is written */
	struct buf body;	/* the request body, capped */
	struct buf out;		/* the answer being built */
};

/* http_request_init: prepare r for FCGX_Accept_r on listen_fd; the buffers
 * live as long as the worker and are reused by every request. */
int http_request_init(struct request *r, int listen_fd, size_t body_limit)
    WARN_UNUSED;

/* http_request_begin: after FCGX_Accept_r, read the CGI parameters of the
 * new request into r and reset its buffers. */
void http_request_begin(struct request *r, unsigned long seq);

/* http_read_body: read exactly CONTENT_LENGTH bytes into r->body.
 * RC_TOO_LARGE over the limit (nothing is read), RC_INVALID when the stream
 * ends early or holds more than CONTENT_LENGTH, RC_MEDIA_TYPE for a
 * Content-Type that is not JSON. */
int http_read_body(struct request *r) WARN_UNUSED;

/* http_reply: write status (200, ...) with the JSON text in json (n bytes),
 * and an extra header line (e.g. "Allow: POST") when extra is not NULL. */
void http_reply(struct request *r, int status, const char *extra,
    const char *json, size_t n);

/* http_reply_text: write status with a body of another content type. */
void http_reply_text(struct request *r, int status, const char *ctype,
    const char *body, size_t n);

/* http_reply_error: answer the error rc with message and, for validation
 * errors, every message in errs; extra is a header line or NULL. */
void http_reply_error(struct request *r, int rc, const char *message,
    const struct verrors *errs, const char *extra);

/* http_status: the HTTP status for a result code. */
int http_status(int rc);

#endif
