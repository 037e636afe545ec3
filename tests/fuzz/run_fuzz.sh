#!/usr/bin/env bash
# Runs one libFuzzer target for ctest (label fuzz):
#   run_fuzz.sh <target> <seed-dir> <regression-dir>
# 1. Replays every file in <regression-dir> (inputs that once crashed), if it exists.
# 2. Fuzzes for ${DS_FUZZ_SECONDS:-20} s from a fresh copy of the committed seeds, so the
#    committed corpus never changes behind git's back.
# Any crash, leak, timeout or sanitizer report fails the test; the crashing input is kept in
# the working directory (crash-*, leak-*, timeout-*) to be committed as a regression.
# -error_exitcode=1: libFuzzer's default, 77, is ctest's SKIP_RETURN_CODE, so a crash would
# pass as a skipped test.
set -euo pipefail

target="$1"
seeds="$2"
regressions="$3"
seconds="${DS_FUZZ_SECONDS:-20}"
name="$(basename "$target")"

if [ ! -x "$target" ]; then
    echo "$name: target $target is missing" >&2
    exit 1
fi

if [ -d "$regressions" ]; then
    mapfile -d '' inputs < <(find "$regressions" -type f -print0 | sort -z)
    if [ "${#inputs[@]}" -gt 0 ]; then
        echo "$name: replaying ${#inputs[@]} regression input(s) from $regressions"
        "$target" -error_exitcode=1 -timeout=10 -rss_limit_mb=2048 "${inputs[@]}"
    fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ds-fuzz-$name.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
corpus_dirs=("$work/corpus")
if [ -d "$seeds" ]; then
    cp -R "$seeds/." "$work/corpus/"
    corpus_dirs+=("$seeds")
else
    echo "$name: no seed corpus at $seeds (commit one)" >&2
fi

echo "$name: fuzzing for ${seconds}s"
"$target" -max_total_time="$seconds" -error_exitcode=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$PWD/$name-" -print_final_stats=1 "${corpus_dirs[@]}"
