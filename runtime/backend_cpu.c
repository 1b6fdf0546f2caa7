/* CPU backend. q8/q6/q4 matmuls round each token's activations once to int8 and run the integer
 * kernels: on the packed copy of the weights (quant/qpack.h; 16 rows by 8 tokens, with
 * AVX-512 VNNI, AVX-VNNI or AVX2, the same ISA as the planar path they replace) where the
 * engine made one, else quant/qdot.h's (VNNI or AVX2, else the scalar reference) in tiles of
 * four weight rows by four tokens; prompts of 12 tokens or more on CPUs with AMX run the packed
 * q8/q6/q4 products on tiles instead (quant/qpack_amx.c, the same bits as the VNNI kernel);
 * bf16 prompts on CPUs with AMX round the activations to bf16 once per matmul and run the tile
 * kernel (quant/bf16pack_amx.c) on the packed copy, unless f32 activations were asked for;
 * f32/bf16/f16 weights run the float tiles of quant/dot.h
 * (4 rows by 4 tokens with AVX-512, by 2 with AVX2; f32 activations); q8/q6/q4 with f32
 * activations, and everything on the scalar path, dot each weight row with every token through
 * the fused float kernels. Rows are split across OpenMP threads in blocks small enough to stay
 * in cache while every token passes over them (handed out as threads free up in a prompt, split
 * evenly in a decode step). get_row widens with the fast dequantizer (AVX2 where the CPU has
 * it), whose floats are the reference's bit for bit. */
#include "backend_cpu.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "backend.h"
#include "bf16pack.h"
#include "dequant.h"
#include "dot.h"
#include "qdot.h"
#include "qpack.h"
#include "types.h"

/* Below this many multiply-adds a parallel region costs more than it saves (and on a busy
 * machine spinning threads wait for descheduled ones). */
#define PARALLEL_MIN_WORK (1l << 20)

/* Rows dotted with one token before moving to the next: the token's x stays in L1 while a block
 * of rows (at most 16 * cols * 4 bytes) stays in L2. */
#define ROW_BLOCK 16

static void widen_row(const dsq_matrix *w, int r, float *out)
{
    dsq_dequant_row_fast(w->type, w->data, (uint64_t)w->rows, (uint64_t)w->cols, w->group,
                         (uint64_t)r, out);
}

static atomic_bool f32_activations;


void dsq_cpu_set_int8_activations(bool on)
{
    atomic_store_explicit(&f32_activations, !on, memory_order_relaxed);
}

bool dsq_cpu_int8_activations(void)
{
    return !atomic_load_explicit(&f32_activations, memory_order_relaxed);
}

/* Rows per block: ROW_BLOCK, or fewer when there are too few rows to give every thread one. */
static int row_block(int rows)
{
    const int per_thread = (rows + omp_get_max_threads() - 1) / omp_get_max_threads();
    return per_thread < 1 ? 1 : per_thread < ROW_BLOCK ? per_thread : ROW_BLOCK;
}

static bool is_int8(const dsq_matrix *w)
{
    return (w->type == DSQ_TYPE_Q8 || w->type == DSQ_TYPE_Q4 || w->type == DSQ_TYPE_Q6) &&
           dsq_cpu_int8_activations();
}

/* Whether w's int8 products take its packed copy: int8 activations, a copy, the packed kernels
 * in use, and the path running now has a kernel for this type (q6 has none on AVX-512),
 * whichever path packed the copy. */
static bool packed_int8(const dsq_matrix *w)
{
    return is_int8(w) && w->packed && dsq_qpack_replaces_qdot() &&
           dsq_qpack_fits(w->type, (uint64_t)w->rows, (uint64_t)w->cols, w->group);
}

/* What one job needs beyond its arguments: its row blocks, and its activations prepared once
 * (int8 rows for the integer kernels, or q4 group sums for the float kernels; none if the
 * float kernels go without them). Jobs that read the same x in the same form share one
 * preparation, made by the first of them (the owner) for every row of x any of them reads. */
typedef struct {
    int rb, first_block; /* rows per block; index of its first block among all jobs' */
    bool int8;
    bool packed; /* int8 on the row-interleaved copy (quant/qpack.h), 16-row blocks */
    bool amx_int8;    /* packed, a prompt on AMX tiles (quant/qpack_amx.c) */
    bool bf16_packed; /* bf16 on its row-interleaved copy (quant/bf16pack.h), 16-row blocks */
    bool amx; /* bf16_packed on AMX tiles: prep holds this job's tokens' rows as bf16, in token
               * order, padded to whole tiles */
    uint32_t order; /* the form of the prepared rows: the code order, or the weight type */
    int owner;      /* the job whose prep this one reads (itself if it prepares) */
    int prep_rows;  /* owners: rows of x prepared */
    int tile; /* plain float weights on a tile kernel: 0 none, 2 AVX2 (2 tokens), 4 AVX-512 */
    uint64_t xb; /* bytes of one rounded row (int8) or floats of one row's sums */
    void *prep;  /* owners: the prepared rows, or NULL */
} job_plan;

