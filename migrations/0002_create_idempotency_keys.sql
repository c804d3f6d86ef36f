-- Idempotency keys (Stripe semantics, IETF draft-ietf-httpapi-idempotency-key-header).
-- A record is the first final answer to (principal, key): its status and the
-- exact bytes of its body and headers, replayed byte for byte. Successful
-- writes insert their record in the same transaction as the write, so a
-- replay never disagrees with the data. Records older than IDEMPOTENCY_TTL_S
-- are purged in batches by the server (stored_at index).
CREATE TABLE idempotency_keys (
    principal text NOT NULL,
    key text NOT NULL,
    fingerprint bytea NOT NULL,
    status smallint NOT NULL,
    body text NOT NULL,
    etag text,
    location text,
    stored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key),
    CONSTRAINT idempotency_keys_key_len CHECK (char_length(key) BETWEEN 1 AND 255),
    CONSTRAINT idempotency_keys_fingerprint_len CHECK (octet_length(fingerprint) = 32)
);
CREATE INDEX idempotency_keys_stored_at ON idempotency_keys (stored_at);
