#!/usr/bin/env bash
# Side-by-side proxy benchmark: sysbench straight to the primary ("direct"), through haproxy
# in `mode tcp` (a plain L4 forwarder: the floor of one extra TCP hop) and through Sluice,
# alternating target by target in every round, on a sandbox topology (1 primary, 2 replicas)
# started for the run. Prints, per workload, the worst round of each target: throughput and
# p95 relative to direct, CPU microseconds per query of haproxy and of Sluice (user/system),
# context switches per query, system calls per query (strace); then Sluice's user-space
# instructions per query under callgrind (deterministic, for judging a change without noise).
#
#   bash bench/proxy.sh            # full run (~15 min on 2 cores)
#   bash bench/proxy.sh --quick    # one short round of point_select (a smoke test, in CI)
#
# Settings (environment): BENCH_SECONDS (20), BENCH_ROUNDS (3), BENCH_THREADS (8),
# BENCH_WORKLOADS ("oltp_point_select oltp_read_only oltp_read_write"), BENCH_PS ("disable
# auto": text protocol, then prepared statements), BENCH_PORT (25306), BENCH_CALLGRIND (1),
# BENCH_KEEP=1 keeps the data folder. Needs sysbench; haproxy and valgrind are optional (their
# columns are skipped with a note when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${BENCH_SECONDS:-20}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-8}
WORKLOADS=${BENCH_WORKLOADS:-"oltp_point_select oltp_read_only oltp_read_write"}
PS_MODES=${BENCH_PS:-"disable auto"}
BASE=${BENCH_PORT:-25306}
CALLGRIND=${BENCH_CALLGRIND:-1}
if [ "${1:-}" = "--quick" ]; then
  SECS=3 ROUNDS=1 WORKLOADS=oltp_point_select PS_MODES=disable CALLGRIND=0
fi

command -v sysbench >/dev/null || { echo "bench: sysbench is required (apt-get install sysbench)" >&2; exit 1; }
HAPROXY=$(command -v haproxy || true)
[ -x /usr/sbin/haproxy ] && HAPROXY=/usr/sbin/haproxy
[ -n "$HAPROXY" ] || echo "bench: haproxy not installed: its column is skipped (apt-get install haproxy)"

cargo build --release -q
BIN=$PWD/target/release/sluice
DIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
OUT=$DIR/results.tsv
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT

echo "bench: starting the sandbox topology in $DIR"
"$BIN" sandbox --dir "$DIR/sandbox" --fresh --base-port "$BASE" >"$DIR/sandbox.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 120); do
  grep -q "Sluice is running" "$DIR/sandbox.log" 2>/dev/null && break
  sleep 1
done
grep -q "Sluice is running" "$DIR/sandbox.log" || { cat "$DIR/sandbox.log"; exit 1; }

PRIMARY=$BASE
SLUICE_PORT=$((BASE + 20))
HAPROXY_PORT=$((BASE + 30))
# the measured Sluice is a process of its own (the sandbox's in-process one stays idle)
sed -e "s/127.0.0.1:$((BASE + 10))/127.0.0.1:$SLUICE_PORT/" \
    -e "s/127.0.0.1:$((BASE + 11))/127.0.0.1:$((BASE + 21))/" \
    -e "s/^enabled = true/enabled = false/" \
    "$DIR/sandbox/sluice.toml" >"$DIR/bench.toml"
"$BIN" run -c "$DIR/bench.toml" >"$DIR/sluice.log" 2>&1 &
SLUICE_PID=$!
PIDS+=($SLUICE_PID)
sleep 1
kill -0 "$SLUICE_PID" 2>/dev/null || { echo "bench: Sluice did not start:"; cat "$DIR/sluice.log"; exit 1; }

if [ -n "$HAPROXY" ]; then
  cat >"$DIR/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen mysql
  bind 127.0.0.1:$HAPROXY_PORT
  server primary 127.0.0.1:$PRIMARY
EOF
  "$HAPROXY" -db -f "$DIR/haproxy.cfg" >"$DIR/haproxy.log" 2>&1 &
  HAPROXY_PID=$!
  PIDS+=($HAPROXY_PID)
  sleep 1
  kill -0 "$HAPROXY_PID" 2>/dev/null || { echo "bench: haproxy did not start:"; cat "$DIR/haproxy.log"; exit 1; }
