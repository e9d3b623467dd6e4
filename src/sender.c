/* sender.c: the delivery loop: job slots (queued, in flight, done), claims
 * under a lease, decrypting and rendering, the libcurl multi handle, acks in
 * batches, LISTEN wake-ups, backoff with jitter, and graceful stop. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "clock.h"
#include "config.h"
#include "crypto.h"
#include "keyring.h"
#include "log.h"
#include "otp.h"
#include "outbox.h"
#include "provider.h"
#include "render.h"
#include "sender.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define ACK_DELAY_MS 10		/* batch acks at most this long */
#define CLAIM_FLOOR_MS 50	/* after a short claim, wait at least this */
#define LEASE_MARGIN_MS 2000	/* at most this much of a lease is spare */
#define DB_RETRY_MIN_MS 250
#define DB_RETRY_MAX_MS 10000
#define STOP_ACK_TRIES 8	/* at stop, try the database this many times */
#define QUEUE_MIN 16		/* queue at least this many jobs (or a batch) */
#define QUEUE_PER_TRANSFER 4	/* and up to this many per transfer */

enum slot_state { SLOT_FREE = 0, SLOT_QUEUED, SLOT_INFLIGHT, SLOT_DONE };

/* One job from claim to ack, with buffers reused from job to job. */
struct slot {
	enum slot_state state;
	uint64_t seq;			/* claim order, for FIFO starts */
	int64_t claimed_ms;		/* monotonic, taken before the claim */
	int64_t started_ms;
	struct outbox_job job;
	const struct provider *prov;
	struct json_object *config;
	CURL *easy;
	struct delivery d;
	char code[CRYPTO_CODE_MAX + 1];
	size_t code_len;
	struct buf subject;
	struct buf text;
	enum outbox_outcome outcome;
	double delay;
	char message_id[PROVIDER_MSGID_MAX];
	char error[PROVIDER_ERROR_MAX];
};

struct sender {
	const struct config *cfg;
	struct keyring kr;		/* a copy, reloaded for a new key id */
	struct stat kr_stamp;		/* of the key file when it was read */
	struct sender_opts opts;
	struct outbox *ob;
	CURLM *multi;
	struct slot *slots;
	int nslots;			/* parallel + qdepth */
	int parallel;
	int qdepth;			/* jobs queued behind the transfers */
	int refill;			/* claim when fewer are queued */
	int queued, inflight, done;
	uint64_t seq;
	CURL **pool;			/* idle easy handles */
	int npool;
	struct outbox_job *claimed;	/* scratch for outbox_claim */
	struct outbox_ack *acks;	/* scratch for outbox_ack */
	bool db_ok;
	int64_t db_retry_ms;
	int db_backoff_ms;
	bool wake;			/* NOTIFY arrived: claim now */
	int64_t woken_ms;		/* when wake was last set */
	bool more;			/* the last claim was full */
	bool drained;			/* a claim found nothing more due */
	int64_t next_claim_ms;
	int64_t deadline_ms;		/* SENDER_FOR; 0: none */
	int64_t ack_due_ms;		/* flush acks by then */
	bool stopping;
	uint64_t rng;
	long n_sent, n_retry, n_failed, n_released, n_expired;
};

static int sig_pipe[2] = {-1, -1};

static void
on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	if (write(sig_pipe[1], &c, 1) < 0) {
		/* the pipe is full: a stop is already pending */
	}
	errno = saved;
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* claim now, and once more after OTP_NOTIFY_INTERVAL_MS twice over */
static void
sender_wake(struct sender *s)
{
	s->wake = true;
	s->woken_ms = clock_mono_ms();
}

/* xorshift64*: jitter only, seeded from the CSPRNG */
static uint64_t
rng_next(struct sender *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ULL;
}

/*
 * The delay before the next attempt: base * 2^(attempts-1), capped, with
 * "equal jitter" (half fixed, half random) so that a provider outage does
 * not bring every job back at the same moment; never less than the
 * provider's Retry-After.
 */
