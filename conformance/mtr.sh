#!/usr/bin/env bash
# A subset of MariaDB's own test suite (Debian package mariadb-test), each test run with
# mariadb-test (mysqltest) direct to the primary and through Sluice, on a fresh `test`
# database, the servers set as mariadb-test-run sets its own (see below). The subset is
# conformance/mtr-tests.txt (see the README for how it was chosen).
#   mtr.sh WORK PRIMARY_PORT PROXY_PORT
# MTR_VARIANT=compress runs every test with the compressed protocol (--compress),
# MTR_VARIANT=ps with prepared statements for every statement (--ps-protocol).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$1"; direct="$2"; proxy="$3"
suite_dir="${MTR_DIR:-/usr/share/mysql/mysql-test}"
# --ps-protocol runs a subset (mtr-ps-tests.txt: the tests of the first list, 236, that are
# still in this one), to keep CI within its budget
default_list=mtr-tests.txt
[ "${MTR_VARIANT:-}" = ps ] && default_list=mtr-ps-tests.txt
list="${MTR_LIST:-$here/$default_list}"
known="$here/mtr-known.txt"
if [ ! -d "$suite_dir/main" ]; then
  echo "mtr: $suite_dir/main not found (apt-get install mariadb-test)" >&2
  exit 2
fi
admin=(mariadb -h 127.0.0.1 -P "$direct" -u sluice_admin -psluice_admin_pw)
# what mariadb-test-run would have set up: the mtr helper schema
"${admin[@]}" -e "CREATE DATABASE IF NOT EXISTS mtr;
  CREATE PROCEDURE IF NOT EXISTS mtr.add_suppression(pattern VARCHAR(255)) BEGIN END;
  CREATE PROCEDURE IF NOT EXISTS mtr.force_restart() BEGIN END;"
# what mariadb-test-run's servers are started with (include/default_mysqld.cnf) and the
# tests' recorded results assume: latin1 and MyISAM by default, small buffers. Set on all
# three servers (a replica's SQL thread takes its defaults when it starts), then wait for
# Sluice's idle pooled connections, opened with the old defaults, to close (idle_timeout 2s).
mtr_defaults="SET GLOBAL character_set_server = latin1, collation_server = latin1_swedish_ci,
  default_storage_engine = MyISAM, max_heap_table_size = 1048576, sort_buffer_size = 262144,
  key_buffer_size = 1048576, use_stat_tables = PREFERABLY, histogram_type = JSON_HB,
  binlog_direct_non_transactional_updates = ON, local_infile = ON, connect_timeout = 60,
  binlog_format = MIXED, max_allowed_packet = 16777216"
"${admin[@]}" -e "$mtr_defaults"
for r in 1 2; do
  "${admin[@]}" -P "$((direct + r))" -e "$mtr_defaults; STOP SLAVE SQL_THREAD; START SLAVE SQL_THREAD"
done
sleep 3
variant="${MTR_VARIANT:-}"
extra=()
case "$variant" in
  "") ;;
  compress) extra=(--compress) ;;
  ps) extra=(--ps-protocol) ;;
  *) echo "mtr: unknown MTR_VARIANT $variant (compress, ps)" >&2; exit 2 ;;
esac
name="mtr${variant:+-$variant}"
tmp="$work/$name-tmp"; mkdir -p "$tmp"

