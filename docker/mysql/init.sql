-- Databases of the users and orders services, owned by the application user.
CREATE DATABASE IF NOT EXISTS users_db;
CREATE DATABASE IF NOT EXISTS orders_db;
GRANT ALL PRIVILEGES ON users_db.* TO 'shopmesh'@'%';
GRANT ALL PRIVILEGES ON orders_db.* TO 'shopmesh'@'%';
CREATE DATABASE IF NOT EXISTS catalog_db;
GRANT ALL PRIVILEGES ON catalog_db.* TO 'shopmesh'@'%';
CREATE DATABASE IF NOT EXISTS payments_db;
GRANT ALL PRIVILEGES ON payments_db.* TO 'shopmesh'@'%';
-- new-service: database
FLUSH PRIVILEGES;
