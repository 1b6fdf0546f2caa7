#!/bin/sh
# Threads and activation options of the commands that run a model: --threads and OMP_NUM_THREADS
# set the team exactly (never fewer), the default is every core; --activations picks how q8/q4
# matmuls take their input; bench decodes at the asked cache depth.
set -u
. "$(dirname "$0")/lib.sh"

q8="$tmp/lite-q8.dsq"
run "convert q8" 0 -- "$DSQ" convert "$DATA/tiny-v2-lite" -o "$q8" --quant q8 --group-size 32 -q &&
    pass

# json_field NAME KEY WANT: the last command's stdout is JSON whose KEY equals WANT
json_field() {
    if python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if str(d[sys.argv[2]]) == sys.argv[3] else 1)' "$tmp/out" "$2" "$3"; then
        pass
    else
        fail "$1" "$2 is not $3: $(head -c 400 "$tmp/out")"
    fi
}

bench() { "$DSQ" bench "$q8" --prompt 4 --gen 2 --json "$@"; }
run "bench --threads 1" 0 -- bench --threads 1 && json_field "bench --threads 1" threads 1
run "bench -t 2" 0 -- bench -t 2 && json_field "bench -t 2" threads 2
run "bench OMP_NUM_THREADS=1" 0 -- env OMP_NUM_THREADS=1 "$DSQ" bench "$q8" --prompt 4 --gen 2 \
    --json && json_field "bench OMP_NUM_THREADS=1" threads 1
run "bench default threads" 0 -- env -u OMP_NUM_THREADS "$DSQ" bench "$q8" --prompt 4 --gen 2 \
    --json && json_field "bench default threads" threads "$(nproc)"
# unless the user set a wait policy, barriers spin long when nothing else runs and briefly when
# other tasks hold the cores (see runtime/main.c); DSQ_PROC_STAT stands in for /proc/stat
printf 'cpu  1 2 3 4\nprocs_running 1\nprocs_blocked 0\n' >"$tmp/stat-idle"
printf 'cpu  1 2 3 4\nprocs_running %d\nprocs_blocked 0\n' "$(($(nproc) + 1))" >"$tmp/stat-busy"
spin() { env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY -u OMP_NUM_THREADS DSQ_PROC_STAT="$1" "$DSQ" \
    bench "$q8" --prompt 4 --gen 2 --json; }
run "bench idle machine: long spin" 0 -- spin "$tmp/stat-idle" &&
    json_field "bench idle machine: long spin" gomp_spincount 100000
run "bench busy machine: short spin" 0 -- spin "$tmp/stat-busy" &&
    json_field "bench busy machine: short spin" gomp_spincount 1000
run "bench load unknown: short spin" 0 -- spin "$tmp/no-such-stat" &&
    json_field "bench load unknown: short spin" gomp_spincount 1000
run "bench user spin" 0 -- env GOMP_SPINCOUNT=50000 "$DSQ" bench "$q8" --prompt 4 --gen 2 \
    --json && json_field "bench user spin" gomp_spincount 50000
run "bench user wait policy" 0 -- env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=active "$DSQ" bench \
    "$q8" --prompt 4 --gen 2 --json && json_field "bench user wait policy" gomp_spincount default
run "bench --activations f32" 0 -- bench --activations f32 &&
    json_field "bench --activations f32" activations f32
run "bench --depth 8" 0 -- bench --depth 8 && json_field "bench --depth 8" depth 8
run "bench --depth 0" 0 -- bench --depth 0 && json_field "bench --depth 0" depth 0
# --repeat reports the median of its runs, between the slowest and the fastest
run "bench --repeat 3" 0 -- bench --depth 8 --repeat 3 && json_field "bench --repeat 3" repeat 3
if python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if all(0 < d[k + "_min"] <= d[k] <= d[k + "_max"]
                  for k in ("prefill_tok_s", "decode_tok_s")) else 1)' "$tmp/out"; then
    pass
else
    fail "bench --repeat 3 range" "median outside slowest..fastest: $(head -c 400 "$tmp/out")"
fi
run "bench --repeat 2 text" 0 -- "$DSQ" bench "$q8" --prompt 4 --gen 2 --repeat 2 &&
    expect_output "bench --repeat 2 text" "(median of 2, "
expect_error "repeat 0" 1 "--repeat must be an integer from 1 to 1000, not '0'" "" -- \
    "$DSQ" bench "$q8" --repeat 0

expect_error "threads 0" 1 "--threads must be an integer from 1 to 1024, not '0'" "" -- \
    "$DSQ" bench "$q8" --threads 0
expect_error "run threads word" 1 "not 'many'" "" -- "$DSQ" run "$q8" -p hi --threads many
expect_error "activations bad" 1 "--activations must be int8 or f32, not 'int4'" "" -- \
    "$DSQ" ppl "$q8" --text "$DATA/tiny-v2-lite/tokenizer.json" --activations int4
run "run --threads 1 --activations f32" 0 -- "$DSQ" run "$q8" -p "Hello" -n 4 --temp 0 \
    --threads 1 --activations f32 && pass
run "help lists --threads" 0 -- "$DSQ" run --help && expect_output "run help" "--threads N"

cli_summary threads
