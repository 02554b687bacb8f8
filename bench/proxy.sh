#!/usr/bin/env bash
# Side-by-side proxy benchmark: sysbench straight to the primary ("direct"), through haproxy
# in `mode tcp` (a plain L4 forwarder: the floor of one extra TCP hop) and through Sluice,
# alternating target by target in every round, on a sandbox topology (1 primary, 2 replicas)
# started for the run. Two Sluice targets: "sluice" routes as configured (reads to the
# replicas), "sluice-1b" has the primary as its only backend, like haproxy (the like-for-like
# cost of the proxy itself). Prints, per workload, the worst round of each target: throughput
# and p95 relative to direct, CPU microseconds per query of haproxy and of Sluice
# (user/system), context switches per query, system calls per query (strace); then tail
# latency with 800 clients (p99, max); then Sluice's user-space instructions per query under
# callgrind (deterministic, for judging a change without noise).
#
#   bash bench/proxy.sh            # full run (~15 min on 2 cores)
#   bash bench/proxy.sh --quick    # one short round of point_select (a smoke test, in CI)
#
# Settings (environment): BENCH_SECONDS (20), BENCH_ROUNDS (3), BENCH_THREADS (8),
# BENCH_WORKLOADS ("oltp_point_select oltp_read_only oltp_read_write"), BENCH_PS ("disable
# auto": text protocol, then prepared statements), BENCH_PORT (25306), BENCH_CALLGRIND (1),
# BENCH_SLUICE_THREADS (1: Sluice's listen.worker_threads, one like haproxy's nbthread 1),
# BENCH_MANY (800 clients for the tail-latency run; 0 skips it), BENCH_RULES (0: that many
# routing rules that match nothing, half digest_pattern, half pattern), BENCH_CG_THREADS (4:
# sysbench threads of the callgrind run; 1 is deterministic), BENCH_CACHE=1 (a rule caches
# every SELECT for 10 minutes: the Sluices are warmed with one run each first, so the rounds
# measure hits; the callgrind run reads 100 ids, all hits after its warm-up), BENCH_CG_TABLE
# (1: instructions per statement under callgrind for haproxy, Sluice default and Sluice with
# one worker, every workload, 1 and 4 clients; bench/callgrind.sh), BENCH_KEEP=1 keeps the data
# folder. Needs sysbench; haproxy and valgrind are optional (their
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
SLUICE_THREADS=${BENCH_SLUICE_THREADS:-1}
MANY=${BENCH_MANY:-800}
if [ "${1:-}" = "--quick" ]; then
  SECS=3 ROUNDS=1 WORKLOADS=oltp_point_select PS_MODES=disable CALLGRIND=0 MANY=0
fi

command -v sysbench >/dev/null || { echo "bench: sysbench is required (apt-get install sysbench)" >&2; exit 1; }
HAPROXY=$(command -v haproxy || true)
[ -x /usr/sbin/haproxy ] && HAPROXY=/usr/sbin/haproxy
[ -n "$HAPROXY" ] || echo "bench: haproxy not installed: its column is skipped (apt-get install haproxy)"

cargo build --release -q
# the bare tokio forwarder is measured only under callgrind (`--quick`, in CI, skips it)
if [ "$CALLGRIND" = 1 ]; then cargo build --release -q --example l4_forward; fi
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
SLUICE1_PORT=$((BASE + 40))
# the measured Sluices are processes of their own (the sandbox's in-process one stays idle)
sed -e "s/127.0.0.1:$((BASE + 10))/127.0.0.1:$SLUICE_PORT/" \
    -e "s/127.0.0.1:$((BASE + 11))/127.0.0.1:$((BASE + 21))/" \
    -e "s/^enabled = true/enabled = false/" \
    -e "s/^worker_threads = .*/worker_threads = $SLUICE_THREADS/" \
    "$DIR/sandbox/sluice.toml" >"$DIR/bench.toml"
for i in $(seq 1 $((${BENCH_RULES:-0} / 2))); do
  printf '\n[[rules]]\nname = "d%s"\ndigest_pattern = "^SELECT .* FROM report_%s_"\nroute = "primary"\n\n[[rules]]\nname = "p%s"\npattern = "tenant_%s_secret"\nreject = "no"\n' \
    "$i" "$i" "$i" "$i" >>"$DIR/bench.toml"
