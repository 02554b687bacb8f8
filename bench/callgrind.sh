# Sourced by bench/proxy.sh: user-space instructions per statement under callgrind, haproxy
# (`mode tcp`, one thread: an L4 forwarder's floor) and a bare forwarder on tokio
# (examples/l4_forward.rs: the floor of one hop on Sluice's runtime) beside Sluice with the
# primary as its only backend, in its default configuration and with one worker thread; per
# workload, text
# and prepared statements, one sysbench thread (no event batching: deterministic within
# ~0.5%) and four (batching: more events per wake-up, varying run to run). Each target runs
# alone under valgrind; instrumentation is on only while sysbench runs its events.
#
# Then, through Sluice with one worker, a point select bare and with a 128-byte sqlcommenter
# tag (bench/comment.py; needs python3 with mysqlclient or PyMySQL), as many statements each
# as a point-select row.
#
# Settings: BENCH_CG_EVENTS (2000: sysbench events per run of a transaction workload; a
# read_only event is 16 statements, so oltp_point_select runs 16 times as many events: each
# row measures about as many statements, and the control plane's probes, which keep their
# pace while valgrind slows statements ~50-fold, weigh as little in every row),
# BENCH_CG_CLIENTS ("1 4").

CG_TSV=$DIR/cg-table.tsv
: >"$CG_TSV"

# sysbench's statement count of a run ("total:" of its queries block)
cg_statements() { awk '/queries performed:/ {q = 1} q && /total:/ {print $2; exit}' "$1"; }

# Runs every workload against a target already under callgrind (pid $1, port $2), writing
# "target workload ps clients instructions-per-statement" rows.
cg_runs() {
  local pid=$1 port=$2 name=$3 wl ps clients log n dump ir events
  for wl in $WORKLOADS; do
    events=${BENCH_CG_EVENTS:-2000}
    [ "$wl" = oltp_point_select ] && events=$((events * 16))
    for ps in $PS_MODES; do
      for clients in ${BENCH_CG_CLIENTS:-1 4}; do
        log=$DIR/cg-$name-$wl-$ps-$clients.log
        # warm-up (pools, shape caches, prepared statements), not counted
        sysbench "$wl" "${SB[@]}" --mysql-port="$port" --threads="$clients" --events=200 \
          --time=0 --db-ps-mode="$ps" run >/dev/null 2>&1 || true
        callgrind_control -i on "$pid" >/dev/null 2>&1
        sysbench "$wl" "${SB[@]}" --mysql-port="$port" --threads="$clients" \
          --events="$events" --time=0 --db-ps-mode="$ps" run >"$log" 2>&1 ||
          { echo "bench: sysbench failed under callgrind ($name):"; tail -3 "$log"; return 1; }
        callgrind_control -i off "$pid" >/dev/null 2>&1
        callgrind_control -d "$pid" >/dev/null 2>&1
        sleep 1
        dump=$(ls -t "$DIR/cg-$name.out".* 2>/dev/null | head -1)
        ir=$(awk '/^totals:/ {print $2; exit}' "$dump")
        n=$(cg_statements "$log")
        [ -n "$ir" ] && [ -n "$n" ] && [ "$n" -gt 0 ] &&
          printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$wl" "$ps" "$clients" \
            "$(awk -v ir="$ir" -v n="$n" 'BEGIN {printf "%.0f", ir / n}')" >>"$CG_TSV"
      done
    done
  done
}

# Starts `$@` under callgrind (output $DIR/cg-NAME.out.*), waits until it listens on $2.
cg_start() { # name port command...
  local name=$1 port=$2
  shift 2
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$DIR/cg-$name.out" \
    "$@" >"$DIR/cg-$name.log" 2>&1 &
  CG_TARGET=$!
  PIDS+=($CG_TARGET)
  for _ in $(seq 1 60); do
    mariadb -h 127.0.0.1 -P "$port" -u app -papppass -e "SELECT 1" >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "bench: $name did not start under callgrind:"; tail -5 "$DIR/cg-$name.log"; return 1
}

cg_stop() { kill "$CG_TARGET" 2>/dev/null; wait "$CG_TARGET" 2>/dev/null || true; }

