-- 004_metrics.sql: running totals of delivery outcomes per provider, for
-- /otp/metrics and DBAs: the finished deliveries (sent, failed, expired) and
-- the failed attempts that were scheduled again (retry), so that a failing
-- provider shows before its jobs run out of attempts.  Kept by a
-- statement-level trigger so that a sender's batch ack costs one upsert per
-- (provider, outcome), and so that purging old outbox rows does not make the
-- totals go down.

CREATE TABLE IF NOT EXISTS otp.delivery_counts (
	provider_id	bigint NOT NULL REFERENCES otp.providers (id) ON DELETE CASCADE,
	outcome		text NOT NULL
	    CHECK (outcome IN ('sent', 'failed', 'expired', 'retry')),
	n		bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (provider_id, outcome)
);

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

DROP TRIGGER IF EXISTS outbox_count_deliveries ON otp.outbox;
CREATE TRIGGER outbox_count_deliveries
	AFTER UPDATE ON otp.outbox
	REFERENCING OLD TABLE AS finished_old NEW TABLE AS finished_new
	FOR EACH STATEMENT EXECUTE FUNCTION otp.count_deliveries();