/* The row of x that is token t of job j. */
static inline int x_row(const dsq_matmul_job *j, int t)
{
    return j->x_rows ? j->x_rows[t] : t;
}

/* Rows r0..r1 of job j for all its tokens. */
static void run_block(const dsq_matmul_job *j, const job_plan *p, const void *prep, int r0,
                      int r1)
{
    const dsq_matrix *w = j->w;
    const int rows = w->rows, cols = w->cols, n = j->n;
    if (p->amx) {
        for (int b = r0 / DSQ_QPACK_ROWS; b < r1 / DSQ_QPACK_ROWS; b += DSQ_BF16PACK_MAX_BLOCKS)
            dsq_bf16pack_amx(w->packed, (uint64_t)cols, (uint64_t)b,
                             r1 / DSQ_QPACK_ROWS - b < 2 ? 1 : 2, prep, n, j->y, (size_t)rows);
        return;
    }
    if (p->bf16_packed) {
        for (int t = 0; t < n; t += DSQ_BF16PACK_MAX_TOKENS) {
            const int nt = n - t < DSQ_BF16PACK_MAX_TOKENS ? n - t : DSQ_BF16PACK_MAX_TOKENS;
            const float *xt[DSQ_BF16PACK_MAX_TOKENS];
            for (int k = 0; k < nt; k++)
                xt[k] = j->x + (size_t)x_row(j, t + k) * cols;
            for (int b = r0 / DSQ_QPACK_ROWS; b < r1 / DSQ_QPACK_ROWS;
                 b += DSQ_BF16PACK_MAX_BLOCKS) {
                const int nb = r1 / DSQ_QPACK_ROWS - b < DSQ_BF16PACK_MAX_BLOCKS
                                   ? r1 / DSQ_QPACK_ROWS - b
                                   : DSQ_BF16PACK_MAX_BLOCKS;
                dsq_bf16pack_tile(w->packed, (uint64_t)cols, (uint64_t)b, nb, xt, nt,
                                  j->y + (size_t)t * rows, (size_t)rows);
            }
        }
        return;
    }
    if (p->amx_int8) {
        for (int t = 0; t < n; t += DSQ_QPACK_AMX_MAX_TOKENS) {
            const int nt = n - t < DSQ_QPACK_AMX_MAX_TOKENS ? n - t : DSQ_QPACK_AMX_MAX_TOKENS;
            dsq_qx xt[DSQ_QPACK_AMX_MAX_TOKENS];
            for (int k = 0; k < nt; k++)
                xt[k] = dsq_qx_at((uint8_t *)prep + (size_t)x_row(j, t + k) * p->xb, (uint64_t)cols,
                                  w->group);
            for (int b = r0 / DSQ_QPACK_ROWS; b < r1 / DSQ_QPACK_ROWS; b += 2)
                dsq_qpack_amx(w->type, w->packed, (uint64_t)rows, (uint64_t)cols, w->group,
                              (uint64_t)b, r1 / DSQ_QPACK_ROWS - b < 2 ? 1 : 2, xt, nt,
                              j->y + (size_t)t * rows, (size_t)rows);
        }
        return;
    }
    if (p->packed) {
        for (int t = 0; t < n; t += DSQ_QPACK_MAX_TOKENS) {
            const int nt = n - t < DSQ_QPACK_MAX_TOKENS ? n - t : DSQ_QPACK_MAX_TOKENS;
            dsq_qx xt[DSQ_QPACK_MAX_TOKENS];
            for (int k = 0; k < nt; k++)
                xt[k] = dsq_qx_at((uint8_t *)prep + (size_t)x_row(j, t + k) * p->xb,
                                  (uint64_t)cols, w->group);
            for (int b = r0 / DSQ_QPACK_ROWS; b < r1 / DSQ_QPACK_ROWS; b++)
                dsq_qpack_tile(w->type, w->packed, (uint64_t)rows, (uint64_t)cols, w->group,
                               (uint64_t)b, xt, nt, j->y + (size_t)t * rows, (size_t)rows);
        }
        return;
    }
    if (p->int8) {
        for (int t = 0; t < n; t += DSQ_QDOT_MAX_TOKENS) { /* tiles of 4 rows by 4 tokens */
            const int nt = n - t < DSQ_QDOT_MAX_TOKENS ? n - t : DSQ_QDOT_MAX_TOKENS;
            dsq_qx xt[DSQ_QDOT_MAX_TOKENS];
            for (int k = 0; k < nt; k++)
                xt[k] = dsq_qx_at((uint8_t *)prep + (size_t)x_row(j, t + k) * p->xb,
                                  (uint64_t)cols, w->group);
            for (int r = r0; r < r1; r += 4)
                dsq_qdot_tile(w->type, w->data, (uint64_t)rows, (uint64_t)cols, w->group,
                              (uint64_t)r, r1 - r < 4 ? r1 - r : 4, xt, nt,
                              j->y + (size_t)t * rows + r, (size_t)rows);
        }
        return;
    }
#if defined(__x86_64__)
    if (p->tile) {
        for (int t = 0; t < n; t += p->tile) { /* tiles of 4 rows by 2 or 4 tokens */
            const int nt = n - t < p->tile ? n - t : p->tile;
            const float *xt[4];
            for (int k = 0; k < 4; k++)
                xt[k] = j->x + (size_t)x_row(j, t + (k < nt ? k : 0)) * cols;
            for (int r = r0; r < r1; r += 4) {
                const int nr = r1 - r < 4 ? r1 - r : 4;
                float *yt = j->y + (size_t)t * rows + r;
                if (p->tile == 4)
                    dsq_dot_tile_avx512(w->type, w->data, (uint64_t)cols, (uint64_t)r, nr, xt,
                                        nt, yt, (size_t)rows);
                else
                    dsq_dot_tile_avx2(w->type, w->data, (uint64_t)cols, (uint64_t)r, nr, xt, nt,
                                      yt, (size_t)rows);
            }
        }
        return;
    }
#endif
    for (int t = 0; t < n; t++) {
        const float *xt = j->x + (size_t)x_row(j, t) * cols;
        const float *st = prep ? (const float *)prep + (size_t)x_row(j, t) * p->xb : NULL;
        for (int r = r0; r < r1; r++)
            j->y[(size_t)t * rows + r] = dsq_dot_row(w->type, w->data, (uint64_t)rows,
                                                     (uint64_t)cols, w->group, (uint64_t)r, xt, st);
    }
}