fi
sleep 2

SB=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-user=app --mysql-password=apppass
    --mysql-db=sbtest --tables=4 --table-size=10000 --mysql-ssl=off)
mariadb -h 127.0.0.1 -P "$PRIMARY" -u sluice_admin -psluice_admin_pw -e "CREATE DATABASE sbtest"
echo "bench: preparing 4 tables x 10,000 rows"
sysbench oltp_read_write "${SB[@]}" --mysql-port="$PRIMARY" prepare >"$DIR/prepare.log"
sleep 3 # replicas apply the load

# CPU ticks (user, system) and context switches of a process
counters() {
  local pid=$1 ut st cs=0
  read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
  for t in /proc/"$pid"/task/*/status; do
    cs=$((cs + $(awk '/ctxt_switches/ {s += $2} END {print s}' "$t")))
  done
  echo "$ut $st $cs"
}

run_one() { # workload ps target port pid
  local wl=$1 ps=$2 target=$3 port=$4 pid=${5:-} before="" after="" log
  log=$DIR/$wl-$ps-$target.log
  [ -n "$pid" ] && before=$(counters "$pid")
  sysbench "$wl" "${SB[@]}" --mysql-port="$port" --threads="$THREADS" --time="$SECS" \
    --db-ps-mode="$ps" --percentile=95 --rand-type=uniform run >"$log" 2>&1 ||
    { echo "bench: sysbench failed against $target:"; tail -5 "$log"; exit 1; }
  [ -n "$pid" ] && after=$(counters "$pid")
  local q p95
  q=$(awk '/queries:/ {print $2; exit}' "$log")
  p95=$(awk '/95th percentile:/ {print $3; exit}' "$log")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$wl" "$ps" "$target" "$q" "$p95" "$before" "$after" >>"$OUT"
}

for round in $(seq 1 "$ROUNDS"); do
  for wl in $WORKLOADS; do
    for ps in $PS_MODES; do
      echo "bench: round $round/$ROUNDS $wl (ps-mode $ps), ${SECS}s each"
      run_one "$wl" "$ps" direct "$PRIMARY"
      [ -n "$HAPROXY" ] && run_one "$wl" "$ps" haproxy "$HAPROXY_PORT" "$HAPROXY_PID"
      run_one "$wl" "$ps" sluice "$SLUICE_PORT" "$SLUICE_PID"
    done
  done
done

# system calls per query: strace counts them exactly (and slows the run, so it is a run of
# its own, not one of the measured ones)
SYSCALLS=""
if command -v strace >/dev/null; then
  for t in haproxy sluice; do
    pid=$SLUICE_PID port=$SLUICE_PORT
    if [ "$t" = haproxy ]; then
      [ -n "$HAPROXY" ] || continue
      pid=$HAPROXY_PID port=$HAPROXY_PORT
    fi
    timeout 20 strace -c -f -q -p "$pid" -o "$DIR/strace-$t.txt" &
    ST=$!
    sleep 1
    q=$(sysbench oltp_point_select "${SB[@]}" --mysql-port="$port" --threads="$THREADS" --time=5 \
      --db-ps-mode=disable run | awk '/queries:/ {print $2; exit}')
    kill -INT "$ST" 2>/dev/null; wait "$ST" 2>/dev/null || true
    calls=$(awk '$NF == "total" {print $(NF-2) + 0}' "$DIR/strace-$t.txt")
    [ -n "$calls" ] && SYSCALLS="$SYSCALLS $t=$(awk -v c="$calls" -v q="$q" 'BEGIN {printf "%.2f", c / q}')"
  done
fi

INSTR=""
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null; then
  echo "bench: Sluice under callgrind (instructions per point_select)"
  kill "$SLUICE_PID"; wait "$SLUICE_PID" 2>/dev/null || true
  (cd "$DIR" && exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$DIR/cg.out" \
    "$BIN" run -c "$DIR/bench.toml" >"$DIR/callgrind.log" 2>&1) &
  CG_PID=$!
  PIDS+=($CG_PID)
  sleep 15
  sysbench oltp_point_select "${SB[@]}" --mysql-port="$SLUICE_PORT" --threads=4 --events=2000 \
    --time=0 --db-ps-mode=disable run >/dev/null # warm-up: pools, caches
  EVENTS=20000
  callgrind_control -i on "$CG_PID" >/dev/null
  sysbench oltp_point_select "${SB[@]}" --mysql-port="$SLUICE_PORT" --threads=4 --events=$EVENTS \
    --time=0 --db-ps-mode=disable run >"$DIR/cg-run.log"
  callgrind_control -i off "$CG_PID" >/dev/null
  callgrind_control -d "$CG_PID" >/dev/null
  sleep 2
  IR=$(cat "$DIR"/cg.out* 2>/dev/null | awk '/^totals:/ {s += $2} END {print s + 0}')
  [ "$IR" -gt 0 ] && INSTR=$(awk -v ir="$IR" -v n=$EVENTS 'BEGIN {printf "%.0f", ir / n}')
elif [ "$CALLGRIND" = 1 ]; then
  echo "bench: valgrind not installed: no instruction count (apt-get install valgrind)"
fi

python3 - "$OUT" "$(getconf CLK_TCK)" "$INSTR" "$THREADS" "$SECS" "$ROUNDS" "$SYSCALLS" <<'EOF'
import sys
from collections import defaultdict
path, tck, instr, threads, secs, rounds, syscalls = sys.argv[1], int(sys.argv[2]), sys.argv[3], *sys.argv[4:]
runs = defaultdict(list)
for line in open(path):
    wl, ps, target, q, p95, before, after = line.rstrip("\n").split("\t")
    cpu = None
    if before and after:
        b, a = [list(map(int, x.split())) for x in (before, after)]
        d = [y - x for x, y in zip(b, a)]
        n = int(q)
        cpu = (d[0] * 1e6 / tck / n, d[1] * 1e6 / tck / n, d[2] / n)
    runs[(wl, ps, target)].append((int(q), float(p95), cpu))

def worst(key):
    r = runs.get(key)
    if not r:
        return None
    q = min(x[0] for x in r)
    p95 = max(x[1] for x in r)
    cpus = [x[2] for x in r if x[2]]
    cpu = max(cpus, key=lambda c: c[0] + c[1]) if cpus else None
    return q, p95, cpu

print(f"\nsysbench, {threads} threads, {secs} s per run, worst of {rounds} alternating rounds")
print("(qps and p95 relative to direct; CPU us/query total (user/system); cs = context switches per query)\n")
hdr = f"{'workload':<22}{'ps':<8}{'direct qps':>11}{'haproxy':>9}{'sluice':>8}{'p95 d ms':>9}{'p95 h':>7}{'p95 s':>7}  {'haproxy cpu':<17}{'sluice cpu':<17}{'cs/q h':>7}{'cs/q s':>7}"
print(hdr)
for (wl, ps) in sorted({(k[0], k[1]) for k in runs}):
    d = worst((wl, ps, "direct"))
    h = worst((wl, ps, "haproxy"))
    s = worst((wl, ps, "sluice"))
    qd = d[0] / float(secs)
    ratio = lambda x: f"{x[0] / d[0]:.2f}x" if x else "-"
    p = lambda x: f"{x[1] / d[1]:.2f}x" if x else "-"
    c = lambda x: f"{x[2][0] + x[2][1]:.1f} ({x[2][0]:.1f}/{x[2][1]:.1f})" if x and x[2] else "-"
    cs = lambda x: f"{x[2][2]:.2f}" if x and x[2] else "-"
    print(f"{wl:<22}{ps:<8}{qd:>11.0f}{ratio(h):>9}{ratio(s):>8}{d[1]:>9.2f}{p(h):>7}{p(s):>7}  {c(h):<17}{c(s):<17}{cs(h):>7}{cs(s):>7}")
if syscalls.strip():
    print("\nsystem calls per point_select (strace -c, a separate 5 s run):", ", ".join(syscalls.split()))
if instr:
    print(f"\nSluice user-space instructions per point_select (callgrind, 20,000 queries): {int(instr):,}")
EOF
