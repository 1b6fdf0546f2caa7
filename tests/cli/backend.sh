#!/bin/sh
# --backend and --vram on run, ppl and bench. Without a usable GPU (or without CUDA in the build)
# --backend cuda must fail with exit code 3 and say why; with one, the CUDA backend must give the
# CPU's greedy text on the tiny trained model (whose top logits are far apart, unlike a random
# fixture's), and an impossible --vram must be refused before loading. DSQ_EXPECT_GPU set: a
# GPU is known to be there, so "no CUDA device" is a failure.
set -u
. "$(dirname "$0")/lib.sh"

v1="$tmp/tiny-v1.dsq"
tiny="$tmp/tiny.dsq"
"$DSQ" convert "$DATA/tiny-v1" -o "$v1" >/dev/null 2>&1 || fail "convert tiny-v1" "failed"
"$DSQ" convert models/tiny-v2 -o "$tiny" >/dev/null 2>&1 || fail "convert models/tiny-v2" "failed"
printf 'one two three four five six seven eight nine ten eleven twelve\n%.0s' 1 2 3 4 5 6 7 8 \
    >"$tmp/text.txt"

expect_error "run unknown backend" 1 "--backend must be cpu or cuda" "" -- \
    "$DSQ" run "$v1" -p x --backend tpu
expect_error "ppl unknown backend" 1 "--backend must be cpu or cuda" "" -- \
    "$DSQ" ppl "$v1" --text "$tmp/text.txt" --ctx 16 --backend tpu
expect_error "bench unknown backend" 1 "--backend must be cpu or cuda" "" -- \
    "$DSQ" bench "$v1" --prompt 4 --gen 2 --backend tpu
expect_error "run bad vram" 1 "--vram needs a positive byte count" "" -- \
    "$DSQ" run "$v1" -p x --vram 12Q
expect_error "run bad kv-cache" 1 "--kv-cache must be bf16, f32 or q8, not 'f16'" "" -- \
    "$DSQ" run "$tiny" -p x --kv-cache f16
# the CPU keeps its KV cache in bf16 unless asked for f32, MLA (tiny) and MHA (v1) alike
run "bench kv-cache default" 0 -- "$DSQ" bench "$tiny" --prompt 4 --gen 2 --backend cpu --json &&
    expect_output "bench kv-cache default" '"kv_cache": "bf16'
run "bench kv-cache f32" 0 -- "$DSQ" bench "$tiny" --prompt 4 --gen 2 --backend cpu --json \
    --kv-cache f32 && expect_output "bench kv-cache f32" '"kv_cache": "f32"'
run "bench kv-cache v1" 0 -- "$DSQ" bench "$v1" --prompt 4 --gen 2 --backend cpu --json &&
    expect_output "bench kv-cache v1" '"kv_cache": "bf16"'
run "bench kv-cache v1 f32" 0 -- "$DSQ" bench "$v1" --prompt 4 --gen 2 --backend cpu --json \
    --kv-cache f32 && expect_output "bench kv-cache v1 f32" '"kv_cache": "f32"'
# q8 keeps MHA's keys and values; MLA's latent has no q8 form, and saying so beats ignoring it
run "bench kv-cache v1 q8" 0 -- "$DSQ" bench "$v1" --prompt 4 --gen 2 --backend cpu --json \
    --kv-cache q8 && expect_output "bench kv-cache v1 q8" '"kv_cache": "q8"'
expect_error "run kv-cache q8 on MLA" 1 "--kv-cache q8 keeps MHA's keys and values" "" -- \
    "$DSQ" run "$tiny" -p x --kv-cache q8
# the cuda memory plan: tiny-v1 caches K and V, 3 layers x 4 heads x 16 dims, fp32; the CPU's
# cache of the same, bf16, f32 or q8
run "info cuda memory" 0 -- "$DSQ" info "$v1" --json --ctx 64 &&
    if python3 -c '
import json, sys
info = json.load(open(sys.argv[1]))
m = info["cuda_memory"]
assert m["ctx"] == 64 and m["kv_cache"] == 3 * 64 * 2 * 4 * 16 * 4, m
assert m["bytes"] == m["weights"] + m["kv_cache"] + m["work"] and m["work"] > 0, m
c = info["cpu_kv_cache"]
# q8: a byte a value and a 4-byte scale per head of 16 (too short for groups of 32)
assert c == {"ctx": 64, "bf16": 3 * 64 * 2 * 4 * 16 * 2, "f32": 3 * 64 * 2 * 4 * 16 * 4,
             "q8": 3 * 64 * 2 * 4 * (16 + 4)}, c