static double
sender_backoff(struct sender *s, int attempts, int retry_after)
{
	double base = (double)s->cfg->sender_backoff_ms;
	double cap = (double)s->cfg->sender_backoff_max_ms;
	double d = base, r;
	int i;

	for (i = 1; i < attempts && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	r = (double)(rng_next(s) >> 11) / 9007199254740992.0;	/* [0,1) */
	d = d / 2 + r * d / 2;
	if (retry_after >= 0 && d < retry_after * 1000.0)
		d = retry_after * 1000.0;
	return d / 1000.0;
}

/* pre-size a buffer so that secrets written to it are not spread over
 * reallocations that free(3) would leave behind unwiped */
static int
buf_presize(struct buf *b, size_t max, size_t size)
{
	static const char zeros[1024];
	size_t n;
	int rc = RC_OK;

	buf_init(b, max);
	if (size > max)
		size = max;
	for (n = 0; rc == RC_OK && n < size; n += sizeof(zeros))
		rc = buf_append(b, zeros, size - n < sizeof(zeros) ?
		    size - n : sizeof(zeros));
	buf_reset(b);
	return rc;
}

static void
buf_wipe(struct buf *b)
{
	if (b->data != NULL)
		crypto_wipe(b->data, b->cap);
	buf_reset(b);
}

static void
slist_wipe_free(struct curl_slist *l)
{
	struct curl_slist *p;

	for (p = l; p != NULL; p = p->next)
		crypto_wipe(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* libcurl callbacks ------------------------------------------------------ */

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct delivery *d = userdata;
	size_t n = size * nmemb, room = d->resp.max - d->resp.len;

	/* keep what fits for parsing; the rest is read and dropped */
	if (buf_append(&d->resp, ptr, n < room ? n : room) != RC_OK)
		return 0;
	return n;
}

/* copy a header's value (after "name:") into out, trimmed */
static void
header_value(const char *line, size_t len, size_t namelen, char *out,
    size_t outlen)
{
	const char *v = line + namelen;
	size_t n = len - namelen;

	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' ||
	    v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct delivery *d = userdata;
	size_t n = size * nmemb;

	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
		/* a new response (after 100 Continue, say): forget the last */
		d->retry_after[0] = d->rate_reset[0] = '\0';
		d->message_id[0] = '\0';
	} else if (n > 12 && strncasecmp(ptr, "Retry-After:", 12) == 0) {
		header_value(ptr, n, 12, d->retry_after,
		    sizeof(d->retry_after));
	} else if (n > 18 && strncasecmp(ptr, "X-RateLimit-Reset:", 18) == 0) {
		header_value(ptr, n, 18, d->rate_reset, sizeof(d->rate_reset));
	} else if (n > 13 && strncasecmp(ptr, "X-Message-Id:", 13) == 0) {
		header_value(ptr, n, 13, d->message_id, sizeof(d->message_id));
	}
	return n;
}

/* Slots ------------------------------------------------------------------ */

static int
sender_slots_init(struct sender *s)
{
	int i, rc = RC_OK;

	s->slots = calloc((size_t)s->nslots, sizeof(*s->slots));
	s->pool = calloc((size_t)s->nslots, sizeof(*s->pool));
	s->claimed = calloc((size_t)s->nslots, sizeof(*s->claimed));
	s->acks = calloc((size_t)s->nslots, sizeof(*s->acks));
	if (s->slots == NULL || s->pool == NULL || s->claimed == NULL ||
	    s->acks == NULL)
		return RC_NOMEM;
	for (i = 0; rc == RC_OK && i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];

		rc = buf_presize(&sl->d.req, PROVIDER_REQ_MAX, 8192);
		if (rc == RC_OK)
			rc = buf_presize(&sl->d.resp, PROVIDER_RESP_MAX, 4096);
		if (rc == RC_OK)
			rc = buf_presize(&sl->subject, RENDER_SUBJECT_MAX, 1024);
		if (rc == RC_OK)
			rc = buf_presize(&sl->text, RENDER_TEXT_MAX, 4096);
	}
	return rc;
}

static void
sender_slots_free(struct sender *s)
{
	int i;

	for (i = 0; s->slots != NULL && i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];

		outbox_job_clear(&sl->job);
		buf_wipe(&sl->d.req);
		buf_wipe(&sl->d.resp);
		buf_wipe(&sl->subject);
		buf_wipe(&sl->text);
		buf_free(&sl->d.req);
		buf_free(&sl->d.resp);
		buf_free(&sl->subject);
		buf_free(&sl->text);
		if (sl->easy != NULL)
			curl_easy_cleanup(sl->easy);
	}
	for (i = 0; s->pool != NULL && i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	free(s->slots);
	free(s->pool);
	free(s->claimed);
	free(s->acks);
}

static CURL *
sender_easy_get(struct sender *s)
{
	CURL *e;

	if (s->npool > 0) {
		e = s->pool[--s->npool];
		curl_easy_reset(e);
		return e;
	}
	return curl_easy_init();
}

/* the options every delivery gets, before its driver adds its own */
static void
sender_easy_setup(struct slot *sl, CURL *e)
{
	curl_easy_setopt(e, CURLOPT_PRIVATE, sl);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, sl->d.curl_error);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &sl->d);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &sl->d);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "otpd-sender/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
}

