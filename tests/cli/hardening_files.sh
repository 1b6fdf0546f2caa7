#!/bin/sh
# Hostile files and paths: an output never replaces an input or a non-regular file, an input
# never blocks (FIFOs) and is read only up to a cap, temporary files go away on every fatal
# signal, damaged logits rows and a .dsq truncated while mapped are reported, and the small
# messages name what they should. Commands that could hang run under a timeout: a hang fails.
set -u
. "$(dirname "$0")/lib.sh"

T="timeout ${DSQ_TEST_TIMEOUT:-20}"
lite_src="$DATA/tiny-v2-lite"
S1=model-00001-of-00002.safetensors
S2=model-00002-of-00002.safetensors
model="$tmp/lite.dsq"
"$DSQ" convert "$lite_src" -o "$model" -q 2>/dev/null || fail "setup" "cannot convert the fixture"
text="$tmp/text.txt"
i=0
while [ $i -lt 40 ]; do
    echo "Sentence $i: the quick brown fox jumps over the lazy dog." >>"$text"
    i=$((i + 1))
done

# A fresh copy of the checkpoint folder: fresh_ckpt NAME -> $tmp/NAME
fresh_ckpt() {
    rm -rf "${tmp:?}/$1"
    cp -r "$lite_src" "$tmp/$1"
}

# unchanged NAME FILE COPY: FILE still has the bytes of COPY (else it is put back, so that
# the cases after it still test what they say)
unchanged() {
    if cmp -s "$2" "$3"; then pass; else
        fail "$1" "$2 was changed"
        rm -f "$2" && cp "$3" "$2"
    fi
}

# --- 1. an output never destroys an input -------------------------------------------------------
for victim in config.json tokenizer.json "$S1" "$S2" model.safetensors.index.json; do
    fresh_ckpt same
    cp "$tmp/same/$victim" "$tmp/victim.orig"
    expect_error "convert -o its own $victim" 1 "the same file as the input" "" -- \
        $T "$DSQ" convert "$tmp/same" -o "$tmp/same/$victim"
    unchanged "convert -o its own $victim (kept)" "$tmp/same/$victim" "$tmp/victim.orig"
done
fresh_ckpt same
ln -s "$tmp/same/$S2" "$tmp/shard-link.dsq"
expect_error "convert -o a symlink to a shard" 1 "the same file as the input" "" -- \
    $T "$DSQ" convert "$tmp/same" -o "$tmp/shard-link.dsq"
ln "$tmp/same/config.json" "$tmp/config-hardlink.dsq"
expect_error "convert -o a hard link to config.json" 1 "the same file as the input" "" -- \
    $T "$DSQ" convert "$tmp/same" -o "$tmp/config-hardlink.dsq"
cp "$model" "$tmp/model.orig"
expect_error "ppl --save-logits onto the model" 1 "the same file as the input" "" -- \
    $T "$DSQ" ppl "$model" --text "$text" --ctx 32 --save-logits "$model"
unchanged "ppl --save-logits onto the model (kept)" "$model" "$tmp/model.orig"
cp "$text" "$tmp/text.orig"
expect_error "ppl --save-logits onto --text" 1 "the same file as the input" "" -- \
    $T "$DSQ" ppl "$model" --text "$text" --ctx 32 --save-logits "$text"
unchanged "ppl --save-logits onto --text (kept)" "$text" "$tmp/text.orig"
expect_error "quantize -o its input" 1 "the same file as the input" "" -- \
    $T "$DSQ" quantize "$model" -o "$model" --quant q8 -g 32
unchanged "quantize -o its input (kept)" "$model" "$tmp/model.orig"
mkfifo "$tmp/out-fifo"
expect_error "convert -o a FIFO" 1 "is a FIFO, not a regular file" "" -- \
    $T "$DSQ" convert "$lite_src" -o "$tmp/out-fifo"
if [ -p "$tmp/out-fifo" ]; then pass; else fail "convert -o a FIFO (kept)" "the FIFO was replaced"; fi
expect_error "ppl --save-logits a FIFO" 1 "is a FIFO, not a regular file" "" -- \
    $T "$DSQ" ppl "$model" --text "$text" --ctx 32 --save-logits "$tmp/out-fifo"
expect_error "quantize -o a FIFO" 1 "is a FIFO, not a regular file" "" -- \
    $T "$DSQ" quantize "$model" -o "$tmp/out-fifo" --quant q8 -g 32
mkdir -p "$tmp/out-folder"
expect_error "convert -o a folder" 1 "out-folder: the output is a folder" "" -- \
    $T "$DSQ" convert "$lite_src" -o "$tmp/out-folder"
if grep -q '(null)' "$tmp/err"; then fail "convert -o a folder" "(null) in the message"; else pass; fi
if [ -z "$(ls -A "$tmp/out-folder")" ]; then pass; else fail "convert -o a folder" "files left inside"; fi

# --- 2. inputs never block: a FIFO in place of any input file is refused at once -----------------
for victim in config.json tokenizer.json tokenizer_config.json chat_template.jinja "$S2" \
    model.safetensors.index.json generation_config.json; do
    fresh_ckpt fifo-in
    rm -f "$tmp/fifo-out.dsq" "$tmp/fifo-in/$victim"
    # the template is read from chat_template.jinja only when tokenizer_config.json has none
    [ "$victim" = chat_template.jinja ] && python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
