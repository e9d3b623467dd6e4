-- 003_sender.sql: what otpd-sender runs in the database: claiming due outbox
-- jobs under a lease (otp.outbox_claim), recording the outcomes of a batch of
-- deliveries in one statement (otp.outbox_ack), and views that show a DBA
-- every job and the delivery health per client and provider.
--
-- The life of an outbox row:
--   pending --claim--> pending, leased (lease_until, leased_by, attempts+1)
--     --ack sent-->    sent     (sent_at, provider_message_id)
--     --ack failed-->  failed   (a permanent error, or max attempts)
--     --ack retry-->   pending  (next_attempt_at later, lease cleared), or
--                      failed/expired when no attempt is left or the code
--                      expires before the next one
--     --ack release--> pending  (not attempted: attempts-1, lease cleared)
--   A claim marks a job "expired" instead of handing it out when its code has
--   expired, been consumed (validated) or been deleted; last_error says which.
--   A sender that dies leaves its rows leased; they are claimed again once
--   lease_until has passed.  code_sealed is wiped (NULL) whenever a row
--   leaves pending.

-- otp.outbox_claim: lease up to max_jobs due jobs to worker for
-- lease_seconds and return what delivering them takes (sealed code,
-- provider kind and config, template).  Rows other transactions hold are
-- skipped, never waited for, so any number of senders can claim at once.
-- A job already attempted max_attempts times (its senders died holding it)
-- is marked failed instead.  Every row claimed is returned, with status
-- "pending" when it is to be delivered (the other columns are then set) and
-- its final status ("expired", "failed") when the claim settled it, so that
-- a sender can tell a full batch from an exhausted queue.  template_id NULL
-- means the client's default template for the channel; subject and body
-- NULL mean the built-in one.  expires_at is the same RFC 3339 text otpd
-- answered at generate.
CREATE OR REPLACE FUNCTION otp.outbox_claim(max_jobs integer,
    lease_seconds integer, worker text, max_attempts integer)
RETURNS TABLE (id uuid, status text, client_id bigint, provider_id bigint,
    channel text, destination text, code_sealed bytea, key_id integer,
    attempts integer, expires_at text, expires_text text, minutes integer,
    kind text, config text, subject text, body text)
