#!/bin/sh
# Every fuzz target replays its committed corpus (tests/fuzz/corpus/<target>/) through the
# replay driver, so the gcc and sanitizer builds run what libFuzzer starts from; each target
# must have a corpus.
set -u
. "$(dirname "$0")/lib.sh"

FUZZ=$(dirname "$DSQ")/fuzz
CORPUS=$HERE/../fuzz/corpus
for src in "$HERE"/../fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    if ! ls "$CORPUS/$name"/* >/dev/null 2>&1; then
        fail "$name corpus" "no files in tests/fuzz/corpus/$name"
        continue
    fi
    run "$name corpus" 0 -- "$FUZZ/$name" "$CORPUS/$name"/* && pass
done

cli_summary fuzz_corpus
