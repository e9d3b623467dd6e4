-- 002_functions.sql: the DBA interface to the otp schema: clients and their
-- API keys, providers, templates, purging old rows, and a delivery view.
--
-- Applied once by otpd-migrate like every numbered file; a later change to
-- these functions goes in a new numbered file (CREATE OR REPLACE keeps it
-- safe to run by hand with psql too).  Every function pins search_path
-- (the procedure cannot), and names are schema-qualified anyway.  Errors are raised with a SQLSTATE and
-- a HINT saying what to do:
--   42704 undefined_object         unknown client or template
--   23505 unique_violation         client already exists
--   22023 invalid_parameter_value  bad channel, kind, config, template ...

-- API keys ---------------------------------------------------------------

-- otp.new_api_key: a fresh key, "otpk_" and 64 hex digits drawn from two
-- version-4 UUIDs (gen_random_uuid() reads the server's strong random
-- source; 244 of the bits are random).  The caller stores only its SHA-256.
CREATE OR REPLACE FUNCTION otp.new_api_key()
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT 'otpk_'
	    || replace(gen_random_uuid()::text, '-', '')
	    || replace(gen_random_uuid()::text, '-', '')
$$;

-- otp.api_key_hash: what otp.clients.api_key_hash holds for a key: SHA-256
-- over the exact bytes of the key, as otpd hashes the header it receives.
CREATE OR REPLACE FUNCTION otp.api_key_hash(key text)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT sha256(convert_to(key, 'UTF8'))
$$;

