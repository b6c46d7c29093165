-- Checkout: the lines of an order at the prices they were sold for, the order's total, and the
-- state of the saga that takes a checked-out order to `confirmed` or gives back what it held.
ALTER TABLE orders
    ADD COLUMN total_minor BIGINT  NULL,
    ADD COLUMN currency    CHAR(3) NULL;

CREATE TABLE order_lines (
    order_id          BIGINT  NOT NULL,
    product_id        BIGINT  NOT NULL,
    quantity          INT     NOT NULL,
    -- NULL for orders placed without a payment token (no price was read).
    unit_price_minor  BIGINT  NULL,
    currency          CHAR(3) NULL,
    PRIMARY KEY (order_id, product_id),
    CONSTRAINT fk_order_lines_order FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT chk_order_lines_quantity CHECK (quantity BETWEEN 1 AND 1000)
) ENGINE = InnoDB;

-- Orders placed before checkout have their one line.
INSERT INTO order_lines (order_id, product_id, quantity)
SELECT id, product_id, quantity FROM orders;

CREATE TABLE checkout_sagas (
    order_id       BIGINT       NOT NULL,
    -- The shopper's payment token, until the payment is settled; then NULL.
    payment_token  VARCHAR(200) NULL,
    -- When reserving and paying give up (the order expires); a paid order has no deadline.
    deadline       DATETIME(6)  NOT NULL,
    -- Set with the move to `cancelled` or `expired`: what the checkout held must be given back.
    compensate     BOOLEAN      NOT NULL DEFAULT FALSE,
    -- Nothing left to do (the order is confirmed, rejected, or given back).
    done           BOOLEAN      NOT NULL DEFAULT FALSE,
    -- When a runner should next take it.
    due_at         DATETIME(6)  NOT NULL,
    -- A runner working on it holds it until then; another takes over after a crash.
    lease_until    DATETIME(6)  NOT NULL,
    attempts       INT          NOT NULL DEFAULT 0,
    last_error     VARCHAR(500) NULL,
    PRIMARY KEY (order_id),
    INDEX idx_checkout_sagas_due (done, due_at),
    CONSTRAINT fk_checkout_sagas_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE = InnoDB;

-- Idempotency keys of checkout requests (draft-ietf-httpapi-idempotency-key-header), per user:
-- the request's fingerprint, and once it placed an order, the response (written in the
-- transaction that placed it). Kept 24 hours.
CREATE TABLE idempotency_keys (
    user_id      BIGINT       NOT NULL,
    idem_key     VARCHAR(255) NOT NULL,
    fingerprint  CHAR(64)     NOT NULL,
    response     MEDIUMTEXT   NULL,
    started_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    INDEX idx_idempotency_keys_started (started_at)
) ENGINE = InnoDB;
