-- 005_verify.sql: validation in one round trip (otp.verify is redefined in
-- 006 to do its usual work in one row update).  otpd computes the HMAC tag
-- of the submitted code under every key of its key file (the database never
-- sees a key, nor the code), and otp.verify() locks the code row, checks its
-- state, compares the tag of the row's key in constant time and records the
-- outcome: consumed on a match, else one more failure and a lock at
-- max_attempts.  The row lock serialises concurrent validations of one code,
-- so exactly one of many right answers wins and failures never overshoot.

-- otp.tag_equal: a and b are equal; the time taken does not depend on where
-- they differ (every byte is read, no early exit).
CREATE OR REPLACE FUNCTION otp.tag_equal(a bytea, b bytea)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	acc integer := 0;
BEGIN
	IF length(a) <> 32 OR length(b) <> 32 THEN
		RETURN false;
	END IF;
	FOR i IN 0..31 LOOP
		acc := acc | (get_byte(a, i) # get_byte(b, i));
	END LOOP;
	RETURN acc = 0;
END
$$;

-- otp.verify: outcome is one of
--   unauthorized  no enabled client has this key hash
--   stale         the client id otpd assumed is not this key's (client_id
--                 tells the right one; otpd recomputes and asks again)
--   unknown       no such code for this client (or another client's)
--   ok            the code matched and is now consumed
--   invalid       mismatch, expired or consumed
--   locked        too many failures; retry_after seconds remain
CREATE OR REPLACE FUNCTION otp.verify(p_key_hash bytea, p_client_id bigint,
    p_code_id uuid, p_key_ids integer[], p_tags bytea,
    OUT outcome text, OUT client_id bigint, OUT retry_after integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r otp.codes%ROWTYPE;
	v_tag bytea;
	v_pos integer;
	v_fails integer;
	v_note text;
BEGIN
	retry_after := 0;
	SELECT c.id INTO client_id FROM otp.clients c
	WHERE c.api_key_hash = p_key_hash AND c.enabled;
	IF NOT FOUND THEN
		outcome := 'unauthorized';
		RETURN;
	END IF;
	IF client_id IS DISTINCT FROM p_client_id THEN
		outcome := 'stale';
		RETURN;
	END IF;
	SELECT * INTO r FROM otp.codes k
	WHERE k.id = p_code_id AND k.client_id = p_client_id FOR UPDATE;
	IF NOT FOUND THEN
		outcome := 'unknown';
		RETURN;
	END IF;

	IF r.consumed_at IS NOT NULL THEN
		v_note := 'consumed';
	ELSIF r.expires_at <= now() THEN
		v_note := 'expired';
	ELSIF r.locked_until > now() THEN
		v_note := 'locked';
	END IF;
	IF v_note IS NOT NULL THEN
		INSERT INTO otp.attempts (code_id, client_id, destination,
		    outcome, expires_at)
		VALUES (r.id, r.client_id, r.destination, v_note, r.expires_at);
		IF v_note = 'locked' THEN
			outcome := 'locked';
			retry_after := GREATEST(1, ceil(extract(epoch FROM
			    r.locked_until - now())))::integer;
		ELSE
			outcome := 'invalid';
		END IF;
		RETURN;
	END IF;

	-- p_tags holds one 32-byte tag per key id, in the order of p_key_ids
	v_pos := array_position(p_key_ids, r.key_id);
	IF v_pos IS NOT NULL THEN
		v_tag := substring(p_tags FROM (v_pos - 1) * 32 + 1 FOR 32);
	END IF;
	IF v_tag IS NOT NULL AND otp.tag_equal(v_tag, r.code_hash) THEN
		UPDATE otp.codes SET consumed_at = now() WHERE id = r.id;
		INSERT INTO otp.attempts (code_id, client_id, destination,
		    outcome, expires_at)
		VALUES (r.id, r.client_id, r.destination, 'success', r.expires_at);
		outcome := 'ok';
		RETURN;
	END IF;

	-- a lock that has run out starts a fresh count of failures
	v_fails := CASE WHEN r.locked_until IS NOT NULL THEN 1
	    ELSE r.failed_attempts + 1 END;
	UPDATE otp.codes SET failed_attempts = v_fails,
	    locked_until = CASE WHEN v_fails >= r.max_attempts
	        THEN now() + make_interval(secs => r.lock_seconds) END
	WHERE id = r.id;
	INSERT INTO otp.attempts (code_id, client_id, destination, outcome,
	    expires_at)
	VALUES (r.id, r.client_id, r.destination, 'mismatch', r.expires_at);
	outcome := 'invalid';
END
$$;
