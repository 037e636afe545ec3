#!/usr/bin/env bash
# tests/bench/runtime.sh [BENCH...]: our actor runtime side by side with Erlang/OTP and CAF.
#
# Builds the release bench program (build/release/tests/bench/bench_actors) and runs the named
# benches through ../shared/anchors/actors/run_all.sh with OURS_CMD set, ONLY="ours erl-S2
# caf-share" and RUNS=3 (override with RUNS=, ONLY=), in one invocation, so every figure comes
# from the same run. Prints the harness's raw CELL lines and its table with speed ratios, then
# our noisy_on / noisy_off isolation factor, then the fairness run (ours alone: no anchor has
# one), one raw line per run:
#   CELL ours fairness run=<i> share_w1=<f> share_w3=<f> share_w10=<f>
# BENCH: pingpong threadring fanout spawn tenants noisy_off noisy_on fairness (default: all).
# FAIR_SECS sets the fairness window (10 s). Needs root to apt-get the anchors' toolchain.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ANCHORS="$(cd "$ROOT/../shared/anchors/actors" 2>/dev/null && pwd)" || {
  echo "runtime.sh: ../shared/anchors/actors not found next to the repository" >&2; exit 1; }
RUNS="${RUNS:-3}"
ONLY="${ONLY:-ours erl-S2 caf-share}"
FAIR_SECS="${FAIR_SECS:-10}"
ALL="pingpong threadring fanout spawn tenants noisy_off noisy_on fairness"
benches=("$@")
[[ ${#benches[@]} -gt 0 ]] || read -r -a benches <<<"$ALL"
harness=()
fair=0
for b in "${benches[@]}"; do
  case " $ALL " in *" $b "*) ;; *) echo "runtime.sh: unknown bench '$b' (known: $ALL)" >&2; exit 2 ;; esac
  if [[ "$b" == fairness ]]; then fair=1; else harness+=("$b"); fi
done

# The anchors' toolchain (the same packages as run_all.sh --install).
need=()
command -v erlc >/dev/null || need+=(erlang-base erlang-dev)
[[ -e /usr/include/caf/all.hpp ]] || need+=(libcaf-dev)
command -v g++ >/dev/null || need+=(g++)
[[ -x /usr/bin/time ]] || need+=(time)
if [[ ${#need[@]} -gt 0 && ${#harness[@]} -gt 0 ]]; then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

cmake -S "$ROOT" -B "$ROOT/build/release" -G Ninja -DDS_BUILD=release >/dev/null
cmake --build "$ROOT/build/release" --target bench_bench_actors >/dev/null
BIN="$ROOT/build/release/tests/bench/bench_actors"

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
echo "== $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ ${#harness[@]} -gt 0 ]]; then
  OURS_CMD="$BIN" ONLY="$ONLY" RUNS="$RUNS" BENCHES="${harness[*]}" \
    "$ANCHORS/run_all.sh" | tee "$out"
  python3 - "$out" <<'PY'
import re, statistics, sys
q = {"noisy_off": [], "noisy_on": []}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) > 3 and p[0] == "CELL" and p[1] == "ours" and p[2] in q:
        m = re.search(r"quiet_secs=([\d.e+-]+)", line)
        if m:
            q[p[2]].append(float(m.group(1)))
if q["noisy_off"] and q["noisy_on"]:
    off, on = statistics.median(q["noisy_off"]), statistics.median(q["noisy_on"])
    print(f"NOISY ours noisy_on/noisy_off={on / off:.2f} (median quiet_secs {on:.6f} / {off:.6f})")
PY
fi
if (( fair )); then
  for i in $(seq 1 "$RUNS"); do
    line="$("$BIN" fairness "$FAIR_SECS" | grep '^RESULT fairness' | head -1)"
    shares="$(grep -oE 'share_w[0-9]+=[0-9.]+' <<<"$line" | tr '\n' ' ')"
    echo "CELL ours fairness run=$i ${shares% } load=$(cut -d' ' -f1 /proc/loadavg)"
  done | tee -a "$out"
  python3 - "$out" <<'PY'
import re, sys
ideal = {"share_w1": 1 / 14, "share_w3": 3 / 14, "share_w10": 10 / 14}
worst = 0.0
for line in open(sys.argv[1]):
    if line.startswith("CELL ours fairness"):
        for k, v in re.findall(r"(share_w\d+)=([\d.]+)", line):
            worst = max(worst, abs(float(v) - ideal[k]) / ideal[k])
print(f"FAIRNESS ours worst_relative_share_error={worst * 100:.1f}% (target <= 5%)")
PY
fi
