#!/bin/sh
# Builds the libFuzzer targets (clang) and runs each for SECONDS (default 60), starting from its
# committed corpus in tests/fuzz/corpus/<target>/; new inputs go to a scratch copy, so the
# committed corpus stays as it is. A crash stops the run with the target's exit status and
# leaves the crashing input (crash-*) in the current folder.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz-run: clang not found; libFuzzer targets not run"
    exit 0
fi
make fuzz
work=$(mktemp -d /tmp/dsq-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
for bin in build-fuzz/fuzz_*; do
    name=$(basename "$bin")
    mkdir -p "$work/$name"
    cp tests/fuzz/corpus/"$name"/* "$work/$name/"
    echo "fuzz-run: $name for $seconds s"
    "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
        "$work/$name" 2>"$work/$name.log" || {
        tail -n 60 "$work/$name.log"
        exit 1
    }
    grep -E '^stat::number_of_executed_units|^Done' "$work/$name.log" || true
done
