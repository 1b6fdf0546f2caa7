#!/bin/sh
# Values and sizes from hostile or damaged inputs: every file convert writes opens in every
# command; out-of-range config values and non-finite weights are refused by name; a model that
# computes a non-finite logit stops every command with exit 2; sizes a file states are checked
# before they drive allocations; running out of memory is exit 3 with "out of memory".
set -u
. "$(dirname "$0")/lib.sh"

CASES="$HERE/make_value_cases.py"
mkdir -p "$tmp/out.d"
lite="$DATA/tiny-v2-lite"

# case NAME SRC: builds the damaged copy $tmp/NAME of fixture folder SRC
case_dir() {
    python3 "$CASES" "$2" "$tmp/$1" "$1" >/dev/null || fail "$1" "could not build the case"
}

# ulimit -v cannot run under AddressSanitizer, whose shadow memory reserves terabytes
under_asan=0
if ldd "$DSQ" 2>/dev/null | grep -q libasan; then under_asan=1; fi

# --- every accepted fixture variant opens in info, verify and run ----------------------------
accepts() { # accepts NAME OUT: info, verify and run -n 1 all succeed on OUT
    run "$1: info" 0 -- "$DSQ" info "$2" && expect_output "$1: info" "tokenizer"
    run "$1: verify" 0 -- "$DSQ" verify "$2" && expect_output "$1: verify" "OK"
    run "$1: run -n 1" 0 -- "$DSQ" run "$2" -p "Hello, world" -n 1 --temp 0 && pass
}
for fam in tiny-v1 tiny-v2-lite tiny-v2; do
    for preset in bf16 q8 q4; do
        out="$tmp/out.d/$fam-$preset.dsq"
        # tiny-v2's q_b rows (48) take no allowed group size; it stays bf16 there
        keep=""
        [ "$fam" = tiny-v2 ] && [ "$preset" != bf16 ] && keep="layers.*.attn.q_b=bf16"
        run "convert $fam $preset" 0 -- "$DSQ" convert "$DATA/$fam" -o "$out" --quant "$preset" \
            -g 32 ${keep:+--override "$keep"} && accepts "$fam $preset" "$out"
    done
