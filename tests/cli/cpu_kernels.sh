#!/bin/sh
# The CPU engine's kernels as the commands see them: a --ctx beyond the model names the model's
# own limit (the message is built before the model is closed).
set -u
. "$(dirname "$0")/lib.sh"

q8="$tmp/lite-q8.dsq"
run "convert q8" 0 -- "$DSQ" convert "$DATA/tiny-v2-lite" -o "$q8" --quant q8 --group-size 32 -q &&
    pass

# tiny-v2-lite's config allows 5120 positions
expect_error "run --ctx beyond the model" 1 "--ctx 6000 out of range: the model takes 1..5120 tokens" \
    "" -- "$DSQ" run "$q8" -p "hi" -n 1 --ctx 6000
expect_error "bench beyond the model" 1 "out of range: the model takes 1..5120 tokens" "" -- \
    "$DSQ" bench "$q8" --prompt 5000 --gen 200

cli_summary cpu_kernels