/* wipe everything that held the code and release the transfer state */
static void
sender_slot_wipe(struct sender *s, struct slot *sl)
{
	crypto_wipe(sl->code, sizeof(sl->code));
	sl->code_len = 0;
	buf_wipe(&sl->subject);
	buf_wipe(&sl->text);
	buf_wipe(&sl->d.req);
	buf_wipe(&sl->d.resp);
	slist_wipe_free(sl->d.headers);
	slist_wipe_free(sl->d.rcpt);
	sl->d.headers = sl->d.rcpt = NULL;
	if (sl->prov != NULL && sl->d.state != NULL)
		sl->prov->fini(sl->d.state);
	sl->d.state = NULL;
	json_object_put(sl->config);
	sl->config = NULL;
	if (sl->easy != NULL)
		s->pool[s->npool++] = sl->easy;
	sl->easy = NULL;
}

/* record the outcome of sl for the next ack, log it, wipe the slot */
static void
sender_slot_done(struct sender *s, struct slot *sl,
    const struct provider_result *res)
{
	static const char *const events[] = {"delivery_sent",
	    "delivery_retry", "delivery_failed"};
	char safe[PROVIDER_ERROR_MAX];

	/* scrubbed while the code is still there to be looked for */
	provider_scrub(res->error, sl->code, sl->code_len, sl->error,
	    sizeof(sl->error));
	provider_scrub(res->message_id, sl->code, sl->code_len,
	    sl->message_id, sizeof(sl->message_id));
	sl->delay = 0;
	if (res->outcome == PROVIDER_SENT) {
		sl->outcome = OUTBOX_SENT;
		sl->error[0] = '\0';
		s->n_sent++;
	} else if (res->outcome == PROVIDER_RETRY) {
		sl->outcome = OUTBOX_RETRY;
		sl->delay = sender_backoff(s, sl->job.attempts,
		    res->retry_after);
		s->n_retry++;
	} else {
		sl->outcome = OUTBOX_FAILED;
		s->n_failed++;
	}
	log_msg(res->outcome == PROVIDER_SENT ? LOGL_INFO : LOGL_WARN,
	    "event=%s id=%s kind=%s attempt=%d ms=%lld delay=%.1f "
	    "error=\"%s\"", events[res->outcome <= PROVIDER_FAILED ?
	    res->outcome : PROVIDER_FAILED], sl->job.id, sl->job.kind,
	    sl->job.attempts, (long long)(clock_mono_ms() - sl->started_ms),
	    sl->delay, log_safe(sl->error, safe, sizeof(safe)));
	sender_slot_wipe(s, sl);
	if (sl->state == SLOT_INFLIGHT)
		s->inflight--;
	else if (sl->state == SLOT_QUEUED)
		s->queued--;
	sl->state = SLOT_DONE;
	s->done++;
	if (s->ack_due_ms == 0)
		s->ack_due_ms = clock_mono_ms() + ACK_DELAY_MS;
}

/* a queued job handed back unattempted (stop, too late in its lease, or
 * its code expired: see sender_slot_expired) */
static void
sender_slot_release(struct sender *s, struct slot *sl)
{
	sl->outcome = OUTBOX_RELEASE;
	sl->delay = 0;
	sl->error[0] = sl->message_id[0] = '\0';
	s->queued--;
	sl->state = SLOT_DONE;
	s->done++;
	if (s->ack_due_ms == 0)
		s->ack_due_ms = clock_mono_ms();
}

/*
 * A queued job whose code expired while it waited (behind a slow transfer,
 * say) is not sent.  It is handed back rather than acked as a retry so that
 * the claim that follows settles it in the database, which decides by its
 * own clock, as "expired" with "not sent: code expired before delivery"
 * (a retry ack would record "expires before the next attempt" instead).
 * That claim comes after CLAIM_FLOOR_MS, not at once, so that a clock
 * ahead of the database's cannot spin on the job; --once waits for it.
 */
static void
sender_slot_expired(struct sender *s, struct slot *sl)
{
	log_info("event=delivery_expired id=%s kind=%s attempt=%d",
	    sl->job.id, sl->job.kind, sl->job.attempts);
	sender_slot_release(s, sl);
	s->n_expired++;
	s->drained = false;
	s->next_claim_ms = min64(s->next_claim_ms,
	    clock_mono_ms() + CLAIM_FLOOR_MS);
}

/* Starting a delivery ---------------------------------------------------- */

/* what tells a rewritten key file from the one we read */
static void
sender_keys_stamp(const char *path, struct stat *out)
{
	if (stat(path, out) != 0)
		memset(out, 0, sizeof(*out));
}

