#!/bin/sh
# Command-line tests: conversion of every fixture family, info/verify output, and the bad-input
# suite. Each failure case must exit with the documented code, print a message naming the file
# and the problem, and leave neither the output file nor a temporary file behind.
set -u
DSQ=${DSQ:-build/dsq}
DATA=${DSQ_TEST_DATA:-tests/data}
HERE=$(dirname "$0")
tmp=$(mktemp -d /tmp/dsq-cli-XXXXXX)
passed=0
failed=0

pass() { passed=$((passed + 1)); }
fail() {
    echo "FAIL $1: $2"
    failed=$((failed + 1))
}

# run NAME EXPECTED_EXIT -- command...: runs it, output in $tmp/out and $tmp/err
run() {
    name=$1
    want=$2
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name" "exit $rc, expected $want; stderr: $(head -c 600 "$tmp/err")"
        return 1
    fi
    return 0
}

# expect_error NAME EXIT MESSAGE OUTPUT -- command...: fails cleanly, names the problem
expect_error() {
    name=$1
    want=$2
    msg=$3
    output=$4
    shift 5
    run "$name" "$want" -- "$@" || return
    if ! grep -qF -- "$msg" "$tmp/err"; then
        fail "$name" "message lacks '$msg': $(head -c 600 "$tmp/err")"
        return
    fi
    if [ -n "$output" ]; then
        if [ -e "$output" ]; then
            fail "$name" "output $output was left behind"
            return
        fi
        if ls -A "$(dirname "$output")" 2>/dev/null | grep -q '\.tmp-'; then
            fail "$name" "a temporary file was left in $(dirname "$output")"
            return
        fi
    fi
    pass
}

# expect_output NAME TEXT: the last command's stdout contains TEXT
expect_output() {
    if grep -qF -- "$2" "$tmp/out"; then pass; else fail "$1" "stdout lacks '$2'"; fi
}

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

rm -rf "$tmp"
echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