done
# the tokenizer the tokenizer tests use, alone and with each of their variants
accepted=0
variants=$(python3 -c '
import json, sys
for v in json.load(open(sys.argv[1]))["variants"]:
    print(v["name"])' "$DATA/tokenizer-cases/variants.json")
for v in base $variants; do
    python3 "$CASES" "$lite" "$tmp/variant-$v" "variant:$v" || { fail "variant $v" "could not build"; continue; }
    out="$tmp/out.d/variant-$v.dsq"
    if "$DSQ" convert "$tmp/variant-$v" -o "$out" >/dev/null 2>"$tmp/err"; then
        accepted=$((accepted + 1))
        accepts "variant $v" "$out"
    elif [ -e "$out" ]; then
        fail "variant $v" "refused but left $out"
    fi
    rm -rf "$tmp/variant-$v"
done
# every variant is one HF tokenizers loads, so convert accepts them all
n_variants=$(echo base $variants | wc -w)
if [ "$accepted" -eq "$n_variants" ]; then pass; else
    fail "tokenizer variants" "$accepted of $n_variants accepted"; fi

# --- what the runtime would refuse, convert refuses first (exit 2, no output) ------------------
bad_convert() { # bad_convert CASE MESSAGE [SRC]
    case_dir "$1" "${3:-$lite}"
    expect_error "$1" 2 "$2" "$tmp/out.d/$1.dsq" -- "$DSQ" convert "$tmp/$1" -o "$tmp/out.d/$1.dsq"
}
bad_convert regex_does_not_compile "tokenizer.json: tokenizer.pre_tokenizer[0].regex"
bad_convert template_with_nul "chat template holds a NUL byte at offset 21"

# --- config values outside what the arithmetic can follow, named with their range ---------------
bad_convert rope_theta_1 "config.json: rope_theta 1 outside [100, 1e9]"
bad_convert beta_fast_0 "config.json: rope_scaling.beta_fast 0 outside (0, 1024]"
bad_convert beta_slow_over_fast "rope_scaling.beta_slow 64 outside (0, beta_fast 32)"
bad_convert yarn_factor_huge "rope_scaling.factor 1e+06 outside [1, 1024]"
bad_convert mscale_negative "rope_scaling.mscale -1 outside [0, 10]"
bad_convert original_max_over_max "original_max_position_embeddings 1048576 outside [1, max_position_embeddings 5120]"
bad_convert original_max_fraction "original_max_position_embeddings, an integer from 1"
bad_convert max_position_0 "config.json: max_position_embeddings 0 outside [1, 16777216]"
bad_convert routed_scaling_huge "routed_scaling_factor 1e+06 outside (0, 100]"
bad_convert rms_norm_eps_half "rms_norm_eps 0.5 outside [1e-12, 0.01]"
bad_convert topk_group_over_n_group "topk_group 5 outside [1, n_group 1]"
bad_convert hidden_size_1e300 "\"hidden_size\" must be a non-negative integer"
bad_convert layers_1e19 "\"num_hidden_layers\" must be a non-negative integer"

# --- non-finite weights are refused in every preset, naming tensor and row ----------------------
for preset in bf16 q8 q4; do
    python3 "$CASES" "$lite" "$tmp/nan-out-$preset" nan_output_row_7 >/dev/null
    expect_error "NaN in output ($preset)" 2 "model-00001-of-00002.safetensors: lm_head.weight: tensor output: row 7 holds a NaN or infinity" \
        "$tmp/out.d/nan-$preset.dsq" -- \
        "$DSQ" convert "$tmp/nan-out-$preset" -o "$tmp/out.d/nan-$preset.dsq" --quant "$preset" -g 32
    python3 "$CASES" "$lite" "$tmp/inf-emb-$preset" inf_embedding_row_300 >/dev/null
    expect_error "infinity in embedding ($preset)" 2 "model.embed_tokens.weight: tensor embed: row 300 holds a NaN or infinity" \
        "$tmp/out.d/inf-$preset.dsq" -- \
        "$DSQ" convert "$tmp/inf-emb-$preset" -o "$tmp/out.d/inf-$preset.dsq" --quant "$preset" -g 32
done
bad_convert nan_norm "model.layers.1.input_layernorm.weight: tensor layers.1.attn_norm: row 0 holds a NaN or infinity"

# --- a model that computes a non-finite logit stops every command (exit 2, names the file) ------
good="$tmp/out.d/tiny-v2-bf16.dsq"
nanfile="$tmp/nan-logit.dsq"
cp "$good" "$nanfile"
offset=$("$DSQ" info --json --tensors "$good" | python3 -c '
import json, sys
print(next(t["offset"] for t in json.load(sys.stdin)["tensors"] if t["name"] == "output"))')
# output row 0, column 0 := NaN (bf16 0x7FC0): token 0's logit is NaN at every position
printf '\300\177' | dd of="$nanfile" bs=1 seek="$offset" conv=notrunc 2>/dev/null
expect_error "non-finite logit: run" 2 "nan-logit.dsq: the model gave a non-finite logit" "" -- \
    "$DSQ" run "$nanfile" -p "Hello" -n 4
if tr -d '\000' <"$tmp/out" | cmp -s - "$tmp/out"; then pass; else fail "run NaN" "printed NUL bytes"; fi
printf 'Hi\n' >"$tmp/turn.txt"
expect_error "non-finite logit: chat" 2 "nan-logit.dsq: the model gave a non-finite logit" "" -- \
    sh -c "exec '$DSQ' chat '$nanfile' -n 4 <'$tmp/turn.txt'"
expect_error "non-finite logit: bench" 2 "nan-logit.dsq: the model gave a non-finite logit" "" -- \
    "$DSQ" bench "$nanfile" --prompt 8 --gen 2
i=0
: >"$tmp/text.txt"
while [ $i -lt 20 ]; do
    echo "Line $i: the quick brown fox jumps over the lazy dog." >>"$tmp/text.txt"
    i=$((i + 1))
done
expect_error "non-finite logit: ppl" 2 "nan-logit.dsq: the model gave a non-finite logit" "" -- \
    "$DSQ" ppl "$nanfile" --text "$tmp/text.txt" --ctx 32
expect_error "temp not finite" 1 "--temp needs a finite number, not '1e999'" "" -- \
    "$DSQ" run "$good" -p x --temp 1e999
expect_error "temp NaN" 1 "--temp needs a finite number, not 'nan'" "" -- \
    "$DSQ" run "$good" -p x --temp nan

# --- sizes a file states are checked before they drive allocations ----------------------------
# 1.5 KB of config promising 1024 layers x 4096 experts: refused by count, in bounded memory
case_dir many_experts "$lite"
if [ "$under_asan" -eq 0 ]; then
    expect_error "many experts, 200 MB limit" 2 "need 12581890 tensors, the checkpoint holds 83" \
        "$tmp/out.d/many.dsq" -- \
        sh -c "ulimit -v 200000 && exec '$DSQ' convert '$tmp/many_experts' -o '$tmp/out.d/many.dsq'"
else
    expect_error "many experts" 2 "need 12581890 tensors, the checkpoint holds 83" \
        "$tmp/out.d/many.dsq" -- "$DSQ" convert "$tmp/many_experts" -o "$tmp/out.d/many.dsq"
fi

# --- running out of memory while parsing JSON is exit 3, "out of memory", naming the file ------
if [ "$under_asan" -eq 0 ]; then
    case_dir config_large_json "$lite"
    expect_error "JSON parse out of memory" 3 "config.json: out of memory" "$tmp/out.d/big.dsq" -- \
        sh -c "ulimit -v 30000 && exec '$DSQ' convert '$tmp/config_large_json' -o '$tmp/out.d/big.dsq'"
fi

cli_summary hardening_values
