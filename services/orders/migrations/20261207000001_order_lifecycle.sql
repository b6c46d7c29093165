-- The order lifecycle: a version that every change of status bumps (the row lock serialises
-- changes; the version orders them), and the timeline of every status an order has had.
ALTER TABLE orders ADD COLUMN version INT NOT NULL DEFAULT 1;

CREATE TABLE order_transitions (
    order_id     BIGINT       NOT NULL,
    -- The order's version once this status was reached: 1 for placing it.
    version      INT          NOT NULL,
    from_status  VARCHAR(16)  NULL,
    to_status    VARCHAR(16)  NOT NULL,
    cause        VARCHAR(200) NOT NULL,
    trace_id     CHAR(32)     NULL,
    changed_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (order_id, version),
    CONSTRAINT fk_order_transitions_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE = InnoDB;

-- Orders placed before the lifecycle start their timeline where they are.
INSERT INTO order_transitions (order_id, version, from_status, to_status, cause, changed_at)
SELECT id, 1, NULL, status, 'placed', created_at FROM orders;