del c["chat_template"]
json.dump(c, open(sys.argv[1], "w"))
' "$tmp/fifo-in/tokenizer_config.json"
    mkfifo "$tmp/fifo-in/$victim"
    expect_error "convert with a FIFO as $victim" 2 "$victim: is a FIFO, not a regular file" \
        "$tmp/fifo-out.dsq" -- $T "$DSQ" convert "$tmp/fifo-in" -o "$tmp/fifo-out.dsq"
done
mkfifo "$tmp/model-fifo.dsq" "$tmp/base-fifo.logits" "$tmp/text-fifo.txt"
for cmd in info verify; do
    expect_error "$cmd a FIFO" 2 "model-fifo.dsq: is a FIFO" "" -- $T "$DSQ" $cmd "$tmp/model-fifo.dsq"
done
expect_error "run a FIFO" 2 "model-fifo.dsq: is a FIFO" "" -- \
    $T "$DSQ" run "$tmp/model-fifo.dsq" -p hi -n 1
expect_error "quantize a FIFO" 2 "model-fifo.dsq: is a FIFO" "$tmp/q.dsq" -- \
    $T "$DSQ" quantize "$tmp/model-fifo.dsq" -o "$tmp/q.dsq" --quant q8
expect_error "ppl --kld-base a FIFO" 2 "base-fifo.logits: is a FIFO" "" -- \
    $T "$DSQ" ppl "$model" --text "$text" --ctx 32 --kld-base "$tmp/base-fifo.logits"
expect_error "ppl --text a FIFO" 2 "text-fifo.txt: is a FIFO" "" -- \
    $T "$DSQ" ppl "$model" --text "$tmp/text-fifo.txt" --ctx 32
expect_error "ppl --text /dev/zero" 2 "/dev/zero: is a character device, not a regular file" "" -- \
    $T "$DSQ" ppl "$model" --text /dev/zero --ctx 32

# --- 5 (b, d). capped reads of untrusted text --------------------------------------------------
fresh_ckpt big-config
python3 -c '
import json, sys
p = sys.argv[1]
c = json.load(open(p))
open(p, "w").write(json.dumps(c) + " " * (2 << 20))
' "$tmp/big-config/config.json"
expect_error "config.json over its cap" 2 \
    "config.json: $(wc -c <"$tmp/big-config/config.json") bytes, more than the 1048576 bytes allowed" \
    "$tmp/big.dsq" -- $T "$DSQ" convert "$tmp/big-config" -o "$tmp/big.dsq"
truncate -s 1073741825 "$tmp/huge.txt"
expect_error "ppl --text over its cap" 2 "huge.txt: 1073741825 bytes, more than the 1073741824 bytes allowed for the text" "" -- \
    $T "$DSQ" ppl "$model" --text "$tmp/huge.txt" --ctx 32
rm -f "$tmp/huge.txt"
# under the cap but beyond the memory the process may take: exit 3, "out of memory" (skipped
# where the binary cannot start under a 700 MB address-space limit, as under AddressSanitizer)
truncate -s 900000000 "$tmp/large.txt"
if sh -c "ulimit -v 700000 && '$DSQ' --version" >/dev/null 2>&1; then
    expect_error "ppl --text beyond memory" 3 "large.txt: out of memory for the text" "" -- \
        sh -c "ulimit -v 700000 && exec '$DSQ' ppl '$model' --text '$tmp/large.txt' --ctx 32"
else
    echo "skipped: ppl --text beyond memory (the binary does not start under ulimit -v)"
fi
rm -f "$tmp/large.txt"
# stdin of chat: a line without end (/dev/zero, here through head so that a binary without the
# cap cannot take unbounded memory) is refused at the cap
expect_error "chat: endless line of NULs" 2 "stdin: line 1 is longer than 1048576 bytes" "" -- \
    $T sh -c "head -c 67108864 /dev/zero | '$DSQ' chat '$model' -n 2"
printf 'Hi\nab\000cd\n' >"$tmp/nul-line"
expect_error "chat: a NUL byte in a line" 2 "stdin: line 2 contains a NUL byte" "" -- \
    $T sh -c "exec '$DSQ' chat '$model' -n 2 <'$tmp/nul-line'"
fresh_ckpt big-template
python3 -c '
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["chat_template"] = "x" * ((16 << 20) + 1)
json.dump(c, open(p, "w"))
' "$tmp/big-template/tokenizer_config.json"
expect_error "tokenizer_config.json chat_template over 16 MB" 2 \
    "chat_template is 16777217 bytes, more than the 16777216 bytes allowed" "$tmp/tmpl.dsq" -- \
    $T "$DSQ" convert "$tmp/big-template" -o "$tmp/tmpl.dsq"
rm -rf "$tmp/big-template" "$tmp/big-config"

