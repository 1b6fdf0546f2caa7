#!/bin/sh
# DSQ_INT8_KERNELS forces one set of int8 kernels for benchmarks: a packed set packs the weights
# at load, a -planar set does not, and a name the CPU cannot run is a usage error.
set -u
. "$(dirname "$0")/lib.sh"

q8="$tmp/lite-q8.dsq"
run "convert q8" 0 -- "$DSQ" convert "$DATA/tiny-v2-lite" -o "$q8" --quant q8 --group-size 32 -q &&
    pass

expect_error "unknown kernel set" 1 "DSQ_INT8_KERNELS=avx3: not a kernel set this CPU runs" "" -- \
    env DSQ_INT8_KERNELS=avx3 "$DSQ" bench "$q8" --prompt 4 --gen 2

# expect_no_output NAME TEXT: the last command's stdout lacks TEXT
expect_no_output() {
    if grep -qF -- "$2" "$tmp/out"; then fail "$1" "stdout has '$2'"; else pass; fi
}

if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; then
    run "avx2 packed" 0 -- env DSQ_INT8_KERNELS=avx2 "$DSQ" bench "$q8" --prompt 4 --gen 2 &&
        expect_output "avx2 packed" "int8 (avx2) activations" &&
        expect_output "avx2 packed" "of weights for the CPU kernels"
    run "avx2 planar" 0 -- env DSQ_INT8_KERNELS=avx2-planar "$DSQ" bench "$q8" --prompt 4 \
        --gen 2 && expect_output "avx2 planar" "int8 (avx2) activations" &&
        expect_no_output "avx2 planar" "of weights for the CPU kernels"
fi

cli_summary int8_kernels
