-- Accounts: a password (argon2id PHC string; NULL for users who cannot log in) and a role.
ALTER TABLE users
    ADD COLUMN password_hash VARCHAR(255) NULL AFTER email,
    ADD COLUMN role ENUM('user', 'admin') NOT NULL DEFAULT 'user' AFTER password_hash;

-- The demo users are no longer part of the schema: the service seeds them, with passwords,
-- only when DEMO_SEED is on. Rows left by the earlier seed migration had no password.
DELETE FROM users
WHERE password_hash IS NULL
  AND (id, email) IN ((1, 'alice@example.com'), (2, 'bob@example.com'), (3, 'charlie@example.com'));

-- Refresh tokens, stored as SHA-256 hashes. Every log-in starts a family; each refresh uses
-- its token up and issues the next of the family. A used token presented again means it was
-- stolen (or replayed), and the whole family is revoked.
CREATE TABLE refresh_tokens (
    token_hash  BINARY(32)      NOT NULL,
    family_id   BINARY(16)      NOT NULL,
    user_id     BIGINT          NOT NULL,
    expires_at  DATETIME(6)     NOT NULL,
    used_at     DATETIME(6)     NULL,
    revoked_at  DATETIME(6)     NULL,
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (token_hash),
    KEY idx_refresh_tokens_family (family_id),
    KEY idx_refresh_tokens_user (user_id),
    CONSTRAINT fk_refresh_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;
