-- pgbench_validate_1rt.sql: the ceiling for POST /otp/validate: the least a
-- (failed) validate must do, as ONE statement: check the API key hash,
-- update the code row by id (one more failed attempt), insert the attempt
-- row.  bench/run inserts nval code rows whose ids are made from a number
-- (00000000-0000-4000-8000-<12 hex digits>), so the statement needs no
-- lookup to pick one.  Variables: keyhash, nval.
\set n random(1, :nval)
WITH u AS (
	UPDATE otp.codes k SET failed_attempts = k.failed_attempts + 1
	WHERE k.id = ('00000000-0000-4000-8000-'
		|| lpad(to_hex(:n::bigint), 12, '0'))::uuid
	    AND k.client_id = (SELECT c.id FROM otp.clients c
		WHERE c.api_key_hash = :keyhash AND c.enabled)
	    AND k.consumed_at IS NULL AND k.expires_at > now()
	RETURNING k.id, k.client_id, k.destination, k.expires_at
)
INSERT INTO otp.attempts (code_id, client_id, destination, outcome,
    expires_at)
SELECT id, client_id, destination, 'mismatch', expires_at FROM u;