' "$tmp/out"; then pass; else fail "info cuda memory" "$(cat "$tmp/out" | tail -n 12)"; fi
expect_error "info ctx 0" 1 "--ctx must be an integer" "" -- "$DSQ" info "$v1" --ctx 0
expect_error "bench batch on cpu" 1 "one sequence at a time" "" -- \
    "$DSQ" bench "$v1" --prompt 4 --gen 2 --batch 2 --backend cpu
run "run cpu" 0 -- "$DSQ" run "$tiny" -p "The cat" -n 24 --backend cpu && pass
cp "$tmp/out" "$tmp/cpu.txt"

"$DSQ" run "$tiny" -p "The cat" -n 24 --backend cuda >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 3 ] && [ -n "${DSQ_EXPECT_GPU:-}" ]; then
    # the device check sets it where nvidia-smi lists a GPU: exit 3 is then a failure
    fail "run --backend cuda on a GPU machine" "exit 3: $(cat "$tmp/err")"
elif [ "$rc" -eq 3 ]; then
    # no device, or a build without CUDA: a clear line and nothing else
    if grep -qE "no CUDA device|built without CUDA" "$tmp/err"; then pass; else
        fail "cuda without a device" "message: $(cat "$tmp/err")"; fi
    run "default backend falls back to cpu" 0 -- "$DSQ" run "$tiny" -p "The cat" -n 24 &&
        if cmp -s "$tmp/out" "$tmp/cpu.txt"; then pass; else
            fail "default backend" "text differs from --backend cpu"; fi
    expect_error "ppl cuda without a device" 3 "CUDA" "" -- \
        "$DSQ" ppl "$v1" --text "$tmp/text.txt" --ctx 16 --backend cuda
    # --random is a device benchmark unless told otherwise: say how to run it on the CPU
    expect_error "bench random without a device" 3 "unless given --backend cpu" "" -- \
        "$DSQ" bench --random v2-lite --layers 1 --prompt 2 --gen 2
elif [ "$rc" -eq 0 ]; then
    if cmp -s "$tmp/out" "$tmp/cpu.txt"; then pass; else
        fail "cuda greedy text" "differs from cpu: $(cat "$tmp/out") vs $(cat "$tmp/cpu.txt")"; fi
    expect_error "cuda vram too small" 3 "device memory" "" -- \
        "$DSQ" run "$v1" -p x --backend cuda --vram 1K
    run "bench cuda" 0 -- "$DSQ" bench "$v1" --prompt 8 --gen 4 --backend cuda &&
        expect_output "bench cuda" "device-to-device copy"
else
    fail "run --backend cuda" "exit $rc: $(cat "$tmp/err")"
fi

# a full-size random model runs on the CPU engine too (MLA absorbed and MHA; one layer each)
for fam in v2-lite moe-16b; do
    run "bench --random $fam on cpu" 0 -- "$DSQ" bench --random "$fam" --backend cpu --layers 1 \
        --prompt 2 --gen 1 --json && expect_output "bench --random $fam on cpu" '"decode_tok_s"'
done

# the q4-q6 preset's types in a random V2-Lite cut to 2 layers: bytes one decode token reads are
# one q8 embedding row (2048 x 8.25 / 8 = 2112), the q6 head (102400 x 2048 x 6.25 / 8 =
# 163840000), 2 x q6 attention (13762560 weights: 10752000 each), the q6 dense FFN (3 x 10944 x
# 2048: 52531200), the f32 router (524288), the q6 shared experts (3 x 2816 x 2048: 13516800)
# and 6 q4 routed experts (6 x 3 x 1408 x 2048 x 4.5 / 8 = 29196288); norms are not counted
run "bench --random q4-q6" 0 -- "$DSQ" bench --random v2-lite --quant q4-q6 --backend cpu \
    --layers 2 --prompt 2 --gen 1 --json &&
    expect_output "bench --random q4-q6 bytes" '"bytes_per_token": 281114688'

cli_summary "cli backend"
