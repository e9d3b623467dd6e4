/* metrics.c: Prometheus metrics for the responder.  Counters live in one
 * MAP_SHARED page set up before fork, so every worker adds to the same
 * numbers and any worker can answer a scrape. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "otp.h"
#include "store.h"

static const char *const endpoints[] = {"generate", "validate", "health",
    "metrics", "other"};
static const char *const paths[] = {"/otp/generate", "/otp/validate",
    "/otp/health", "/otp/metrics"};
static const int statuses[] = {200, 400, 401, 404, 405, 413, 415, 429, 500,
    503};
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1, 2.5};

#define NENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))
#define NSTATUSES (sizeof(statuses) / sizeof(statuses[0]))
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

/* the largest scrape answer: about 40000 delivery lines */
#define METRICS_MAX (4 * 1024 * 1024)

struct shared_metrics {
	uint64_t requests[NENDPOINTS][NSTATUSES + 1];	/* last: other */
	uint64_t buckets[NENDPOINTS][NBOUNDS + 1];	/* last: +Inf */
	uint64_t sum_us[NENDPOINTS];
	uint64_t db_errors;
};

static struct shared_metrics *shm;

int
metrics_init(void)
{
	void *p;

	p = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return RC_NOMEM;
	shm = p;	/* the mapping starts zeroed */
	return RC_OK;
}

static void
add(uint64_t *counter, uint64_t n)
{
	__atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static uint64_t
get(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

void
metrics_record(const char *path, int status, double seconds)
{
	size_t e, s, b;

	if (shm == NULL)
		return;
	for (e = 0; e < NENDPOINTS - 1; e++)
		if (strcmp(path, paths[e]) == 0)
			break;
	for (s = 0; s < NSTATUSES; s++)
		if (statuses[s] == status)
			break;
	for (b = 0; b < NBOUNDS; b++)
		if (seconds <= bounds[b])
			break;
	add(&shm->requests[e][s], 1);
	add(&shm->buckets[e][b], 1);
	add(&shm->sum_us[e], (uint64_t)(seconds * 1e6));
}

void
metrics_db_error(void)
{
	if (shm != NULL)
		add(&shm->db_errors, 1);
}

static int
render_requests(struct buf *o)
{
	size_t e, s, b;
	int rc = 0;

	rc |= buf_puts(o, "# HELP otpd_requests_total Requests answered, by "
	    "endpoint and status.\n# TYPE otpd_requests_total counter\n");
	for (e = 0; e < NENDPOINTS; e++)
		for (s = 0; s <= NSTATUSES; s++) {
			uint64_t n = get(&shm->requests[e][s]);

			if (n == 0)
				continue;
			if (s < NSTATUSES)
				rc |= buf_printf(o, "otpd_requests_total{endpoint="
				    "\"%s\",status=\"%d\"} %llu\n", endpoints[e],
				    statuses[s], (unsigned long long)n);
			else
				rc |= buf_printf(o, "otpd_requests_total{endpoint="
				    "\"%s\",status=\"other\"} %llu\n",
				    endpoints[e], (unsigned long long)n);
		}
	rc |= buf_puts(o, "# HELP otpd_request_duration_seconds Time from "
	    "accept to answer.\n"
	    "# TYPE otpd_request_duration_seconds histogram\n");
	for (e = 0; e < NENDPOINTS; e++) {
		uint64_t cum = 0;

		for (b = 0; b <= NBOUNDS; b++) {
			cum += get(&shm->buckets[e][b]);
			if (b < NBOUNDS)
				rc |= buf_printf(o, "otpd_request_duration_seconds"
				    "_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
				    endpoints[e], bounds[b],
				    (unsigned long long)cum);
			else
				rc |= buf_printf(o, "otpd_request_duration_seconds"
				    "_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
				    endpoints[e], (unsigned long long)cum);
		}
		rc |= buf_printf(o, "otpd_request_duration_seconds_sum{endpoint="
		    "\"%s\"} %.6f\n", endpoints[e],
		    (double)get(&shm->sum_us[e]) / 1e6);
		rc |= buf_printf(o, "otpd_request_duration_seconds_count{endpoint="
		    "\"%s\"} %llu\n", endpoints[e], (unsigned long long)cum);
	}
	rc |= buf_printf(o, "# HELP otpd_db_errors_total Database failures "
	    "seen by the responder.\n# TYPE otpd_db_errors_total counter\n"
	    "otpd_db_errors_total %llu\n",
	    (unsigned long long)get(&shm->db_errors));
	return rc;
}

/* a Prometheus label value: backslash, quote and newline escaped */
static int
put_label(struct buf *o, const char *name, const char *v)
{
	int rc;

	rc = buf_printf(o, "%s=\"", name);
	for (; rc == RC_OK && *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			rc = buf_printf(o, "\\%c", *v);
		else if (*v == '\n')
			rc = buf_puts(o, "\\n");
		else
			rc = buf_append(o, v, 1);
	}
	return rc == RC_OK ? buf_puts(o, "\"") : rc;
}

struct delivery_render {
	struct buf *o;
	int rc;
};

static void
render_delivery(void *arg, const char *client, const char *provider,
    const char *kind, const char *outcome, const char *total)
{
	struct delivery_render *d = arg;

	d->rc |= buf_puts(d->o, "otpd_deliveries_total{");
	d->rc |= put_label(d->o, "client", client);
	d->rc |= put_label(d->o, ",provider", provider);
	d->rc |= put_label(d->o, ",kind", kind);
	d->rc |= put_label(d->o, ",outcome", outcome);
	d->rc |= buf_printf(d->o, "} %s\n", total);
}

void
metrics_handle(struct app *app, struct request *r)
{
	struct store_outbox_stats s;
	struct delivery_render d;
	struct buf page, *o = &page;
	int rc;

	/* one line per client, provider and outcome outgrows r->out (64 KiB)
	 * with a few hundred providers; a buffer of its own, freed after the
	 * answer, keeps the worker from holding megabytes between scrapes */
	buf_init(o, METRICS_MAX);
	d.o = o;
	d.rc = render_requests(o);
	d.rc |= buf_puts(o, "# HELP otpd_deliveries_total Delivery "
	    "outcomes by provider: finished (sent, failed, expired) and "
	    "retried attempts (retry).\n"
	    "# TYPE otpd_deliveries_total counter\n");
	rc = store_outbox_stats(app->st, &s, render_delivery, &d);
	if (rc == RC_OK)
		d.rc |= buf_printf(o, "# HELP otpd_outbox_pending Delivery jobs "
		    "not yet finished.\n# TYPE otpd_outbox_pending gauge\n"
		    "otpd_outbox_pending %lld\n"
		    "# HELP otpd_outbox_oldest_due_seconds Age of the oldest "
		    "due job.\n# TYPE otpd_outbox_oldest_due_seconds gauge\n"
		    "otpd_outbox_oldest_due_seconds %.3f\n",
		    (long long)s.pending, s.oldest_due_seconds);
	d.rc |= buf_printf(o, "# HELP otpd_database_up Whether the database "
	    "answered this scrape.\n# TYPE otpd_database_up gauge\n"
	    "otpd_database_up %d\n", rc == RC_OK);
	if (d.rc != 0 || shm == NULL) {
		log_error("event=metrics_failed error=\"could not build the "
		    "answer: over %d bytes or out of memory\"", METRICS_MAX);
		http_reply_error(r, RC_INTERNAL, "Internal server error.", NULL,
		    NULL);
	} else {
		http_reply_text(r, 200,
		    "text/plain; version=0.0.4; charset=utf-8", o->data,
		    o->len);
	}
	buf_free(o);
}
