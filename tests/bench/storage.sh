#!/usr/bin/env bash
# tests/bench/storage.sh: the storage benchmarks of issue 4, in one run, each beside its anchor:
#   1. transports/pg:   point selects through our pool vs `pgbench -S` on the same server with
#                       the same connections (tests/bench/storage_pg.sh; target ratio >= 0.8),
#                       plus tenant transactions and pipelined throughput;
#   2. transports/blob: encrypted streamed writes and Range reads vs plain write+fsync and
#                       pread of the same bytes on the same disk (target >= 0.7), and vs
#                       `openssl speed -evp aes-256-gcm` (tests/bench/storage_blob.sh).
# Builds build/release first. Environment is passed through to both scripts (N, SECS, DEPTH,
# PG_DSN... and BLOB_BENCH_DIR); ONLY=pg or ONLY=blob runs one half. Prints raw figures and
# ratios; asserts nothing (STYLE.md). Record results in docs/benchmarks.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
ds_build release >/dev/null

echo "== storage benchmarks $(date -u +%Y-%m-%dT%H:%M:%SZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${ONLY:-pg}" = pg ] || [ -z "${ONLY:-}" ]; then
    echo "== transports/pg vs pgbench -S"
    bash tests/bench/storage_pg.sh
fi
if [ "${ONLY:-blob}" = blob ] || [ -z "${ONLY:-}" ]; then
    echo "== transports/blob vs plain files and openssl speed"
    bash tests/bench/storage_blob.sh
fi