static bool
sender_keys_changed(const struct stat *a, const struct stat *b)
{
	return a->st_ino != b->st_ino || a->st_size != b->st_size ||
	    a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	    a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

/*
 * Read the key file again if it changed since we read it: a job sealed
 * under a key id we do not know was issued after a rotation (otpd-keygen
 * adds the new key to the same file), and the sender should not need a
 * restart for it.
 */
static int
sender_keys_reload(struct sender *s)
{
	struct keyring fresh;
	struct stat now;
	char err[256];

	sender_keys_stamp(s->cfg->key_file, &now);
	if (!sender_keys_changed(&now, &s->kr_stamp))
		return RC_CONFLICT;
	if (keyring_load(&fresh, s->cfg->key_file, err, sizeof(err)) != RC_OK) {
		log_error("event=key_file_reload_failed error=\"%s\"", err);
		keyring_wipe(&fresh);
		return RC_CONFIG;
	}
	keyring_wipe(&s->kr);
	s->kr = fresh;
	keyring_wipe(&fresh);
	s->kr_stamp = now;
	log_info("event=key_file_reloaded keys=%d", s->kr.n);
	return RC_OK;
}

/* open the sealed code of sl into sl->code; fills res on failure */
static int
sender_open_code(struct sender *s, struct slot *sl,
    struct provider_result *res)
{
	const struct outbox_job *j = &sl->job;
	const struct keyring_key *k;
	char aad[512];
	size_t aadlen, n;

	k = keyring_find(&s->kr, j->key_id);
	if (k == NULL && sender_keys_reload(s) == RC_OK)
		k = keyring_find(&s->kr, j->key_id);
	if (k == NULL) {
		/* the key file may be fixed before the job runs out */
		provider_result_set(res, PROVIDER_RETRY, "key id %d is not in "
		    "the key file", (int)j->key_id);
		return RC_CONFIG;
	}
	if (j->sealed_len <= CRYPTO_SEAL_OVERHEAD ||
	    j->sealed_len - CRYPTO_SEAL_OVERHEAD > CRYPTO_CODE_MAX) {
		provider_result_set(res, PROVIDER_FAILED, "sealed code has a "
		    "bad length");
		return RC_CRYPTO;
	}
	aadlen = otp_outbox_aad(aad, sizeof(aad), j->id, j->client_id,
	    channel_name(j->channel), j->destination);
	n = j->sealed_len - CRYPTO_SEAL_OVERHEAD;
	if (aadlen == 0 || crypto_open(k->enc, aad, aadlen, j->sealed,
	    j->sealed_len, sl->code) != RC_OK) {
		provider_result_set(res, PROVIDER_FAILED, "sealed code does "
		    "not authenticate (wrong key, or the row was altered)");
		return RC_CRYPTO;
	}
	sl->code[n] = '\0';
	sl->code_len = n;
	return RC_OK;
}

/* is the destination what generate would have accepted for the channel?
 * (a row written behind otpd's back must not reach a header or a command) */
static bool
sender_destination_ok(const struct outbox_job *j)
{
	size_t n = strlen(j->destination);

	return j->channel == CHANNEL_SMS ? validate_e164(j->destination, n) :
	    validate_email(j->destination, n);
}

/* decrypt, render and parse the config; fills res on failure */
static int
sender_prepare(struct sender *s, struct slot *sl, struct provider_result *res)
{
	struct render_vars v;
	int rc;

	if (!sender_destination_ok(&sl->job)) {
		provider_result_set(res, PROVIDER_FAILED, "destination refused: "
		    "not a valid %s destination", channel_name(sl->job.channel));
		return RC_INVALID;
	}
	sl->prov = provider_find(sl->job.kind);
	sl->config = json_tokener_parse(sl->job.config);
	if (sl->prov == NULL || sl->config == NULL ||
	    !json_object_is_type(sl->config, json_type_object)) {
		provider_result_set(res, PROVIDER_FAILED, "provider kind or "
		    "config unusable");
		return RC_CONFIG;
	}
	rc = sender_open_code(s, sl, res);
	if (rc != RC_OK)
		return rc;
	memset(&v, 0, sizeof(v));
	v.code = sl->code;
	v.code_len = sl->code_len;
	v.minutes = sl->job.minutes;
	v.expires_at = sl->job.expires_text;
	rc = render_message(sl->job.channel, sl->job.subject, sl->job.body, &v,
	    &sl->subject, &sl->text);
	if (rc != RC_OK) {
		provider_result_set(res, PROVIDER_FAILED, "template could not "
		    "be rendered: %s", rc_str(rc));
		return rc;
	}
	rc = sl->prov->init(sl->config, sl->job.channel, &sl->d.state, res);
	if (rc != RC_OK && res->error[0] == '\0')
		provider_result_set(res, PROVIDER_RETRY, "provider set-up "
		    "failed: %s", rc_str(rc));
	return rc;
}

static void
sender_delivery_reset(struct slot *sl)
{
	struct delivery *d = &sl->d;

	d->id = sl->job.id;
	d->channel = sl->job.channel;
	d->destination = sl->job.destination;
	d->code = sl->code;
	d->code_len = sl->code_len;
	d->subject = sl->subject.data != NULL ? sl->subject.data : "";
	d->text = sl->text.data != NULL ? sl->text.data : "";
	d->expires_at = sl->job.expires_at;
	d->now = time(NULL);
	d->timeout_ms = 0;
	d->req_off = 0;
	d->headers = d->rcpt = NULL;
	d->retry_after[0] = d->rate_reset[0] = d->message_id[0] = '\0';
	d->curl_error[0] = '\0';
}

static void
sender_start(struct sender *s, struct slot *sl)
{
	struct provider_result res;
	int64_t t, lease_ms = s->cfg->sender_lease_seconds * 1000;
	enum provider_start how;

	memset(&res, 0, sizeof(res));
	res.retry_after = -1;
	sl->started_ms = clock_mono_ms();
	sl->prov = NULL;
	sl->d.state = NULL;
	if (sender_prepare(s, sl, &res) != RC_OK) {
		sender_slot_done(s, sl, &res);
		return;
	}
	sender_delivery_reset(sl);
	sl->easy = sender_easy_get(s);
	if (sl->easy == NULL) {
		provider_result_set(&res, PROVIDER_RETRY, "out of memory");
		sender_slot_done(s, sl, &res);
		return;
	}
	sender_easy_setup(sl, sl->easy);
	how = sl->prov->start(sl->d.state, &sl->d, sl->easy, &res);
	if (how == PROVIDER_DONE) {
		sender_slot_done(s, sl, &res);
		return;
	}
	/* a delivery must end well inside its lease, or it could be sent twice */
	t = sl->d.timeout_ms > 0 ? sl->d.timeout_ms : s->cfg->sender_timeout_ms;
	if (t > lease_ms / 2)
		t = lease_ms / 2;
	curl_easy_setopt(sl->easy, CURLOPT_TIMEOUT_MS, (long)t);
	curl_easy_setopt(sl->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)t);
	if (curl_multi_add_handle(s->multi, sl->easy) != CURLM_OK) {
		provider_result_set(&res, PROVIDER_RETRY, "could not start the "
		    "transfer");
		sender_slot_done(s, sl, &res);
		return;
	}
	sl->state = SLOT_INFLIGHT;
	s->queued--;
	s->inflight++;
}

