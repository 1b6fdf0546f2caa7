#!/usr/bin/env bash
# The GPU machine's check, run there as one command from the repository root: device facts,
# every GPU test (kernels, the prefill GEMM and its measured crossover, device sampling, whole
# models), the command-line backend suite, the benchmarks (the tiny model; full-size random
# V2-Lite and MoE-16B at q4 and q8, V2-Lite at q4-q6; V2-Lite and a 4-layer V2 with experts
# partly in host memory; V2-Lite prefill at 4096) and compute-sanitizer memcheck over CUDA runs
# of every family, into one short report, with the benchmarks' JSON lines in bench.jsonl beside
# it. Binaries are built on the CPU machine (make, then scripts/device-bundle.sh) and carried as
# build/device; nothing is compiled there.
#
# A device session is short, so the steps run most telling first and each has a timeout; once
# DSQ_CHECK_BUDGET seconds (default 300) have gone, the steps left are listed as NOT RUN rather
# than started. A step that fails does not stop the others.
#   scripts/device-check.sh [BUNDLE_DIR] [REPORT_DIR]   (defaults: build/device, $OUT or /tmp)
set -uo pipefail
bundle=${1:-build/device}
report_dir=${2:-${OUT:-/tmp}}
budget=${DSQ_CHECK_BUDGET:-300}
report=$report_dir/device-report.txt
mkdir -p "$report_dir"
: >"$report_dir/bench.jsonl"
dsq=$bundle/dsq
work=$(mktemp -d /tmp/dsq-device-XXXXXX)
t_start=$(date +%s)
failures=0
skipped=0
not_run=0

note_failure() {
    echo "FAILED: $1"
    failures=$((failures + 1))
}

# true while the budget lasts; else reports the step as not run
in_budget() {
    if [ $(($(date +%s) - t_start)) -ge "$budget" ]; then
        echo "NOT RUN (past the ${budget} s budget): $1"
        not_run=$((not_run + 1))
        return 1
    fi
}

# NAME SECONDS ARGS...: one dsq bench --json run, its line kept in bench.jsonl and, for the
# caller, in $work/last.json; false if it failed or was not run
bench() {
    local name=$1 limit=$2
    shift 2
    in_budget "bench $name" || return 1
    echo "-- $name"
    : >"$work/last.json"
    timeout -k 10 "$limit" "$dsq" bench "$@" --json |
        tee -a "$work/last.json" "$report_dir/bench.jsonl" ||
        {
            note_failure "bench $name"
            return 1
        }
}

