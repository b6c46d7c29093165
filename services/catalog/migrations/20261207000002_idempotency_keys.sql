-- Idempotency keys of catalog writes: products, imports and stock adjustments
-- (draft-ietf-httpapi-idempotency-key-header), read and written by shopmesh_common::idempotency:
-- the request's fingerprint and, once the work is done, the response (written in the
-- transaction that did it). Keys belong to the admin who sent them. Kept 24 hours.
CREATE TABLE idempotency_keys (
    user_id      BIGINT       NOT NULL,
    idem_key     VARCHAR(255) NOT NULL,
    fingerprint  CHAR(64)     NOT NULL,
    response     MEDIUMTEXT   NULL,
    started_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    INDEX idx_idempotency_keys_started (started_at)
) ENGINE = InnoDB;
