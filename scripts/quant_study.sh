#!/bin/sh
# Quantization study of dsq's storage types (and llama.cpp's, given a build): see
# scripts/quant_study.py --help and docs/QUANT.md.
#   scripts/quant_study.sh --quick                        dsq bf16/q8/q4 only (make demo)
#   scripts/quant_study.sh                                every dsq variant
#   LLAMA_CPP=/path/to/llama.cpp LLAMA_PYTHON=/path/to/python scripts/quant_study.sh
#                                                         plus llama.cpp's Q8_0/Q4_K_M/Q4_0
set -eu
exec python3 "$(dirname "$0")/quant_study.py" "$@"
