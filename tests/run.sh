#!/bin/sh
# Runs every test program in BUILD/tests (GPU tests skip themselves where no device exists) and
# every CLI suite in tests/cli; prints one "N passed, N failed" line.
build=${1:-build}
passed=0
failed=0
for t in "$build"/tests/test_* "$build"/tests/gpu/test_*; do
    case "$t" in *.o | *.d | *"*"*) continue ;; esac
    [ -x "$t" ] || continue
    out=$("$t" 2>&1)
    status=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | tail -n 1)
    p=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*$/\1/p')
    f=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*$/\2/p')
    if [ -z "$p" ]; then
        echo "$t: crashed or printed no summary (exit $status)"
        failed=$((failed + 1))
        continue
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$status" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
done
# every command-line suite in tests/cli (lib.sh is their shared helpers, not a suite)
for suite in tests/cli/*.sh; do
    [ "$suite" = tests/cli/lib.sh ] && continue
    out=$(DSQ="$build/dsq" "$suite" 2>&1)
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | tail -n 1)
    p=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -z "$p" ]; then
        echo "$suite printed no summary"
        failed=$((failed + 1))
    else
        passed=$((passed + p))
        failed=$((failed + f))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
