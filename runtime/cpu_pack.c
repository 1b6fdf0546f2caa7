/* Packing a model's q8/q6/q4 and bf16 matrices for the CPU kernels once at load
 * (runtime/cpu_pack.h). */
#include "cpu_pack.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "backend_cpu.h"
#include "bf16pack.h"
#include "qdot.h"
#include "qpack.h"
#include "types.h"

/* q8/q6/q4 pack when their int8 kernels have a packed form at the current ISA; bf16 when a
 * packed bf16 kernel runs (AVX-512 or AVX2). */
static bool int8_packs(void)
{
    return dsq_cpu_int8_activations() && dsq_qpack_replaces_qdot();
}

bool cpu_pack_useful(void)
{
    return int8_packs() || dsq_bf16pack_have();
}

/* Every matmul weight of the model, in a fixed order, or with host (not NULL: [n_layers *
 * n_routed_experts] flags of experts on a device) only the routed experts it does not flag;
 * returns how many (list may be NULL). */
static int list_matrices(model_weights *w, int n_routed_experts, const unsigned char *on_gpu,
                         dsq_matrix **list)
{
    int n = 0;
#define ADD(m)                                                                                     \
    do {                                                                                           \
        if (list)                                                                                  \
            list[n] = (m);                                                                         \
        n++;                                                                                       \
    } while (0)
    if (!on_gpu)
        ADD(&w->output);
    for (int l = 0; l < w->n_layers; l++) {
        layer_weights *L = &w->layers[l];
        dsq_matrix *attn[] = {&L->wq, &L->wk, &L->wv, &L->q_a, &L->q_b, &L->kv_a, &L->kv_b, &L->wo};
        for (size_t i = 0; !on_gpu && i < sizeof attn / sizeof *attn; i++)
            ADD(attn[i]);
        ffn_weights *f[] = {&L->dense, &L->shared};
        for (size_t i = 0; !on_gpu && i < 2; i++) {
            ADD(&f[i]->gate);
            ADD(&f[i]->up);
            ADD(&f[i]->down);
        }
        for (int e = 0; L->moe && L->experts && e < n_routed_experts; e++) {
            if (on_gpu && on_gpu[(size_t)l * n_routed_experts + e])
                continue;
            ADD(&L->experts[e].gate);
            ADD(&L->experts[e].up);
            ADD(&L->experts[e].down);
        }
    }
#undef ADD
    return n;
}

static bool packs(const dsq_matrix *m, bool int8, bool bf16)
{
    const uint64_t rows = (uint64_t)m->rows, cols = (uint64_t)m->cols;
    if (!m->data || m->packed)
        return false;
    if (m->type == DSQ_TYPE_BF16)
        return bf16 && dsq_bf16pack_fits(rows, cols);
    return int8 && dsq_qpack_fits(m->type, rows, cols, m->group);
}

/* Bytes of memory the kernel says can still be given out without swapping (MemAvailable in
 * /proc/meminfo, or in the file DSQ_MEMINFO names, for tests); UINT64_MAX when unknown. */
static uint64_t memory_available(void)
{
    const char *path = getenv("DSQ_MEMINFO");
    FILE *f = fopen(path ? path : "/proc/meminfo", "r");
    if (!f)
        return UINT64_MAX;
    char line[256];
    unsigned long long kb;
    uint64_t bytes = UINT64_MAX;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            bytes = (uint64_t)kb * 1024;
            break;
        }
    fclose(f);
    return bytes;
}

/* Blocks of 16 rows one packing work item takes at most. */
#define PACK_ITEM_BLOCKS 256

/* The offset of a matrix that gets no packed copy. */
#define UNPACKED UINT64_MAX

/* Bytes of m's packed copy, rounded up to keep every copy 64-byte aligned. */
static uint64_t slot_bytes(const dsq_matrix *m)
{
    const uint64_t rows = (uint64_t)m->rows, cols = (uint64_t)m->cols;
    const uint64_t bytes = m->type == DSQ_TYPE_BF16 ? rows * cols * 2
                                                    : dsq_qpack_bytes(m->type, rows, cols, m->group);
    return (bytes + 63) / 64 * 64;
}

int cpu_pack_weights(model_weights *w, int n_routed_experts, dsq_error *err)
{
    return cpu_pack_host_experts(w, n_routed_experts, NULL, err);
}