done
if [ "${BENCH_CACHE:-0}" = 1 ]; then
  printf '\n[[rules]]\nname = "cached"\ndigest_pattern = "^SELECT"\ncache_ttl = "10m"\n' >>"$DIR/bench.toml"
fi
# sluice-1b: the same with the primary as its only backend
python3 - "$DIR/bench.toml" "$DIR/bench1.toml" "$SLUICE1_PORT" "$((BASE + 41))" <<'EOF'
import re, sys
src, dst, port, admin = sys.argv[1:]
blocks = open(src).read().split("\n\n")
blocks = [b for b in blocks if not (b.startswith("[[backends]]") and 'role = "replica"' in b)]
text = "\n\n".join(blocks)
text = re.sub(r'^address = "127.0.0.1:\d+"', f'address = "127.0.0.1:{port}"', text, count=1, flags=re.M)
text = re.sub(r'(\[admin\]\naddress = )"[^"]*"', rf'\1"127.0.0.1:{admin}"', text)
open(dst, "w").write(text)
EOF
start_sluice() { # config log; sets STARTED
  "$BIN" run -c "$1" >"$2" 2>&1 &
  STARTED=$!
  PIDS+=($STARTED)
  sleep 1
  kill -0 "$STARTED" 2>/dev/null || { echo "bench: Sluice did not start:"; cat "$2"; exit 1; }
}
start_sluice "$DIR/bench.toml" "$DIR/sluice.log"
SLUICE_PID=$STARTED
start_sluice "$DIR/bench1.toml" "$DIR/sluice1.log"
SLUICE1_PID=$STARTED

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

if [ "${BENCH_CACHE:-0}" = 1 ]; then
  for port in $SLUICE_PORT $SLUICE1_PORT; do
    echo "bench: warming the result cache through port $port (${SECS}s of point selects)"
    sysbench oltp_point_select "${SB[@]}" --mysql-port="$port" --threads="$THREADS" --time="$SECS" \
      --db-ps-mode=disable --rand-type=uniform run >/dev/null
  done
fi

for round in $(seq 1 "$ROUNDS"); do
  for wl in $WORKLOADS; do
    for ps in $PS_MODES; do
      echo "bench: round $round/$ROUNDS $wl (ps-mode $ps), ${SECS}s each"
      run_one "$wl" "$ps" direct "$PRIMARY"
      [ -n "$HAPROXY" ] && run_one "$wl" "$ps" haproxy "$HAPROXY_PORT" "$HAPROXY_PID"
      run_one "$wl" "$ps" sluice "$SLUICE_PORT" "$SLUICE_PID"
      run_one "$wl" "$ps" sluice-1b "$SLUICE1_PORT" "$SLUICE1_PID"
    done
  done
done

