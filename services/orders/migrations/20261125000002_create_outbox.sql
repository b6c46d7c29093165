-- Transactional outbox: written in the same transaction as the order, published to RabbitMQ
-- by the OutboxRelay, marked published only after the broker confirms.
CREATE TABLE outbox (
    id            BIGINT       NOT NULL AUTO_INCREMENT,
    event_id      CHAR(36)     NOT NULL,
    routing_key   VARCHAR(255) NOT NULL,
    payload       MEDIUMTEXT   NOT NULL,
    traceparent   VARCHAR(64)  NULL,
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    published_at  DATETIME(6)  NULL,
    attempts      INT          NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    UNIQUE KEY uq_outbox_event (event_id),
    INDEX idx_outbox_pending (published_at, id)
) ENGINE = InnoDB;
