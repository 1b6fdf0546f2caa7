#!/bin/sh
# make demo: convert the tiny DeepSeek-V2-Lite-architecture model trained by scripts/train_tiny.py
# (shipped in models/tiny-v2), inspect and verify it, generate text, chat one turn, and measure
# its perplexity on held-out text it never saw in training (data/heldout.txt), and print the
# quality table of its q8 and q4 quantizations.
set -eu
DSQ=${1:-build/dsq}
out=build/demo
mkdir -p "$out"
model="$out/tiny-v2.dsq"
step() {
    echo
    echo "== $*"
}
step "dsq convert models/tiny-v2 -o $model"
"$DSQ" convert models/tiny-v2 -o "$model"
step "dsq info $model"
"$DSQ" info "$model"
step "dsq verify $model"
"$DSQ" verify "$model"
step "dsq run $model -p \"The meaning of life\" -n 48   (greedy)"
"$DSQ" run "$model" -p "The meaning of life" -n 48
step "dsq run $model -p \"Never\" -n 48 --temp 0.8 --top-p 0.95 --seed 7"
"$DSQ" run "$model" -p "Never" -n 48 --temp 0.8 --top-p 0.95 --seed 7
step "echo \"What is love?\" | dsq chat $model -n 40"
echo "What is love?" | "$DSQ" chat "$model" -n 40
step "dsq ppl $model --text data/heldout.txt --ctx 128"
"$DSQ" ppl "$model" --text data/heldout.txt --ctx 128
step "quantization: bf16 vs q8 vs q4 on the same text (scripts/quant_study.sh --quick; full study in docs/QUANT.md)"
scripts/quant_study.sh --quick >"$out/quant.txt" 2>"$out/quant.log" || {
    cat "$out/quant.log"
    exit 1
}
sed -n '/^| tool/,$p' "$out/quant.txt"
