#!/usr/bin/env bash
# tests/bench/storage_blob.sh [BLOB-ARGS...]: the encrypted object store against plain files
# and against OpenSSL's own AES-256-GCM speed, in one run.
#
# Builds the release bench program (build/release/tests/bench/blob; DS_BUILD_DIR overrides the
# tree) and runs it in a scratch directory on the repository's disk (BLOB_BENCH_DIR overrides;
# it must be on the disk you want to measure, not a tmpfs). BLOB-ARGS go to the program
# (--mb N --chunk KIB --runs R --ranges K --range-kib KIB; defaults 128 MiB, 64 KiB, 3 runs,
# 512 ranges of 256 KiB). Then runs `openssl speed -evp aes-256-gcm` for 2 seconds on buffers
# of the chunk size, and prints our MB/s as ratios of it:
#   RUN ... / MEDIAN ...                      the program's raw lines (see tests/bench/blob.c)
#   OPENSSL aes-256-gcm bytes=<chunk> MBps=<x>
#   RATIO enc_write_vs_plain=<r> enc_range_cold_vs_plain=<r> enc_range_warm_vs_plain=<r>
#   RATIO enc_write_vs_openssl=<r> enc_range_warm_vs_openssl=<r>
# The issue's target: enc_write_vs_plain >= 0.7. Nothing is asserted (STYLE.md).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${DS_BUILD_DIR:-$ROOT/build/release}"
DIR="${BLOB_BENCH_DIR:-$BUILD/bench-blob}"

chunk_kib=64
args=("$@")
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
  if [[ "${args[i]}" == --chunk ]]; then chunk_kib="${args[i + 1]}"; fi
done
[[ "$chunk_kib" =~ ^[0-9]+$ ]] || { echo "storage_blob.sh: bad --chunk '$chunk_kib'" >&2; exit 2; }

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DDS_BUILD=release >/dev/null
cmake --build "$BUILD" --target bench_blob >/dev/null
BIN="$BUILD/tests/bench/blob"

mkdir -p "$DIR"
scratch="$(mktemp -d "$DIR/run-XXXXXX")"
out="$(mktemp)"
trap 'rm -rf "$scratch" "$out"' EXIT

echo "== $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) dir $scratch" \
  "fs $(stat -f -c %T "$scratch")"
"$BIN" --dir "$scratch" "$@" | tee "$out"

bytes=$((chunk_kib * 1024))
ossl="$(timeout 60 openssl speed -mr -seconds 2 -bytes "$bytes" -evp aes-256-gcm 2>/dev/null |
  awk -F: '/^\+F:/ { print $4 }' | tail -n 1)"
[[ -n "$ossl" ]] || { echo "storage_blob.sh: openssl speed gave no figure" >&2; exit 1; }

python3 - "$out" "$ossl" "$bytes" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
ossl = float(sys.argv[2]) / 1e6  # bytes/s -> MB/s
vals = {}
for line in text.splitlines():
    if line.startswith("MEDIAN"):
        for k, v in re.findall(r"(\w+)=([\d.]+)", line):
            vals[k] = float(v)
def ratio(a, b):
    return vals.get(a, 0.0) / b if b else 0.0
print(f"OPENSSL aes-256-gcm bytes={sys.argv[3]} MBps={ossl:.1f}")
print("RATIO enc_write_vs_plain=%.3f enc_range_cold_vs_plain=%.3f enc_range_warm_vs_plain=%.3f" % (
    ratio("enc_write_MBps", vals.get("plain_write_fsync_MBps", 0)),
    ratio("enc_range_cold_MBps", vals.get("plain_range_cold_MBps", 0)),
    ratio("enc_range_warm_MBps", vals.get("plain_range_warm_MBps", 0))))
print("RATIO enc_write_vs_openssl=%.3f enc_range_warm_vs_openssl=%.3f" % (
    ratio("enc_write_MBps", ossl), ratio("enc_range_warm_MBps", ossl)))
PY
