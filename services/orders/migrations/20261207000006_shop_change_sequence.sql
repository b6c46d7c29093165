-- Every change of status gets a shop-wide number too, given by the outbox relay before it
-- publishes the change (one counter lock per batch, not per change: a change's own transaction
-- never waits on it). The relay holds the counter's row until the numbers it took commit, so
-- the numbers commit in their order: an admin who heard up to N and reads "after N" misses
-- none and repeats none. A change republished after a crash keeps its number.
CREATE TABLE shop_change_sequence (
    id             TINYINT NOT NULL PRIMARY KEY,
    last_sequence  BIGINT  NOT NULL
) ENGINE = InnoDB;

ALTER TABLE order_transitions
    ADD COLUMN shop_sequence BIGINT NULL,
    ADD UNIQUE INDEX idx_order_transitions_shop_sequence (shop_sequence);

-- The changes made before: numbered in the order they were made.
UPDATE order_transitions t
JOIN (
    SELECT order_id, version,
           ROW_NUMBER() OVER (ORDER BY changed_at, order_id, version) AS n
    FROM order_transitions
    WHERE version > 1
) numbered ON numbered.order_id = t.order_id AND numbered.version = t.version
SET t.shop_sequence = numbered.n;

INSERT INTO shop_change_sequence (id, last_sequence)
SELECT 1, COALESCE(MAX(shop_sequence), 0) FROM order_transitions;
