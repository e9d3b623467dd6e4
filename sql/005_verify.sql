-- 005_verify.sql: validation in one round trip.  otpd computes the HMAC tag
-- of the submitted code under every key of its key file (the database never
-- sees a key, nor the code), and otp.verify() compares the tag of the row's
-- key in constant time inside its UPDATE and records the outcome: consumed
-- on a match, else one more failure and a lock at max_attempts.  A right or
-- wrong code costs one UPDATE and one INSERT; only when the update finds
-- nothing comparable does it look at why (unknown key, stale client hint, no
-- such code, consumed, expired, locked).  The update takes the row lock and
-- re-checks its conditions on the newest row version, so of many right
-- answers exactly one consumes the code, and failures stop at max_attempts.

-- otp.tag_equal: a and b are equal; the time taken does not depend on where
-- they differ (every byte is read, no early exit).
-- No SET search_path on these two: they are called on every validation and
-- a SET clause costs a configuration save and restore per call; every name
-- in them is schema-qualified or a built-in (pg_catalog comes first).
CREATE OR REPLACE FUNCTION otp.tag_equal(a bytea, b bytea)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
	acc integer := 0;
BEGIN
	IF pg_catalog.length(a) <> 32 OR pg_catalog.length(b) <> 32 THEN
		RETURN false;
	END IF;
	FOR i IN 0..31 LOOP
		acc := acc | (pg_catalog.get_byte(a, i) # pg_catalog.get_byte(b, i));
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
AS $$
DECLARE
	r record;
	v_note text;
BEGIN
	retry_after := 0;
	client_id := p_client_id;

	-- p_tags holds one 32-byte tag per key id, in the order of p_key_ids;
	-- a lock that has run out starts a fresh count of failures
	UPDATE otp.codes t SET
	    consumed_at = CASE WHEN m.match THEN now() END,
	    failed_attempts = CASE WHEN m.match THEN t.failed_attempts
		WHEN t.locked_until IS NOT NULL THEN 1
		ELSE t.failed_attempts + 1 END,
	    locked_until = CASE WHEN m.match THEN t.locked_until
		WHEN (CASE WHEN t.locked_until IS NOT NULL THEN 1
		    ELSE t.failed_attempts + 1 END) >= t.max_attempts
		THEN now() + make_interval(secs => t.lock_seconds) END
	FROM (SELECT k.id, COALESCE(otp.tag_equal(substring(p_tags
		FROM (array_position(p_key_ids, k.key_id) - 1) * 32 + 1
		FOR 32), k.code_hash), false) AS match
	    FROM otp.codes k JOIN otp.clients c ON c.id = k.client_id
	    WHERE k.id = p_code_id AND c.id = p_client_id
	    AND c.api_key_hash = p_key_hash AND c.enabled) m
	WHERE t.id = m.id AND t.consumed_at IS NULL AND t.expires_at > now()
	    AND (t.locked_until IS NULL OR t.locked_until <= now())
	RETURNING m.match, t.client_id AS cid, t.destination, t.expires_at
	INTO r;
	IF FOUND THEN
		INSERT INTO otp.attempts (code_id, client_id, destination,
		    outcome, expires_at)
		VALUES (p_code_id, r.cid, r.destination,
		    CASE WHEN r.match THEN 'success' ELSE 'mismatch' END,
		    r.expires_at);
		outcome := CASE WHEN r.match THEN 'ok' ELSE 'invalid' END;
		RETURN;
	END IF;

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
	SELECT k.id, k.client_id AS cid, k.destination, k.expires_at,
	    k.consumed_at, k.locked_until INTO r
	FROM otp.codes k WHERE k.id = p_code_id AND k.client_id = p_client_id;
	IF NOT FOUND THEN
		outcome := 'unknown';
		RETURN;
	END IF;
	outcome := 'invalid';
	IF r.consumed_at IS NOT NULL THEN
		v_note := 'consumed';
	ELSIF r.expires_at <= now() THEN
		v_note := 'expired';
	ELSIF r.locked_until > now() THEN
		v_note := 'locked';
		outcome := 'locked';
		retry_after := GREATEST(1, ceil(extract(epoch FROM
		    r.locked_until - now())))::integer;
	ELSE
		-- comparable again already (a lock ran out in between): the
		-- client may simply try again; nothing was compared
		RETURN;
	END IF;
	INSERT INTO otp.attempts (code_id, client_id, destination, outcome,
	    expires_at)
	VALUES (p_code_id, r.cid, r.destination, v_note, r.expires_at);
END
$$;
