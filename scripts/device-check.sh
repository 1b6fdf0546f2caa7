#!/usr/bin/env bash
# The GPU machine's check, run as one command there: device facts, every GPU test, and a
# report. Binaries are built here (make) and carried; nothing is compiled on the device.
#   scripts/device-check.sh [BUILD_DIR] [REPORT_DIR]    (defaults: build, $OUT or /tmp)
set -uo pipefail
build=${1:-build}
report_dir=${2:-${OUT:-/tmp}}
report=$report_dir/device-report.txt
mkdir -p "$report_dir"
{
    echo "== device"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem \
        --format=csv 2>&1 || echo "nvidia-smi not available"
    echo
    echo "== GPU tests"
    status=0
    skipped=0
    for t in "$build"/tests/gpu/test_*; do
        case "$t" in *.d | *.o) continue ;; esac
        line=$("$t") || status=1
        echo "$line"
        case "$line" in *skipped*) skipped=$((skipped + 1)) ;; esac
    done
    echo
    if [ "$status" -ne 0 ]; then
        echo "== result: FAILURES"
    elif [ "$skipped" -gt 0 ]; then
        echo "== result: $skipped GPU tests skipped: no CUDA device here"
    else
        echo "== result: all GPU tests passed"
    fi
} 2>&1 | tee "$report"
