#!/bin/bash
# Points db1 and db2 at db0 with GTID auto-positioning, starts them, checks the threads.
set -euo pipefail
for r in db1 db2; do
  mysql -h "$r" -uroot -prootpass -e "CHANGE REPLICATION SOURCE TO SOURCE_HOST='db0', SOURCE_USER='repl', SOURCE_PASSWORD='replpass', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1; START REPLICA;"
done
for r in db1 db2; do
  for _ in $(seq 1 30); do
    if mysql -h "$r" -uroot -prootpass -e "SHOW REPLICA STATUS\G" | grep -q "Replica_SQL_Running: Yes"; then break; fi
    sleep 1
  done
  mysql -h "$r" -uroot -prootpass -e "SHOW REPLICA STATUS\G" | grep -E "Replica_(IO|SQL)_Running:"
done
