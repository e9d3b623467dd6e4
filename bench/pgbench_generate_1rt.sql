-- pgbench_generate_1rt.sql: the ceiling for POST /otp/generate: the least a
-- generate must do, as ONE statement (one round trip): look the client (and
-- its provider) up by API key hash, insert the code row, insert the outbox
-- row.  No template lookup, no NOTIFY, no HTTP, no crypto: the database
-- part only.  Variables: keyhash (bytea text, -D keyhash=\x...).
-- Rows get destination pgbench@example.com so they can be told apart.
\set r random(1, 9223372036854775806)
WITH c AS (
	SELECT c.id AS client_id, p.id AS provider_id, p.max_attempts,
	    p.lock_seconds
	FROM otp.clients c
	JOIN otp.providers p ON p.client_id = c.id AND p.channel = 'email'
	    AND p.name = 'generic'
	WHERE c.api_key_hash = :keyhash AND c.enabled
), k AS (
	INSERT INTO otp.codes (id, client_id, provider_id, channel,
	    destination, code_hash, key_id, created_at, expires_at,
	    max_attempts, lock_seconds)
	SELECT gen_random_uuid(), client_id, provider_id, 'email',
	    'pgbench@example.com', sha256(int8send(:r)), 1, now(),
	    now() + make_interval(secs => 3600), max_attempts, lock_seconds
	FROM c
	RETURNING id, client_id, provider_id, created_at, expires_at
), o AS (
	INSERT INTO otp.outbox (id, client_id, provider_id, channel,
	    destination, template_id, code_sealed, key_id, created_at,
	    expires_at, next_attempt_at)
	SELECT id, client_id, provider_id, 'email', 'pgbench@example.com',
	    NULL, sha256(int8send(:r)) || int8send(:r), 1, created_at,
	    expires_at, created_at
	FROM k
)
SELECT id, created_at, expires_at FROM k;
