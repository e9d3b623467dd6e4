/* http.c: CGI parameters, the capped body read, and status, headers and JSON
 * out.  Maps result codes to HTTP statuses. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "validate.h"

#define OUT_MAX (64 * 1024)

int
http_request_init(struct request *r, int listen_fd, size_t body_limit)
{
	memset(r, 0, sizeof(*r));
	if (FCGX_InitRequest(&r->fcgi, listen_fd, 0) != 0)
		return RC_INTERNAL;
	buf_init(&r->body, body_limit);
	buf_init(&r->out, OUT_MAX);
	return RC_OK;
}

/* a request id from the web server (nginx $request_id), if it is sane */
static int
copy_request_id(struct request *r, const char *given)
{
	size_t i, n;

	if (given == NULL)
		return 0;
	n = strlen(given);
	if (n == 0 || n >= sizeof(r->id))
		return 0;
	for (i = 0; i < n; i++)
		if (!((given[i] >= '0' && given[i] <= '9') ||
		    (given[i] >= 'a' && given[i] <= 'z') ||
		    (given[i] >= 'A' && given[i] <= 'Z') || given[i] == '-'))
			return 0;
	memcpy(r->id, given, n + 1);
	return 1;
}

void
http_request_begin(struct request *r, unsigned long seq)
{
	char **env = r->fcgi.envp;
	const char *uri, *q;
	size_t n;

	r->status = 0;
	buf_reset(&r->body);
	buf_reset(&r->out);
	r->method = FCGX_GetParam("REQUEST_METHOD", env);
	if (r->method == NULL)
		r->method = "";
	uri = FCGX_GetParam("REQUEST_URI", env);
	if (uri == NULL)
		uri = FCGX_GetParam("SCRIPT_NAME", env);
	if (uri == NULL)
		uri = "";
	q = strchr(uri, '?');
	n = q != NULL ? (size_t)(q - uri) : strlen(uri);
	if (n >= sizeof(r->path))
		n = sizeof(r->path) - 1;	/* too long to match a route */
	memcpy(r->path, uri, n);
	r->path[n] = '\0';
	r->content_type = FCGX_GetParam("CONTENT_TYPE", env);
	if (r->content_type != NULL && r->content_type[0] == '\0')
		r->content_type = NULL;
	r->api_key = FCGX_GetParam("HTTP_X_API_KEY", env);
	if (r->api_key != NULL && r->api_key[0] == '\0')
		r->api_key = NULL;
	if (!copy_request_id(r, FCGX_GetParam("REQUEST_ID", env)))
		snprintf(r->id, sizeof(r->id), "%x-%lx", (unsigned)getpid(),
		    seq);
	log_set_request(r->id);
}

/* application/json, optionally with parameters; case-insensitive */
static int
is_json_type(const char *ct)
{
	static const char json[] = "application/json";
	size_t n = sizeof(json) - 1;

	if (strncasecmp(ct, json, n) != 0)
		return 0;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

int
http_read_body(struct request *r)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", r->fcgi.envp);
	int64_t want = 0;
	char chunk[4096], extra;
	int got;

	if (r->content_type != NULL && !is_json_type(r->content_type))
		return RC_MEDIA_TYPE;
	if (cl != NULL && cl[0] != '\0' &&
	    parse_int64(cl, 0, INT64_MAX, &want) != RC_OK)
		return RC_INVALID;
	if ((uint64_t)want > r->body.max)
		return RC_TOO_LARGE;
	while ((int64_t)r->body.len < want) {
		size_t left = (size_t)want - r->body.len;
		int ask = left < sizeof(chunk) ? (int)left : (int)sizeof(chunk);

		got = FCGX_GetStr(chunk, ask, r->fcgi.in);
		if (got <= 0)
			return RC_INVALID;	/* shorter than announced */
		if (buf_append(&r->body, chunk, (size_t)got) != RC_OK)
			return RC_TOO_LARGE;
	}
	if (FCGX_GetStr(&extra, 1, r->fcgi.in) > 0)
		return RC_INVALID;	/* longer than announced */
	return RC_OK;
}

int
http_status(int rc)
{
	switch (rc) {
	case RC_OK:
		return 200;
	case RC_INVALID:
		return 400;
	case RC_UNAUTHORIZED:
		return 401;
	case RC_NOT_FOUND:
		return 404;
	case RC_METHOD:
		return 405;
	case RC_TOO_LARGE:
		return 413;
	case RC_MEDIA_TYPE:
		return 415;
	case RC_LOCKED:
		return 429;
	case RC_UNAVAILABLE:
		return 503;
	default:
		return 500;
	}
}

static const char *
status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 429:
		return "Too Many Requests";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

/* write the head and the body; extra is a header line or NULL */
static void
reply(struct request *r, int status, const char *ctype, const char *extra,
    const char *body, size_t n)
{
	char head[256];
	int hn;

	hn = snprintf(head, sizeof(head), "Status: %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Cache-Control: no-store\r\n"
	    "Content-Length: %zu\r\n%s%s\r\n",
	    status, status_text(status), ctype, n, extra ? extra : "",
	    extra ? "\r\n" : "");
	if (hn < 0 || (size_t)hn >= sizeof(head))
		hn = 0;
	/* a client that went away is not an error worth a log line */
	if (FCGX_PutStr(head, hn, r->fcgi.out) < 0 ||
	    FCGX_PutStr(body, (int)n, r->fcgi.out) < 0)
		log_debug("event=write_failed");
	r->status = status;
}

void
http_reply(struct request *r, int status, const char *extra,
    const char *json, size_t n)
{
	reply(r, status, "application/json", extra, json, n);
}

void
http_reply_text(struct request *r, int status, const char *ctype,
    const char *body, size_t n)
{
	reply(r, status, ctype, NULL, body, n);
}

void
http_reply_error(struct request *r, int rc, const char *message,
    const struct verrors *errs, const char *extra)
{
	struct buf *o = &r->out;
	int status = http_status(rc), i, e = 0;

	buf_reset(o);
	e |= buf_puts(o, "{\"success\":false,\"message\":");
	e |= buf_json_string(o, message, strlen(message));
	/* 401 and 503 answer exactly {"success":false,"message":...} */
	if (status != 401 && status != 503) {
		e |= buf_puts(o, ",\"errors\":[");
		if (errs != NULL && errs->n > 0) {
			for (i = 0; i < errs->n; i++) {
				if (i > 0)
					e |= buf_puts(o, ",");
				e |= buf_json_string(o, errs->msg[i],
				    strlen(errs->msg[i]));
			}
		} else {
			e |= buf_json_string(o, message, strlen(message));
		}
		e |= buf_puts(o, "]");
	}
	e |= buf_puts(o, "}");
	if (e != 0) {
		static const char fallback[] =
		    "{\"success\":false,\"message\":\"Internal server error.\"}";
		http_reply(r, 500, NULL, fallback, sizeof(fallback) - 1);
		return;
	}
	http_reply(r, status, extra, o->data, o->len);
}