/* the queued slot claimed first, or NULL */
static struct slot *
sender_next_queued(struct sender *s)
{
	struct slot *best = NULL;
	int i;

	for (i = 0; i < s->nslots; i++)
		if (s->slots[i].state == SLOT_QUEUED && (best == NULL ||
		    s->slots[i].seq < best->seq))
			best = &s->slots[i];
	return best;
}

/*
 * Start queued jobs while there is room.  A delivery may take up to half
 * the lease (see sender_start), so a job that has waited longer than the
 * other half, less a margin, is handed back instead: were it started, its
 * lease could run out in flight and another sender deliver it too.
 */
static void
sender_start_queued(struct sender *s)
{
	int64_t lease_ms = s->cfg->sender_lease_seconds * 1000;
	int64_t latest = lease_ms / 2 - min64(LEASE_MARGIN_MS, lease_ms / 4);
	struct slot *sl;

	while (s->queued > 0 && (s->stopping || s->inflight < s->parallel)) {
		sl = sender_next_queued(s);
		if (sl == NULL)
			break;
		if (s->stopping || clock_mono_ms() - sl->claimed_ms > latest) {
			sender_slot_release(s, sl);
			s->n_released++;
		} else if (clock_wall_ms() >= sl->job.expires_ms) {
			sender_slot_expired(s, sl);
		} else {
			sender_start(s, sl);
		}
	}
}

/* collect finished transfers */
static void
sender_harvest(struct sender *s)
{
	struct provider_result res;
	struct slot *sl;
	CURLMsg *msg;
	char *priv;
	int left;

	while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		priv = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		sl = (struct slot *)(void *)priv;
		curl_multi_remove_handle(s->multi, msg->easy_handle);
		if (sl == NULL)
			continue;
		memset(&res, 0, sizeof(res));
		res.retry_after = -1;
		sl->prov->finish(sl->d.state, &sl->d, sl->easy,
		    msg->data.result, &res);
		sender_slot_done(s, sl, &res);
	}
}

/* The database ----------------------------------------------------------- */

static void
sender_db_down(struct sender *s)
{
	s->db_ok = false;
	s->db_retry_ms = clock_mono_ms() + s->db_backoff_ms;
	s->db_backoff_ms *= 2;
	if (s->db_backoff_ms > DB_RETRY_MAX_MS)
		s->db_backoff_ms = DB_RETRY_MAX_MS;
}

/* (re)connect when it is time; RC_OK when connected */
static int
sender_db_ensure(struct sender *s)
{
	int rc;

	if (s->db_ok)
		return RC_OK;
	if (clock_mono_ms() < s->db_retry_ms)
		return RC_UNAVAILABLE;
	rc = outbox_connect(s->ob);
	if (rc != RC_OK) {
		sender_db_down(s);
		return rc;
	}
	s->db_ok = true;
	s->db_backoff_ms = DB_RETRY_MIN_MS;
	sender_wake(s);		/* notifications were lost meanwhile */
	return RC_OK;
}

