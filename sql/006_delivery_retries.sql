-- 006_delivery_retries.sql: otp.delivery_counts also counts, as "retry",
-- the failed attempts that were scheduled again, so that a failing provider
-- shows in otpd_deliveries_total before its jobs run out of attempts (004
-- counted only the finished deliveries: sent, failed, expired).  The trigger
-- of 004 calls otp.count_deliveries(), replaced here.

ALTER TABLE otp.delivery_counts
	DROP CONSTRAINT IF EXISTS delivery_counts_outcome_check;
ALTER TABLE otp.delivery_counts
	ADD CONSTRAINT delivery_counts_outcome_check
	CHECK (outcome IN ('sent', 'failed', 'expired', 'retry'));

-- A row that leaves pending counts under its new status.  A row that stays
-- pending counts as a retry when an ack of outcome "retry" (see
-- otp.outbox_ack) changed it: its lease cleared, its attempts kept (a
-- "release" gives one back) and its next attempt moved later (a claim sets
-- a lease and counts an attempt instead).
CREATE OR REPLACE FUNCTION otp.count_deliveries()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO otp.delivery_counts AS d (provider_id, outcome, n)
	SELECT n.provider_id,
	    CASE WHEN n.status = 'pending' THEN 'retry' ELSE n.status END,
	    count(*)
	FROM finished_new n JOIN finished_old o ON o.id = n.id
	WHERE o.status = 'pending' AND (n.status <> 'pending'
	    OR (o.lease_until IS NOT NULL AND n.lease_until IS NULL
		AND n.attempts = o.attempts
		AND n.next_attempt_at > o.next_attempt_at))
	GROUP BY 1, 2
	ON CONFLICT (provider_id, outcome) DO UPDATE SET n = d.n + excluded.n;
	RETURN NULL;
END
$$;
