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
    for t in "$build"/tests/gpu/test_*; do
        case "$t" in *.d | *.o) continue ;; esac
        "$t" || status=1
    done
    echo
    echo "== result: $([ "$status" -eq 0 ] && echo all GPU tests passed || echo FAILURES)"
} 2>&1 | tee "$report"