# tail latency with many clients: one run per target (Sluice multiplexes them onto its pool;
# direct and haproxy give each its own server connection)
TAIL=$DIR/tail.tsv
if [ "$MANY" -gt 0 ]; then
  for t in direct:$PRIMARY haproxy:$HAPROXY_PORT sluice:$SLUICE_PORT sluice-1b:$SLUICE1_PORT; do
    name=${t%%:*} port=${t##*:}
    [ "$name" = haproxy ] && [ -z "$HAPROXY" ] && continue
    echo "bench: $MANY clients through $name (point_select, ${SECS}s)"
    log=$DIR/many-$name.log
    sysbench oltp_point_select "${SB[@]}" --mysql-port="$port" --threads="$MANY" --time="$SECS" \
      --db-ps-mode=disable --percentile=99 --rand-type=uniform run >"$log" 2>&1 ||
      { echo "bench: sysbench with $MANY clients failed against $name:"; tail -5 "$log"; exit 1; }
    awk -v n="$name" '/queries:/ && !q {q = $2} /99th percentile:/ {p = $3} /max:/ {m = $2}
      END {printf "%s\t%s\t%s\t%s\n", n, q, p, m}' "$log" >>"$TAIL"
  done
fi

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
  CG_SB=("${SB[@]}")
  [ "${BENCH_CACHE:-0}" = 1 ] && CG_SB+=(--tables=1 --table-size=100) # ids 1-100: all hits
  sysbench oltp_point_select "${CG_SB[@]}" --mysql-port="$SLUICE_PORT" --threads=4 --events=2000 \
    --time=0 --db-ps-mode=disable run >/dev/null # warm-up: pools, caches
  EVENTS=20000
  callgrind_control -i on "$CG_PID" >/dev/null 2>&1
  sysbench oltp_point_select "${CG_SB[@]}" --mysql-port="$SLUICE_PORT" --threads="${BENCH_CG_THREADS:-4}" --events=$EVENTS \
    --time=0 --db-ps-mode=disable run >"$DIR/cg-run.log"
  callgrind_control -i off "$CG_PID" >/dev/null 2>&1
  callgrind_control -d "$CG_PID" >/dev/null 2>&1
  sleep 2
  IR=$(cat "$DIR"/cg.out* 2>/dev/null | awk '/^totals:/ {s += $2} END {print s + 0}')
  [ "$IR" -gt 0 ] && INSTR=$(awk -v ir="$IR" -v n=$EVENTS 'BEGIN {printf "%.0f", ir / n}')
elif [ "$CALLGRIND" = 1 ]; then
  echo "bench: valgrind not installed: no instruction count (apt-get install valgrind)"
fi

# the table of instructions per statement, haproxy beside Sluice (bench/callgrind.sh)
CG_TABLE=0
if [ "$CALLGRIND" = 1 ] && [ "${BENCH_CG_TABLE:-1}" = 1 ] && command -v valgrind >/dev/null; then
  . "$(dirname "$0")/callgrind.sh"
  cg_table
  CG_TABLE=1
fi

python3 - "$OUT" "$(getconf CLK_TCK)" "$INSTR" "$THREADS" "$SECS" "$ROUNDS" "$SYSCALLS" "$TAIL" "$MANY" "$SLUICE_THREADS" <<'EOF'
import os, sys
from collections import defaultdict
path, tck, instr, threads, secs, rounds, syscalls, tail, many, sthreads = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
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

print(f"\nsysbench, {threads} threads, {secs} s per run, worst of {rounds} alternating rounds; Sluice with worker_threads = {sthreads}")
print("h = haproxy (mode tcp, to the primary); s = Sluice routing reads to the replicas; s1 = Sluice with the primary only")
print("(qps and p95 relative to direct; CPU us/query total (user/system); cs = context switches per query)\n")
targets = [("haproxy", "h"), ("sluice", "s"), ("sluice-1b", "s1")]
hdr = f"{'workload':<20}{'ps':<8}{'direct qps':>10}" + "".join(f"{'qps ' + a:>8}" for _, a in targets)
hdr += f"{'p95 d ms':>9}" + "".join(f"{'p95 ' + a:>8}" for _, a in targets) + "  "
hdr += "".join(f"{'cpu ' + a:<18}" for _, a in targets) + "".join(f"{'cs/q ' + a:>8}" for _, a in targets)
print(hdr)
for (wl, ps) in sorted({(k[0], k[1]) for k in runs}):
    d = worst((wl, ps, "direct"))
    xs = [worst((wl, ps, t)) for t, _ in targets]
    qd = d[0] / float(secs)
    ratio = lambda x: f"{x[0] / d[0]:.2f}x" if x else "-"
    p = lambda x: f"{x[1] / d[1]:.2f}x" if x else "-"
    c = lambda x: f"{x[2][0] + x[2][1]:.1f} ({x[2][0]:.1f}/{x[2][1]:.1f})" if x and x[2] else "-"
    cs = lambda x: f"{x[2][2]:.2f}" if x and x[2] else "-"
    line = f"{wl:<20}{ps:<8}{qd:>10.0f}" + "".join(f"{ratio(x):>8}" for x in xs) + f"{d[1]:>9.2f}"
    line += "".join(f"{p(x):>8}" for x in xs) + "  " + "".join(f"{c(x):<18}" for x in xs)
    print(line + "".join(f"{cs(x):>8}" for x in xs))
if os.path.exists(tail):
    print(f"\n{many} clients, oltp_point_select, {secs} s (one run each): qps, p99 and max latency")
    for line in open(tail):
        name, q, p99, mx = line.split()
        print(f"  {name:<10} {int(q) / float(secs):>8.0f} qps   p99 {float(p99):>8.2f} ms   max {float(mx):>8.2f} ms")
if syscalls.strip():
    print("\nsystem calls per point_select (strace -c, a separate 5 s run):", ", ".join(syscalls.split()))
if instr:
    print(f"\nSluice user-space instructions per point_select (callgrind, 20,000 queries): {int(instr):,}")
EOF
[ "$CG_TABLE" = 1 ] && cg_report
exit 0
