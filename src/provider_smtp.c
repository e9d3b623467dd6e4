/* provider_smtp.c: the smtp driver: an RFC 5322 text/plain message sent
 * through libcurl's SMTP (smtp:// with STARTTLS per config, or smtps://),
 * and the header encoding it needs (RFC 2047 encoded-words, quoted-printable
 * bodies).  Addresses with CR, LF or any control character never reach a
 * header or an SMTP command. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "log.h"
#include "provider.h"

#define SMTP_HEADER_LINE 78	/* RFC 5322: header lines should not exceed */
#define SMTP_WORD_MAX 75	/* RFC 2047: the longest encoded-word */
#define SMTP_WORD_FRAME 12	/* "=?UTF-8?B?" and "?=" */
#define SMTP_LINE_MAX 998	/* RFC 5322 line limit, without CRLF */
#define SMTP_QP_LINE 76		/* quoted-printable line limit */

struct smtp_state {
	const char *url;
	const char *username;
	const char *password;
	const char *ca_file;
	long use_ssl;
	int64_t timeout_ms;
	char from_addr[VALIDATE_EMAIL_MAX + 1];
	char from_name[256];
	char mail_from[VALIDATE_EMAIL_MAX + 3];
	char rcpt[VALIDATE_EMAIL_MAX + 3];
	char message_id[PROVIDER_MSGID_MAX - 2];	/* sent as <...> */
};

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64_append(struct buf *out, const unsigned char *p, size_t n)
{
	char q[4];
	size_t i;
	int rc = RC_OK;

	for (i = 0; rc == RC_OK && i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = b64[(v >> 18) & 63];
		q[1] = b64[(v >> 12) & 63];
		q[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? b64[v & 63] : '=';
		rc = buf_append(out, q, 4);
	}
	return rc;
}

/* the length of the line that out ends with (from its last LF) */
static size_t
line_column(const struct buf *out)
{
	size_t i = out->len;

	while (i > 0 && out->data[i - 1] != '\n')
		i--;
	return out->len - i;
}

/* how many characters a header line has left after column col */
static size_t
line_room(size_t col)
{
	return col < SMTP_HEADER_LINE ? SMTP_HEADER_LINE - col : 0;
}

/* can value go as it is in the room left on the line: printable ASCII
 * that does not look like an encoded-word and fits? */
static int
fits_raw(const char *v, size_t room)
{
	const char *p;

	if (strlen(v) > room || strstr(v, "=?") != NULL)
		return 0;
	for (p = v; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			return 0;
	return 1;
}

/*
 * How many of the left bytes at p one encoded-word takes when it starts at
 * column col: as many whole base64 quanta as fit in the word limit and on
 * the line, backed off to the start of a UTF-8 character so that no
 * character is split between words.  0 when not even one character fits.
 */
static size_t
word_take(const unsigned char *p, size_t left, size_t col)
{
	size_t room = line_room(col);
	size_t take;

	if (room > SMTP_WORD_MAX)
		room = SMTP_WORD_MAX;
	take = room > SMTP_WORD_FRAME ? (room - SMTP_WORD_FRAME) / 4 * 3 : 0;
	if (take > left)
		take = left;
	while (take > 0 && take < left && (p[take] & 0xc0) == 0x80)
		take--;
	return take;
}

int
provider_smtp_encode_header(struct buf *out, const char *value)
{
	const unsigned char *p = (const unsigned char *)value;
	size_t n = strlen(value), i = 0, col = line_column(out), take;
	int rc = RC_OK;

	if (fits_raw(value, line_room(col)))
		return buf_append(out, value, n);
	while (rc == RC_OK && i < n) {
		take = word_take(p + i, n - i, col);
		if (take == 0 && col > 1) {
			/* not one character fits after the field name */
			rc = buf_append(out, "\r\n ", 3);
			col = 1;
			continue;
		}
		if (take == 0)	/* no character start in reach: not UTF-8 */
			take = 1;
		rc = buf_append(out, "=?UTF-8?B?", 10);
		if (rc == RC_OK)
			rc = b64_append(out, p + i, take);
		if (rc == RC_OK)
			rc = buf_append(out, "?=", 2);
		i += take;
		col += SMTP_WORD_FRAME + (take + 2) / 3 * 4;
		if (rc == RC_OK && i < n) {
			rc = buf_append(out, "\r\n ", 3);
			col = 1;
		}
	}
	return rc;
}

/* a display name: encoded-words when not ASCII, else a quoted-string */
static int
append_display_name(struct buf *out, const char *name)
{
	size_t col = line_column(out), quoted = strlen(name) + 2;
	const char *p;
	int rc;

	for (p = name; *p != '\0'; p++)
		quoted += *p == '"' || *p == '\\';
	if (!fits_raw(name, SIZE_MAX) || col + quoted > SMTP_HEADER_LINE)
		return provider_smtp_encode_header(out, name);
	rc = buf_append(out, "\"", 1);
	for (p = name; rc == RC_OK && *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			rc = buf_append(out, "\\", 1);
		if (rc == RC_OK)
			rc = buf_append(out, p, 1);
	}
	if (rc == RC_OK)
		rc = buf_append(out, "\"", 1);
	return rc;
}

static int
append_date(struct buf *out, time_t t)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		return RC_INTERNAL;
	return buf_printf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* can the body go as 7bit: ASCII, no NUL, no line over SMTP_LINE_MAX? */
static int
body_is_7bit(const char *s)
{
	size_t line = 0;

	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return 0;
		if (*s == '\n' || *s == '\r')
			line = 0;
		else if (++line > SMTP_LINE_MAX)
			return 0;
	}
	return 1;
}

/* append one body line (without its end) quoted-printable encoded */
static int
qp_line(struct buf *out, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, col = 0;
	char enc[3];
	int rc = RC_OK;

	for (i = 0; rc == RC_OK && i < n; i++) {
		unsigned char c = p[i];
		size_t w;
		int literal = (c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && i + 1 < n);

		w = literal ? 1 : 3;
		/* a soft break leaves room for the '=' that ends the line */
		if (col + w > SMTP_QP_LINE - 1) {
			rc = buf_append(out, "=\r\n", 3);
			col = 0;
		}
		if (rc != RC_OK)
			break;
		if (literal) {
			rc = buf_append(out, (const char *)&c, 1);
		} else {
			enc[0] = '=';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			rc = buf_append(out, enc, 3);
		}
		col += w;
	}
	return rc;
}

/* append the body with CRLF line ends, encoded as qp or not */
static int
append_body(struct buf *out, const char *text, int qp)
{
	const char *p = text, *e;
	size_t n;
	int rc = RC_OK;

	while (rc == RC_OK && *p != '\0') {
		n = strcspn(p, "\r\n");
		e = p + n;
		rc = qp ? qp_line(out, (const unsigned char *)p, n) :
		    buf_append(out, p, n);
		if (rc == RC_OK)
			rc = buf_append(out, "\r\n", 2);
		if (*e == '\r' && e[1] == '\n')
			e++;
		p = *e != '\0' ? e + 1 : e;
	}
	return rc;
}

static int
one_line(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int
provider_smtp_message(struct buf *out, const struct smtp_message *m)
{
	size_t start = out->len;
	int qp, rc;

	if (!one_line(m->from_addr) || !one_line(m->from_name) ||
	    !one_line(m->to) || !one_line(m->subject) ||
	    !one_line(m->message_id))
		return RC_INVALID;
	qp = !body_is_7bit(m->text);
	rc = append_date(out, m->date);
	if (rc == RC_OK)
		rc = buf_puts(out, "From: ");
	if (rc == RC_OK && m->from_name[0] != '\0') {
		rc = append_display_name(out, m->from_name);
		/* the address goes on a line of its own when it does not fit */
		if (rc == RC_OK)
			rc = buf_puts(out, line_column(out) + 3 +
			    strlen(m->from_addr) > SMTP_HEADER_LINE ? "\r\n " :
			    " ");
	}
	if (rc == RC_OK)
		rc = buf_printf(out, "<%s>\r\nTo: <%s>\r\nSubject: ",
		    m->from_addr, m->to);
	if (rc == RC_OK)
		rc = provider_smtp_encode_header(out, m->subject);
	if (rc == RC_OK)
		rc = buf_printf(out, "\r\nMessage-ID: <%s>\r\n"
		    "MIME-Version: 1.0\r\n"
		    "Content-Type: text/plain; charset=UTF-8\r\n"
		    "Content-Transfer-Encoding: %s\r\n"
		    "Auto-Submitted: auto-generated\r\n\r\n",
		    m->message_id, qp ? "quoted-printable" : "7bit");
	if (rc == RC_OK)
		rc = append_body(out, m->text, qp);
	if (rc != RC_OK) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
	}
	return rc;
}

/* "starttls": required (the default), try or none */
static int
smtp_use_ssl(const char *starttls, long *use_ssl, struct provider_result *res)
{
	if (starttls == NULL || strcmp(starttls, "required") == 0)
		*use_ssl = (long)CURLUSESSL_ALL;
	else if (strcmp(starttls, "try") == 0)
		*use_ssl = (long)CURLUSESSL_TRY;
	else if (strcmp(starttls, "none") == 0)
		*use_ssl = (long)CURLUSESSL_NONE;
	else {
		provider_result_set(res, PROVIDER_FAILED, "smtp provider "
		    "config: \"starttls\" must be required, try or none");
		return RC_CONFIG;
	}
	return RC_OK;
}

static int
smtp_init(struct json_object *config, enum channel ch, void **statep,
    struct provider_result *res)
{
	struct smtp_state *st;
	const char *from = NULL, *starttls = NULL;
	int rc;

	*statep = NULL;
	if (ch != CHANNEL_EMAIL) {
		provider_result_set(res, PROVIDER_FAILED,
		    "smtp provider sends email only");
		return RC_CONFIG;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return RC_NOMEM;
	rc = provider_config_string(config, "smtp", "url", 1, &st->url, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "smtp", "from", 1, &from,
		    res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "smtp", "username", 0,
		    &st->username, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "smtp", "password", 0,
		    &st->password, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "smtp", "ca_file", 0,
		    &st->ca_file, res);
	if (rc == RC_OK)
		rc = provider_config_string(config, "smtp", "starttls", 0,
		    &starttls, res);
	if (rc == RC_OK)
		rc = provider_config_timeout(config, "smtp", &st->timeout_ms,
		    res);
	if (rc == RC_OK && (strncmp(st->url, "smtp://", 7) != 0 &&
	    strncmp(st->url, "smtps://", 8) != 0)) {
		provider_result_set(res, PROVIDER_FAILED, "smtp provider "
		    "config: \"url\" must start with smtp:// or smtps://");
		rc = RC_CONFIG;
	}
	if (rc == RC_OK && provider_address(from, st->from_addr,
	    sizeof(st->from_addr), st->from_name,
	    sizeof(st->from_name)) != RC_OK) {
		provider_result_set(res, PROVIDER_FAILED, "smtp provider "
		    "config: \"from\" is not an address or Name <address>");
		rc = RC_CONFIG;
	}
	if (rc == RC_OK)
		rc = smtp_use_ssl(starttls, &st->use_ssl, res);
	if (rc != RC_OK) {
		free(st);
		return rc;
	}
	*statep = st;
	return RC_OK;
}

static size_t
smtp_read(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct delivery *d = userdata;
	size_t room = size * nmemb, left = d->req.len - d->req_off;

	if (left < room)
		room = left;
	if (room > 0)
		memcpy(ptr, d->req.data + d->req_off, room);
	d->req_off += room;
	return room;
}

static void
smtp_setopts(struct smtp_state *st, struct delivery *d, CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_URL, st->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#else
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS));
#endif
	curl_easy_setopt(easy, CURLOPT_USE_SSL, st->use_ssl);
	curl_easy_setopt(easy, CURLOPT_MAIL_FROM, st->mail_from);
	curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, d->rcpt);
	if (st->username != NULL)
		curl_easy_setopt(easy, CURLOPT_USERNAME, st->username);
	if (st->password != NULL)
		curl_easy_setopt(easy, CURLOPT_PASSWORD, st->password);
	if (st->ca_file != NULL)
		curl_easy_setopt(easy, CURLOPT_CAINFO, st->ca_file);
	curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(easy, CURLOPT_READFUNCTION, smtp_read);
	curl_easy_setopt(easy, CURLOPT_READDATA, d);
	curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE,
	    (curl_off_t)d->req.len);
}

