#!/bin/sh
# Replays routing traces against the expert cache policies (dsq experts --simulate): the tables
# of docs/OFFLOAD.md. Traces: the tiny trained model (models/tiny-v2) and the random-weight
# fixtures, each over data/heldout.txt (dsq ppl --expert-trace, 512-token windows); and a
# uniformly random trace of DeepSeek-V2's shape (60 layers, the first dense, 160 experts,
# top-6), which is how a random-weight full-width model routes. Prints numbers, asserts nothing.
#
#   scripts/expert-cache-study.sh [build/dsq]   (WORK=DIR keeps the traces there)
set -eu
DSQ=${1:-build/dsq}
WORK=${WORK:-$(mktemp -d /tmp/dsq-cache-study-XXXXXX)}
mkdir -p "$WORK"

trace() { # name hf_dir
    [ -f "$WORK/$1.json" ] && return
    "$DSQ" convert "$2" -o "$WORK/$1.dsq" >/dev/null
    "$DSQ" ppl "$WORK/$1.dsq" --text data/heldout.txt --ctx 512 --backend cpu \
        --save-expert-stats "$WORK/$1.json" --expert-trace >/dev/null
}
trace tiny-v2 models/tiny-v2
for f in tiny-v1 tiny-v2 tiny-v2-lite; do
    trace "fixture-$f" "tests/data/$f"
done
if [ ! -f "$WORK/uniform-v2.json" ]; then
    python3 - "$WORK/uniform-v2.json" <<'PY'
import json, random, sys
layers, experts, k, tokens = 60, 160, 6, 4000
rng = random.Random(1)
moe = list(range(1, layers))
trace = []
counts = [[0] * experts for _ in moe]
for _ in range(tokens):
    for m in range(len(moe)):
        ids = rng.sample(range(experts), k)
        trace += ids
        for e in ids:
            counts[m][e] += 1
json.dump({"format": "dsq-expert-stats", "version": 1, "n_layers": layers,
           "n_experts": experts, "k": k, "moe_layers": moe, "tokens": [tokens] * len(moe),
           "counts": counts, "trace_tokens": tokens, "trace": trace,
           "text": "uniformly random routing (seed 1)"}, open(sys.argv[1], "w"))
PY
fi

echo "== models/tiny-v2: the policies at the defaults (LFU: half-life 32, margin 8)"
"$DSQ" experts "$WORK/tiny-v2.json" --simulate 2,4,8,12,16 | sed -n '/cache replay/,$p'
echo "== models/tiny-v2: LFU at half-life 256 without a margin (the earlier default)"
"$DSQ" experts "$WORK/tiny-v2.json" --simulate 2,4,8,12,16 --half-life 256 --margin 0 | grep lfu
echo "== LFU hit rate / loads per token by half-life and margin: models/tiny-v2 at 4, 8, 12"
echo "   slots; uniform routing at DeepSeek-V2's shape, 2152 slots (what --vram 40G keeps at q4)"
for h in 16 32 64 256; do
    for margin in 0 2 4 8; do
        printf 'H %-4s M %s |' "$h" "$margin"
        for case in "tiny-v2 4,8,12" "uniform-v2 2152"; do
            set -- $case
            "$DSQ" experts "$WORK/$1.json" --simulate "$2" --half-life "$h" --margin "$margin" |
                awk '$3 == "lfu-decay" { printf " %s / %s", $4, $5 } END { printf " |" }'
        done
        echo
    done
done
echo "== random-weight fixtures, 4 and 8 slots, defaults"
for f in tiny-v1 tiny-v2 tiny-v2-lite; do
    echo "-- $f"
    "$DSQ" experts "$WORK/fixture-$f.json" --simulate 4,8 | sed -n '/^slots/,$p'
done
echo "== uniform routing at DeepSeek-V2's shape, 2152 slots, defaults"
"$DSQ" experts "$WORK/uniform-v2.json" --simulate 2152 | sed -n '/^slots/,$p'
