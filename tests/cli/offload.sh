#!/bin/sh
# Expert statistics (dsq ppl --save-expert-stats, dsq experts) and the GPU / host placement
# (dsq plan, dsq info --vram): the files written, the summaries and replays printed, and every
# refusal with its exit code and message.
set -u
. "$(dirname "$0")/lib.sh"

tiny="$tmp/tiny.dsq"
v1="$tmp/tiny-v1.dsq"
"$DSQ" convert models/tiny-v2 -o "$tiny" >/dev/null 2>&1 || fail "convert models/tiny-v2" "failed"
"$DSQ" convert "$DATA/tiny-v1" -o "$v1" >/dev/null 2>&1 || fail "convert tiny-v1" "failed"
head -c 6000 data/heldout.txt >"$tmp/text.txt"
stats="$tmp/stats.json"

# --- statistics ----------------------------------------------------------------------------
run "ppl --save-expert-stats" 0 -- "$DSQ" ppl "$tiny" --text "$tmp/text.txt" --ctx 64 \
    --backend cpu -t 2 --save-expert-stats "$stats" --expert-trace &&
    expect_output "ppl --save-expert-stats" "saved the expert statistics of"
# tiny-v2: 4 layers, the first dense, 8 experts, top-2; every evaluated token routed once per
# MoE layer, so each layer's counts sum to tokens x 2 and the trace holds tokens x 3 x 2 ids
if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "dsq-expert-stats" and d["version"] == 1
assert (d["n_layers"], d["n_experts"], d["k"]) == (4, 8, 2)
assert d["moe_layers"] == [1, 2, 3]
assert d["ctx"] == 64 and d["model"]["family"] == "deepseek-v2"
n = d["tokens"][0]
assert n > 0 and n % 64 == 0 and d["tokens"] == [n] * 3
assert all(sum(row) == 2 * n for row in d["counts"])
assert d["trace_tokens"] == n and len(d["trace"]) == n * 3 * 2
for layer in range(3):
    for e in range(8):
        assert d["counts"][layer][e] == sum(
            1 for t in range(n) for i in range(2) if d["trace"][(t * 3 + layer) * 2 + i] == e)
' "$stats"; then pass; else fail "expert stats file" "content"; fi
run "experts summary" 0 -- "$DSQ" experts "$stats" && expect_output "experts summary" "top-k share"
run "experts simulate" 0 -- "$DSQ" experts "$stats" --simulate 4,100% &&
    expect_output "experts simulate" "lfu-decay" &&
    expect_output "experts simulate all" "24        100.0%  lru          100.00%"

"$DSQ" ppl "$tiny" --text "$tmp/text.txt" --ctx 64 --backend cpu -t 2 \
    --save-expert-stats "$tmp/counts.json" >/dev/null 2>&1 || fail "stats without trace" "failed"
expect_error "simulate without a trace" 2 "no routing trace" "" -- \
    "$DSQ" experts "$tmp/counts.json" --simulate 4
expect_error "simulate bad size" 1 "is not a slot count" "" -- \
    "$DSQ" experts "$stats" --simulate 4,x
expect_error "stats over the model" 1 "--save-expert-stats" "" -- \
    "$DSQ" ppl "$tiny" --text "$tmp/text.txt" --ctx 64 --save-expert-stats "$tiny"
expect_error "stats over the text" 1 "--save-expert-stats" "" -- \
    "$DSQ" ppl "$tiny" --text "$tmp/text.txt" --ctx 64 --save-expert-stats "$tmp/text.txt"
expect_error "stats and logits the same" 1 "name the same file" "$tmp/same.out" -- \
    "$DSQ" ppl "$tiny" --text "$tmp/text.txt" --ctx 64 --save-expert-stats "$tmp/same.out" \
    --save-logits "$tmp/same.out"
expect_error "trace without stats" 1 "--expert-trace needs" "" -- \
    "$DSQ" ppl "$tiny" --text "$tmp/text.txt" --ctx 64 --expert-trace
echo '{"format": "dsq-expert-stats", "version": 1}' >"$tmp/bad.json"
expect_error "damaged stats" 2 "bad.json" "" -- "$DSQ" experts "$tmp/bad.json"