-- otp.client_id: the id of the named client; raises 42704 if there is none.
-- lock_row takes FOR NO KEY UPDATE on it, which serialises the DBA
-- functions for one client without blocking otpd's inserts of codes.
CREATE OR REPLACE FUNCTION otp.client_id(client text, lock_row boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
DECLARE
	v_id bigint;
BEGIN
	IF lock_row THEN
		SELECT c.id INTO v_id FROM otp.clients c
		WHERE c.name = client_id.client FOR NO KEY UPDATE;
	ELSE
		SELECT c.id INTO v_id FROM otp.clients c
		WHERE c.name = client_id.client;
	END IF;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'client "%" does not exist', client
		    USING ERRCODE = 'undefined_object',
		    HINT = 'Create it with SELECT otp.create_client(''name''); list clients with SELECT name FROM otp.clients;';
	END IF;
	RETURN v_id;
END
$$;

-- otp.create_client: create a client and return its API key.  The key is
-- shown this once: only its SHA-256 is stored.
CREATE OR REPLACE FUNCTION otp.create_client(name text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
DECLARE
	v_name text := create_client.name;
	v_key text;
BEGIN
	IF v_name IS NULL OR length(v_name) NOT BETWEEN 1 AND 200 THEN
		RAISE EXCEPTION 'invalid client name'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'A client name is 1 to 200 characters long.';
	END IF;
	v_key := otp.new_api_key();
	BEGIN
		INSERT INTO otp.clients (name, api_key_hash)
		VALUES (v_name, otp.api_key_hash(v_key));
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'client "%" already exists', v_name
		    USING ERRCODE = 'unique_violation',
		    HINT = 'Use SELECT otp.rotate_api_key(''name''); to give an existing client a new key.';
	END;
	RETURN v_key;
END
$$;

-- otp.rotate_api_key: give a client a new API key and return it; the old
-- key stops working as soon as this transaction commits.
CREATE OR REPLACE FUNCTION otp.rotate_api_key(name text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
DECLARE
	v_id bigint := otp.client_id(rotate_api_key.name, true);
	v_key text := otp.new_api_key();
BEGIN
	UPDATE otp.clients c
	SET api_key_hash = otp.api_key_hash(v_key), key_rotated_at = now()
	WHERE c.id = v_id;
	RETURN v_key;
END
$$;

-- otp.disable_client / otp.enable_client: a disabled client's key is
-- refused; its providers, templates and codes are kept.
CREATE OR REPLACE FUNCTION otp.disable_client(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
DECLARE
	v_id bigint := otp.client_id(disable_client.name, true);
BEGIN
	UPDATE otp.clients c SET enabled = false WHERE c.id = v_id;
END
$$;

CREATE OR REPLACE FUNCTION otp.enable_client(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
DECLARE
	v_id bigint := otp.client_id(enable_client.name, true);
BEGIN
	UPDATE otp.clients c SET enabled = true WHERE c.id = v_id;
END
$$;

-- Providers --------------------------------------------------------------

-- otp.config_text: config->>key if it is a non-empty JSON string, else NULL.
CREATE OR REPLACE FUNCTION otp.config_text(config jsonb, key text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN jsonb_typeof(config -> key) = 'string'
	    AND config ->> key <> '' THEN config ->> key END
$$;

-- otp.check_provider_config: raise 22023 unless kind fits channel and
-- config holds what kind needs.  kind and channel are lower case already.
CREATE OR REPLACE FUNCTION otp.check_provider_config(kind text, channel text, config jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, otp, pg_temp
AS $$
DECLARE
	v_need text[];
	v_key text;
	v_example text;
	v_url text;
BEGIN
	CASE kind
	WHEN 'smtp' THEN
		v_need := ARRAY['url', 'from'];
		v_example := '{"url": "smtps://user:password@mail.example.com:465", "from": "Example <noreply@example.com>", "starttls": "required"}';
	WHEN 'sendgrid' THEN
		v_need := ARRAY['api_key', 'from'];
		v_example := '{"api_key": "SG....", "from": "noreply@example.com"}';
	WHEN 'twilio' THEN
		v_need := ARRAY['account_sid', 'auth_token'];
		v_example := '{"account_sid": "AC...", "auth_token": "...", "from": "+15005550006"}';
	WHEN 'webhook' THEN
		v_need := ARRAY['url', 'secret'];
		v_example := '{"url": "https://hooks.example.com/otp", "secret": "a long random string"}';
	WHEN 'file' THEN
		v_need := ARRAY['path'];
		v_example := '{"path": "/var/lib/otpd/outbox.jsonl"}';
	ELSE
		RAISE EXCEPTION 'unknown provider kind "%"', kind
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'kind is one of smtp, sendgrid, twilio, webhook, file.';
	END CASE;

	IF (kind IN ('smtp', 'sendgrid') AND channel <> 'email')
	    OR (kind = 'twilio' AND channel <> 'sms') THEN
		RAISE EXCEPTION 'provider kind "%" cannot send on channel "%"', kind, channel
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'smtp and sendgrid send email, twilio sends sms, webhook and file do both.';
	END IF;

	IF config IS NULL OR jsonb_typeof(config) <> 'object' THEN
		RAISE EXCEPTION 'provider config must be a JSON object'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = format('For kind %s, for example: %s', kind, v_example);
	END IF;
	FOREACH v_key IN ARRAY v_need LOOP
		IF otp.config_text(config, v_key) IS NULL THEN
			RAISE EXCEPTION 'provider kind "%" needs config key "%" (a non-empty string)', kind, v_key
			    USING ERRCODE = 'invalid_parameter_value',
			    HINT = format('For kind %s, for example: %s', kind, v_example);
		END IF;
	END LOOP;

	IF kind = 'smtp' THEN
		v_url := lower(config ->> 'url');
		IF NOT (v_url LIKE 'smtp://%' OR v_url LIKE 'smtps://%') THEN
			RAISE EXCEPTION 'smtp provider url must start with smtp:// or smtps://'
			    USING ERRCODE = 'invalid_parameter_value',
			    HINT = 'smtps:// is TLS from the start (port 465); smtp:// uses STARTTLS (port 587).';
		END IF;
		IF config ? 'starttls' AND (jsonb_typeof(config -> 'starttls') <> 'string'
		    OR config ->> 'starttls' NOT IN ('required', 'try', 'none')) THEN
			RAISE EXCEPTION 'smtp provider starttls must be "required", "try" or "none"'
			    USING ERRCODE = 'invalid_parameter_value',
			    HINT = 'Leave it out to get the default, "required".';
		END IF;
	ELSIF kind = 'webhook' THEN
		v_url := lower(config ->> 'url');
		IF NOT (v_url LIKE 'http://%' OR v_url LIKE 'https://%') THEN
			RAISE EXCEPTION 'webhook provider url must start with http:// or https://'
			    USING ERRCODE = 'invalid_parameter_value',
			    HINT = 'For example "https://hooks.example.com/otp".';
		END IF;
	ELSIF kind = 'file' AND left(config ->> 'path', 1) <> '/' THEN
		-- a relative path would depend on the sender's working directory
		RAISE EXCEPTION 'file provider path must be absolute'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'For example "/var/lib/otpd/outbox.jsonl".';
	ELSIF kind = 'twilio' AND otp.config_text(config, 'from') IS NULL
	    AND otp.config_text(config, 'messaging_service_sid') IS NULL THEN
		RAISE EXCEPTION 'twilio provider needs config key "from" or "messaging_service_sid"'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = format('For example: %s', v_example);
	END IF;
END
$$;

-- otp.add_provider: create or update (same client, channel and name) a
-- provider and return its id.  channel and kind are stored lower case.
CREATE OR REPLACE FUNCTION otp.add_provider(client text, channel text, name text,
    kind text, config jsonb, max_attempts integer DEFAULT 5,
    lock_seconds integer DEFAULT 300)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_client_id bigint := otp.client_id(add_provider.client, true);
	v_channel text := lower(add_provider.channel);
	v_name text := add_provider.name;
	v_kind text := lower(add_provider.kind);
	v_config jsonb := add_provider.config;
	v_max integer := add_provider.max_attempts;
	v_lock integer := add_provider.lock_seconds;
	v_id bigint;
BEGIN
	IF v_channel IS NULL OR v_channel NOT IN ('email', 'sms') THEN
		RAISE EXCEPTION 'unknown channel "%"', add_provider.channel
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'channel is email or sms.';
	END IF;
	IF v_name IS NULL OR length(v_name) NOT BETWEEN 1 AND 200 THEN
		RAISE EXCEPTION 'invalid provider name'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'A provider name is 1 to 200 characters long.';
	END IF;
	IF v_max IS NULL OR v_max NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'max_attempts must be between 1 and 1000'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'It is the number of wrong codes that locks a code; 5 is usual.';
	END IF;
	IF v_lock IS NULL OR v_lock NOT BETWEEN 0 AND 31536000 THEN
		RAISE EXCEPTION 'lock_seconds must be between 0 and 31536000'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'It is how long a code stays locked after max_attempts wrong codes; 300 is usual.';
	END IF;
	PERFORM otp.check_provider_config(coalesce(v_kind, ''), v_channel, v_config);

	INSERT INTO otp.providers AS p
	    (client_id, channel, name, kind, config, max_attempts, lock_seconds)
	VALUES (v_client_id, v_channel, v_name, v_kind, v_config, v_max, v_lock)
	ON CONFLICT (client_id, channel, name) DO UPDATE
	SET kind = EXCLUDED.kind, config = EXCLUDED.config,
	    max_attempts = EXCLUDED.max_attempts,
	    lock_seconds = EXCLUDED.lock_seconds
	RETURNING p.id INTO v_id;
	RETURN v_id;
END
$$;

-- Templates --------------------------------------------------------------

-- otp.set_template: create or update a template.  body must contain
-- {{code}}; email needs a one-line subject, sms has none (stored NULL).
-- A client's first template on a channel becomes that channel's default.
CREATE OR REPLACE FUNCTION otp.set_template(client text, template_id text,
    channel text, subject text, body text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v_client_id bigint := otp.client_id(set_template.client, true);
	v_tid text := set_template.template_id;
	v_channel text := lower(set_template.channel);
	v_subject text := set_template.subject;
	v_body text := set_template.body;
BEGIN
	IF v_channel IS NULL OR v_channel NOT IN ('email', 'sms') THEN
		RAISE EXCEPTION 'unknown channel "%"', set_template.channel
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'channel is email or sms.';
	END IF;
	IF v_tid IS NULL OR length(v_tid) NOT BETWEEN 1 AND 200 THEN
		RAISE EXCEPTION 'invalid template id'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'A template id is 1 to 200 characters long.';
	END IF;
	IF v_body IS NULL OR strpos(v_body, '{{code}}') = 0 THEN
		RAISE EXCEPTION 'template body must contain {{code}}'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = '{{code}} is replaced by the one-time password.';
	END IF;
	IF v_channel = 'sms' THEN
		v_subject := NULL;
	ELSIF v_subject IS NULL OR btrim(v_subject) = '' THEN
		RAISE EXCEPTION 'an email template needs a subject'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'Pass the subject line as the fourth argument.';
	ELSIF v_subject ~ '[\r\n]' THEN
		-- a line break in a header would let the subject add headers
		RAISE EXCEPTION 'template subject must be a single line'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'Remove carriage returns and line feeds from the subject.';
	END IF;

	-- the client row lock taken above makes "first" race-free
	INSERT INTO otp.templates AS t
	    (client_id, template_id, channel, subject, body, is_default)
	VALUES (v_client_id, v_tid, v_channel, v_subject, v_body,
	    NOT EXISTS (SELECT 1 FROM otp.templates x
		WHERE x.client_id = v_client_id AND x.channel = v_channel))
	ON CONFLICT (client_id, channel, template_id) DO UPDATE
	SET subject = EXCLUDED.subject, body = EXCLUDED.body,
	    updated_at = now();
END
$$;

-- otp.set_default_template: make an existing template the default for its
-- client and channel.
CREATE OR REPLACE FUNCTION otp.set_default_template(client text,
    template_id text, channel text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
DECLARE
	v_client_id bigint := otp.client_id(set_default_template.client, true);
	v_tid text := set_default_template.template_id;
	v_channel text := lower(set_default_template.channel);
BEGIN
	IF NOT EXISTS (SELECT 1 FROM otp.templates t WHERE t.client_id = v_client_id
	    AND t.channel = v_channel AND t.template_id = v_tid) THEN
		RAISE EXCEPTION 'client "%" has no % template "%"',
		    set_default_template.client, v_channel, v_tid
		    USING ERRCODE = 'undefined_object',
		    HINT = 'Create it first with otp.set_template().';
	END IF;
	-- two statements: the unique index on defaults is checked row by row
	UPDATE otp.templates t SET is_default = false, updated_at = now()
	WHERE t.client_id = v_client_id AND t.channel = v_channel
	    AND t.is_default AND t.template_id <> v_tid;
	UPDATE otp.templates t SET is_default = true, updated_at = now()
	WHERE t.client_id = v_client_id AND t.channel = v_channel
	    AND t.template_id = v_tid AND NOT t.is_default;
END
$$;

-- Purging ----------------------------------------------------------------

-- otp.purge_batch: delete at most batch_size rows of one table ('codes',
-- 'attempts' or 'outbox') whose expires_at is before cutoff, and return
-- how many.  Rows another transaction holds locked are skipped, never
-- waited for.  Outbox rows still pending under a live lease are kept, so a
-- sender in the middle of a delivery does not lose its row.
CREATE OR REPLACE FUNCTION otp.purge_batch(what text, cutoff timestamptz,
    batch_size integer DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	CASE what
	WHEN 'codes' THEN
		DELETE FROM otp.codes WHERE id IN (
			SELECT c.id FROM otp.codes c WHERE c.expires_at < cutoff
			LIMIT batch_size FOR UPDATE SKIP LOCKED);
	WHEN 'attempts' THEN
		DELETE FROM otp.attempts WHERE id IN (
			SELECT a.id FROM otp.attempts a WHERE a.expires_at < cutoff
			LIMIT batch_size FOR UPDATE SKIP LOCKED);
	WHEN 'outbox' THEN
		DELETE FROM otp.outbox WHERE id IN (
			SELECT o.id FROM otp.outbox o WHERE o.expires_at < cutoff
			    AND (o.status <> 'pending' OR o.lease_until IS NULL
				OR o.lease_until < now())
			LIMIT batch_size FOR UPDATE SKIP LOCKED);
	ELSE
		RAISE EXCEPTION 'cannot purge "%"', what
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'Purge codes, attempts or outbox.';
	END CASE;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- otp.purge_cutoff: now() - older_than, refusing a negative or NULL
-- interval (which would delete codes that are still valid).
CREATE OR REPLACE FUNCTION otp.purge_cutoff(older_than interval)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF older_than IS NULL OR older_than < interval '0' THEN
		RAISE EXCEPTION 'older_than must be zero or a positive interval'
		    USING ERRCODE = 'invalid_parameter_value',
		    HINT = 'For example: SELECT otp.purge_expired(''7 days'');';
	END IF;
	RETURN now() - older_than;
END
$$;

-- otp.purge_expired: delete codes, attempts and finished outbox rows that
-- expired more than older_than ago; return how many rows went.  Each batch
-- of 10,000 rows is its own DELETE, so it takes row locks only and skips
-- rows in use; but a function is one transaction, so the locks and the
-- dead rows of all batches last until it ends.  For a large backlog use
-- CALL otp.purge_expired_batches(), which commits after every batch.
CREATE OR REPLACE FUNCTION otp.purge_expired(older_than interval DEFAULT '1 day')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, otp, pg_temp
AS $$
DECLARE
	v_cutoff timestamptz := otp.purge_cutoff(older_than);
	v_batch constant integer := 10000;
	v_what text;
	v_n bigint;
	v_total bigint := 0;
BEGIN
	FOREACH v_what IN ARRAY ARRAY['codes', 'attempts', 'outbox'] LOOP
		LOOP
			v_n := otp.purge_batch(v_what, v_cutoff, v_batch);
			v_total := v_total + v_n;
			EXIT WHEN v_n < v_batch;
		END LOOP;
	END LOOP;
	RETURN v_total;
END
$$;

-- otp.purge_expired_batches: the same as otp.purge_expired, committing
-- after each batch; deleted returns the total.  Use it with CALL outside
-- a transaction block.  (A procedure that commits may not have a SET
-- clause, hence the qualified names and no search_path.)
CREATE OR REPLACE PROCEDURE otp.purge_expired_batches(
    older_than interval DEFAULT '1 day', INOUT deleted bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
	v_cutoff timestamptz := otp.purge_cutoff(older_than);
	v_batch constant integer := 10000;
	v_what text;
	v_n bigint;
BEGIN
	deleted := 0;
	FOREACH v_what IN ARRAY ARRAY['codes', 'attempts', 'outbox'] LOOP
		LOOP
			v_n := otp.purge_batch(v_what, v_cutoff, v_batch);
			deleted := deleted + v_n;
			COMMIT;
			EXIT WHEN v_n < v_batch;
		END LOOP;
	END LOOP;
END
$$;

-- Monitoring -------------------------------------------------------------

-- otp.delivery_status: per client and provider, the outbox rows by status
-- and the age of the oldest pending one.  Providers with no rows show 0.
CREATE OR REPLACE VIEW otp.delivery_status AS
SELECT c.name AS client,
    p.channel,
    p.name AS provider,
    p.kind,
    c.enabled AS client_enabled,
    count(o.id) FILTER (WHERE o.status = 'pending') AS pending,
    count(o.id) FILTER (WHERE o.status = 'sent') AS sent,
    count(o.id) FILTER (WHERE o.status = 'failed') AS failed,
    count(o.id) FILTER (WHERE o.status = 'expired') AS expired,
    min(o.created_at) FILTER (WHERE o.status = 'pending') AS oldest_pending_at,
    max(o.sent_at) AS last_sent_at,
    c.id AS client_id,
    p.id AS provider_id
FROM otp.clients c
JOIN otp.providers p ON p.client_id = c.id
LEFT JOIN otp.outbox o ON o.provider_id = p.id
GROUP BY c.id, p.id;
