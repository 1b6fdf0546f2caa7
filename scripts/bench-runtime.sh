#!/usr/bin/env bash
# Quantization and CPU runtime benchmark (part of `make bench`): on the synthetic full-width
# DeepSeek-V2-Lite cut to 2 layers (made by bench-convert.sh / make_synthetic_checkpoint.py),
# converts to bf16, q8 and q4 (throughput in GB of bf16 read per second, peak RSS), then runs
# `dsq bench` on each file in the same run: prefill and decode tokens/s next to a weight-read
# baseline. Prints numbers; asserts nothing.
#
#   scripts/bench-runtime.sh [DSQ_BINARY]      env: BENCH_DIR (default build/bench),
#                                              PROMPT (default 64), GEN (default 16)
set -euo pipefail
DSQ=${1:-build/dsq}
BENCH=${BENCH_DIR:-build/bench}
CKPT=$BENCH/v2lite-2layer
PROMPT=${PROMPT:-64}
GEN=${GEN:-16}
SCRIPTS=$(cd "$(dirname "$0")" && pwd)

[ -x "$DSQ" ] || { echo "bench-runtime: $DSQ: build it first (make)" >&2; exit 1; }
if [ ! -f "$CKPT/model.safetensors.index.json" ]; then
    echo "generating $CKPT (once; about 2.2 GB) ..."
    python3 "$SCRIPTS/make_synthetic_checkpoint.py" "$CKPT" --layers 2 --shards 4
fi
trap 'rm -f "$BENCH"/rt-*.dsq "$BENCH"/rt.time' EXIT
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "machine: ${cpu:-unknown CPU}, $(nproc) cores; $($DSQ --version)"
echo
printf '%-6s %10s %9s %12s %10s\n' preset "GB in" seconds "GB/s in" "peak RSS"
for preset in bf16 q8 q4; do
    out=$BENCH/rt-$preset.dsq
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$BENCH/rt.time" "$DSQ" convert "$CKPT" -o "$out" --quant "$preset" -q \
        2>/dev/null
    t1=$(date +%s.%N)
    in=$(cat "$CKPT"/*.safetensors | wc -c)
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f MB", $2 / 1024 }' "$BENCH/rt.time")
    awk -v n="$in" -v a="$t0" -v b="$t1" -v p="$preset" -v r="$rss" \
        'BEGIN { printf "%-6s %10.3f %9.2f %12.2f %10s\n", p, n / 1e9, b - a, n / 1e9 / (b - a), r }'
done
echo
for preset in bf16 q8 q4; do
    echo "== dsq bench rt-$preset.dsq --prompt $PROMPT --gen $GEN"
    "$DSQ" bench "$BENCH/rt-$preset.dsq" --prompt "$PROMPT" --gen "$GEN"
done
