-- pgbench_generate_5rt.sql: the same work as pgbench_generate_1rt.sql done
-- naively in five round trips: SELECT the client and provider, BEGIN,
-- INSERT the code, INSERT the outbox row, COMMIT.  Variables: keyhash.
\set r random(1, 9223372036854775806)
SELECT c.id AS client_id, p.id AS provider_id, p.max_attempts,
    p.lock_seconds
FROM otp.clients c
JOIN otp.providers p ON p.client_id = c.id AND p.channel = 'email'
    AND p.name = 'generic'
WHERE c.api_key_hash = :keyhash AND c.enabled
\gset
BEGIN;
INSERT INTO otp.codes (id, client_id, provider_id, channel, destination,
    code_hash, key_id, created_at, expires_at, max_attempts, lock_seconds)
VALUES (gen_random_uuid(), :client_id, :provider_id, 'email',
    'pgbench@example.com', sha256(int8send(:r)), 1, now(),
    now() + make_interval(secs => 3600), :max_attempts, :lock_seconds)
RETURNING id, created_at, expires_at
\gset
INSERT INTO otp.outbox (id, client_id, provider_id, channel, destination,
    template_id, code_sealed, key_id, created_at, expires_at,
    next_attempt_at)
VALUES (:id, :client_id, :provider_id, 'email', 'pgbench@example.com',
    NULL, sha256(int8send(:r)) || int8send(:r), 1, :created_at,
    :expires_at, :created_at);
COMMIT;