/* record the outcomes of all done slots in one round trip */
static int
sender_flush(struct sender *s)
{
	int i, n = 0, changed = 0, rc;

	if (s->done == 0)
		return RC_OK;
	if (sender_db_ensure(s) != RC_OK)
		return RC_UNAVAILABLE;
	for (i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];
		struct outbox_ack *a = &s->acks[n];

		if (sl->state != SLOT_DONE)
			continue;
		a->id = sl->job.id;
		a->outcome = sl->outcome;
		a->delay = sl->delay;
		a->message_id = sl->message_id[0] ? sl->message_id : NULL;
		a->error = sl->error[0] ? sl->error : NULL;
		n++;
	}
	rc = outbox_ack(s->ob, s->acks, n, (int)s->cfg->sender_max_attempts,
	    &changed);
	if (rc == RC_UNAVAILABLE) {
		sender_db_down(s);
		return rc;
	}
	if (rc != RC_OK)
		log_error("event=ack_failed jobs=%d error=\"%s\"", n,
		    rc_str(rc));
	else if (changed != n)
		log_warn("event=ack_partial jobs=%d changed=%d hint=\"leases "
		    "ran out: another sender may have taken jobs over\"", n,
		    changed);
	/* after an error that is not the connection, the rows stay leased and
	 * are claimed again when the lease runs out: at least once */
	for (i = 0; i < s->nslots; i++) {
		if (s->slots[i].state != SLOT_DONE)
			continue;
		outbox_job_clear(&s->slots[i].job);
		s->slots[i].state = SLOT_FREE;
	}
	s->done = 0;
	s->ack_due_ms = 0;
	return rc;
}

static int
sender_free_slots(const struct sender *s)
{
	return s->nslots - s->queued - s->inflight - s->done;
}

/* should a claim happen now, and for how many jobs? */
static int
sender_claim_want(const struct sender *s, int64_t now)
{
	int room = sender_free_slots(s);

	/* refill the queue when it is half empty */
	if (s->stopping || !s->db_ok || s->queued >= s->refill || room <= 0)
		return 0;
	if (!s->wake && !s->more && now < s->next_claim_ms)
		return 0;
	if (room > s->cfg->sender_batch)
		room = (int)s->cfg->sender_batch;
	return room;
}

/* after a claim that found fewer jobs than asked: when to look again */
static void
sender_schedule(struct sender *s, int64_t now)
{
	double due = -1;
	int64_t wait = s->cfg->sender_poll_ms, follow;

	if (outbox_next_due(s->ob, &due) == RC_UNAVAILABLE) {
		sender_db_down(s);
		return;
	}
	if (due >= 0 && due * 1000 < (double)wait)
		wait = (int64_t)(due * 1000) + 1;
	if (wait < CLAIM_FLOOR_MS)
		wait = CLAIM_FLOOR_MS;
	/* codes issued just after the last NOTIFY came without one */
	follow = s->woken_ms + 2 * OTP_NOTIFY_INTERVAL_MS - now;
	if (follow > 0 && follow < wait)
		wait = follow;
	s->next_claim_ms = now + wait;
}

static void
sender_claim(struct sender *s)
{
	int64_t now = clock_mono_ms();
	int want = sender_claim_want(s, now), n = 0, claimed = 0, i, k, rc;

	if (want == 0)
		return;
	/* free the done slots first: one less state to carry, fresher rows */
	if (sender_flush(s) == RC_UNAVAILABLE)
		return;
	s->wake = false;
	rc = outbox_claim(s->ob, want, (int)s->cfg->sender_lease_seconds,
	    (int)s->cfg->sender_max_attempts, s->claimed, &n, &claimed);
	if (rc == RC_UNAVAILABLE) {
		sender_db_down(s);
		return;
	}
	if (rc != RC_OK) {
		/* not the connection: try again at the next poll, no sooner */
		s->more = false;
		s->next_claim_ms = now + s->cfg->sender_poll_ms;
		return;
	}
	for (i = 0, k = 0; i < n; i++) {
		while (s->slots[k].state != SLOT_FREE)
			k++;
		s->slots[k].job = s->claimed[i];
		memset(&s->claimed[i], 0, sizeof(s->claimed[i]));
		s->slots[k].state = SLOT_QUEUED;
		s->slots[k].claimed_ms = now;
		s->slots[k].seq = ++s->seq;
		s->queued++;
	}
	if (claimed > 0)
		log_debug("event=claimed jobs=%d settled=%d", n, claimed - n);
	s->more = claimed == want;
	if (s->more)
		s->next_claim_ms = now;
	else {
		s->drained = true;
		sender_schedule(s, now);
	}
}

/* The loop --------------------------------------------------------------- */

