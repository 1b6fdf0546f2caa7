#!/usr/bin/env bash
# Conversion benchmark (`make bench`): times `dsq convert` against a plain copy of the same
# bytes, and `dsq verify`, on a synthetic full-width DeepSeek-V2-Lite checkpoint cut to 2
# layers (~2.2 GB, generated once by scripts/make_synthetic_checkpoint.py and cached).
# Prints numbers; asserts nothing.
#
#   scripts/bench-convert.sh [DSQ_BINARY]        (default build/dsq)
#   env: BENCH_DIR (default build/bench), THREADS (convert --threads), RUNS (default 5)
#
# Caches are not dropped (that needs root and is unreliable in VMs). Instead copy, convert
# and verify run in RUNS rounds (default 5); round 1 warms the page cache and the best of the
# later, warm-cache rounds is reported: the source shards are then cached, so the numbers are
# CPU + page-cache writes + fsync, not the source disk. Outputs are written and fsynced in
# BENCH_DIR; the big outputs are removed at the end, the generated checkpoint is kept.
set -euo pipefail

DSQ=${1:-build/dsq}
BENCH=${BENCH_DIR:-build/bench}
CKPT=$BENCH/v2lite-2layer
COPY=$BENCH/copy  # copy-cat.bin, copy-dd.bin
OUT=$BENCH/v2lite-2layer.dsq
SCRIPTS=$(cd "$(dirname "$0")" && pwd)

die() { echo "bench-convert: $*" >&2; exit 1; }
now() { date +%s.%N; }
# secs START END; gbps BYTES SECS; ratio A B
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
gbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.2f", (s > 0 ? n / 1e9 / s : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

[ -x "$DSQ" ] || die "$DSQ: not an executable (run make first)"
if /usr/bin/time -v true >/dev/null 2>&1; then
    HAVE_TIME=1
else
    HAVE_TIME=0
    echo "bench-convert: GNU time (/usr/bin/time -v) not found: peak RSS will not be measured." >&2
    echo "               Install it with: apt-get install time  (Debian/Ubuntu), dnf install time" >&2
fi

# Big outputs go away however the script ends; the cached checkpoint stays.
cleanup() {
    rm -f "$COPY-cat.bin" "$COPY-dd.bin" "$OUT" "$BENCH/convert.time" "$BENCH/convert.err" "$BENCH/dsq"
}
trap cleanup EXIT
mkdir -p "$BENCH"
# Run a private copy of the binary, so that a rebuild during the run does not pull it away.
cp "$DSQ" "$BENCH/dsq"
DSQ_NAME=$DSQ
DSQ=$BENCH/dsq

# 1. The checkpoint (generated once; the generator renames a finished folder into place).
if [ ! -f "$CKPT/model.safetensors.index.json" ]; then
    [ ! -e "$CKPT" ] || die "$CKPT exists but is incomplete: remove it and rerun"
    command -v python3 >/dev/null || die "python3 is needed to generate the checkpoint"
    python3 -c 'import numpy' 2>/dev/null ||
        die "numpy is needed: python3 -m pip install -r scripts/requirements-fixtures.txt"
    echo "generating $CKPT (once; about 2.2 GB) ..."
    python3 "$SCRIPTS/make_synthetic_checkpoint.py" "$CKPT" --layers 2 --shards 4
