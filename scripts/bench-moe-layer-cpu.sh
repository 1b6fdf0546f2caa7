#!/bin/sh
# CPU-only decode cost of one full-width MoE layer, for DeepSeek-MoE-16B, V2-Lite and V2 at q4
# and q8, and the full-depth tokens/s it projects. Random weights built in memory from the
# published configs (dsq bench --random ... --backend cpu): each model is run cut to 2 layers
# (embedding, the dense layer 0, one MoE layer, head) and to 3 layers (one more MoE layer); the
# difference of the two decode times per token is one MoE layer (attention + router + shared
# and 6-8 routed experts). Prints numbers, asserts nothing.
#
# Each timing is the median of REPEAT runs in one process (dsq bench --repeat): a layer's time
# is the difference of two timings of tens of ms, which single runs on a VM move by 50%.
#
#   scripts/bench-moe-layer-cpu.sh [build/dsq]  (THREADS, GEN, REPEAT, MODELS, QUANTS to override)
set -eu
DSQ=${1:-build/dsq}
THREADS=${THREADS:-$(nproc)}
GEN=${GEN:-16}
REPEAT=${REPEAT:-3}
MODELS=${MODELS:-"moe-16b v2-lite v2"}
QUANTS=${QUANTS:-"q4 q8"}
out=$(mktemp /tmp/dsq-bench-moe-XXXXXX)
trap 'rm -f "$out"' EXIT
echo "threads $THREADS, $GEN decode steps after a 4-token prompt, median of $REPEAT; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for model in $MODELS; do
    for quant in $QUANTS; do
        for layers in 2 3; do
            OMP_NUM_THREADS=$THREADS "$DSQ" bench --random "$model" --quant "$quant" \
                --layers "$layers" --backend cpu --prompt 4 --gen "$GEN" --repeat "$REPEAT" --json |
                sed "s/^{/{\"layers\": $layers, \"quant\": \"$quant\", /" >>"$out"
        done
    done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# MoE layers at full depth: all but the first (first_k_dense_replace = 1 in all three)
full = {"moe-16b": 28, "v2-lite": 27, "v2": 60}
print("| model | quant | 2-layer ms/token | 3-layer ms/token | MoE layer ms | MoE layer MB read "
      "| layer GB/s | read baseline GB/s | projected full-depth tok/s | bandwidth-bound tok/s |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
by = {(r["model"], r["quant"], r["layers"]): r for r in rows}
for (model, quant, layers), r2 in by.items():
    if layers != 2 or (model, quant, 3) not in by:
        continue
    r3 = by[(model, quant, 3)]
    t2, t3 = 1e3 / r2["decode_tok_s"], 1e3 / r3["decode_tok_s"]
    layer_ms = t3 - t2
    layer_mb = (r3["bytes_per_token"] - r2["bytes_per_token"]) / 1e6
    n = full[model]
    # the 2-layer model holds one MoE layer; the full model n - 1 of them
    ms_full = t2 + (n - 2) * layer_ms
    bytes_full = r2["bytes_per_token"] + (n - 2) * (r3["bytes_per_token"] - r2["bytes_per_token"])
    bw = max(r2["read_baseline_gb_s"], r3["read_baseline_gb_s"])
    print(f"| {model} | {quant} | {t2:.1f} | {t3:.1f} | {layer_ms:.1f} | {layer_mb:.1f} "
          f"| {layer_mb / layer_ms:.2f} | {bw:.2f} | {1e3 / ms_full:.3f} "
          f"| {bw * 1e9 / bytes_full:.3f} |")
PY
