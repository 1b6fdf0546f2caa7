# Shared by the command-line test suites (tests/cli/*.sh): a scratch folder, pass/fail counting
# and the expectations every suite uses. Source it, then call cli_summary NAME at the end.
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

# cli_summary NAME: removes the scratch folder, prints the suite's count line, sets the exit code
cli_summary() {
    rm -rf "$tmp"
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
