#!/usr/bin/env bash
# Runs third-party client test suites against Sluice (in front of a sandbox primary + 2
# replicas) and the same suites direct to the primary, and compares them.
#
#   conformance/run.sh [mysqlclient] [mysqlclient-compress] [django] [mtr] [mtr-compress]
#                      [mtr-ps] [tls]      (default: all)
#
# Prints one line per suite: `suite: N passed, N failed (direct: N passed, N failed)` and
# exits non-zero when a test that passes direct fails through Sluice.
# Env: SLUICE_BIN (default: target/release/sluice, built if missing), CONF_PORT (default
# 24306: primary on it, replicas +1 +2, Sluice +20), CONF_DIR (default: a temp folder),
# CONF_CACHE=1 (a catch-all caching rule, 1 s TTL: the suites through the result cache).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(mysqlclient mysqlclient-compress django mtr mtr-ps tls)
port="${CONF_PORT:-24306}"
proxy_port=$((port + 20))
work="${CONF_DIR:-$(mktemp -d /tmp/sluice-conformance.XXXXXX)}"
mkdir -p "$work"
bin="${SLUICE_BIN:-$root/target/release/sluice}"
if [ ! -x "$bin" ]; then
  (cd "$root" && cargo build --release -q)
fi

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# 1. the topology (the sandbox also starts a Sluice of its own; we start ours below)
"$bin" sandbox --dir "$work/sandbox" --fresh --base-port "$port" >"$work/sandbox.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  grep -q "Press Ctrl-C" "$work/sandbox.log" && break
  sleep 1
done
grep -q "Press Ctrl-C" "$work/sandbox.log" || { cat "$work/sandbox.log"; echo "sandbox did not start" >&2; exit 2; }
admin=(mariadb -h 127.0.0.1 -P "$port" -u sluice_admin -psluice_admin_pw)
"${admin[@]}" -e "SET GLOBAL log_bin_trust_function_creators = 1"

# 2. Sluice for the suites: the sandbox config with the accounts read from the primary (the
#    suites create users and log in as them), no failover, causal
#    reads across sessions (the suites read with one connection what another wrote), and
#    idle backend connections closed after 2 s (pool.idle_timeout, as pgbouncer's
#    server_idle_timeout): mtr's count_sessions tests wait up to 10 s for the server's
#    Threads_connected to come back down after their clients disconnect
sed -e "s/^address = \"127.0.0.1:$((port + 10))\"/address = \"127.0.0.1:$proxy_port\"/" \
    -e "s/^address = \"127.0.0.1:$((port + 11))\"/address = \"127.0.0.1:$((proxy_port + 1))\"/" \
    -e "s/^enabled = true/enabled = false/" \
    -e 's/^read_your_writes = .*/read_your_writes = "global"/' \
    -e 's/^idle_timeout = "10m"/idle_timeout = "2s"/' \
    -e 's/^users = "config"/users = "backend"/' \
    "$work/sandbox/sluice.toml" >"$work/sluice.toml"
cat >>"$work/sluice.toml" <<USERS

[[users]]
name = "sluice_admin"
password = "sluice_admin_pw"

[[users]]
name = "root"
password = ""

# known only by its caching_sha2_password hash (conformance/tls.sh)
[[users]]
name = "sha2app"
password_hash = "$(echo sha2pass | "$bin" password-hash | sed -n 's/^caching_sha2_password: password_hash = "\(.*\)"$/\1/p')"
USERS
# CONF_CACHE=1: a rule caches every SELECT for 1 s (the suites then run against the result
# cache; compare with a run without it)
if [ "${CONF_CACHE:-0}" = 1 ]; then
  printf '\n[[rules]]\nname = "cache-all"\ndigest_pattern = "^SELECT"\ncache_ttl = "1s"\n' >>"$work/sluice.toml"
fi
"$bin" run --config "$work/sluice.toml" >"$work/sluice.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  mariadb -h 127.0.0.1 -P "$proxy_port" -u app -papppass -e "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.2
done

export SLUICE_BIN="$bin"
status=0
for s in "${suites[@]}"; do
  case "$s" in
    mysqlclient) "$here/mysqlclient.sh" "$work" "$port" "$proxy_port" || status=1 ;;
    mysqlclient-compress) MYSQLCLIENT_COMPRESS=1 "$here/mysqlclient.sh" "$work" "$port" "$proxy_port" || status=1 ;;
    mtr-compress) MTR_VARIANT=compress "$here/mtr.sh" "$work" "$port" "$proxy_port" || status=1 ;;
    mtr-ps) MTR_VARIANT=ps "$here/mtr.sh" "$work" "$port" "$proxy_port" || status=1 ;;
    django) "$here/django.sh" "$work" "$port" "$proxy_port" || status=1 ;;
    mtr) "$here/mtr.sh" "$work" "$port" "$proxy_port" || status=1 ;;
    tls) "$here/tls.sh" "$work" "$port" "$proxy_port" || status=1 ;;
    *) echo "unknown suite: $s (known: mysqlclient mysqlclient-compress django mtr mtr-compress mtr-ps tls)" >&2; status=2 ;;
  esac
done
if [ "${CONF_CACHE:-0}" = 1 ]; then
  python3 - "$((proxy_port + 1))" <<'PY'
import json, sys, urllib.request
c = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/cache"))
r = c["rules"][0] if c["rules"] else {}
print(f"result cache: {r.get('hits', 0)} hits, {r.get('misses', 0)} misses, {r.get('stores', 0)} stores, "
      f"{r.get('uncacheable', 0)} not cacheable; invalidations {c['invalidations']}")
PY
fi
exit $status