fi
SHARDS=("$CKPT"/*.safetensors)
SRC_BYTES=$(cat "${SHARDS[@]}" | wc -c)
avail_kb=$(df -Pk "$BENCH" | awk 'NR == 2 { print $4 }')
[ "$avail_kb" -gt $((SRC_BYTES / 1024 * 2)) ] ||
    echo "bench-convert: warning: only $((avail_kb / 1024)) MB free in $BENCH" >&2

# 2. The machine.
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)
gpu=$(command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | head -1 || true)
fs=$(df -PT "$BENCH" | awk 'NR == 2 { print $2 }')
echo "machine: ${cpu:-unknown CPU}, $(nproc) cores, $mem RAM, ${gpu:-no GPU}, $fs filesystem"
echo "source:  $CKPT ($SRC_BYTES bytes in ${#SHARDS[@]} shards)"
echo "binary:  $DSQ_NAME ($("$DSQ" --version 2>/dev/null | head -1 || echo "version unknown"))"
echo "threads: ${THREADS:-default (all cores)}"
echo

# 3. The measurements. Each is a function that prints its wall seconds. Two plain copies of
# the shard bytes into one file, fsynced, are the floor for convert (which also writes one
# file and fsyncs it): `cat`, which coreutils >= 9 does with copy_file_range (an in-kernel
# page-cache copy, no user-space buffer), and `dd bs=32M`, a read/write loop through a 32 MB
# user buffer as convert does. Convert runs under GNU time for its peak RSS.
copy_once() { # copy_once cat|dd
    local dst=$COPY-$1.bin t0 t1 f
    rm -f "$dst"
    t0=$(now)
    if [ "$1" = cat ]; then
        cat "${SHARDS[@]}" >"$dst"
    else
        for f in "${SHARDS[@]}"; do dd if="$f" bs=32M status=none; done >"$dst"
    fi
    sync "$dst"
    t1=$(now)
    secs "$t0" "$t1"
}
conv_args=("$CKPT" -o "$OUT" -q)
[ -z "${THREADS:-}" ] || conv_args+=(--threads "$THREADS")
timer=()
[ "$HAVE_TIME" = 0 ] || timer=(/usr/bin/time -v -o "$BENCH/convert.time")
convert_once() {
    rm -f "$OUT"
    local t0 t1
    t0=$(now)
    ${timer[@]+"${timer[@]}"} "$DSQ" convert "${conv_args[@]}" 2>"$BENCH/convert.err" ||
        { cat "$BENCH/convert.err" >&2; die "dsq convert failed"; }
    t1=$(now)
    secs "$t0" "$t1"
}
verify_once() {
    local t0 t1
    t0=$(now)
    "$DSQ" verify "$OUT" >/dev/null || die "dsq verify failed"
    t1=$(now)
    secs "$t0" "$t1"
}

# Rounds of copies, convert, verify, interleaved so that copy and convert see the same
# machine state. Round 1 warms the caches; the table reports the best of rounds 2..RUNS.
# Each step deletes only its own previous output, just before it runs, so every step
# writes into memory freed by its own last round (in a VM whose balloon takes back free
# guest memory, writing into memory freed by another step's big delete can cost 2-4x).
RUNS=${RUNS:-5}
[ "$RUNS" -ge 2 ] || die "RUNS must be at least 2"
best() { printf '%s\n' "$@" | sort -g | head -1; }
rss_kb=0
cats=() dds=() convs=() vers=()
for ((r = 1; r <= RUNS; r++)); do
    cats+=("$(copy_once cat)")
    dds+=("$(copy_once dd)")
    convs+=("$(convert_once)")
    if [ "$HAVE_TIME" = 1 ]; then
        kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$BENCH/convert.time")
        [ "$kb" -le "$rss_kb" ] || rss_kb=$kb
    fi
    vers+=("$(verify_once)")
    echo "round $r: cat ${cats[-1]} s, dd ${dds[-1]} s, convert ${convs[-1]} s, verify ${vers[-1]} s"
done
OUT_BYTES=$(wc -c <"$OUT")
echo "convert says: $(tail -1 "$BENCH/convert.err")"
if [ "$HAVE_TIME" = 1 ]; then
    usr=$(awk -F': ' '/User time/ { print $2 }' "$BENCH/convert.time")
    sys=$(awk -F': ' '/System time/ { print $2 }' "$BENCH/convert.time")
    pct=$(awk -F': ' '/Percent of CPU/ { print $2 }' "$BENCH/convert.time")
    echo "convert CPU (last round): user $usr s, system $sys s ($pct of one core)"
    rss_mb=$(awk -v k="$rss_kb" 'BEGIN { printf "%.0f MB", k / 1024 }')
else
    rss_mb="n/a (no GNU time)"
fi
cat_s=$(best "${cats[@]:1}")
dd_s=$(best "${dds[@]:1}")
conv_s=$(best "${convs[@]:1}")
ver_s=$(best "${vers[@]:1}")

# 4. The table.
echo
echo "best of warm rounds 2..$RUNS (round 1 in the last column):"
printf '%-8s %14s %9s %7s %10s\n' step bytes seconds GB/s "round 1 s"
printf '%-8s %14s %9s %7s %10s\n' "copy cat" "$SRC_BYTES" "$cat_s" "$(gbps "$SRC_BYTES" "$cat_s")" "${cats[0]}"
printf '%-8s %14s %9s %7s %10s\n' "copy dd" "$SRC_BYTES" "$dd_s" "$(gbps "$SRC_BYTES" "$dd_s")" "${dds[0]}"
printf '%-8s %14s %9s %7s %10s\n' convert "$SRC_BYTES" "$conv_s" "$(gbps "$SRC_BYTES" "$conv_s")" "${convs[0]}"
printf '%-8s %14s %9s %7s %10s\n' verify "$OUT_BYTES" "$ver_s" "$(gbps "$OUT_BYTES" "$ver_s")" "${vers[0]}"
echo
echo "convert time / copy time: $(ratio "$conv_s" "$cat_s") vs cat, $(ratio "$conv_s" "$dd_s") vs dd  (1.00 = as fast as that copy)"
echo "convert peak RSS: $rss_mb"
echo "(bytes: copies and convert = source shard bytes read; verify = .dsq file size)"