static enum provider_start
smtp_start(void *state, struct delivery *d, CURL *easy,
    struct provider_result *res)
{
	struct smtp_state *st = state;
	struct smtp_message m;
	const char *domain = strchr(st->from_addr, '@') + 1;
	size_t dlen = strlen(d->destination);
	int w;

	/* validated at generate; checked again: this reaches an SMTP command */
	if (!validate_email(d->destination, dlen) || !one_line(d->destination)) {
		provider_result_set(res, PROVIDER_FAILED, "destination "
		    "refused: not a plain email address");
		return PROVIDER_DONE;
	}
	snprintf(st->mail_from, sizeof(st->mail_from), "<%s>", st->from_addr);
	snprintf(st->rcpt, sizeof(st->rcpt), "<%s>", d->destination);
	w = snprintf(st->message_id, sizeof(st->message_id), "%s@%s", d->id,
	    domain);
	if (w < 0 || (size_t)w >= sizeof(st->message_id))	/* never cut */
		snprintf(st->message_id, sizeof(st->message_id),
		    "%s@localhost", d->id);
	d->rcpt = curl_slist_append(NULL, st->rcpt);
	memset(&m, 0, sizeof(m));
	m.from_addr = st->from_addr;
	m.from_name = st->from_name;
	m.to = d->destination;
	m.subject = d->subject;
	m.text = d->text;
	m.message_id = st->message_id;
	m.date = d->now;
	if (d->rcpt == NULL || provider_smtp_message(&d->req, &m) != RC_OK) {
		provider_result_set(res, PROVIDER_FAILED, "could not build "
		    "the message");
		return PROVIDER_DONE;
	}
	d->timeout_ms = st->timeout_ms;
	smtp_setopts(st, d, easy);
	return PROVIDER_STARTED;
}

