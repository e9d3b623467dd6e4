/* router.h: the table of routes, and dispatch of one request to its
 * handler (404 for an unknown path, 405 with Allow for a wrong method). */
#ifndef OTPD_ROUTER_H
#define OTPD_ROUTER_H

struct app;
struct request;

/* router_dispatch: answer r. */
void router_dispatch(struct app *app, struct request *r);

#endif
