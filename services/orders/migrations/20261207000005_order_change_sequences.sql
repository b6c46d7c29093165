-- Every change of status of a user's orders gets the user's next sequence number. The counter's
-- row is locked by the transaction that takes a number until it commits, so the numbers of one
-- user's changes commit in their order: a client that heard up to N and reads "after N" misses
-- none and repeats none. (An AUTO_INCREMENT or a timestamp can commit out of order.)
CREATE TABLE order_change_sequences (
    user_id        BIGINT NOT NULL PRIMARY KEY,
    last_sequence  BIGINT NOT NULL
) ENGINE = InnoDB;

ALTER TABLE order_transitions
    ADD COLUMN user_id BIGINT NULL,
    ADD COLUMN user_sequence BIGINT NULL,
    ADD UNIQUE INDEX idx_order_transitions_user_sequence (user_id, user_sequence);

-- The changes made before: numbered in the order they were made.
UPDATE order_transitions t
JOIN (
    SELECT c.order_id, c.version, o.user_id,
           ROW_NUMBER() OVER (PARTITION BY o.user_id ORDER BY c.changed_at, c.order_id, c.version) AS n
    FROM order_transitions c JOIN orders o ON o.id = c.order_id
    WHERE c.version > 1
) numbered ON numbered.order_id = t.order_id AND numbered.version = t.version
SET t.user_id = numbered.user_id, t.user_sequence = numbered.n;

INSERT INTO order_change_sequences (user_id, last_sequence)
SELECT user_id, MAX(user_sequence) FROM order_transitions
WHERE user_sequence IS NOT NULL GROUP BY user_id;