# --- 6. temporary files removed on every signal that ends the process --------------------------
long="$tmp/long.txt"
i=0
while [ $i -lt 3000 ]; do
    echo "Sentence $i: the quick brown fox jumps over the lazy dog." >>"$long"
    i=$((i + 1))
done
# with_default SIG command...: execs the command with SIG's default action (a shell starts
# background jobs with QUIT and INT ignored, a harness may ignore PIPE, and dsq keeps what is
# ignored). It replaces the calling shell: use it in a subshell or a pipeline.
with_default() {
    exec python3 -c '
import os, signal, sys
signal.signal(getattr(signal, "SIG" + sys.argv[1]), signal.SIG_DFL)
os.execv(sys.argv[2], sys.argv[2:])
' "$@"
}
# NAME:NUMBER (Linux); exit status 128 + NUMBER when the signal ends the process
for entry in PIPE:13 QUIT:3 USR1:10 USR2:12 ALRM:14 XCPU:24 XFSZ:25 VTALRM:26 PROF:27; do
    sig=${entry%:*}
    rm -rf "$tmp/sig" && mkdir -p "$tmp/sig"
    (ulimit -c 0; with_default "$sig" "$DSQ" ppl "$model" --text "$long" --ctx 32 -t 1 \
        --save-logits "$tmp/sig/b.logits" >/dev/null 2>&1) &
    pid=$!
    n=0
    while [ $n -lt 400 ] && ! ls -A "$tmp/sig" | grep -q '\.tmp-'; do
        sleep 0.05
        n=$((n + 1))
    done
    kill -s "$sig" $pid 2>/dev/null
    { wait $pid; } 2>/dev/null # (no "Quit" line from the shell)
    status=$?
    want=$((128 + ${entry#*:}))
    if [ $n -ge 400 ]; then
        fail "SIG$sig" "the temporary file never appeared"
    elif [ "$status" -ne "$want" ]; then
        fail "SIG$sig" "exit $status, expected $want (killed by the signal)"
    elif ls -A "$tmp/sig" | grep -q .; then
        fail "SIG$sig" "left behind: $(ls -A "$tmp/sig")"
    else
        pass
    fi
done
# the reported case: the reader of stdout goes away
rm -rf "$tmp/sig" && mkdir -p "$tmp/sig"
with_default PIPE "$DSQ" ppl "$model" --text "$long" --ctx 32 -t 1 \
    --save-logits "$tmp/sig/b.logits" 2>/dev/null | head -c 10 >/dev/null
if ls -A "$tmp/sig" | grep -q .; then fail "ppl | head" "left behind: $(ls -A "$tmp/sig")"; else pass; fi

# --- 7. integrity: logits rows carry checksums; a .dsq truncated while mapped --------------------
run "save logits" 0 -- "$DSQ" ppl "$model" --text "$text" --ctx 32 --save-logits "$tmp/base.logits" &&
    pass
cp "$tmp/base.logits" "$tmp/flipped.logits"
# two bytes of the codes of row 2 of chunk 1: 64-byte header, rows of 16 + 2 * 512 + 8 bytes
printf '\001\002' | dd of="$tmp/flipped.logits" bs=1 seek=$((64 + 1048 + 16 + 200)) conv=notrunc 2>/dev/null
expect_error "damaged logits row" 2 "flipped.logits: row 2 of chunk 1 is damaged" "" -- \
    "$DSQ" ppl "$model" --text "$text" --kld-base "$tmp/flipped.logits"
# chat reads its turns from a FIFO: the file is truncated between two turns, so the second
# turn's forward pass reads pages that are gone (SIGBUS)
cp "$model" "$tmp/shrinking.dsq"
mkfifo "$tmp/turns"
exec 4<>"$tmp/turns" # read-write: opening never waits for the other end
: >"$tmp/chat.out"     # there before the poll below reads it
"$DSQ" chat "$tmp/shrinking.dsq" -n 2 <"$tmp/turns" >"$tmp/chat.out" 2>"$tmp/chat.err" &
pid=$!
echo "Hello" >&4
n=0
while [ $n -lt 400 ] && [ "$(wc -l <"$tmp/chat.out")" -eq 0 ]; do
    sleep 0.05
    n=$((n + 1))
done
truncate -s 4096 "$tmp/shrinking.dsq"
echo "Again" >&4
exec 4>&-
wait $pid
status=$?
if [ $n -ge 400 ]; then
    fail "dsq truncated while mapped" "the first turn was never answered"
elif [ "$status" -ne 2 ]; then
    fail "dsq truncated while mapped" "exit $status, expected 2: $(cat "$tmp/chat.err")"
elif ! grep -qF "shrinking.dsq changed while being read" "$tmp/chat.err"; then
    fail "dsq truncated while mapped" "message: $(cat "$tmp/chat.err")"
else
    pass
fi

# --- 8. smaller ones ---------------------------------------------------------------------------
expect_error "run: too long a prompt" 1 "the prompt needs" "" -- \
    "$DSQ" run "$model" -p "a prompt that is longer than eight tokens for sure" --ctx 8
if [ -s "$tmp/out" ]; then fail "run: too long a prompt" "printed: $(cat "$tmp/out")"; else pass; fi

cli_summary hardening_files