static void
smtp_finish(void *state, struct delivery *d, CURL *easy, CURLcode cc,
    struct provider_result *res)
{
	struct smtp_state *st = state;
	long code = 0;

	if (cc == CURLE_OK) {
		res->outcome = PROVIDER_SENT;
		snprintf(res->message_id, sizeof(res->message_id), "<%s>",
		    st->message_id);
		return;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 400 && code <= 599) {
		provider_result_set(res, code < 500 ? PROVIDER_RETRY :
		    PROVIDER_FAILED, "SMTP %ld: %s", code, d->curl_error[0] ?
		    d->curl_error : curl_easy_strerror(cc));
		return;
	}
	switch (cc) {
	case CURLE_USE_SSL_FAILED:	/* STARTTLS required, not offered */
	case CURLE_LOGIN_DENIED:
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		provider_result_set(res, PROVIDER_FAILED, "smtp: %s",
		    d->curl_error[0] ? d->curl_error : curl_easy_strerror(cc));
		break;
	default:
		provider_result_set(res, PROVIDER_RETRY, "smtp: %s",
		    d->curl_error[0] ? d->curl_error : curl_easy_strerror(cc));
		break;
	}
}

static void
smtp_fini(void *state)
{
	free(state);
}

const struct provider provider_smtp = {
	"smtp", smtp_init, smtp_start, smtp_finish, smtp_fini,
};
