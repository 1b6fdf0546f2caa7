#!/usr/bin/env bash
# The GPU machine's check, run there as one command from the repository root: device facts,
# every GPU test (kernels, the prefill GEMM and its measured crossover, device sampling, whole
# models), the command-line backend suite, compute-sanitizer memcheck over CUDA runs of
# every family, and the benchmarks (the tiny model; full-size random V2-Lite and MoE-16B at q4
# and q8, V2-Lite at q4-q6; V2-Lite and a 4-layer V2 with experts partly in host memory;
# V2-Lite prefill at 4096), into one short report, with the
# benchmarks' JSON lines in bench.jsonl beside it. Binaries are built on the CPU machine
# (make, then scripts/device-bundle.sh) and carried as build/device; nothing is compiled there.
#   scripts/device-check.sh [BUNDLE_DIR] [REPORT_DIR]   (defaults: build/device, $OUT or /tmp)
set -uo pipefail
bundle=${1:-build/device}
report_dir=${2:-${OUT:-/tmp}}
report=$report_dir/device-report.txt
mkdir -p "$report_dir"
export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
dsq=$bundle/dsq
work=$(mktemp -d /tmp/dsq-device-XXXXXX)
t_start=$(date +%s)
failures=0
skipped=0

note_failure() {
    echo "FAILED: $1"
    failures=$((failures + 1))
}

{
    echo "== device"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem \
        --format=csv 2>&1 || echo "nvidia-smi not available"
    nproc
    uptime

    echo
    echo "== GPU tests"
    for t in "$bundle"/tests/gpu/test_*; do
        out=$(timeout 240 "$t" 2>&1)
        rc=$?
        printf '%s\n' "$out"
        # the measurements the tests print, repeated at the end of the report
        printf '%s\n' "$out" | grep -E "crossover .*first wins|sampling step" >>"$work/measured"
        [ "$rc" -eq 0 ] || note_failure "$(basename "$t") (exit $rc)"
        case "$out" in *skipped*) skipped=$((skipped + 1)) ;; esac
    done

    echo
    echo "== command-line backend suite"
    DSQ="$dsq" timeout 180 tests/cli/backend.sh || note_failure "tests/cli/backend.sh"

    if [ "$skipped" -gt 0 ]; then
        echo
        echo "== no CUDA device: memcheck and benchmarks skipped"
        echo "== result: $skipped GPU tests skipped: no CUDA device here"
        exit 0
    fi

    echo
    echo "== compute-sanitizer memcheck"
    for fam in tiny-v1 tiny-v2-lite tiny-v2; do
        # tiny-v2's q_b reads the 48-wide q latent, which no group of 32 divides
        "$dsq" convert "tests/data/$fam" -o "$work/$fam.dsq" --quant q4 --group-size 32 \
            --override 'layers.*.attn.q_b=bf16' >/dev/null 2>&1 || note_failure "convert $fam"
    done
    "$dsq" convert models/tiny-v2 -o "$work/tiny.dsq" --quant q4 >/dev/null 2>&1 ||
        note_failure "convert models/tiny-v2"
    if command -v compute-sanitizer >/dev/null; then
        # MHA; MLA with q compression and group-limited routing; MLA as V2-Lite (trained model)
        for f in tiny-v1 tiny-v2 tiny; do
            timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 5 \
                "$dsq" run "$work/$f.dsq" -p "Hello there" -n 6 --backend cuda \
                >"$work/san.out" 2>&1
            rc=$?
            tail -n 3 "$work/san.out"
            [ "$rc" -eq 0 ] || note_failure "memcheck $f (exit $rc)"
        done
    else
        echo "compute-sanitizer not found"
    fi

    echo
    echo "== benchmarks"
    timeout 60 "$dsq" bench "$work/tiny.dsq" --backend cuda --prompt 128 --gen 64 ||
        note_failure "bench tiny"
    for model in v2-lite moe-16b; do
        for quant in q4 q8; do
            echo "-- $model $quant (random weights), prompt 512, 64 decode steps"
            timeout 150 "$dsq" bench --random "$model" --quant "$quant" --prompt 512 --gen 64 \
                --json | tee -a "$report_dir/bench.jsonl" ||
                note_failure "bench $model $quant"
        done
    done
    echo "-- v2-lite q4-q6 (random weights: the q4 preset with q6 attention, shared experts, head)"
    timeout 150 "$dsq" bench --random v2-lite --quant q4-q6 --prompt 512 --gen 64 --json |
        tee -a "$report_dir/bench.jsonl" || note_failure "bench v2-lite q4-q6"
    for batch in 4 16; do
        echo "-- v2-lite q4 (random weights), $batch sequences decoded together"
        timeout 150 "$dsq" bench --random v2-lite --quant q4 --prompt 512 --gen 16 \
            --batch "$batch" --json | tee -a "$report_dir/bench.jsonl" ||
            note_failure "bench v2-lite batch $batch"
    done
    # routed experts partly in host memory (docs/OFFLOAD.md): V2-Lite with half of its expert
    # bytes on the GPU; V2 cut to 3 and 5 layers with 23%, what the full V2 keeps at 40G
    # (2,152 of 9,440: dsq plan --config tests/data/configs/deepseek-v2.json --vram 40G)
    for cut in "v2-lite 27 50" "v2 3 23" "v2 5 23"; do
        set -- $cut
        echo "-- $1 ($2 layers) q4 (random weights), $3% of expert bytes on the GPU"
        timeout 120 "$dsq" bench --random "$1" --layers "$2" --quant q4 --gpu-experts "$3" \
            --prompt 128 --gen 32 --json | tee "$work/offload-$1-$2.json" |
            tee -a "$report_dir/bench.jsonl" || note_failure "bench $1 --layers $2 offload"
    done
    # the full 60 layers (1 dense, 59 MoE) from the two cuts: t60 = t3 + 57 (t5 - t3) / 2
    python3 -c '
import json, sys
t3, t5 = (1 / json.load(open(p))["decode_tok_s"] for p in sys.argv[1:3])
t60 = t3 + 57 * (t5 - t3) / 2
print(f"projected V2 (60 layers, 23% of expert bytes on the GPU) decode: {1 / t60:.2f} tok/s "
      f"(t3 {t3 * 1e3:.2f} ms, t5 {t5 * 1e3:.2f} ms, per MoE layer {(t5 - t3) / 2 * 1e3:.3f} ms)")
' "$work/offload-v2-3.json" "$work/offload-v2-5.json" | tee -a "$work/measured" ||
        note_failure "V2 projection"
    echo "-- v2-lite q4 (random weights), prefill 4096"
    timeout 150 "$dsq" bench --random v2-lite --quant q4 --prompt 4096 --gen 4 --json |
        tee -a "$report_dir/bench.jsonl" || note_failure "bench v2-lite prefill 4096"

    echo
    echo "== measured by the tests (GEMM_MIN_TOKENS is the q4/q8 expert crossover)"
    cat "$work/measured" 2>/dev/null

    echo
    echo "== took $(($(date +%s) - t_start)) s"
    if [ "$failures" -gt 0 ]; then
        echo "== result: $failures FAILURES"
    else
        echo "== result: all GPU tests, memcheck runs and benchmarks passed"
    fi
    [ "$failures" -eq 0 ]
} 2>&1 | tee "$report"
status=${PIPESTATUS[0]} # the check's own, not tee's
rm -rf "$work"
exit "$status"
