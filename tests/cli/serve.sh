#!/bin/sh
# dsq serve: started on a free loopback port with an API key, driven by the official openai
# Python client and raw HTTP (tests/cli/serve_client.py: answers equal dsq run / dsq chat byte
# for byte, bad requests, a load of concurrent clients), then stopped with SIGTERM while a
# request runs. Needs the packages of tests/requirements-serve.txt (.ci/run installs them into
# .venv); without them the suite says it was skipped, except under CI, where that fails.
set -u
. "$(dirname "$0")/lib.sh"

PY=${DSQ_SERVE_PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${DSQ_SERVE_PYTHON:-}" ] && PY=.venv/bin/python
if ! "$PY" -c 'import openai' 2>/dev/null; then
    if [ "${CI:-}" = true ]; then
        fail "openai client" "$PY cannot import openai: .ci/run installs tests/requirements-serve.txt"
    else
        echo "serve: SKIPPED: $PY cannot import openai (python3 -m venv .venv &&" \
            ".venv/bin/pip install -r tests/requirements-serve.txt)"
    fi
    cli_summary serve
    exit
fi

model="$tmp/tiny-v2.dsq"
run "convert tiny-v2" 0 -- "$DSQ" convert models/tiny-v2 -o "$model" && pass
run "serve --help" 0 -- "$DSQ" serve --help && expect_output "serve --help" "POST /v1/chat/completions"
expect_error "serve: port out of range" 1 "--port must be an integer from 0 to 65535" "" -- \
    "$DSQ" serve "$model" --port 70000
expect_error "serve: host not an address" 1 "--host localhost is not a numeric" "" -- \
    "$DSQ" serve "$model" --host localhost --port 0
expect_error "serve: missing key file" 1 "no-such-key" "" -- \
    "$DSQ" serve "$model" --api-key-file "$tmp/no-such-key"

# start_server LOG [options]: starts dsq serve on a free port; sets pid and port
start_server() {
    log=$1
    shift
    "$DSQ" serve "$model" --port 0 --ctx 1024 "$@" 2>"$log" &
    pid=$!
    port=""
    i=0
    while [ $i -lt 100 ] && [ -z "$port" ] && kill -0 "$pid" 2>/dev/null; do
        port=$(sed -n 's|.*listening.*http://127\.0\.0\.1:\([0-9]*\)/v1.*|\1|p' "$log" 2>/dev/null | head -n 1)
        [ -z "$port" ] && sleep 0.1
        i=$((i + 1))
    done
    [ -n "$port" ]
}

# stop_server NAME: SIGTERM, then at most 120 s (a sanitizer build is slow) for a clean exit 0
stop_server() {
    kill -TERM "$pid" 2>/dev/null
    i=0
    while [ $i -lt 1200 ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        fail "$1" "the server did not stop within 120 s of SIGTERM"
        return 1
    fi
    wait "$pid"
    status=$?
    if [ "$status" -ne 0 ]; then
        fail "$1" "exit $status after SIGTERM: $(grep -v ' /health ' "$log" | tail -n 20)"
        return 1
    fi
    pass
}

printf 'k3y-%s\n' "$$" >"$tmp/key"
key="k3y-$$"
if start_server "$tmp/serve.log" --api-key-file "$tmp/key" --max-body 65536; then
    pass
    # under AddressSanitizer freed memory sits in quarantine, so RSS says nothing there; its
    # LeakSanitizer checks every allocation at exit instead (stop_server wants exit 0)
    rss=""
    grep -q __asan_init "$DSQ" && rss=--no-rss-check
    out=$("$PY" "$HERE/serve_client.py" --dsq "$DSQ" --model "$model" --port "$port" --key "$key" \
        --pid "$pid" --log "$tmp/serve.log" $rss 2>&1)
    printf '%s\n' "$out" | grep -v '^serve-client:'
    line=$(printf '%s\n' "$out" | tail -n 1)
    p=$(printf '%s' "$line" | sed -n 's/^serve-client: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(printf '%s' "$line" | sed -n 's/^serve-client: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -z "$p" ]; then
        fail "serve client" "crashed: $(printf '%s' "$out" | tail -c 600)"
    else
        passed=$((passed + p))
        failed=$((failed + f))
    fi
    # one log line per request, with method, path, status, tokens and tokens/s
    if grep -q ' POST /v1/completions 200 [0-9.]*s prompt=[0-9]* cached=[0-9]* completion=32 [0-9.]* tok/s length$' "$tmp/serve.log"; then
        pass
    else
        fail "request log" "no completion line: $(tail -n 3 "$tmp/serve.log")"
    fi
    # SIGTERM while one request runs and one waits: the running one gets its whole answer,
    # the waiting one 503, and the server exits 0 (900 tokens, near the 1024-token context,
    # keep the first one running while the second arrives: the tiny model decodes thousands
    # of tokens a second)
    for n in 1 2; do
        curl -s -m 120 -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/completions" \
            -d '{"prompt": "Once", "max_tokens": 900, "temperature": 0}' >"$tmp/inflight$n.json" &
        eval "cpid$n=\$!"
        sleep 0.01
    done
    i=0
    while [ $i -lt 200 ] && ! curl -s -m 5 -H "Authorization: Bearer $key" \
        "http://127.0.0.1:$port/health" | grep -q '"waiting":1,"running":1'; do
        sleep 0.01
        i=$((i + 1))
    done
    stop_server "stop with a request running and one waiting"
    wait "$cpid1" "$cpid2"
    if python3 -c '
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
if "error" in a: a, b = b, a
assert a["usage"]["completion_tokens"] == 900 and a["choices"][0]["finish_reason"] == "length", a
assert b["error"]["code"] == "shutting_down" and "shutting down" in b["error"]["message"], b
' "$tmp/inflight1.json" "$tmp/inflight2.json" 2>"$tmp/err"; then
        pass
    else
        fail "running request finished, waiting one refused" "$(tail -c 400 "$tmp/err")"
    fi
    grep -q 'dsq serve: stopped' "$tmp/serve.log" && pass || fail "stop logged" "$(tail -n 2 "$tmp/serve.log")"
else
    fail "start server" "$(cat "$tmp/serve.log")"
fi

# --json-logs: every line is one JSON object; a request line has its fields
if start_server "$tmp/json.log" --json-logs; then
    curl -s -m 30 "http://127.0.0.1:$port/v1/completions" -d '{"prompt": "Never", "max_tokens": 3}' >/dev/null
    curl -s -m 30 "http://127.0.0.1:$port/nowhere" >/dev/null
    stop_server "stop (json logs)"
    if python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
reqs = [l for l in lines if "path" in l]
assert [(r["method"], r["path"], r["status"]) for r in reqs] == [("POST", "/v1/completions", 200), ("GET", "/nowhere", 404)], reqs
assert reqs[0]["completion_tokens"] == 3 and reqs[0]["finish"] == "length" and reqs[0]["tokens_per_second"] > 0, reqs[0]
assert lines[0]["event"] == "listening" and lines[-1]["event"] == "stopped", lines
' "$tmp/json.log" 2>"$tmp/err"; then pass; else fail "json logs" "$(head -c 600 "$tmp/err")"; fi
else
    fail "start server (json logs)" "$(cat "$tmp/json.log")"
fi

# slow clients, idle timeout, the queue limit and the connection limit
if start_server "$tmp/limits.log" --timeout 1 --max-connections 4 --queue 1; then
    out=$("$PY" "$HERE/serve_client.py" --dsq "$DSQ" --model "$model" --port "$port" --pid "$pid" \
        --log "$tmp/limits.log" --only limits 2>&1)
    printf '%s\n' "$out" | grep -v '^serve-client:'
    line=$(printf '%s\n' "$out" | tail -n 1)
    p=$(printf '%s' "$line" | sed -n 's/^serve-client: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
    f=$(printf '%s' "$line" | sed -n 's/^serve-client: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
    if [ -z "$p" ]; then fail "limits" "crashed: $(printf '%s' "$out" | tail -c 600)"; else
        passed=$((passed + p))
        failed=$((failed + f))
    fi
    stop_server "stop (limits)"
else
    fail "start server (limits)" "$(cat "$tmp/limits.log")"
fi

cli_summary serve
