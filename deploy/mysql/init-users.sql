-- Runs on every server's first start (before replication exists), so it is not binlogged.
SET sql_log_bin = 0;
CREATE USER 'repl'@'%' IDENTIFIED WITH caching_sha2_password BY 'replpass';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl'@'%';
CREATE USER 'app'@'%' IDENTIFIED WITH caching_sha2_password BY 'apppass';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE TEMPORARY TABLES,
      LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, TRIGGER, REFERENCES, PROCESS ON *.* TO 'app'@'%';
CREATE USER 'sluice_monitor'@'%' IDENTIFIED WITH caching_sha2_password BY 'monitorpass';
GRANT REPLICATION CLIENT, PROCESS, SUPER, RELOAD, REPLICATION_SLAVE_ADMIN, SYSTEM_VARIABLES_ADMIN ON *.* TO 'sluice_monitor'@'%';
GRANT ALL PRIVILEGES ON sluice.* TO 'sluice_monitor'@'%';
SET sql_log_bin = 1;
