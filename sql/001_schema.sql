-- 001_schema.sql: the otp schema's tables and indexes (clients, providers,
-- templates, codes, attempts, outbox).  Applied once by otpd-migrate, which
-- records it in otp.schema_version.  Codes are stored only as HMAC tags and
-- the outbox only holds AES-256-GCM ciphertext; the keys live in the key file.

CREATE SCHEMA IF NOT EXISTS otp;

CREATE TABLE otp.clients (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name		text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
	api_key_hash	bytea NOT NULL UNIQUE CHECK (length(api_key_hash) = 32),
	enabled		boolean NOT NULL DEFAULT true,
	created_at	timestamptz NOT NULL DEFAULT now(),
	key_rotated_at	timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE otp.providers (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	client_id	bigint NOT NULL REFERENCES otp.clients (id) ON DELETE CASCADE,
	channel		text NOT NULL CHECK (channel IN ('email', 'sms')),
	name		text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	kind		text NOT NULL
			CHECK (kind IN ('smtp', 'sendgrid', 'twilio', 'webhook', 'file')),
	config		jsonb NOT NULL DEFAULT '{}',
	max_attempts	integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 1000),
	lock_seconds	integer NOT NULL DEFAULT 300 CHECK (lock_seconds BETWEEN 0 AND 31536000),
	created_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (client_id, channel, name)
);

CREATE TABLE otp.templates (
	client_id	bigint NOT NULL REFERENCES otp.clients (id) ON DELETE CASCADE,
	template_id	text NOT NULL CHECK (length(template_id) BETWEEN 1 AND 200),
	channel		text NOT NULL CHECK (channel IN ('email', 'sms')),
	subject		text,
	body		text NOT NULL,
	is_default	boolean NOT NULL DEFAULT false,
	updated_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (client_id, channel, template_id)
);
-- at most one default template per client and channel
CREATE UNIQUE INDEX templates_one_default
	ON otp.templates (client_id, channel) WHERE is_default;

-- One row per issued code.  id is the public otpId (a UUID drawn by otpd from
-- the CSPRNG, so that the HMAC can cover it before the row exists).
-- max_attempts and lock_seconds are copied from the provider at issue time so
-- a later provider change cannot loosen the limits of codes already out.
CREATE TABLE otp.codes (
	id		uuid PRIMARY KEY,
	client_id	bigint NOT NULL REFERENCES otp.clients (id) ON DELETE CASCADE,
	provider_id	bigint NOT NULL REFERENCES otp.providers (id) ON DELETE CASCADE,
	channel		text NOT NULL CHECK (channel IN ('email', 'sms')),
	destination	text NOT NULL,
	code_hash	bytea NOT NULL CHECK (length(code_hash) = 32),
	key_id		integer NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	consumed_at	timestamptz,
	failed_attempts	integer NOT NULL DEFAULT 0,
	locked_until	timestamptz,
	max_attempts	integer NOT NULL,
	lock_seconds	integer NOT NULL
);
CREATE INDEX codes_expires_at ON otp.codes (expires_at);

-- One row per validation attempt, whatever its outcome.  client_id and
-- destination are copied so that per-destination limits need no join.
CREATE TABLE otp.attempts (
	id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	code_id		uuid NOT NULL,
	client_id	bigint NOT NULL,
	destination	text NOT NULL,
	attempted_at	timestamptz NOT NULL DEFAULT now(),
	outcome		text NOT NULL
			CHECK (outcome IN ('success', 'mismatch', 'locked', 'expired', 'consumed')),
	expires_at	timestamptz NOT NULL
);
CREATE INDEX attempts_expires_at ON otp.attempts (expires_at);
CREATE INDEX attempts_client_destination
	ON otp.attempts (client_id, destination, attempted_at);

-- The delivery queue.  One row per code (id = the code's otpId), written in
-- the same statement as the code.  code_sealed is nonce(12) || ciphertext ||
-- tag(16) under the key file's encryption key key_id, with the row's identity
-- as authenticated data; it is wiped once the job is finished.
CREATE TABLE otp.outbox (
	id		uuid PRIMARY KEY,
	client_id	bigint NOT NULL REFERENCES otp.clients (id) ON DELETE CASCADE,
	provider_id	bigint NOT NULL REFERENCES otp.providers (id) ON DELETE CASCADE,
	channel		text NOT NULL CHECK (channel IN ('email', 'sms')),
	destination	text NOT NULL,
	template_id	text,
	code_sealed	bytea,
	key_id		integer NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	status		text NOT NULL DEFAULT 'pending'
			CHECK (status IN ('pending', 'sent', 'failed', 'expired')),
	attempts	integer NOT NULL DEFAULT 0,
	next_attempt_at	timestamptz NOT NULL DEFAULT now(),
	lease_until	timestamptz,
	leased_by	text,
	sent_at		timestamptz,
	provider_message_id text,
	last_error	text
);
CREATE INDEX outbox_due ON otp.outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_expires_at ON otp.outbox (expires_at);