LANGUAGE plpgsql VOLATILE
-- A queue's statistics are stale more often than not (a burst of jobs is
-- drained before autovacuum has looked at it), and with them the planner
-- would read and sort every due row for each claim.  The only plan worth
-- having walks outbox_due in order and stops after max_jobs rows, then
-- looks the claimed rows up by primary key; these settings, local to the
-- function, leave the planner no other.
SET enable_seqscan = off
SET enable_bitmapscan = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_ids uuid[];
BEGIN
	SELECT array_agg(q.id) INTO v_ids FROM (
		SELECT o.id FROM otp.outbox o
		WHERE o.status = 'pending' AND o.next_attempt_at <= now()
		    AND (o.lease_until IS NULL OR o.lease_until <= now())
		ORDER BY o.next_attempt_at
		LIMIT outbox_claim.max_jobs
		FOR UPDATE SKIP LOCKED) q;
	IF v_ids IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY
	WITH due AS (
		SELECT o.id,
		    CASE
		    WHEN k.id IS NULL THEN 'not sent: code no longer exists'
		    WHEN k.consumed_at IS NOT NULL
			THEN 'not sent: code consumed before delivery'
		    WHEN k.expires_at <= now() OR o.expires_at <= now()
			THEN 'not sent: code expired before delivery'
		    END AS skip,
		    o.attempts >= outbox_claim.max_attempts AS exhausted
		FROM otp.outbox o
		LEFT JOIN otp.codes k ON k.id = o.id
		WHERE o.id = ANY (v_ids)
	), claimed AS (
		UPDATE otp.outbox o SET
		    status = CASE WHEN d.skip IS NOT NULL THEN 'expired'
			WHEN d.exhausted THEN 'failed' ELSE 'pending' END,
		    attempts = CASE WHEN d.skip IS NULL AND NOT d.exhausted
			THEN o.attempts + 1 ELSE o.attempts END,
		    lease_until = CASE WHEN d.skip IS NULL AND NOT d.exhausted
			THEN now() + make_interval(secs => outbox_claim.lease_seconds)
			END,
		    leased_by = outbox_claim.worker,
		    last_error = CASE WHEN d.skip IS NOT NULL
			THEN left(d.skip || coalesce('; last: ' || o.last_error,
			    ''), 1000)
			WHEN d.exhausted THEN left('gave up after '
			    || o.attempts || ' attempts; last: '
			    || coalesce(o.last_error, 'the sender stopped'), 1000)
			ELSE o.last_error END,
		    code_sealed = CASE WHEN d.skip IS NULL AND NOT d.exhausted
			THEN o.code_sealed END
		FROM due d
		WHERE o.id = d.id AND o.id = ANY (v_ids)
		RETURNING o.*
	)
	SELECT c.id, c.status, c.client_id, c.provider_id, c.channel,
	    c.destination, c.code_sealed, c.key_id, c.attempts,
	    to_char(c.expires_at AT TIME ZONE 'UTC',
		'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
	    to_char(c.expires_at AT TIME ZONE 'UTC',
		'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
	    GREATEST(1, ceil(extract(epoch FROM c.expires_at - c.created_at)
		/ 60))::integer,
	    p.kind, p.config::text, t.subject, t.body
	FROM claimed c
	JOIN otp.providers p ON p.id = c.provider_id
	LEFT JOIN LATERAL (
		SELECT tt.subject, tt.body FROM otp.templates tt
		WHERE tt.client_id = c.client_id AND tt.channel = c.channel
		    AND (tt.template_id = c.template_id OR tt.is_default)
		ORDER BY (tt.template_id IS NOT DISTINCT FROM c.template_id) DESC
		LIMIT 1
	) t ON c.status = 'pending';
END
$$;

-- otp.outbox_next_status: the status an ack leaves a job in.  outcome is
-- sent, failed, retry or release; a retry fails once the job has had
-- max_attempts attempts and expires when its code would expire before the
-- next attempt (delay seconds from now).
CREATE OR REPLACE FUNCTION otp.outbox_next_status(outcome text,
    attempts integer, max_attempts integer, expires_at timestamptz,
    delay double precision)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE outcome
	WHEN 'sent' THEN 'sent'
	WHEN 'failed' THEN 'failed'
	WHEN 'release' THEN 'pending'
	WHEN 'retry' THEN CASE
		WHEN attempts >= max_attempts THEN 'failed'
		WHEN now() + make_interval(secs => coalesce(delay, 0))
		    >= expires_at THEN 'expired'
		ELSE 'pending' END
	END
$$;

-- otp.outbox_ack: record the outcomes of a batch of deliveries in one
-- statement.  acks is a JSON array of objects {"id": uuid, "outcome":
-- "sent"|"failed"|"retry"|"release", "delay": seconds (retry),
-- "message_id": text (sent), "error": text (failed, retry)}.  Only pending
-- rows change; all but "sent" only while worker still holds the lease (a
-- delivery that succeeded is recorded even if its lease ran out meanwhile).
-- Returns how many rows changed.
CREATE OR REPLACE FUNCTION otp.outbox_ack(acks jsonb, worker text,
    max_attempts integer)
RETURNS integer
LANGUAGE plpgsql VOLATILE
-- rows by primary key only, whatever the statistics say (see above)
SET enable_seqscan = off
SET enable_bitmapscan = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_ids uuid[];
	v_n integer;
BEGIN
	SELECT array_agg((x ->> 'id')::uuid) INTO v_ids
	FROM jsonb_array_elements(outbox_ack.acks) x;
	IF v_ids IS NULL THEN
		RETURN 0;
	END IF;
	WITH a AS (
		SELECT * FROM jsonb_to_recordset(outbox_ack.acks) AS x(id uuid,
		    outcome text, delay double precision, message_id text,
		    error text)
		WHERE x.outcome IN ('sent', 'failed', 'retry', 'release')
	)
	UPDATE otp.outbox o SET
	    status = otp.outbox_next_status(a.outcome, o.attempts,
		outbox_ack.max_attempts, o.expires_at, a.delay),
	    attempts = CASE WHEN a.outcome = 'release'
		THEN GREATEST(o.attempts - 1, 0) ELSE o.attempts END,
	    next_attempt_at = CASE WHEN a.outcome = 'retry'
		THEN now() + make_interval(secs => coalesce(a.delay, 0))
		ELSE o.next_attempt_at END,
	    lease_until = NULL,
	    sent_at = CASE WHEN a.outcome = 'sent' THEN now()
		ELSE o.sent_at END,
	    provider_message_id = CASE WHEN a.outcome = 'sent'
		THEN left(a.message_id, 200)
		ELSE o.provider_message_id END,
	    last_error = CASE
		WHEN a.outcome IN ('failed', 'retry')
		    AND otp.outbox_next_status(a.outcome, o.attempts,
			outbox_ack.max_attempts, o.expires_at, a.delay)
			= 'expired'
		    THEN left('not sent: code expires before the next '
			|| 'attempt; last: ' || coalesce(a.error, ''), 1000)
		WHEN a.outcome IN ('failed', 'retry')
		    THEN left(a.error, 1000)
		ELSE o.last_error END,
	    code_sealed = CASE WHEN otp.outbox_next_status(a.outcome,
		o.attempts, outbox_ack.max_attempts, o.expires_at,
		a.delay) = 'pending' THEN o.code_sealed END
	FROM a
	WHERE o.id = a.id AND o.id = ANY (v_ids) AND o.status = 'pending'
	    AND (a.outcome = 'sent' OR o.leased_by = outbox_ack.worker);
	GET DIAGNOSTICS v_n = ROW_COUNT;
	RETURN v_n;
END
$$;

-- otp.outbox_next_due: seconds until the next pending job becomes due
-- (0 when one is due now; NULL when none is pending).  A sender sleeps
-- at most this long.
CREATE OR REPLACE FUNCTION otp.outbox_next_due()
RETURNS double precision
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT GREATEST(0, extract(epoch FROM min(GREATEST(o.next_attempt_at,
	    coalesce(o.lease_until, o.next_attempt_at))) - now()))::float8
	FROM otp.outbox o
	WHERE o.status = 'pending'
$$;

-- Monitoring -------------------------------------------------------------

-- otp.outbox_jobs: every outbox row as a DBA reads it, without the sealed
-- code.  state refines status: a pending row is "in flight" while a
-- sender holds its lease, "retrying" after a failed attempt, else "queued".
CREATE OR REPLACE VIEW otp.outbox_jobs AS
SELECT o.id,
    c.name AS client,
    p.name AS provider,
    p.kind,
    o.channel,
    o.destination,
    o.status,
    CASE
    WHEN o.status <> 'pending' THEN o.status
    WHEN o.lease_until > now() THEN 'in flight'
    WHEN o.attempts > 0 THEN 'retrying'
    ELSE 'queued'
    END AS state,
    o.attempts,
    o.created_at,
    o.expires_at,
    o.next_attempt_at,
    o.lease_until,
    o.leased_by,
    o.sent_at,
    o.sent_at - o.created_at AS latency,
    o.provider_message_id,
    o.last_error,
    o.client_id,
    o.provider_id
FROM otp.outbox o
JOIN otp.clients c ON c.id = o.client_id
JOIN otp.providers p ON p.id = o.provider_id;

-- otp.delivery_health: per client and provider, what needs attention now:
-- jobs due and waiting, in flight, waiting to be retried, the oldest due
-- job's age, and over the last hour how many went out, failed or expired,
-- the median and 95th percentile delivery latency (generate to provider),
-- and the newest error.  See also otp.delivery_status (all-time counts).
CREATE OR REPLACE VIEW otp.delivery_health AS
SELECT c.name AS client,
    p.channel,
    p.name AS provider,
    p.kind,
    count(o.id) FILTER (WHERE o.status = 'pending'
	AND o.next_attempt_at <= now()
	AND (o.lease_until IS NULL OR o.lease_until <= now())) AS due,
    count(o.id) FILTER (WHERE o.status = 'pending'
	AND o.lease_until > now()) AS in_flight,
    count(o.id) FILTER (WHERE o.status = 'pending'
	AND o.next_attempt_at > now()) AS retry_later,
    now() - min(o.next_attempt_at) FILTER (WHERE o.status = 'pending'
	AND o.next_attempt_at <= now()) AS oldest_due_age,
    count(o.id) FILTER (WHERE o.status = 'sent'
	AND o.sent_at > now() - interval '1 hour') AS sent_1h,
    count(o.id) FILTER (WHERE o.status = 'failed'
	AND o.created_at > now() - interval '1 hour') AS failed_1h,
    count(o.id) FILTER (WHERE o.status = 'expired'
	AND o.created_at > now() - interval '1 hour') AS expired_1h,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY
	extract(epoch FROM o.sent_at - o.created_at))
	FILTER (WHERE o.status = 'sent'
	AND o.sent_at > now() - interval '1 hour') AS latency_p50_s,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY
	extract(epoch FROM o.sent_at - o.created_at))
	FILTER (WHERE o.status = 'sent'
	AND o.sent_at > now() - interval '1 hour') AS latency_p95_s,
    (SELECT e.last_error FROM otp.outbox e
	WHERE e.provider_id = p.id AND e.last_error IS NOT NULL
	ORDER BY e.created_at DESC LIMIT 1) AS last_error,
    c.id AS client_id,
    p.id AS provider_id
FROM otp.clients c
JOIN otp.providers p ON p.client_id = c.id
LEFT JOIN otp.outbox o ON o.provider_id = p.id
GROUP BY c.id, p.id;

-- The health view and purging look rows up by provider.
CREATE INDEX IF NOT EXISTS outbox_provider_created
	ON otp.outbox (provider_id, created_at);
