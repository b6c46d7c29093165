-- Staff list every order newest first, or those in one status (GET /orders/all): both walk an
-- index in (created_at, id) order instead of sorting the table.
CREATE INDEX idx_orders_created ON orders (created_at, id);
CREATE INDEX idx_orders_status_created ON orders (status, created_at, id);