/* how long poll may sleep */
static int
sender_wait_ms(const struct sender *s, int64_t now)
{
	int64_t w = s->cfg->sender_poll_ms;

	if (s->queued > 0 && (s->stopping || s->inflight < s->parallel))
		return 0;
	if (s->done > 0 && s->db_ok)
		w = min64(w, s->ack_due_ms - now);
	if (!s->stopping && s->db_ok && sender_free_slots(s) > 0 &&
	    s->queued < s->refill) {
		if (s->wake || s->more)
			return 0;
		w = min64(w, s->next_claim_ms - now);
	}
	if (!s->db_ok)
		w = min64(w, s->db_retry_ms - now);
	if (s->deadline_ms > 0 && !s->stopping)
		w = min64(w, s->deadline_ms - now);
	return w < 0 ? 0 : (int)w;
}

static void
sender_stop(struct sender *s, const char *why)
{
	if (s->stopping)
		return;
	s->stopping = true;
	log_info("event=sender_stopping reason=%s in_flight=%d queued=%d", why,
	    s->inflight, s->queued);
}

/* sleep in poll until a transfer, a notification, a signal or a timer */
static void
sender_poll(struct sender *s)
{
	struct curl_waitfd fds[2];
	int n = 0, pg = -1, wait;
	bool woken = false;
	char drain[64];
	ssize_t got;

	if (s->db_ok) {
		if (outbox_notified(s->ob, &woken) != RC_OK)
			sender_db_down(s);
		else if (woken)
			sender_wake(s);
	}
	wait = sender_wait_ms(s, clock_mono_ms());
	memset(fds, 0, sizeof(fds));
	fds[n].fd = sig_pipe[0];
	fds[n++].events = CURL_WAIT_POLLIN;
	if (s->db_ok && (pg = outbox_socket(s->ob)) >= 0) {
		fds[n].fd = pg;
		fds[n++].events = CURL_WAIT_POLLIN;
	}
	if (curl_multi_poll(s->multi, fds, (unsigned)n, wait, NULL) !=
	    CURLM_OK)
		log_error("event=poll_failed");
	if (fds[0].revents != 0) {
		do {
			got = read(sig_pipe[0], drain, sizeof(drain));
		} while (got > 0);
		sender_stop(s, "signal");
	}
	if (n > 1 && fds[1].revents != 0) {
		if (outbox_notified(s->ob, &woken) != RC_OK)
			sender_db_down(s);
		else if (woken)
			sender_wake(s);
	}
}

/* at the end: record what is left, retrying the database a while */
static int
sender_final_flush(struct sender *s)
{
	int i, rc = RC_OK;

	for (i = 0; s->done > 0 && i < STOP_ACK_TRIES; i++) {
		s->db_retry_ms = 0;
		rc = sender_flush(s);
		if (rc != RC_UNAVAILABLE)
			break;
		usleep(250 * 1000);
	}
	if (s->done > 0)
		log_error("event=ack_lost jobs=%d hint=\"they are delivered "
		    "again when their lease runs out\"", s->done);
	return s->done > 0 ? RC_UNAVAILABLE : rc;
}

/* start what can start and let libcurl move every transfer along */
static void
sender_pump(struct sender *s)
{
	int running;

	sender_start_queued(s);
	curl_multi_perform(s->multi, &running);
	sender_harvest(s);
}

/*
 * One turn: transfers are started and moved along before and after the
 * database round trips (acks, claim), so that those overlap with the
 * providers' work; then sleep in poll.
 */
static int
sender_loop(struct sender *s)
{
	int fatal = RC_OK;
	int64_t now;

	for (;;) {
		now = clock_mono_ms();
		if (s->deadline_ms > 0 && now >= s->deadline_ms)
			sender_stop(s, "time_up");
		if (sender_db_ensure(s) != RC_OK &&
		    s->opts.mode == SENDER_ONCE && !s->stopping) {
			fatal = RC_UNAVAILABLE;
			sender_stop(s, "database_unavailable");
		}
		sender_pump(s);
		/* batch acks for a moment, unless nothing else is going on */
		if (s->done > 0 && (clock_mono_ms() >= s->ack_due_ms ||
		    (s->inflight == 0 && s->queued == 0) || s->stopping ||
		    sender_free_slots(s) == 0))
			(void)sender_flush(s);
		sender_claim(s);
		sender_pump(s);
		if (s->queued == 0 && s->inflight == 0 && s->done == 0 &&
		    (s->stopping || (s->opts.mode == SENDER_ONCE &&
		    s->drained && !s->more && !s->wake)))
			break;
		if (s->stopping && s->queued == 0 && s->inflight == 0 &&
		    s->done > 0 && !s->db_ok)
			break;	/* the final flush retries the database */
		sender_poll(s);
	}
	if (sender_final_flush(s) != RC_OK && fatal == RC_OK)
		fatal = RC_UNAVAILABLE;
	return fatal;
}

