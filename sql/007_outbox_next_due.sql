-- 007_outbox_next_due.sql: otp.outbox_next_due() without reading every
-- pending row.  The version of 003 took the minimum over all of them, so
-- with a large queue of jobs that are not yet due (a backlog scheduled for
-- later, retries far off) every short claim of a following sender paid for
-- a scan of the whole queue before it slept, and that delay came on top of
-- every delivery's latency.  It also answered 0 ("due now") for an empty
-- queue, since GREATEST ignores a NULL, and failed on a queue whose jobs
-- are all scheduled for 'infinity'; both are NULL now.
--
-- A pending job is due at next_attempt_at, or at lease_until when a sender
-- holds it past that.  The earliest job without such a lease is the first
-- one in outbox_due's order that has none (leased rows are as many as the
-- jobs in flight, and the walk skips only those); a leased job can only come
-- first if it sorts before that one, so only those few are looked at for
-- their lease.
CREATE OR REPLACE FUNCTION otp.outbox_next_due()
RETURNS double precision
LANGUAGE plpgsql STABLE
-- walk outbox_due, whatever the statistics say (see otp.outbox_claim)
SET enable_seqscan = off
SET enable_bitmapscan = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_free timestamptz;
	v_leased timestamptz;
	v_due timestamptz;
BEGIN
	SELECT o.next_attempt_at INTO v_free
	FROM otp.outbox o
	WHERE o.status = 'pending'
	    AND (o.lease_until IS NULL OR o.lease_until <= o.next_attempt_at)
	ORDER BY o.next_attempt_at
	LIMIT 1;
	SELECT min(o.lease_until) INTO v_leased
	FROM otp.outbox o
	WHERE o.status = 'pending' AND o.lease_until > o.next_attempt_at
	    AND o.next_attempt_at < coalesce(v_free, 'infinity');
	v_due := LEAST(v_free, v_leased);
	IF v_due IS NULL OR NOT isfinite(v_due) THEN
		RETURN NULL;	/* nothing to wait for */
	END IF;
	RETURN GREATEST(0, extract(epoch FROM v_due - now()))::float8;
END
$$;
