/* router.c: the routing table of the responder. */
#include <string.h>

#include "http.h"
#include "metrics.h"
#include "otp.h"
#include "router.h"

struct route {
	const char *method;
	const char *path;
	const char *allow;	/* the Allow header for a wrong method */
	void (*handler)(struct app *, struct request *);
};

static const struct route routes[] = {
	{"POST", "/otp/generate", "Allow: POST", otp_generate},
	{"POST", "/otp/validate", "Allow: POST", otp_validate},
	{"GET", "/otp/health", "Allow: GET, HEAD", otp_health},
	{"HEAD", "/otp/health", "Allow: GET, HEAD", otp_health},
	{"GET", "/otp/metrics", "Allow: GET", metrics_handle},
};

void
router_dispatch(struct app *app, struct request *r)
{
	const struct route *path_match = NULL;
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].path, r->path) != 0)
			continue;
		path_match = &routes[i];
		if (strcmp(routes[i].method, r->method) == 0) {
			routes[i].handler(app, r);
			return;
		}
	}
	if (path_match != NULL)
		http_reply_error(r, RC_METHOD, "Method not allowed.", NULL,
		    path_match->allow);
	else
		http_reply_error(r, RC_NOT_FOUND, "Not found.", NULL, NULL);
}
