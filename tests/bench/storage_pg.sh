#!/usr/bin/env bash
# tests/bench/storage_pg.sh: point selects through our PostgreSQL pool against `pgbench -S`, on
# the same server, with the same number of connections, in one run (issue 4, "Benchmarks").
#
# Starts a throwaway cluster (initdb under a mkdtemp directory in /tmp, Unix socket only, run as
# `postgres` when root; removed at exit) unless PG_DSN names a server to use instead (its
# database gets pgbench's tables). Then:
#   pgbench -i -s SCALE                         (100,000 x SCALE accounts)
#   pgbench -S -c N -j 2 -T SECS                (the anchor: simple protocol, one select a tx)
#   pg --mode plain     --conns N               (system requests: one select, one round trip)
#   pg --mode tenant    --conns N               (tenant transactions: BEGIN, set_config, the
#                                                select, COMMIT pipelined in one round trip)
#   pg --mode pipelined --conns N --depth DEPTH (N x DEPTH clients, DEPTH in flight a connection)
# and prints the raw lines, then tps of each and its ratio to pgbench's (target for plain:
# >= 0.8). Our client actors run in the same process as the pool, as pgbench's threads do.
#
# Environment: N (8), SECS (10), WARM (2), SCALE (1), DEPTH (16), PG_DSN (unset: own cluster),
# PG_BINDIR (/usr/lib/postgresql/15/bin), BUILD (build/release: run
# `cmake -S . -B build/release -G Ninja -DDS_BUILD=release && cmake --build build/release`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
N="${N:-8}"
SECS="${SECS:-10}"
WARM="${WARM:-2}"
SCALE="${SCALE:-1}"
DEPTH="${DEPTH:-16}"
PG_BINDIR="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
BUILD="${BUILD:-$ROOT/build/release}"
BENCH="$BUILD/tests/bench/pg"
[[ -x "$BENCH" ]] || { echo "storage_pg.sh: $BENCH not built (see the header)" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "storage_pg.sh: pgbench not found (postgresql-client)" >&2; exit 1; }

as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

dir=""
cleanup() {
  if [[ -n "$dir" ]]; then
    as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
  fi
}
trap cleanup EXIT

if [[ -z "${PG_DSN:-}" ]]; then
  dir="$(mktemp -d /tmp/ds-pgbench-XXXXXX)"
  chmod 0711 "$dir"
  mkdir -m 0700 "$dir/data" "$dir/run"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir/data" "$dir/run"
  as_pg "$PG_BINDIR/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >/dev/null
  cat >>"$dir/data/postgresql.auto.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir/run'
port = 5432
max_connections = $((N * 2 + 20))
shared_buffers = 128MB
fsync = off
synchronous_commit = off
CONF
  as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/run/server.log" -w start >/dev/null
  PG_DSN="host=$dir/run port=5432 dbname=postgres user=postgres"
fi

# pgbench takes the same conninfo as its database name argument.
pgbench -i -q -s "$SCALE" "$PG_DSN" >/dev/null 2>&1
rows=$((100000 * SCALE))

echo "== pgbench -S -c $N -j 2 -T $SECS"
anchor_out="$(pgbench -S -n -c "$N" -j 2 -T "$SECS" "$PG_DSN" 2>&1)"
echo "$anchor_out" | grep -E '^(tps|number of transactions actually processed|latency average)'
anchor="$(echo "$anchor_out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)"

declare -A tps
for mode in plain tenant pipelined; do
  echo "== pg --mode $mode --conns $N"
  line="$("$BENCH" --dsn "$PG_DSN" --mode "$mode" --conns "$N" --depth "$DEPTH" --secs "$SECS" \
    --warm "$WARM" --rows "$rows")"
  echo "$line"
  tps[$mode]="$(echo "$line" | sed -n 's/.* tps=\([0-9.]*\).*/\1/p')"
done

echo
echo "== summary: point selects, $N connections, ${SECS}s each (ratio to pgbench -S)"
printf '%-34s %10s %8s\n' "run" "tps" "ratio"
printf '%-34s %10.0f %8s\n' "pgbench -S -c $N -j 2 (anchor)" "$anchor" "1.00"
for mode in plain tenant pipelined; do
  label="pool $mode"
  [[ $mode == pipelined ]] && label="pool pipelined (depth $DEPTH)"
  ratio="$(awk -v a="${tps[$mode]}" -v b="$anchor" 'BEGIN { printf "%.2f", a / b }')"
  printf '%-34s %10.0f %8s\n' "$label" "${tps[$mode]}" "$ratio"
done
echo "target: pool plain / pgbench -S >= 0.80"
