#!/bin/sh
# Command-line tests: conversion of every fixture family, info/verify output, and the bad-input
# suite. Each failure case must exit with the documented code, print a message naming the file
# and the problem, and leave neither the output file nor a temporary file behind.
set -u
. "$(dirname "$0")/lib.sh"

mkdir -p "$tmp/out.d"

# --- conversion, info and verify on every family -------------------------------------------
for fam in tiny-v1 tiny-v2-lite tiny-v2; do
    out="$tmp/out.d/$fam.dsq"
    run "convert $fam" 0 -- "$DSQ" convert "$DATA/$fam" -o "$out" && pass
    run "info $fam" 0 -- "$DSQ" info "$out" && expect_output "info $fam" "params"
    run "verify $fam" 0 -- "$DSQ" verify "$out" && expect_output "verify $fam" "OK"
done
run "info family v1" 0 -- "$DSQ" info "$tmp/out.d/tiny-v1.dsq" && expect_output "info v1" "deepseek-moe"
run "info family v2" 0 -- "$DSQ" info "$tmp/out.d/tiny-v2.dsq" && expect_output "info v2" "group-limited: 4 groups, best 2, scale 2.5"
run "info --json" 0 -- "$DSQ" info --json --tensors "$tmp/out.d/tiny-v2-lite.dsq" &&
    if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["model"]["family"] == "deepseek-v2", d["model"]["family"]
assert d["model"]["q_lora_rank"] == 0
assert d["size"]["tensors"] == len(d["tensors"]) == 83
assert abs(d["classes"]["routed_expert"]["bits_per_weight"] - 16.0) < 1e-9
assert abs(d["classes"]["norm"]["bits_per_weight"] - 32.0) < 1e-9
assert d["tokenizer"]["tokens"] == 512
' "$tmp/out"; then pass; else fail "info --json" "JSON content"; fi

# --- usage errors: exit 1 ----------------------------------------------------------------------
expect_error "no command" 1 "usage" "" -- "$DSQ"
expect_error "unknown command" 1 "unknown command 'frobnicate'" "" -- "$DSQ" frobnicate
expect_error "convert without -o" 1 "missing -o" "" -- "$DSQ" convert "$DATA/tiny-v1"
expect_error "threads 0" 1 "--threads must be an integer from 1 to 1024, not '0'" "" -- \
    "$DSQ" convert "$DATA/tiny-v1" -o "$tmp/x.dsq" --threads 0
expect_error "threads not a number" 1 "not 'lots'" "" -- \
    "$DSQ" convert "$DATA/tiny-v1" -o "$tmp/x.dsq" --threads lots
run "help" 0 -- "$DSQ" convert --help && expect_output "help" "usage: dsq convert"

# --- damaged checkpoints: exit 2, message names file and problem, no output --------------------
bad() { # bad CASE MESSAGE
    python3 "$HERE/mutate.py" "$DATA/tiny-v2-lite" "$tmp/$1" "$1" || {
        fail "$1" "could not build the case"
        return
    }
    expect_error "$1" 2 "$2" "$tmp/out.d/$1.dsq" -- "$DSQ" convert "$tmp/$1" -o "$tmp/out.d/$1.dsq"
}
S1=model-00001-of-00002.safetensors
S2=model-00002-of-00002.safetensors
bad truncated_shard "$S2"
bad header_length_past_end "$S1"
bad malformed_header_json "$S1: header JSON is malformed at line 1, column 2"
bad overlapping_offsets "overlap"
bad offset_out_of_range "$S1"
bad unsupported_dtype "unsupported dtype I16"
bad wrong_shape "wrong shape"
bad missing_tensor "1 missing tensor (model.layers.0.post_attention_layernorm.weight)"
bad extra_tensor "1 unexpected tensor (model.layers.0.mlp.extra_proj.weight)"
bad missing_shard "$S2"
bad unknown_model_type "model_type \"mixtral\" is not supported"
bad config_not_json "config.json"
bad config_missing "config.json: cannot read config: No such file"
bad tokenizer_missing "tokenizer.json"
expect_error "not a folder" 2 "no-such-dir" "$tmp/out.d/nodir.dsq" -- \
    "$DSQ" convert "$tmp/no-such-dir" -o "$tmp/out.d/nodir.dsq"

