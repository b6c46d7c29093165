-- One payment per order, and every status it reached.
CREATE TABLE payments (
    order_id            BIGINT       NOT NULL,
    amount_minor        BIGINT       NOT NULL,
    currency            CHAR(3)      NOT NULL,
    status              VARCHAR(16)  NOT NULL,
    provider_reference  VARCHAR(200) NULL,
    decline_reason      VARCHAR(200) NULL,
    -- Authorization attempts the provider failed (a payment fails after a bounded number).
    failed_attempts     INT          NOT NULL DEFAULT 0,
    created_at          DATETIME(6)  NOT NULL,
    updated_at          DATETIME(6)  NOT NULL,
    PRIMARY KEY (order_id),
    CONSTRAINT chk_payments_amount CHECK (amount_minor > 0)
) ENGINE = InnoDB;

CREATE TABLE payment_steps (
    order_id  BIGINT       NOT NULL,
    seq       INT          NOT NULL,
    status    VARCHAR(16)  NOT NULL,
    detail    VARCHAR(200) NULL,
    at        DATETIME(6)  NOT NULL,
    PRIMARY KEY (order_id, seq),
    CONSTRAINT fk_payment_steps_payment FOREIGN KEY (order_id) REFERENCES payments (order_id)
) ENGINE = InnoDB;
