#!/usr/bin/env bash
# mysqlclient's own test suite (from its source release on PyPI), direct and through Sluice.
#   mysqlclient.sh WORK PRIMARY_PORT PROXY_PORT
# MYSQLCLIENT_COMPRESS=1: every connection uses the compressed protocol (libmariadb's
# `compress` option), direct and through Sluice alike.
set -euo pipefail
work="$1"; direct="$2"; proxy="$3"
variant=""; compress=""
if [ "${MYSQLCLIENT_COMPRESS:-0}" = 1 ]; then variant="-compress"; compress="compress"; fi
version="${MYSQLCLIENT_VERSION:-2.3.2}"
src="$work/mysqlclient-$version"
if [ ! -d "$src/tests" ]; then
  python3 -m pip download -q --no-deps --no-binary :all: -d "$work" "mysqlclient==$version"
  tar -xzf "$work/mysqlclient-$version.tar.gz" -C "$work"
fi
python3 -c "import MySQLdb, pytest" 2>/dev/null || python3 -m pip install -q "mysqlclient==$version" pytest
mariadb -h 127.0.0.1 -P "$direct" -u sluice_admin -psluice_admin_pw \
  -e "CREATE DATABASE IF NOT EXISTS mysqlclient_test"

run() { # port label -> "passed failed"
  cat >"$src/tests/sluice-$2.cnf" <<CNF
[MySQLdb-tests]
host = 127.0.0.1
port = $1
user = app
password = apppass
database = mysqlclient_test
default-character-set = utf8mb4
$compress
CNF
  (cd "$src" && TESTDB="sluice-$2.cnf" timeout 600 python3 -m pytest -q -p no:cacheprovider \
      -o addopts="" -rf tests >"$work/mysqlclient-$2.log" 2>&1) || true
  local line; line="$(grep -E "(passed|failed)" "$work/mysqlclient-$2.log" | tail -1 || true)"
  local p f
  p="$(awk '{for (i = 2; i <= NF; i++) if ($i ~ /^passed/) s += $(i-1)} END {print s+0}' <<<"$line")"
  f="$(awk '{for (i = 2; i <= NF; i++) if ($i ~ /^(failed|error)/) s += $(i-1)} END {print s+0}' <<<"$line")"
  echo "$p $f"
}
read -r dp df < <(run "$direct" "direct$variant")
read -r sp sf < <(run "$proxy" "sluice$variant")
echo "mysqlclient$variant: $sp passed, $sf failed (direct: $dp passed, $df failed)"
# the errors Sluice sends itself, as mysqlclient shows them (server-range codes, its message)
errors_ok=0
[ -n "$variant" ] || python3 "$(dirname "$0")/errors.py" "${SLUICE_BIN:?}" "$direct" "$work" || errors_ok=1
# A test that fails through Sluice and not direct is rerun alone, through Sluice, 3 times; it
# counts as failed unless every rerun passes. Some of the suite's thread tests race against
# the client's own timing: test_result_concurrent_use_raises fails 3 runs in 300 direct and 3
# in 300 through Sluice (measured with its body in a loop), so one failure in a whole-suite
# run is expected now and then on either side.
failed_ids() { grep -E "^FAILED" "$work/mysqlclient-$1.log" | awk '{print $2}' | sort -u; }
only_sluice="$(comm -23 <(failed_ids "sluice$variant") <(failed_ids "direct$variant"))"
still=()
for id in $only_sluice; do
  ok=1
  for _ in 1 2 3; do
    (cd "$src" && TESTDB="sluice-sluice$variant.cnf" timeout 120 python3 -m pytest -q -p no:cacheprovider \
        -o addopts="" "$id" >>"$work/mysqlclient-rerun.log" 2>&1) || { ok=0; break; }
  done
  if [ $ok = 1 ]; then
    echo "  failed once through Sluice, passed 3 reruns: $id"
    sp=$((sp + 1)); sf=$((sf - 1))
  else
    still+=("$id")
  fi
done
if [ ${#still[@]} -gt 0 ] || [ "$sp" -lt "$dp" ] || [ "$sf" -gt "$df" ]; then
  echo "mysqlclient$variant after reruns: $sp passed, $sf failed"
  grep -E "^FAILED" "$work/mysqlclient-sluice$variant.log" | head -20
  exit 1
fi
exit $errors_ok
