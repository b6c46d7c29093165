-- Idempotency keys of sign-ups (draft-ietf-httpapi-idempotency-key-header), read and written by
-- shopmesh_common::idempotency: the request's fingerprint and, once the user exists, the
-- response (written in the transaction that created the user). Sign-ups have no account yet,
-- so their keys belong to user 0. Kept 24 hours.
CREATE TABLE idempotency_keys (
    user_id      BIGINT       NOT NULL,
    idem_key     VARCHAR(255) NOT NULL,
    fingerprint  CHAR(64)     NOT NULL,
    response     MEDIUMTEXT   NULL,
    started_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    INDEX idx_idempotency_keys_started (started_at)
) ENGINE = InnoDB;
