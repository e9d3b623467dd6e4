/* tap.h: a tiny TAP emitter for the unit tests (automake's tap-driver). */
#ifndef OTPD_TAP_H
#define OTPD_TAP_H

#include <stdio.h>

static int tap_n;
static int tap_failed;

/* ok: one test point; cond true passes.  name is printf-free text. */
#define ok(cond, name)                                                  \
	do {                                                            \
		int ok_c_ = (cond) ? 1 : 0;                             \
		tap_n++;                                                \
		if (!ok_c_)                                             \
			tap_failed++;                                   \
		printf("%sok %d - %s\n", ok_c_ ? "" : "not ", tap_n,    \
		    (name));                                            \
		if (!ok_c_)                                             \
			printf("# failed at %s:%d\n", __FILE__, __LINE__); \
	} while (0)

/* done_testing: print the plan and return the exit status for main. */
static inline int
done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