/* Row r of x, prepared for job j (an owner). */
static void prepare_row(const dsq_matmul_job *j, const job_plan *p, int r)
{
    const dsq_matrix *w = j->w;
    if (p->amx) { /* row r of the job's tokens */
        dsq_bf16_round_rows(j->x + (size_t)x_row(j, r) * w->cols, (uint64_t)w->cols,
                            (uint16_t *)p->prep + (size_t)r * w->cols);
        return;
    }
    const float *x = j->x + (size_t)r * w->cols;
    if (p->int8)
        dsq_qx_quantize(p->order, x, (uint64_t)w->cols, w->group,
                        dsq_qx_at((uint8_t *)p->prep + (size_t)r * p->xb, (uint64_t)w->cols,
                                  w->group));
    else
        dsq_dot_xsums(w->type, x, (uint64_t)w->cols, w->group,
                      (float *)p->prep + (size_t)r * p->xb);
}

/* Block b of all the jobs' blocks, numbered in job order. */
static void run_nth_block(const dsq_matmul_job *jobs, const job_plan *plan, int b)
{
    int i = 0;
    while (plan[i + 1].first_block <= b)
        i++;
    const int r0 = (b - plan[i].first_block) * plan[i].rb;
    const int r1 = r0 + plan[i].rb < jobs[i].w->rows ? r0 + plan[i].rb : jobs[i].w->rows;
    run_block(&jobs[i], &plan[i], plan[plan[i].owner].prep, r0, r1);
}