{
    echo "== device"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem \
        --format=csv 2>&1 || echo "nvidia-smi not available"
    gpu_listed=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
    nproc
    uptime 2>/dev/null
    [ -f "$bundle/BUILD_INFO" ] && cat "$bundle/BUILD_INFO"

    echo
    echo "== preflight"
    # the bundle's libraries that this image lacks, and only those (an image's own newer
    # libstdc++ must stay first for its own programs: nvidia-smi, compute-sanitizer)
    mkdir -p "$work/lib"
    for round in 1 2 3 4; do
        missing=$(for b in "$dsq" "$bundle"/tests/gpu/test_*; do
            [ -x "$b" ] && LD_LIBRARY_PATH="$work/lib" ldd "$b" 2>/dev/null
        done | awk '/not found/ { print $1 }' | sort -u)
        [ -n "$missing" ] || break
        for so in $missing; do
            if [ -e "$bundle/lib/$so" ]; then
                ln -sf "$(cd "$bundle/lib" && pwd)/$so" "$work/lib/$so"
            else
                echo "library $so: not on this image and not in the bundle"
            fi
        done
    done
    export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "from the bundle: $(ls "$work/lib" | tr '\n' ' ')"
    if ! [ -x "$dsq" ] || ! "$dsq" --help >/dev/null 2>&1; then
        echo "FAILED: $dsq does not run here (was build/device carried?)"
        [ -x "$dsq" ] && ldd "$dsq"
        grep PRETTY_NAME /etc/os-release 2>/dev/null
        ldd --version 2>&1 | head -n 1
        exit 1
    fi
    if [ "$gpu_listed" -gt 0 ]; then
        export DSQ_EXPECT_GPU=1 # a test that finds no device is then a failure
    fi

    echo
    echo "== GPU tests"
    for t in "$bundle"/tests/gpu/test_*; do
        in_budget "$(basename "$t")" || continue
        # streamed, so a test the timeout stops still shows how far it got
        timeout -k 10 180 "$t" 2>&1 | tee "$work/test.out"
        rc=${PIPESTATUS[0]}
        # the measurements the tests print, repeated at the end of the report
        grep -E "crossover .*first wins|sampling step" "$work/test.out" >>"$work/measured"
        [ "$rc" -eq 0 ] || note_failure "$(basename "$t") (exit $rc)"
        if grep -q skipped "$work/test.out"; then
            skipped=$((skipped + 1))
            [ "$gpu_listed" -gt 0 ] && note_failure "$(basename "$t") found no device, but nvidia-smi lists $gpu_listed"
        fi
    done

    echo
    echo "== command-line backend suite"
    if in_budget "tests/cli/backend.sh"; then
        DSQ="$dsq" timeout -k 10 120 tests/cli/backend.sh || note_failure "tests/cli/backend.sh"
    fi

    if [ "$skipped" -gt 0 ] && [ "$gpu_listed" -eq 0 ]; then
        echo
        echo "== no CUDA device: memcheck and benchmarks skipped"
        echo "== result: $skipped GPU tests skipped: no CUDA device here"
        exit 0
    fi

    echo
    echo "== benchmarks, most telling first"
    for fam in tiny-v1 tiny-v2-lite tiny-v2; do
        # tiny-v2's q_b reads the 48-wide q latent, which no group of 32 divides
        "$dsq" convert "tests/data/$fam" -o "$work/$fam.dsq" --quant q4 --group-size 32 \
            --override 'layers.*.attn.q_b=bf16' >/dev/null 2>&1 || note_failure "convert $fam"
    done
    "$dsq" convert models/tiny-v2 -o "$work/tiny.dsq" --quant q4 >/dev/null 2>&1 ||
        note_failure "convert models/tiny-v2"
    # a gate: if the tiny model does not run on the device, the full-size runs would only spend
    # their timeouts
    if ! bench "tiny q4, prompt 128, 64 decode steps" 60 "$work/tiny.dsq" --backend cuda \
        --prompt 128 --gen 64; then
        echo "== the tiny model did not run on the device: full-size benchmarks not started"
    else
        bench "v2-lite q4 (random weights), prompt 512, 64 decode steps" 90 --random v2-lite \
            --quant q4 --prompt 512 --gen 64
        bench "moe-16b q4 (random weights), prompt 512, 64 decode steps" 90 --random moe-16b \
            --quant q4 --prompt 512 --gen 64
        # routed experts partly in host memory (docs/OFFLOAD.md): V2 cut to 3 and 5 layers with
        # 23% of expert bytes on the GPU, what the full V2 keeps at 40G (2,152 of 9,440: dsq plan
        # --config tests/data/configs/deepseek-v2.json --vram 40G); V2-Lite with half
        for cut in "v2 3 23" "v2 5 23" "v2-lite 27 50"; do
            set -- $cut
            bench "$1 ($2 layers) q4 (random weights), $3% of expert bytes on the GPU" 90 \
                --random "$1" --layers "$2" --quant q4 --gpu-experts "$3" --prompt 128 --gen 32 &&
                cp "$work/last.json" "$work/offload-$1-$2.json"
        done
        # the full 60 layers (1 dense, 59 MoE) from the two cuts: t60 = t3 + 57 (t5 - t3) / 2
        if [ -s "$work/offload-v2-3.json" ] && [ -s "$work/offload-v2-5.json" ]; then
            python3 -c '
import json, sys
t3, t5 = (1 / json.load(open(p))["decode_tok_s"] for p in sys.argv[1:3])
t60 = t3 + 57 * (t5 - t3) / 2
print(f"projected V2 (60 layers, 23% of expert bytes on the GPU) decode: {1 / t60:.2f} tok/s "
      f"(t3 {t3 * 1e3:.2f} ms, t5 {t5 * 1e3:.2f} ms, per MoE layer {(t5 - t3) / 2 * 1e3:.3f} ms)")
' "$work/offload-v2-3.json" "$work/offload-v2-5.json" | tee -a "$work/measured" ||
                note_failure "V2 projection"
        fi
    fi

    echo
    echo "== compute-sanitizer memcheck"
    sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
    if [ -z "$sanitizer" ]; then
        echo "NOT RUN: compute-sanitizer is neither on PATH nor in /usr/local/cuda/bin"
        not_run=$((not_run + 1))
    else
        # MHA; MLA with q compression and group-limited routing; MLA as V2-Lite (trained model);
        # tokens drawn on the device with a temperature, so the sampler's sort runs too
        for f in tiny-v1 tiny-v2 tiny; do
            in_budget "memcheck $f" || continue
            timeout -k 10 120 "$sanitizer" --tool memcheck --error-exitcode 9 --print-limit 5 \
                "$dsq" run "$work/$f.dsq" -p "Hello there" -n 6 --backend cuda --temp 0.8 \
                --top-p 0.95 --repeat-penalty 1.1 --seed 1 >"$work/san.out" 2>&1
            rc=$?
            if [ "$rc" -eq 0 ]; then
                tail -n 2 "$work/san.out"
            elif grep -q "Device not supported" "$work/san.out"; then
                echo "NOT RUN: memcheck $f: the sanitizer does not support this device here"
                not_run=$((not_run + 1))
            else
                head -n 40 "$work/san.out" # the reports come first
                note_failure "memcheck $f (exit $rc)"
            fi
        done
    fi

    echo
    echo "== more benchmarks"
    bench "v2-lite q8 (random weights), prompt 512, 64 decode steps" 90 --random v2-lite \
        --quant q8 --prompt 512 --gen 64
    bench "moe-16b q8 (random weights), prompt 512, 64 decode steps" 90 --random moe-16b \
        --quant q8 --prompt 512 --gen 64
    bench "v2-lite q4 (random weights), prefill 4096" 90 --random v2-lite --quant q4 \
        --prompt 4096 --gen 4
    for batch in 4 16; do
        bench "v2-lite q4 (random weights), $batch sequences decoded together" 90 --random \
            v2-lite --quant q4 --prompt 512 --gen 16 --batch "$batch"
    done
    bench "v2-lite q4-q6 (random weights: q6 attention, shared experts, head)" 90 --random \
        v2-lite --quant q4-q6 --prompt 512 --gen 64

    echo
    echo "== measured by the tests (GEMM_MIN_TOKENS is the q4/q8 expert crossover)"
    cat "$work/measured" 2>/dev/null

    echo
    echo "== took $(($(date +%s) - t_start)) s (budget ${budget} s)"
    if [ "$failures" -gt 0 ]; then
        echo "== result: $failures FAILURES, $not_run steps not run"
    elif [ "$not_run" -gt 0 ]; then
        echo "== result: everything that ran passed; $not_run steps not run"
    else
        echo "== result: all GPU tests, memcheck runs and benchmarks passed"
    fi
    [ "$failures" -eq 0 ]
} 2>&1 | tee "$report"
status=${PIPESTATUS[0]} # the check's own, not tee's
rm -rf "$work"
exit "$status"
