/* metrics.h: request counters and latency histograms shared by all worker
 * processes (one anonymous shared mapping made before fork, updated with
 * atomic adds), and their Prometheus text rendering. */
#ifndef OTPD_METRICS_H
#define OTPD_METRICS_H

#include <stdint.h>

#include "rc.h"

struct app;
struct buf;
struct request;

/* metrics_init: map the shared counters.  Call once in the master before
 * the first fork. */
int metrics_init(void) WARN_UNUSED;

/* metrics_record: count one answered request on path with status that took
 * seconds. */
void metrics_record(const char *path, int status, double seconds);

/* metrics_db_error: count one database failure (unreachable or error). */
void metrics_db_error(void);

/* metrics_handle: GET /otp/metrics in Prometheus text format, with the
 * outbox depth read from the database. */
void metrics_handle(struct app *app, struct request *r);

#endif
