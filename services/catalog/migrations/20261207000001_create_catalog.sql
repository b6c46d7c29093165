-- Products and their stock. Units reserved for orders stay on hand until sold; the CHECK
-- constraints hold the invariants even if a bug tried to break them (MySQL 8.0.16+, MariaDB).
CREATE TABLE products (
    id           BIGINT        NOT NULL AUTO_INCREMENT,
    sku          VARCHAR(64)   NOT NULL,
    name         VARCHAR(200)  NOT NULL,
    description  VARCHAR(2000) NOT NULL DEFAULT '',
    price_minor  BIGINT        NOT NULL,
    currency     CHAR(3)       NOT NULL,
    active       BOOLEAN       NOT NULL DEFAULT TRUE,
    image_url    VARCHAR(2000) NULL,
    on_hand      BIGINT        NOT NULL DEFAULT 0,
    reserved     BIGINT        NOT NULL DEFAULT 0,
    sold         BIGINT        NOT NULL DEFAULT 0,
    created_at   DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at   DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY uq_products_sku (sku),
    CONSTRAINT chk_products_price CHECK (price_minor >= 0),
    CONSTRAINT chk_products_stock CHECK (on_hand >= 0 AND reserved >= 0 AND reserved <= on_hand AND sold >= 0)
) ENGINE = InnoDB;

-- Every change of units on hand: admin adjustments and sales. Rows are only ever inserted.
CREATE TABLE stock_ledger (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    product_id  BIGINT       NOT NULL,
    delta       BIGINT       NOT NULL,
    kind        VARCHAR(16)  NOT NULL,
    reason      VARCHAR(200) NOT NULL,
    order_id    BIGINT       NULL,
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    INDEX idx_ledger_product (product_id, id)
) ENGINE = InnoDB;

-- One reservation per order (the primary key makes reserving idempotent), with its lines.
CREATE TABLE reservations (
    order_id    BIGINT      NOT NULL,
    status      VARCHAR(16) NOT NULL,
    expires_at  DATETIME(6) NOT NULL,
    created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (order_id),
    INDEX idx_reservations_due (status, expires_at)
) ENGINE = InnoDB;

CREATE TABLE reservation_lines (
    order_id    BIGINT NOT NULL,
    product_id  BIGINT NOT NULL,
    quantity    INT    NOT NULL,
    PRIMARY KEY (order_id, product_id),
    CONSTRAINT chk_reservation_lines_quantity CHECK (quantity BETWEEN 1 AND 1000)
) ENGINE = InnoDB;