int dsq_cpu_matmul_many(const dsq_matmul_job *jobs, int count)
{
    job_plan *plan = calloc((size_t)count + 1, sizeof *plan);
    int *row_start = malloc(((size_t)count + 1) * sizeof(int));
    if (!plan || !row_start) {
        free(plan);
        free(row_start);
        return DSQ_ERESOURCE;
    }
    int rc = DSQ_OK, blocks = 0, rows_to_prepare = 0;
    const bool have_avx512 = dsq_dot_have_avx512();
    long work = 0;
    /* Prompts hand blocks out as threads free up. A prompt's experts take different token
     * counts, and a static split gave one of two threads 1.5x the other's share of the MoE
     * (the shared expert's blocks, all the prompt's tokens, come last); and on a VM one core
     * often runs slower than the other for a while, which a static split waits out. Decode
     * keeps the static split: its blocks are small and the same, and handing them out cost
     * 4-7% of full-width q4 decode. */
    bool prompt = false;
    for (int i = 0; i < count; i++) {
        const dsq_matmul_job *j = &jobs[i];
        const dsq_matrix *w = j->w;
        job_plan *p = &plan[i];
        p->int8 = is_int8(w);
        p->packed = packed_int8(w);
        p->amx_int8 = p->packed && j->n >= DSQ_QPACK_AMX_MIN_TOKENS &&
                      dsq_qpack_current() == DSQ_QDOT_AVX512VNNI &&
                      dsq_qpack_amx_fits(w->type, (uint64_t)w->rows, (uint64_t)w->cols, w->group) &&
                      dsq_qpack_amx_have();
        /* one token keeps the planar tile: its 4 rows of loads stream faster than the packed
         * kernel's single line per block (12 against 21 GB/s on one core, measured) */
        p->bf16_packed = w->type == DSQ_TYPE_BF16 && w->packed && j->n > 1 &&
                         dsq_bf16pack_have();
        p->amx = p->bf16_packed && dsq_cpu_int8_activations() &&
                 dsq_bf16pack_amx_fits((uint64_t)w->rows, (uint64_t)w->cols) &&
                 dsq_bf16pack_amx_have();
        /* the packed kernels take the codes in the plain order, as q8 does */
        p->order = p->packed ? DSQ_TYPE_Q8 : w->type;
        /* a prompt's packed int8 items take two blocks, which share each group of tokens'
         * rounded rows while they are in L1 (q4 prompt of 512 on AVX2: 2-10% faster) */
        p->rb = p->packed        ? DSQ_QPACK_ROWS * (j->n > 1 ? 2 : 1)
                : p->bf16_packed ? DSQ_QPACK_ROWS * DSQ_BF16PACK_MAX_BLOCKS
                                 : row_block(w->rows);
        p->first_block = blocks;
        blocks += (w->rows + p->rb - 1) / p->rb;
        work += (long)w->rows * w->cols * j->n;
        prompt |= j->n > 1;
        if ((w->type == DSQ_TYPE_F32 || w->type == DSQ_TYPE_BF16 || w->type == DSQ_TYPE_F16) &&
            strcmp(dsq_dot_path(), "avx2") == 0)
            p->tile = have_avx512 ? 4 : 2;
        p->xb = p->amx    ? (uint64_t)w->cols * 2
                : p->int8 ? dsq_qx_bytes((uint64_t)w->cols, w->group)
                          : dsq_dot_xsum_len(w->type, (uint64_t)w->cols, w->group);
        int need = 0; /* rows of x this job reads */
        for (int t = 0; t < j->n; t++)
            need = x_row(j, t) + 1 > need ? x_row(j, t) + 1 : need;
        if (p->amx) /* its own tokens, in its order */
            need = j->n;
        p->owner = i;
        /* gate and up, experts of one input: rounded once (amx rows are per job, in its order) */
        for (int o = 0; p->xb && !p->amx && o < i; o++) {
            const job_plan *q = &plan[o];
            if (q->owner == o && q->xb && !q->amx && jobs[o].x == j->x && q->order == p->order &&
                q->int8 == p->int8 && jobs[o].w->cols == w->cols && jobs[o].w->group == w->group) {
                p->owner = o;
                break;
            }
        }
        job_plan *own = &plan[p->owner];
        own->prep_rows = need > own->prep_rows ? need : own->prep_rows;
    }
    for (int i = 0; i < count; i++) {
        job_plan *p = &plan[i];
        row_start[i] = rows_to_prepare;
        if (p->owner != i || !p->xb)
            continue;
        rows_to_prepare += p->prep_rows;
        /* amx: whole tiles of 16 rows (the kernel reads the padding and drops its sums) */
        const size_t rows = p->amx ? (size_t)(p->prep_rows + 15) / 16 * 16 : (size_t)p->prep_rows;
        const size_t bytes = rows * p->xb * (p->int8 || p->amx ? 1 : sizeof(float));
        /* without q4 sums the float kernels compute them per row; int8 and amx need theirs */
        if (!(p->prep = malloc(bytes)) && (p->int8 || p->amx))
            rc = DSQ_ERESOURCE;
        else if (p->amx) /* defined bytes in the padding, though no sum of it is kept */
            memset((uint8_t *)p->prep + (size_t)p->prep_rows * p->xb, 0,
                   bytes - (size_t)p->prep_rows * p->xb);
    }
    plan[count].first_block = blocks;
    row_start[count] = rows_to_prepare;
    /* one parallel region for the whole batch: prepare every row, then every row block */
#pragma omp parallel if (!rc && work > PARALLEL_MIN_WORK)
    if (!rc) {
#pragma omp for schedule(static)
        for (int k = 0; k < rows_to_prepare; k++) {
            int i = 0;
            while (row_start[i + 1] <= k)
                i++;
            if (plan[i].prep)
                prepare_row(&jobs[i], &plan[i], k - row_start[i]);
        }
        if (prompt) {
            /* the last job first: in a MoE batch the shared expert's, the largest, so the
             * blocks left to take at the end are small */
#pragma omp for schedule(dynamic)
            for (int b = blocks - 1; b >= 0; b--)
                run_nth_block(jobs, plan, b);
        } else {
#pragma omp for schedule(static)
            for (int b = 0; b < blocks; b++)
                run_nth_block(jobs, plan, b);
        }
    }
    for (int i = 0; i < count; i++)
        free(plan[i].prep);
    free(plan);
    free(row_start);
    return rc;
}

