-- scale_history.sql: bulk history for the scale run: :rows expired codes
-- and, for each, one attempt row and one finished (sent) outbox row, all
-- expired more than a day ago so that otp.purge_expired() removes them.
-- bench/run runs this once per table, in parallel, with psql variables
-- part (codes | attempts | outbox), rows, client_id and provider_id.
-- The codes are not decryptable (random tags, no sealed code): they are
-- there to be in the indexes and the heap, not to be validated.
--
-- As pg_restore does, bench/run drops the three tables' indexes and
-- primary keys first and builds them after the load (and checks that they
-- come back the same), and session_replication_role = replica skips the
-- foreign-key triggers (the referenced client and provider exist; checking
-- 10,000,000 references one by one would take minutes).
SET session_replication_role = replica;

SELECT :'part' = 'codes' AS is_codes, :'part' = 'attempts' AS is_attempts,
    :'part' = 'outbox' AS is_outbox \gset

-- Row g: id e0000000-0000-4000-8000-<g in 12 hex digits>; issued between
-- about 2 and 4 days ago (by g), expired 5 minutes after; every other code
-- consumed, the others failed once or twice or never.
\if :is_codes
INSERT INTO otp.codes (id, client_id, provider_id, channel, destination,
    code_hash, key_id, created_at, expires_at, consumed_at,
    failed_attempts, max_attempts, lock_seconds)
SELECT ('e0000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
    :client_id, :provider_id, 'email',
    'history' || (g % 100000) || '@example.com', sha256(int8send(g)), 1,
    t, t + interval '5 minutes',
    CASE WHEN g % 2 = 0 THEN t + interval '1 minute' END,
    CASE WHEN g % 2 = 0 THEN 0 ELSE g % 3 END, 5, 300
FROM generate_series(1::bigint, :rows) g,
    LATERAL (SELECT now() - interval '4 days'
	+ make_interval(secs => g * (172800.0 / :rows)) AS t) x;
\endif

\if :is_attempts
INSERT INTO otp.attempts (code_id, client_id, destination, attempted_at,
    outcome, expires_at)
SELECT ('e0000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
    :client_id, 'history' || (g % 100000) || '@example.com',
    t + interval '1 minute',
    CASE WHEN g % 2 = 0 THEN 'success' ELSE 'mismatch' END,
    t + interval '5 minutes'
FROM generate_series(1::bigint, :rows) g,
    LATERAL (SELECT now() - interval '4 days'
	+ make_interval(secs => g * (172800.0 / :rows)) AS t) x;
\endif

\if :is_outbox
INSERT INTO otp.outbox (id, client_id, provider_id, channel, destination,
    template_id, code_sealed, key_id, created_at, expires_at, status,
    attempts, next_attempt_at, sent_at, provider_message_id)
SELECT ('e0000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
    :client_id, :provider_id, 'email',
    'history' || (g % 100000) || '@example.com', NULL, NULL, 1,
    t, t + interval '5 minutes', 'sent', 1, t, t + interval '1 second',
    'history-' || g
FROM generate_series(1::bigint, :rows) g,
    LATERAL (SELECT now() - interval '4 days'
	+ make_interval(secs => g * (172800.0 / :rows)) AS t) x;
\endif