# what mariadb-test-run gives tests that run client tools (`--exec $MYSQL ...`) and write
# files: the tools read a defaults file per target (direct or Sluice), like mtr's my.cnf
export MYSQL_TEST_DIR="$suite_dir" MYSQLTEST_VARDIR="$work/$name-var"
export MYSQL_TMP_DIR="$MYSQLTEST_VARDIR/tmp" MYSQL_CHARSETSDIR=/usr/share/mysql/charsets
mkdir -p "$MYSQL_TMP_DIR" "$MYSQLTEST_VARDIR/log" "$MYSQLTEST_VARDIR/std_data"
tools_env() { # port -> exports the tools' variables for that target
  local cnf="$MYSQLTEST_VARDIR/client-$1.cnf"
  printf '[client]\nhost=127.0.0.1\nport=%s\nprotocol=tcp\nuser=sluice_admin\npassword=sluice_admin_pw\n' "$1" >"$cnf"
  printf '[%s]\ndefault-character-set=latin1\n' mysql mysqlshow mysqlimport mysqlcheck >>"$cnf"
  export MASTER_MYPORT="$1" MASTER_MYSOCK="$MYSQL_TMP_DIR/no.sock"
  export MYSQL="mariadb --defaults-file=$cnf" MYSQL_DUMP="mariadb-dump --defaults-file=$cnf"
  export MYSQL_SHOW="mariadb-show --defaults-file=$cnf" MYSQL_CHECK="mariadb-check --defaults-file=$cnf"
  export MYSQL_IMPORT="mariadb-import --defaults-file=$cnf" MYSQL_BINLOG="mariadb-binlog --defaults-file=$cnf"
  export MYSQL_SLAP="mariadb-slap --defaults-file=$cnf" MYSQL_MY_PRINT_DEFAULTS=my_print_defaults
}

run_one() { # port test -> exit status of mariadb-test
  tools_env "$1"
  "${admin[@]}" -e "DROP DATABASE IF EXISTS test; CREATE DATABASE test" >/dev/null 2>&1
  # wait for the replicas, so that a test starts from the same state everywhere
  "${admin[@]}" -N -e "SELECT MASTER_GTID_WAIT(@@gtid_binlog_pos, 5)" -h 127.0.0.1 -P "$((direct + 1))" >/dev/null 2>&1 || true
  timeout "${MTR_TIMEOUT:-120}" mariadb-test --host=127.0.0.1 --port="$1" --protocol=tcp \
    --user=sluice_admin --password=sluice_admin_pw --database=test \
    --basedir="$suite_dir/" --tmpdir="$tmp" --logdir="$tmp" \
    --test-file="main/$2.test" --result-file="main/$2.result" --silent "${extra[@]}" \
    >"$tmp/$2.out" 2>&1
}

pass_d=0; fail_d=0; pass_s=0; fail_s=0; gaps=(); knowns=()
# one line per test: name, direct (1 passed), through Sluice (1 passed)
results="$work/$name-results.tsv"; : >"$results"
while read -r t; do
  [ -z "$t" ] || [ "${t:0:1}" = "#" ] && continue
  if (cd "$suite_dir" && run_one "$direct" "$t"); then d=1; pass_d=$((pass_d + 1)); else d=0; fail_d=$((fail_d + 1)); fi
  cp "$tmp/$t.out" "$tmp/$t.direct.out"
  if (cd "$suite_dir" && run_one "$proxy" "$t"); then s=1; pass_s=$((pass_s + 1)); else
    s=0; fail_s=$((fail_s + 1))
    if [ "$d" = 1 ]; then
      if grep -q "^$t " "$known"; then knowns+=("$t"); else gaps+=("$t"); fi
    fi
  fi
  cp "$tmp/$t.out" "$tmp/$t.sluice.out"
  printf '%s\t%s\t%s\n' "$t" "$d" "$s" >>"$results"
done <"$list"
echo "$name: $pass_s passed, $fail_s failed (direct: $pass_d passed, $fail_d failed)"
for t in "${knowns[@]}"; do
  echo "  known difference (conformance/mtr-known.txt): main.$(grep "^$t " "$known")"
done
if [ ${#gaps[@]} -gt 0 ]; then
  for t in "${gaps[@]}"; do
    echo "  passes direct, fails through Sluice: main.$t"
    sed -n '1,12p' "$tmp/$t.sluice.out" | sed 's/^/    /'
  done
  exit 1
fi