# --- placement -----------------------------------------------------------------------------
# DeepSeek-V2 at q4 under 40 GiB, ctx 4096: 14,382,268,380 bytes stay on the GPU (docs/OFFLOAD.md
# derives them), leaving room for 2152 experts of 13,271,040 bytes
run "plan v2 40G" 0 -- "$DSQ" plan --config "$DATA/configs/deepseek-v2.json" --vram 40G \
    --ctx 4096 && expect_output "plan v2 resident" "14382268380" &&
    expect_output "plan v2 experts" "2152 of 9440"
# q4-q6 stores attention (8,953,528,320 weights), dense FFN, shared experts and head at 6.25 bits
# instead of 8.25: 14,382,268,380 - 2/8.25 x 12,839,608,320 (their q8 bytes) = 11,269,636,060,
# and (42,949,672,960 - that) / 13,271,040 = 2387 experts
run "plan v2 40G q4-q6" 0 -- "$DSQ" plan --config "$DATA/configs/deepseek-v2.json" --vram 40G \
    --ctx 4096 --preset q4-q6 && expect_output "plan v2 q4-q6 resident" "11269636060" &&
    expect_output "plan v2 q4-q6 experts" "2387 of 9440"
expect_error "plan v2 8G" 3 "the GPU-resident part needs 14.38 GB" "" -- \
    "$DSQ" plan --config "$DATA/configs/deepseek-v2.json" --vram 8G
expect_error "plan without vram" 1 "missing --vram" "" -- "$DSQ" plan "$tiny"
run "info --vram with stats" 0 -- "$DSQ" info "$tiny" --vram 1G --expert-stats "$stats" &&
    expect_output "info --vram" "hottest first" && expect_output "info --vram 24" "24 of 24"
run "info --ctx unchanged" 0 -- "$DSQ" info "$tiny" --ctx 128 &&
    expect_output "info --ctx" "cuda memory"
expect_error "info --vram too small" 3 "is too small" "" -- "$DSQ" info "$tiny" --vram 1M
expect_error "stats of another model" 2 "statistics of a model with 4 layers" "" -- \
    "$DSQ" plan "$v1" --vram 1G --expert-stats "$stats"

# --- --expert-stats on run, ppl, bench: checked against the model on every backend ----------
run "run --expert-stats" 0 -- "$DSQ" run "$tiny" -p "The cat" -n 4 --backend cpu \
    --expert-stats "$stats" && pass
expect_error "run stats of another model" 2 "statistics of a model with 4 layers" "" -- \
    "$DSQ" run "$v1" -p x -n 2 --backend cpu --expert-stats "$stats"
expect_error "ppl missing stats" 2 "missing.json" "" -- \
    "$DSQ" ppl "$tiny" --text "$tmp/text.txt" --ctx 64 --backend cpu \
    --expert-stats "$tmp/missing.json"
expect_error "bench damaged stats" 2 "bad.json" "" -- \
    "$DSQ" bench "$tiny" --prompt 4 --gen 2 --backend cpu --expert-stats "$tmp/bad.json"
expect_error "bench --gpu-experts on cpu" 1 "--gpu-experts takes --backend cuda" "" -- \
    "$DSQ" bench "$tiny" --prompt 4 --gen 2 --backend cpu --gpu-experts 50
expect_error "bench --gpu-experts 101" 1 "from 0 to 100" "" -- \
    "$DSQ" bench "$tiny" --prompt 4 --gen 2 --backend cuda --gpu-experts 101
for bad in lfu:0 lfu:64: lfu:64:-1 lfu:64:2x lfux "lfu: 32" lfu:0x20 lfu:32:-0 lfu:nan lfu:32:8:1; do
    expect_error "run --expert-cache $bad" 1 \
        "--expert-cache must be static, lfu, lfu:H or lfu:H:M" "" -- \
        "$DSQ" run "$tiny" -p x -n 2 --backend cpu --expert-cache "$bad"
done
for good in lfu:64 lfu:64:0 lfu:1e3:2.5; do
    run "ppl --expert-cache $good" 0 -- "$DSQ" ppl "$tiny" --text "$tmp/text.txt" --ctx 64 \
        --backend cpu --expert-cache "$good" && pass
done
expect_error "experts --margin -1" 1 "--margin must be a use count" "" -- \
    "$DSQ" experts "$tmp/bad.json" --margin -1

cli_summary "cli offload"