/* The scratch's first part: the rounded x (int8) or its q4 group sums (float), 64-byte aligned
 * bytes; then, for the packed kernel, which writes rows at their place in the whole matrix, one
 * output per row of w. */
static size_t dot_rows_prep_bytes(const dsq_matrix *w)
{
    const size_t b = is_int8(w)
                         ? dsq_qx_bytes((uint64_t)w->cols, w->group)
                         : dsq_dot_xsum_len(w->type, (uint64_t)w->cols, w->group) * sizeof(float);
    return (b + 63) / 64 * 64;
}

size_t dsq_cpu_dot_rows_scratch(const dsq_matrix *w)
{
    return dot_rows_prep_bytes(w) + (w->packed ? (size_t)w->rows * sizeof(float) : 0);
}

void dsq_cpu_dot_rows(const dsq_matrix *w, int r0, int nr, const float *x, float *y, void *scratch)
{
    const uint64_t rows = (uint64_t)w->rows, cols = (uint64_t)w->cols;
    if (is_int8(w)) {
        /* the packed kernel takes whole 16-row blocks */
        const bool packed = packed_int8(w) && r0 % DSQ_QPACK_ROWS == 0 && nr % DSQ_QPACK_ROWS == 0;
        const dsq_qx qx = dsq_qx_at(scratch, cols, w->group);
        /* the packed kernels take the codes in the plain order, as q8 does */
        dsq_qx_quantize(packed ? DSQ_TYPE_Q8 : w->type, x, cols, w->group, qx);
        if (packed) {
            float *out = (float *)((uint8_t *)scratch + dot_rows_prep_bytes(w));
            for (int b = r0 / DSQ_QPACK_ROWS; b < (r0 + nr) / DSQ_QPACK_ROWS; b++)
                dsq_qpack_tile(w->type, w->packed, rows, cols, w->group, (uint64_t)b, &qx, 1, out,
                               0);
            memcpy(y, out + r0, (size_t)nr * sizeof(float));
        } else {
            for (int r = r0; r < r0 + nr; r += 4)
                dsq_qdot_tile(w->type, w->data, rows, cols, w->group, (uint64_t)r,
                              r0 + nr - r < 4 ? r0 + nr - r : 4, &qx, 1, y + (r - r0), 0);
        }
        return;
    }
    float *sums = dsq_dot_xsum_len(w->type, cols, w->group) ? scratch : NULL;
    if (sums)
        dsq_dot_xsums(w->type, x, cols, w->group, sums);
    for (int i = 0; i < nr; i++)
        y[i] = dsq_dot_row(w->type, w->data, rows, cols, w->group, (uint64_t)(r0 + i), x, sums);
}

static void cpu_matmul(const dsq_matrix *w, const float *x, float *y, int n)
{
    const dsq_matmul_job job = {w, x, y, n, NULL};
    if (dsq_cpu_matmul_many(&job, 1) == DSQ_OK)
        return;
    /* out of memory for the prepared activations: the float kernels need none */
    for (int t = 0; t < n; t++)
        for (int r = 0; r < w->rows; r++)
            y[(size_t)t * w->rows + r] =
                dsq_dot_row(w->type, w->data, (uint64_t)w->rows, (uint64_t)w->cols, w->group,
                            (uint64_t)r, x + (size_t)t * w->cols, NULL);
}

const dsq_backend dsq_backend_cpu = {
    .name = "cpu",
    .matmul = cpu_matmul,
    .get_row = widen_row,
};
