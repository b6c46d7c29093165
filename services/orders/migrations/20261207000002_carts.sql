-- Carts: what each user is about to buy, one row per product, kept until checkout or emptied.
CREATE TABLE cart_lines (
    user_id     BIGINT      NOT NULL,
    product_id  BIGINT      NOT NULL,
    quantity    INT         NOT NULL,
    added_at    DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id, product_id),
    INDEX idx_cart_lines_added (user_id, added_at),
    CONSTRAINT chk_cart_lines_quantity CHECK (quantity BETWEEN 1 AND 1000)
) ENGINE = InnoDB;
