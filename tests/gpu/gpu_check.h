/* Shared by GPU tests: a checked CUDA call, and a skip (exit 0 with a clear line) where no
 * device is present, so the same binaries run everywhere. */
#ifndef DSQ_GPU_CHECK_H
#define DSQ_GPU_CHECK_H

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CUDA_CHECK(call)                                                                          \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

/* Returns 1 if a CUDA device is usable; otherwise prints the skip line for `name`. */
static inline int gpu_available(const char *name)
{
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) { /* why, so a driver problem does not pass for no GPU */
        printf("%s: 0 passed, 0 failed, 1 skipped (no CUDA device: %s)\n", name,
               e != cudaSuccess ? cudaGetErrorString(e) : "none listed");
        return 0;
    }
    return 1;
}

#endif