cg_table() {
  echo "bench: instructions per statement under callgrind (haproxy, a bare tokio forwarder, Sluice default, Sluice 1 worker)"
  # the wall-clock targets stop first: each measured process runs alone
  kill "$SLUICE1_PID" 2>/dev/null; wait "$SLUICE1_PID" 2>/dev/null || true
  [ -n "$HAPROXY" ] && { kill "$HAPROXY_PID" 2>/dev/null; wait "$HAPROXY_PID" 2>/dev/null || true; }
  if [ -n "$HAPROXY" ]; then
    cg_start haproxy "$HAPROXY_PORT" "$HAPROXY" -db -f "$DIR/haproxy.cfg" && cg_runs "$CG_TARGET" "$HAPROXY_PORT" haproxy
    cg_stop
  fi
  # tokio's floor for one hop: examples/l4_forward.rs (copy_bidirectional, nothing looked at)
  local fwd=$PWD/target/release/examples/l4_forward
  if [ -x "$fwd" ]; then
    cg_start tokio-l4 "$HAPROXY_PORT" "$fwd" "127.0.0.1:$HAPROXY_PORT" "127.0.0.1:$PRIMARY" &&
      cg_runs "$CG_TARGET" "$HAPROXY_PORT" tokio-l4
    cg_stop
  fi
  # the default configuration: no worker_threads line (the default), as a user's first run
  sed -e '/^worker_threads = /d' "$DIR/bench1.toml" >"$DIR/bench1-default.toml"
  cg_start sluice "$SLUICE1_PORT" "$BIN" run -c "$DIR/bench1-default.toml" && cg_runs "$CG_TARGET" "$SLUICE1_PORT" sluice
  cg_stop
  sed -e 's/^worker_threads = .*/worker_threads = 1/' "$DIR/bench1.toml" >"$DIR/bench1-one.toml"
  cg_start sluice-1w "$SLUICE1_PORT" "$BIN" run -c "$DIR/bench1-one.toml" && cg_runs "$CG_TARGET" "$SLUICE1_PORT" sluice-1w &&
    cg_comments "$CG_TARGET" "$SLUICE1_PORT"
  cg_stop
}

# A point select bare and with a 128-byte sqlcommenter tag (bench/comment.py, one client, the
# login not measured), through the target under callgrind (pid $1, port $2): one line.
cg_comments() {
  # as many statements as a point-select row: the control plane's probes weigh as little
  local pid=$1 port=$2 tagged dump ir bare="" n=$((${BENCH_CG_EVENTS:-2000} * 16))
  python3 -c "import MySQLdb" 2>/dev/null || python3 -c "import pymysql" 2>/dev/null ||
    { echo "bench: no mysqlclient or PyMySQL for python3: the comment row is skipped" >"$DIR/cg-comment.txt"; return 0; }
  for tagged in 0 1; do
    python3 bench/comment.py "$port" "$pid" "$n" "$tagged" ||
      { echo "bench: bench/comment.py failed" >"$DIR/cg-comment.txt"; return 0; }
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    dump=$(ls -t "$DIR/cg-sluice-1w.out".* | head -1)
    ir=$(awk -v n="$n" '/^totals:/ {printf "%.0f", $2 / n; exit}' "$dump")
    if [ "$tagged" = 0 ]; then bare=$ir; fi
  done
  awk -v b="$bare" -v t="$ir" 'BEGIN {printf "point select with a 128-byte sqlcommenter tag (Sluice, 1 worker, 1 client): %d instructions per statement, bare %d (%+.1f%%)\n", t, b, (t - b) * 100 / b}' >"$DIR/cg-comment.txt"
}

cg_report() {
  [ -f "$DIR/cg-comment.txt" ] && { echo; cat "$DIR/cg-comment.txt"; }
  python3 - "$CG_TSV" <<'EOF'
import sys
from collections import defaultdict
rows = defaultdict(dict)
for line in open(sys.argv[1]):
    name, wl, ps, clients, ir = line.split()
    rows[(wl, ps, clients)][name] = int(ir)
if not rows:
    sys.exit(0)
print("\nuser-space instructions per statement under callgrind (Sluice with the primary only; ratio = Sluice / haproxy;")
print("tokio L4 = examples/l4_forward.rs, a bare copy_bidirectional forwarder on tokio: one hop's floor on tokio)")
print(f"{'workload':<20}{'ps':<9}{'clients':>8}{'haproxy':>10}{'tokio L4':>10}{'default':>10}{'ratio':>8}{'1 worker':>10}{'ratio':>8}")
for (wl, ps, clients), r in sorted(rows.items()):
    h = r.get("haproxy")
    def cell(name):
        v = r.get(name)
        ratio = f"{v / h:.2f}x" if v and h else "-"
        return f"{v:>10,}" if v else f"{'-':>10}", f"{ratio:>8}"
    d, dr = cell("sluice")
    o, orr = cell("sluice-1w")
    hs = f"{h:>10,}" if h else f"{'-':>10}"
    t = r.get("tokio-l4")
    ts = f"{t:>10,}" if t else f"{'-':>10}"
    print(f"{wl:<20}{ps:<9}{clients:>8}{hs}{ts}{d}{dr}{o}{orr}")
EOF
}
