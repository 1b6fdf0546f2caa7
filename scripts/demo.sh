#!/bin/sh
# make demo: convert the tiny DeepSeek-V2-Lite-architecture model trained by scripts/train_tiny.py
# (shipped in models/tiny-v2), inspect and verify it, generate text, chat one turn, and measure
# its perplexity on held-out text it never saw in training (data/heldout.txt).
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
