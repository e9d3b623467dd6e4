-- 004_metrics.sql: running totals of finished deliveries per provider and
-- outcome, for /otp/metrics and DBAs.  Kept by a statement-level trigger so
-- that a sender's batch ack costs one upsert per (provider, outcome), and so
-- that purging old outbox rows does not make the totals go down.

CREATE TABLE IF NOT EXISTS otp.delivery_counts (
	provider_id	bigint NOT NULL REFERENCES otp.providers (id) ON DELETE CASCADE,
	outcome		text NOT NULL CHECK (outcome IN ('sent', 'failed', 'expired')),
	n		bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (provider_id, outcome)
);

CREATE OR REPLACE FUNCTION otp.count_deliveries()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	INSERT INTO otp.delivery_counts AS d (provider_id, outcome, n)
	SELECT n.provider_id, n.status, count(*)
	FROM finished_new n JOIN finished_old o ON o.id = n.id
	WHERE o.status = 'pending' AND n.status <> 'pending'
	GROUP BY n.provider_id, n.status
	ON CONFLICT (provider_id, outcome) DO UPDATE SET n = d.n + excluded.n;
	RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS outbox_count_deliveries ON otp.outbox;
CREATE TRIGGER outbox_count_deliveries
	AFTER UPDATE ON otp.outbox
	REFERENCING OLD TABLE AS finished_old NEW TABLE AS finished_new
	FOR EACH STATEMENT EXECUTE FUNCTION otp.count_deliveries();