/* Set-up ----------------------------------------------------------------- */

static int
sender_signals(void)
{
	struct sigaction sa;
	int i;

	if (pipe(sig_pipe) != 0)
		return RC_IO;
	for (i = 0; i < 2; i++) {
		fcntl(sig_pipe[i], F_SETFL, fcntl(sig_pipe[i], F_GETFL) |
		    O_NONBLOCK);
		fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: poll returns early */
	if (sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0)
		return RC_IO;
	signal(SIGPIPE, SIG_IGN);
	return RC_OK;
}

/* "host/pid/random": who holds a lease, unique even after pid reuse */
static void
sender_worker_name(char *out, size_t outlen)
{
	char host[64] = "localhost";
	uint8_t r[4] = {0};
	char hex[9];

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if (crypto_random(r, sizeof(r)) != RC_OK)
		memset(r, 0, sizeof(r));
	crypto_hex(r, sizeof(r), hex);
	snprintf(out, outlen, "%s/%d/%s", host, (int)getpid(), hex);
}

static int
sender_init(struct sender *s, const struct config *cfg,
    const struct keyring *kr, const struct sender_opts *opts)
{
	char worker[OUTBOX_WORKER_MAX];

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->kr = *kr;
	/* no stamp yet: the first unknown key id reads the file once more */
	memset(&s->kr_stamp, 0, sizeof(s->kr_stamp));
	s->opts = *opts;
	s->parallel = (int)cfg->sender_parallel;
	/*
	 * Slots: the transfers in flight and a queue behind them, deep enough
	 * that one claim feeds several transfers even at low parallelism, and
	 * growing with parallelism up to a batch: every claim and every ack
	 * is a round trip and a commit that no transfer moves during, so at
	 * 16 transfers a queue of 16 made the claims, not the provider, the
	 * limit.  Queued jobs wait at most half their lease
	 * (sender_start_queued).
	 */
	s->qdepth = QUEUE_PER_TRANSFER * s->parallel;
	if (s->qdepth < QUEUE_MIN)
		s->qdepth = QUEUE_MIN;
	if (s->qdepth > (int)cfg->sender_batch)
		s->qdepth = (int)cfg->sender_batch;
	if (s->qdepth < s->parallel)
		s->qdepth = s->parallel;
	s->nslots = s->parallel + s->qdepth;
	s->refill = s->qdepth / 2 > s->parallel ? s->qdepth / 2 : s->parallel;
	s->db_backoff_ms = DB_RETRY_MIN_MS;
	sender_wake(s);
	if (crypto_random(&s->rng, sizeof(s->rng)) != RC_OK || s->rng == 0)
		s->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	if (opts->mode == SENDER_FOR)
		s->deadline_ms = clock_mono_ms() + opts->for_seconds * 1000;
	sender_worker_name(worker, sizeof(worker));
	s->ob = outbox_new(cfg->database, worker);
	s->multi = curl_multi_init();
	if (s->ob == NULL || s->multi == NULL)
		return RC_NOMEM;
	curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	    (long)s->parallel);
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS,
	    (long)(2 * s->parallel));
	if (cfg->sender_timeout_ms > cfg->sender_lease_seconds * 1000 / 2)
		log_warn("event=config_warning hint=\"sender_lease_seconds "
		    "should be at least twice sender_timeout_ms; deliveries "
		    "are cut at half the lease\"");
	log_info("event=sender_start worker=%s mode=%s parallel=%d batch=%lld "
	    "lease_s=%lld max_attempts=%lld", worker,
	    opts->mode == SENDER_ONCE ? "once" : opts->mode == SENDER_FOR ?
	    "for" : "follow", s->parallel, (long long)cfg->sender_batch,
	    (long long)cfg->sender_lease_seconds,
	    (long long)cfg->sender_max_attempts);
	return sender_slots_init(s);
}

int
sender_run(const struct config *cfg, const struct keyring *kr,
    const struct sender_opts *opts)
{
	struct sender s;
	int rc;

	memset(&s, 0, sizeof(s));
	rc = sender_signals();
	if (rc == RC_OK)
		rc = sender_init(&s, cfg, kr, opts);
	if (rc == RC_OK) {
		if (sender_db_ensure(&s) != RC_OK && opts->mode == SENDER_ONCE)
			rc = RC_UNAVAILABLE;
		else
			rc = sender_loop(&s);
	}
	log_info("event=sender_stop sent=%ld retry=%ld failed=%ld "
	    "released=%ld expired=%ld result=\"%s\"", s.n_sent, s.n_retry,
	    s.n_failed, s.n_released, s.n_expired, rc_str(rc));
	sender_slots_free(&s);
	keyring_wipe(&s.kr);
	if (s.multi != NULL)
		curl_multi_cleanup(s.multi);
	outbox_free(s.ob);
	return rc;
}