int cpu_pack_host_experts(model_weights *w, int n_routed_experts, const unsigned char *on_gpu,
                          dsq_error *err)
{
    if (w->packed_arena)
        return DSQ_OK;
    const int n = list_matrices(w, n_routed_experts, on_gpu, NULL);
    dsq_matrix **list = malloc((size_t)n * sizeof *list);
    uint64_t *offset = malloc((size_t)n * sizeof *offset);
    if (!list || !offset) {
        free(list);
        free(offset);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    }
    list_matrices(w, n_routed_experts, on_gpu, list);
    w->unpacked_bytes = 0;
    bool int8 = int8_packs(), bf16 = dsq_bf16pack_have();
    /* Copies only where memory holds them. A packed q8/q4 matrix's own pages go cold (the file
     * can give them back), but bf16 decode keeps reading the planar rows, so bf16 copies need
     * room beside them; they are dropped first. */
    uint64_t int8_bytes = 0, bf16_bytes = 0;
    for (int i = 0; i < n; i++)
        if (packs(list[i], int8, bf16))
            *(list[i]->type == DSQ_TYPE_BF16 ? &bf16_bytes : &int8_bytes) += slot_bytes(list[i]);
    const uint64_t available = memory_available();
    if (int8_bytes + 2 * bf16_bytes > available) {
        bf16 = false;
        w->unpacked_bytes += bf16_bytes;
    }
    if (int8_bytes > available) {
        int8 = false;
        w->unpacked_bytes += int8_bytes;
    }
    uint64_t total = 0;
    for (int i = 0; i < n; i++) { /* decided once: UNPACKED, or the copy's place */
        offset[i] = packs(list[i], int8, bf16) ? total : UNPACKED;
        if (offset[i] != UNPACKED)
            total += slot_bytes(list[i]);
    }
    void *arena = total ? mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                               -1, 0)
                        : NULL;
    if (arena == MAP_FAILED) {
        free(list);
        free(offset);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory for %.1f GB of packed weights",
                        (double)total / 1e9);
    }
    if (arena) /* fewer TLB misses on the stream of weights; advice only */
        madvise(arena, total, MADV_HUGEPAGE);
    /* work items of at most PACK_ITEM_BLOCKS blocks of one matrix, so that a large matrix (the
     * output head: 6400 blocks) spreads over the threads too */
    uint64_t items = 0;
    for (int i = 0; i < n; i++)
        if (offset[i] != UNPACKED)
            items += ((uint64_t)list[i]->rows / DSQ_QPACK_ROWS + PACK_ITEM_BLOCKS - 1) /
                     PACK_ITEM_BLOCKS;
    struct pack_item {
        int matrix;
        uint64_t b0; /* first block */
    } *item = malloc(items * sizeof *item + 1);
    if (!item) {
        if (arena)
            munmap(arena, total);
        free(list);
        free(offset);
        return dsq_fail(err, DSQ_ERESOURCE, "out of memory");
    }
    for (int i = 0, it = 0; i < n; i++)
        for (uint64_t b = 0; offset[i] != UNPACKED && b < (uint64_t)list[i]->rows / DSQ_QPACK_ROWS;
             b += PACK_ITEM_BLOCKS)
            item[it++] = (struct pack_item){i, b};
#pragma omp parallel for schedule(dynamic)
    for (uint64_t it = 0; it < items; it++) {
        const int i = item[it].matrix;
        const dsq_matrix *m = list[i];
        const uint64_t blocks = (uint64_t)m->rows / DSQ_QPACK_ROWS, b0 = item[it].b0;
        const uint64_t b1 = b0 + PACK_ITEM_BLOCKS < blocks ? b0 + PACK_ITEM_BLOCKS : blocks;
        for (uint64_t b = b0; b < b1; b++)
            if (m->type == DSQ_TYPE_BF16)
                dsq_bf16pack_block(m->data, (uint64_t)m->rows, (uint64_t)m->cols, b,
                                   (uint8_t *)arena + offset[i]);
            else
                dsq_qpack_block(m->type, m->data, (uint64_t)m->rows, (uint64_t)m->cols,
                                m->group, b, (uint8_t *)arena + offset[i]);
    }
    free(item);
    for (int i = 0; i < n; i++)
        if (offset[i] != UNPACKED)
            list[i]->packed = (uint8_t *)arena + offset[i];
    /* the arena is only read from now on */
    if (arena)
        mprotect(arena, total, PROT_READ);
    w->packed_arena = arena;
    w->packed_bytes = total;
    free(list);
    free(offset);
    return DSQ_OK;
}

void cpu_pack_free(model_weights *w, int n_routed_experts)
{
    const int n = list_matrices(w, n_routed_experts, NULL, NULL);
    dsq_matrix **list = malloc((size_t)n * sizeof *list);
    if (!list)
        return;
    list_matrices(w, n_routed_experts, NULL, list);
    for (int i = 0; i < n; i++)
        list[i]->packed = NULL;
    free(list);
    if (w->packed_arena)
        munmap(w->packed_arena, w->packed_bytes);
    w->packed_arena = NULL;
    w->packed_bytes = w->unpacked_bytes = 0;
}