# --- output that cannot be written ---------------------------------------------------------------
expect_error "output folder missing" 2 "cannot create output file" "" -- \
    "$DSQ" convert "$DATA/tiny-v1" -o "$tmp/missing-folder/x.dsq"
expect_error "output folder not writable" 2 "/proc/x.dsq" "" -- \
    "$DSQ" convert "$DATA/tiny-v1" -o /proc/x.dsq
# a full disk, simulated by a file size limit: exit 3, nothing left behind
expect_error "disk full" 3 "x.dsq" "$tmp/out.d/full/x.dsq" -- \
    sh -c "mkdir -p '$tmp/out.d/full' && ulimit -f 64 && trap '' XFSZ && exec '$DSQ' convert '$DATA/tiny-v1' -o '$tmp/out.d/full/x.dsq'"

# --- damaged .dsq files ------------------------------------------------------------------------
good="$tmp/out.d/tiny-v2.dsq"
offset=$("$DSQ" info --json --tensors "$good" | python3 -c '
import json, sys
d = json.load(sys.stdin)
t = next(t for t in d["tensors"] if t["name"] == "layers.1.mlp.experts.3.up")
print(t["offset"] + 7)')
cp "$good" "$tmp/flip-data.dsq"
printf '\377' | dd of="$tmp/flip-data.dsq" bs=1 seek="$offset" conv=notrunc 2>/dev/null
expect_error "flipped tensor byte" 2 "tensor layers.1.mlp.experts.3.up is damaged" "" -- \
    "$DSQ" verify "$tmp/flip-data.dsq"
cp "$good" "$tmp/flip-header.dsq"
printf '\377' | dd of="$tmp/flip-header.dsq" bs=1 seek=44 conv=notrunc 2>/dev/null
expect_error "flipped header byte" 2 "flip-header.dsq" "" -- "$DSQ" verify "$tmp/flip-header.dsq"
expect_error "flipped header byte (info)" 2 "flip-header.dsq" "" -- "$DSQ" info "$tmp/flip-header.dsq"
head -c 5000 "$good" >"$tmp/truncated.dsq"
expect_error "truncated dsq" 2 "truncated" "" -- "$DSQ" verify "$tmp/truncated.dsq"
expect_error "not a dsq" 2 "not a .dsq file" "" -- "$DSQ" info "$DATA/tiny-v1/config.json"
expect_error "missing dsq" 2 "cannot open" "" -- "$DSQ" info "$tmp/nothing.dsq"

# --- fuzz targets replay valid and damaged inputs without crashing (sanitizers catch the rest) ---
FUZZ=$(dirname "$DSQ")/fuzz
run "fuzz replay dsq" 0 -- "$FUZZ/fuzz_dsq" "$good" "$tmp/flip-data.dsq" "$tmp/flip-header.dsq" \
    "$tmp/truncated.dsq" && pass
run "fuzz replay safetensors" 0 -- "$FUZZ/fuzz_safetensors" "$DATA"/tiny-*/*.safetensors \
    "$tmp"/*/model-0000*.safetensors && pass

run "fuzz replay tokenizer" 0 -- "$FUZZ/fuzz_tokenizer" README.md formats/FORMAT.md \
    "$DATA/tokenizer-cases.json" && pass

# --- run, chat, bench ----------------------------------------------------------------------------
v2="$tmp/out.d/tiny-v2.dsq"
run "run greedy" 0 -- "$DSQ" run "$v2" -p "Hello" -n 8 && expect_output "run greedy" "Hello"
"$DSQ" run "$v2" -p "Hello" -n 12 --temp 0.9 --top-p 0.95 --seed 5 >"$tmp/s1" 2>/dev/null
"$DSQ" run "$v2" -p "Hello" -n 12 --temp 0.9 --top-p 0.95 --seed 5 >"$tmp/s2" 2>/dev/null
if cmp -s "$tmp/s1" "$tmp/s2"; then pass; else fail "run seeded" "same seed, different text"; fi
run "run stats" 0 -- "$DSQ" run "$v2" -p "Hi" -n 4 &&
    if grep -q "tok/s" "$tmp/err"; then pass; else fail "run stats" "no tokens/s on stderr"; fi
expect_error "run prompt longer than context" 1 "the prompt needs" "" -- \
    "$DSQ" run "$v2" -p "a prompt that is longer than eight tokens for sure" --ctx 8
expect_error "run ctx 0" 1 "--ctx must be an integer from 1" "" -- "$DSQ" run "$v2" -p x --ctx 0
expect_error "run ctx huge" 1 "--ctx 16777216 out of range" "" -- "$DSQ" run "$v2" -p x --ctx 16777216
expect_error "run top-p 0" 1 "--top-p" "" -- "$DSQ" run "$v2" -p x --top-p 0
expect_error "run backend" 1 "--backend must be cpu or cuda" "" -- "$DSQ" run "$v2" -p x --backend tpu
expect_error "run without prompt" 1 "missing -p" "" -- "$DSQ" run "$v2"
printf 'Hi there\nAnd again\n' | "$DSQ" chat "$v2" -n 6 --system "Be brief." >"$tmp/chat" 2>"$tmp/err"
if [ $? -eq 0 ] && [ "$(wc -l <"$tmp/chat")" -eq 2 ]; then pass; else
    fail "chat two turns" "exit or line count: $(cat "$tmp/err")"; fi
run "bench" 0 -- "$DSQ" bench "$v2" --prompt 16 --gen 4 && expect_output "bench" "decode"

# --- quantization: convert --quant, quantize, recipes -----------------------------------------
lite="$DATA/tiny-v2-lite"
q4="$tmp/out.d/lite-q4.dsq"
run "convert q4" 0 -- "$DSQ" convert "$lite" -o "$q4" --quant q4 --group-size 32 && pass
run "info q4" 0 -- "$DSQ" info "$q4" && expect_output "info q4" "routed_expert  q4"
run "verify q4" 0 -- "$DSQ" verify "$q4" && pass
run "run q4" 0 -- "$DSQ" run "$q4" -p "Hello" -n 4 && pass
run "quantize bf16 to q8" 0 -- "$DSQ" quantize "$tmp/out.d/tiny-v2-lite.dsq" -o "$tmp/out.d/lite-q8.dsq" \
    --quant q8 -g 32 && pass
run "info q8" 0 -- "$DSQ" info "$tmp/out.d/lite-q8.dsq" && expect_output "info q8" "attention      q8"
expect_error "requantize q4 to q8" 1 "is stored as q4; re-encoding it as q8" "$tmp/out.d/requant.dsq" -- \
    "$DSQ" quantize "$q4" -o "$tmp/out.d/requant.dsq" --quant q8 -g 32
expect_error "unknown preset" 1 "unknown preset 'q3'" "$tmp/out.d/q3.dsq" -- \
    "$DSQ" convert "$lite" -o "$tmp/out.d/q3.dsq" --quant q3
expect_error "group size does not divide" 1 "tensor layers.0.attn.kv_b (rows of 32) cannot be stored as q8 with group size 64" \
    "$tmp/out.d/g64.dsq" -- "$DSQ" convert "$lite" -o "$tmp/out.d/g64.dsq" --quant q8
expect_error "quantize without preset" 1 "missing --quant" "" -- \
    "$DSQ" quantize "$q4" -o "$tmp/out.d/x.dsq"
run "override matching nothing warns" 0 -- "$DSQ" convert "$lite" -o "$tmp/out.d/warn.dsq" \
    --quant q4 -g 32 --override "layers.*.mlp.nothing=q8" &&
    if grep -qF "warning: --override matched no tensor: layers.*.mlp.nothing=q8" "$tmp/err"; then
        pass; else fail "override warning" "no warning: $(cat "$tmp/err")"; fi
run "override experts to q8" 0 -- "$DSQ" convert "$lite" -o "$tmp/out.d/ovr.dsq" --quant q4 -g 32 \
    --override "layers.*.mlp.experts.*=q8" &&
    run "info override" 0 -- "$DSQ" info "$tmp/out.d/ovr.dsq" && expect_output "info override" "routed_expert  q8"
# q6 is a format 1.1 type: a file that uses it says 1.1, one that does not stays 1.0
run "override head to q6" 0 -- "$DSQ" convert "$lite" -o "$tmp/out.d/q6.dsq" --quant q4-all -g 32 \
    --override "output=q6" && pass
run "info q6" 0 -- "$DSQ" info --json "$tmp/out.d/q6.dsq" &&
    if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format_version"] == "1.1", d["format_version"]
assert d["classes"]["output"]["type"] == "q6", d["classes"]["output"]
assert abs(d["classes"]["output"]["bits_per_weight"] - (6 + 16 / 32)) < 1e-9
assert d["classes"]["routed_expert"]["type"] == "q4"
' "$tmp/out"; then pass; else fail "info q6" "JSON content: $(cat "$tmp/out")"; fi
run "info 1.0" 0 -- "$DSQ" info --json "$tmp/out.d/ovr.dsq" &&
    if grep -qF '"format_version": "1.0"' "$tmp/out"; then pass; else fail "info 1.0" "$(head -c 300 "$tmp/out")"; fi
run "verify q6" 0 -- "$DSQ" verify "$tmp/out.d/q6.dsq" && expect_output "verify q6" "OK"
run "run q6" 0 -- "$DSQ" run "$tmp/out.d/q6.dsq" -p "The cat" -n 8 && pass
# q4-q6: routed experts q4, embedding q8 (one row per token), every other matrix q6
run "convert q4-q6" 0 -- "$DSQ" convert "$lite" -o "$tmp/out.d/q4q6.dsq" --quant q4-q6 -g 32 && pass
run "info q4-q6" 0 -- "$DSQ" info --json "$tmp/out.d/q4q6.dsq" &&
    if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
want = {"embedding": "q8", "output": "q6", "attention": "q6", "dense_ffn": "q6",
        "shared_expert": "q6", "routed_expert": "q4", "norm": "f32", "router": "f32"}
got = {k: d["classes"][k]["type"] for k in want}
assert got == want, got
assert d["format_version"] == "1.1", d["format_version"]
' "$tmp/out"; then pass; else fail "info q4-q6" "JSON content: $(cat "$tmp/out")"; fi
run "run q4-q6" 0 -- "$DSQ" run "$tmp/out.d/q4q6.dsq" -p "The cat" -n 8 && pass

# --- ppl: perplexity and KL-divergence ---------------------------------------------------------
lite="$tmp/out.d/tiny-v2-lite.dsq"
text="$tmp/ppl.txt"
i=0
: >"$text"
while [ $i -lt 40 ]; do
    echo "Sentence $i: the quick brown fox jumps over the lazy dog." >>"$text"
    i=$((i + 1))
done
run "ppl" 0 -- "$DSQ" ppl "$lite" --text "$text" --ctx 32 &&
    expect_output "ppl" "PPL =" && expect_output "ppl running" "[1]" &&
    expect_output "ppl counts" "scored tokens"
run "ppl --json" 0 -- "$DSQ" ppl "$lite" --text "$text" --ctx 32 --json &&
    if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ctx"] == 32 and d["scored_per_chunk"] == 15, d
assert d["scored"] == d["n_chunk"] * 15 and len(d["chunk_ppl"]) == d["n_chunk"]
assert abs(d["chunk_ppl"][-1] - d["ppl"]) < 1e-9 * d["ppl"] and d["ppl_stderr"] > 0
' "$tmp/out"; then pass; else fail "ppl --json" "JSON content"; fi
run "ppl --save-logits" 0 -- "$DSQ" ppl "$lite" --text "$text" --ctx 32 --save-logits "$tmp/base.logits" &&
    expect_output "ppl --save-logits" "PPL ="
run "ppl --kld-base" 0 -- "$DSQ" ppl "$lite" --text "$text" --kld-base "$tmp/base.logits" &&
    expect_output "kld same top" "Same top p: 100.000" && expect_output "kld mean" "Mean    KLD:   0.000000" &&
    expect_output "kld percentiles" "99.0%   KLD:"
run "ppl --kld-base --json" 0 -- "$DSQ" ppl "$tmp/out.d/tiny-v2.dsq" --text "$text" --kld-base "$tmp/base.logits" --json &&
    if python3 -c '
import json, sys
k = json.load(open(sys.argv[1]))["kld"]
assert k["kld"]["mean"] > 0.01 and k["kld"]["min"] <= k["kld"]["median"] <= k["kld"]["max"], k
assert 0 <= k["same_top"]["value"] < 1 and k["delta_p_abs_mean"] > 0
' "$tmp/out"; then pass; else fail "ppl --kld-base --json" "JSON content"; fi
run "ppl both" 0 -- "$DSQ" ppl "$lite" --text "$text" --kld-base "$tmp/base.logits" --save-logits "$tmp/again.logits" &&
    if cmp -s "$tmp/base.logits" "$tmp/again.logits"; then pass; else fail "ppl both" "the files differ"; fi
printf 'abc\000def' >"$tmp/binary.txt"
: >"$tmp/empty.txt"
expect_error "ppl without --text" 1 "missing --text" "" -- "$DSQ" ppl "$lite"
expect_error "ppl text missing" 2 "nothing.txt: cannot read the text" "" -- "$DSQ" ppl "$lite" --text "$tmp/nothing.txt"
expect_error "ppl text empty" 2 "empty.txt: the text is empty: no tokens" "" -- "$DSQ" ppl "$lite" --text "$tmp/empty.txt"
expect_error "ppl text binary" 2 "binary.txt: contains a NUL byte at offset 3" "" -- "$DSQ" ppl "$lite" --text "$tmp/binary.txt"
expect_error "ppl text short" 2 "needs at least 4096 tokens, has" "$tmp/out.d/short.logits" -- \
    "$DSQ" ppl "$lite" --text "$text" --ctx 4096 --save-logits "$tmp/out.d/short.logits"
expect_error "ppl ctx 0" 1 "--ctx 0 is too small" "" -- "$DSQ" ppl "$lite" --text "$text" --ctx 0
expect_error "ppl ctx 2" 1 "--ctx 2 is too small" "" -- "$DSQ" ppl "$lite" --text "$text" --ctx 2
expect_error "ppl ctx odd" 1 "--ctx 33 is odd" "" -- "$DSQ" ppl "$lite" --text "$text" --ctx 33
expect_error "ppl ctx over max" 1 "--ctx 6000 exceeds the model's maximum context of 5120" "" -- \
    "$DSQ" ppl "$lite" --text "$text" --ctx 6000
expect_error "ppl ctx not a number" 1 "not 'big'" "" -- "$DSQ" ppl "$lite" --text "$text" --ctx big
expect_error "kld-base other ctx" 2 "base.logits: made with --ctx 32, this run uses --ctx 16" "" -- \
    "$DSQ" ppl "$lite" --text "$text" --ctx 16 --kld-base "$tmp/base.logits"
head -n 30 "$text" >"$tmp/other.txt"
expect_error "kld-base other text" 2 "base.logits: made from another text" "" -- \
    "$DSQ" ppl "$lite" --text "$tmp/other.txt" --kld-base "$tmp/base.logits"
head -c 100000 "$tmp/base.logits" >"$tmp/short.logits"
expect_error "kld-base truncated" 2 "short.logits: truncated" "" -- \
    "$DSQ" ppl "$lite" --text "$text" --kld-base "$tmp/short.logits"
expect_error "kld-base not logits" 2 "not a dsq logits file" "" -- \
    "$DSQ" ppl "$lite" --text "$text" --kld-base "$lite"
expect_error "kld-base missing" 2 "nothing.logits: cannot open" "" -- \
    "$DSQ" ppl "$lite" --text "$text" --kld-base "$tmp/nothing.logits"
expect_error "save and base the same" 1 "the same file as the input" "" -- \
    "$DSQ" ppl "$lite" --text "$text" --kld-base "$tmp/base.logits" --save-logits "$tmp/base.logits"
expect_error "save-logits folder missing" 2 "cannot create output file" "" -- \
    "$DSQ" ppl "$lite" --text "$text" --ctx 32 --save-logits "$tmp/missing-folder/x.logits"
run "ppl help" 0 -- "$DSQ" ppl --help && expect_output "ppl help" "usage: dsq ppl"

cli_summary cli
