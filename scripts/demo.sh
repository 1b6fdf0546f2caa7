#!/bin/sh
# make demo: convert a shipped checkpoint (the tiny DeepSeek-V2 fixture), inspect and verify it.
set -eu
DSQ=${1:-build/dsq}
out=build/demo
mkdir -p "$out"
echo "== dsq convert tests/data/tiny-v2 -o $out/tiny-v2.dsq"
"$DSQ" convert tests/data/tiny-v2 -o "$out/tiny-v2.dsq"
echo
echo "== dsq info $out/tiny-v2.dsq"
"$DSQ" info "$out/tiny-v2.dsq"
echo
echo "== dsq verify $out/tiny-v2.dsq"
"$DSQ" verify "$out/tiny-v2.dsq"
