-- Orders placed through POST /orders.
CREATE TABLE orders (
    id          BIGINT      NOT NULL AUTO_INCREMENT,
    user_id     BIGINT      NOT NULL,
    product_id  BIGINT      NOT NULL,
    quantity    INT         NOT NULL,
    status      VARCHAR(16) NOT NULL DEFAULT 'pending',
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    -- The seed's three indexes. (user_id) is a prefix of the composite one; it is kept because
    -- the seed declared it and it stays the cheaper index for pure user_id lookups.
    INDEX idx_orders_user (user_id),
    INDEX idx_orders_user_created (user_id, created_at),
    INDEX idx_orders_status (status),
    CONSTRAINT chk_orders_quantity CHECK (quantity BETWEEN 1 AND 1000),
    CONSTRAINT chk_orders_ids CHECK (user_id >= 1 AND product_id >= 1)
) ENGINE = InnoDB;
