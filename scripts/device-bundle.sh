#!/bin/sh
# Gathers what the GPU machine's check runs into BUILD/device: the dsq binary, the GPU test
# binaries, and the shared libraries they load beyond the C library itself (lib/), so binaries
# built here run on a GPU machine whose image lacks them. cudart is linked statically; the
# driver (libcuda) always comes from the GPU machine. Carry BUILD/device (a few MB). No cuBLAS:
# libcublasLt alone is over 500 MB, past the 64 MiB a device call carries, so the prefill GEMM
# is the engine's own (cuda/gemm.cu) and nothing here links it.
#   scripts/device-bundle.sh [BUILD_DIR]
set -eu
build=${1:-build}
out=$build/device
rm -rf "$out"
mkdir -p "$out/lib" "$out/tests/gpu"
cp "$build/dsq" "$out/"
for t in "$build"/tests/gpu/test_*; do
    case "$t" in *.o | *.d) continue ;; esac
    cp "$t" "$out/tests/gpu/"
done
if ! readelf -S "$build/dsq" | grep -q nv_fatbin; then
    echo "device-bundle: $build/dsq has no device code (built without nvcc on PATH?)" >&2
    exit 1
fi
if ldd "$out/dsq" "$out"/tests/gpu/test_* | grep 'not found'; then
    echo "device-bundle: libraries missing here, so they cannot be bundled" >&2
    exit 1
fi
for bin in "$out/dsq" "$out"/tests/gpu/test_*; do
    ldd "$bin" | awk '/=> \// { print $3 }'
done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
    libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | ld-linux*) continue ;;
    esac
    cp -L "$lib" "$out/lib/"
done
{ # what the device check prints first, so its report says what it ran
    echo "built from $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(
        git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' with local changes')"
    echo "on $(uname -m), $(ldd --version 2>&1 | head -n 1)"
    "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" --version 2>/dev/null | tail -n 1
} >"$out/BUILD_INFO"
du -sh "$out"
