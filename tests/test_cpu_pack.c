/* The CPU engine's packed weights (runtime/cpu_pack.c) inside whole models, every fixture family
 * at q8, q4 (whose tiny-v2 keeps q_b in bf16, so the packed bf16 kernel runs too) and bf16:
 * - every matrix product the forward pass asks of a packed matrix equals the planar integer
 *   kernels' on the same input within the fp32 bound of quant/qdot.h (the integer sums and the
 *   activation codes are the same; only the order of the per-group fp32 terms differs), which
 *   checks each packed matrix at its real shape with real activations;
 * - packing reaches every matrix whose rows fill 16-row blocks, and only those;
 * - the logits stay within the int8-activation bound of tests/test_quant_model.c of the f32
 *   path, and at bf16 within the same bound for bf16 activations (AMX prompts round them);
 * - copies are made only where the memory available holds them: none with 1 kB, all but the
 *   bf16 ones when bf16 lacks room for twice its copies, everything with enough.
 * Comparing packed and planar logits directly would not be fair: a rounding difference upstream
 * can move one activation code downstream, by up to 1/254 of its group's largest. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cpu.h"
#include "bf16pack.h"
#include "convert.h"
#include "cpu_pack.h"
#include "float16.h"
#include "model.h"
#include "q4.h"
#include "q8.h"
#include "qdot.h"
#include "qpack.h"
#include "test.h"
#include "types.h"

static const char *families[] = {"tiny-v1", "tiny-v2-lite", "tiny-v2"};
static const char *presets[] = {"q8", "q4", "bf16"};
static const int prompt[] = {510, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 260};
#define N_PROMPT (int)(sizeof prompt / sizeof prompt[0])

static int calls_checked, values_off;

/* T of quant/qdot.h's bound for row r and the rounded row x (plain order): the sum over groups
 * of |d xd| sum |q qx| + |m xd xs|. */
static double magnitude(const dsq_matrix *w, int r, dsq_qx x)
{
    const uint64_t rows = (uint64_t)w->rows, cols = (uint64_t)w->cols, ng = cols / w->group;
    double t = 0;
    for (uint64_t g = 0; g < ng; g++) {
        double d, m = 0, s = 0;
        if (w->type == DSQ_TYPE_Q8) {
            d = dsq_f16_to_f32(dsq_q8_scales(w->data, rows, cols)[(uint64_t)r * ng + g]);
            for (uint64_t k = g * w->group; k < (g + 1) * w->group; k++)
                s += abs(((const int8_t *)w->data)[(uint64_t)r * cols + k] * x.q[k]);
        } else {
            const uint16_t *dm = dsq_q4_scales(w->data, rows, cols) + 2 * ((uint64_t)r * ng + g);
            d = dsq_f16_to_f32(dm[0]);
            m = dsq_f16_to_f32(dm[1]);
            for (uint64_t k = g * w->group; k < (g + 1) * w->group; k++) {
                const uint8_t b = ((const uint8_t *)w->data)[((uint64_t)r * cols + k) / 2];
                s += abs((k & 1 ? b >> 4 : b & 15) * x.q[k]);
            }
        }
        t += fabs(d * x.d[g]) * s + fabs(m * x.d[g] * x.s[g]);
    }
    return t;
}

/* A packed bf16 matrix's product against the dot in double: within (K + 1) u sum |w x|, or on
 * the AMX path (a prompt with rounded activations) its bound (quant/bf16pack.h). */
static void check_bf16(const dsq_matrix *w, const float *x, const float *y, int n)
{
    const bool amx = n > 1 && dsq_cpu_int8_activations() && dsq_bf16pack_amx_have() &&
                     dsq_bf16pack_amx_fits((uint64_t)w->rows, (uint64_t)w->cols);
    const double u = ldexp(1, -24);
    for (int t = 0; t < n; t++)
        for (int r = 0; r < w->rows; r++) {
            double exact = 0, mag = 0;
            for (int k = 0; k < w->cols; k++) {
                const double p = (double)dsq_bf16_to_f32(
                                     ((const uint16_t *)w->data)[(size_t)r * w->cols + k]) *
                                 x[(size_t)t * w->cols + k];
                exact += p;
                mag += fabs(p);
            }
            const double bound =
                amx ? (ldexp(1, -8) + (w->cols + 1) * u * (1 + ldexp(1, -8))) * mag +
                          w->cols * ldexp(1, -126)
                    : (w->cols + 1) * u * mag;
            values_off += !(fabs(y[(size_t)t * w->rows + r] - exact) <= bound);
        }
    calls_checked++;
}

/* The CPU backend's product, then for a packed matrix the planar one on the same input (bf16:
 * the exact dot). */
static void checked_matmul(const dsq_matrix *w, const float *x, float *y, int n)
{
    dsq_backend_cpu.matmul(w, x, y, n);
    if (!w->packed)
        return;
    if (w->type == DSQ_TYPE_BF16) {
        check_bf16(w, x, y, n);
        return;
    }
    dsq_matrix planar = *w;
    planar.packed = NULL;
    float *want = malloc((size_t)n * w->rows * sizeof(float));
    void *buf = malloc(dsq_qx_bytes((uint64_t)w->cols, w->group));
    dsq_backend_cpu.matmul(&planar, x, want, n);
    const dsq_qx q = dsq_qx_at(buf, (uint64_t)w->cols, w->group);
    for (int t = 0; t < n; t++) {
        dsq_qx_quantize(DSQ_TYPE_Q8, x + (size_t)t * w->cols, (uint64_t)w->cols, w->group, q);
        for (int r = 0; r < w->rows; r++) {
            /* each path within (8 ng + 16) u T of the definition */
            const double bound =
                2 * (8.0 * w->cols / w->group + 16) * ldexp(1, -24) * magnitude(w, r, q);
            const size_t i = (size_t)t * w->rows + r;
            values_off += !(fabs((double)y[i] - want[i]) <= bound);
        }
    }
    calls_checked++;
    free(want);
    free(buf);
}

static float *logits(model *m)
{
    float *out = malloc((size_t)N_PROMPT * m->cfg->vocab_size * sizeof(float));
    dsq_error err;
    model_reset(m);
    CHECK(model_forward(m, prompt, N_PROMPT, out, true, &err) == DSQ_OK);
    return out;
}

/* Converts a fixture family at preset (group 32) and opens it; false, failing the test, if
 * either step fails. tiny-v2's q_b reads the 48-wide q latent, which no group of 32 divides, so
 * it stays bf16 (and the packed bf16 kernel runs too). */
static bool open_fixture(const char *family, const char *preset, model *m)
{
    char dir[512], out[512];
    snprintf(dir, sizeof dir, "%s/%s", test_data_dir(), family);
    snprintf(out, sizeof out, "%s/pack-%s-%s.dsq", test_tmp_dir(), family, preset);
    convert_options o = {.hf_dir = dir, .out_path = out, .threads = 2,
                         .recipe = {.preset = preset, .group_size = 32,
                                    .overrides = {"layers.*.attn.q_b=bf16"},
                                    .n_overrides = strcmp(family, "tiny-v2") == 0}};
    convert_stats st;
    dsq_error err = {0};
    /* an f32 cache: the bound below counts the kernels' rounding alone */
    model_set_kv_cache(KV_CACHE_F32);
    const bool ok = dsq_convert(&o, &st, &err) == DSQ_OK && model_open(m, out, 64, &err) == DSQ_OK;
    model_set_kv_cache(KV_CACHE_BF16);
    if (!ok) {
        CHECK_MSG(false, "%s: %s", out, err.msg);
        return false;
    }
    free(st.unused_overrides);
    return true;
}

TEST(packed_matrices_in_models_match_the_planar_kernels)
{
    if (!cpu_pack_useful()) {
        printf("  skipped: this CPU has no AVX2 (the packed kernels do not run here)\n");
        return;
    }
    dsq_backend checked = dsq_backend_cpu;
    checked.matmul = checked_matmul;
    for (int f = 0; f < 3; f++)
        for (int p = 0; p < 3; p++) {
            model m;
            if (!open_fixture(families[f], presets[p], &m))
                continue;
            dsq_error err = {0};
            dsq_cpu_set_int8_activations(false);
            float *exact = logits(&m);
            dsq_cpu_set_int8_activations(true);
            CHECK(cpu_pack_weights(&m.w, m.cfg->n_routed_experts, &err) == DSQ_OK);
            int packed = 0, wrong = 0;
            for (int l = 0; l < m.w.n_layers; l++) {
                const layer_weights *L = &m.w.layers[l];
                const dsq_matrix *some[] = {&L->wq, &L->q_a, &L->kv_a, &L->kv_b, &L->wo,
                                            &L->dense.gate, &L->dense.down, &L->shared.up};
                for (size_t i = 0; i < sizeof some / sizeof *some; i++) {
                    const dsq_matrix *w = some[i];
                    if (!w->data)
                        continue;
                    const bool fits =
                        w->type == DSQ_TYPE_BF16
                            ? dsq_bf16pack_have() &&
                                  dsq_bf16pack_fits((uint64_t)w->rows, (uint64_t)w->cols)
                            : dsq_qpack_fits(w->type, (uint64_t)w->rows, (uint64_t)w->cols,
                                             w->group);
                    wrong += fits != (w->packed != NULL);
                    packed += w->packed != NULL;
                }
                for (int e = 0; L->moe && e < m.cfg->n_routed_experts; e++)
                    wrong += !L->experts[e].gate.packed || !L->experts[e].down.packed;
            }
            CHECK_MSG(wrong == 0 && packed > 0, "%s %s: %d packed, %d wrong", families[f],
                      presets[p], packed, wrong);
            calls_checked = values_off = 0;
            m.be = &checked;
            float *got = logits(&m);
            m.be = &dsq_backend_cpu;
            CHECK_MSG(calls_checked > 0 && values_off == 0, "%s %s: %d products, %d values off",
                      families[f], presets[p], calls_checked, values_off);
            /* the int8-activation bound of tests/test_quant_model.c with the weights unchanged:
             * 9 e_x, e_x = sqrt(G) / (127 sqrt 12) at group 32; bf16 activations: e_x the RMS of
             * a relative rounding error uniform within 2^-8, 2^-8 / sqrt 3 */
            const bool bf16 = strcmp(presets[p], "bf16") == 0;
            double diff2 = 0, base2 = 0;
            for (size_t i = 0; i < (size_t)N_PROMPT * m.cfg->vocab_size; i++) {
                diff2 += ((double)got[i] - exact[i]) * ((double)got[i] - exact[i]);
                base2 += (double)exact[i] * exact[i];
            }
            const double rel = sqrt(diff2 / base2),
                         bound = 9 * (bf16 ? ldexp(1, -8) / sqrt(3.0)
                                           : sqrt(32.0) / (127 * sqrt(12.0)));
            printf("  %s %s: %d packed products checked; logits vs f32 path rel. RMS %.4f "
                   "(bound %.4f)\n",
                   families[f], presets[p], calls_checked, rel, bound);
            CHECK_MSG(rel <= bound, "%s %s: logits moved %.4f", families[f], presets[p], rel);
            free(exact);
            free(got);
            model_close(&m);
        }
}

/* dsq_cpu_dot_rows (one vector against a run of rows, as absorbed MLA takes each head's W_UV)
 * gives the run's outputs of the backend's matmul of that vector bit for bit wherever both take
 * the same kernel: q8/q4 with int8 activations, packed (runs of whole 16-row blocks) and planar
 * (matrices without a copy, at runs that are not whole blocks too), and with f32 activations,
 * where a decode step's matmul runs the fused row kernel too. Every fixture family, kv_b's per-head
 * value rows for MLA, and runs of wo. */
static void random_unit(float *x, int n) /* in [-1, 1), from a fixed seed */
{
    static uint64_t state = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < n; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        x[i] = (float)(state >> 40) / (float)(1 << 23) - 1.0f;
    }
}

static int dot_rows_mismatches(const dsq_matrix *w, int r0, int nr, const float *x)
{
    float *full = malloc((size_t)w->rows * sizeof(float)),
          *run = malloc((size_t)nr * sizeof(float));
    void *scratch = aligned_alloc(64, (dsq_cpu_dot_rows_scratch(w) + 63) / 64 * 64);
    dsq_backend_cpu.matmul(w, x, full, 1);
    dsq_cpu_dot_rows(w, r0, nr, x, run, scratch);
    const int bad = memcmp(full + r0, run, (size_t)nr * sizeof(float)) != 0;
    free(full);
    free(run);
    free(scratch);
    return bad;
}

TEST(dot_rows_give_the_matmul_rows)
{
    for (int f = 0; f < 3; f++)
        for (int p = 0; p < 2; p++) { /* q8, q4 */
            model m;
            if (!open_fixture(families[f], presets[p], &m))
                continue;
            dsq_error err = {0};
            const dsq_model_config *c = m.cfg;
            int runs = 0, bad = 0;
            for (int packed = 0; packed < 2; packed++) {
                dsq_cpu_set_int8_activations(true); /* q8/q4 copies are made for int8 */
                if (packed && cpu_pack_useful())
                    CHECK(cpu_pack_weights(&m.w, c->n_routed_experts, &err) == DSQ_OK);
                for (int f32 = 0; f32 < 2; f32++) {
                    dsq_cpu_set_int8_activations(!f32);
                    const layer_weights *L = &m.w.layers[c->n_layers - 1];
                    float *x = malloc((size_t)L->kv_b.cols * sizeof(float) +
                                      (size_t)L->wo.cols * sizeof(float));
                    random_unit(x, L->kv_b.data ? L->kv_b.cols : 0);
                    if (L->kv_b.data) { /* the heads' W_UV: rows h kvw + nope, vd of them */
                        const int kvw = c->qk_nope_head_dim + c->v_head_dim;
                        for (int h = 0; h < c->n_heads; h++, runs++)
                            bad += dot_rows_mismatches(&L->kv_b, h * kvw + c->qk_nope_head_dim,
                                                       c->v_head_dim, x);
                    }
                    float *xo = x + (L->kv_b.data ? L->kv_b.cols : 0);
                    random_unit(xo, L->wo.cols);
                    /* runs of part blocks take the planar kernel: only where the matmul does */
                    const int starts[][2] = {{0, 16}, {16, 32}, {5, 7}, {L->wo.rows - 3, 3}};
                    for (int i = 0; i < (packed ? 2 : 4); i++, runs++)
                        bad += dot_rows_mismatches(&L->wo, starts[i][0], starts[i][1], xo);
                    free(x);
                }
            }
            dsq_cpu_set_int8_activations(true);
            CHECK_MSG(bad == 0, "%s %s: %d of %d runs differ", families[f], presets[p], bad, runs);
            model_close(&m);
        }
}

/* Packs m under a MemAvailable of kb kilobytes (through DSQ_MEMINFO); returns how many matrices
 * of each kind got a copy. */
static void pack_with_memory(model *m, unsigned long long kb, int *int8, int *bf16)
{
    char path[512];
    snprintf(path, sizeof path, "%s/meminfo", test_tmp_dir());
    FILE *f = fopen(path, "w");
    fprintf(f, "MemTotal:       %llu kB\nMemAvailable:   %llu kB\n", kb * 2, kb);
    fclose(f);
    setenv("DSQ_MEMINFO", path, 1);
    cpu_pack_free(&m->w, m->cfg->n_routed_experts);
    dsq_error err = {0};
    CHECK(cpu_pack_weights(&m->w, m->cfg->n_routed_experts, &err) == DSQ_OK);
    unsetenv("DSQ_MEMINFO");
    *int8 = *bf16 = 0;
    for (int l = 0; l < m->w.n_layers; l++) {
        const layer_weights *L = &m->w.layers[l];
        const dsq_matrix *all[] = {&L->q_a, &L->q_b, &L->kv_a, &L->kv_b, &L->wo};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            if (all[i]->data && all[i]->packed)
                ++*(all[i]->type == DSQ_TYPE_BF16 ? bf16 : int8);
    }
}

TEST(packing_leaves_out_what_memory_cannot_hold)
{
    if (!cpu_pack_useful() || !dsq_bf16pack_have()) {
        printf("  skipped: this CPU does not run both packed kernels\n");
        return;
    }
    model m;
    if (!open_fixture("tiny-v2", "q8", &m))
        return;
    int int8, bf16;
    pack_with_memory(&m, 1ull << 40, &int8, &bf16); /* plenty: everything */
    const uint64_t all = m.w.packed_bytes;
    uint64_t bf16_bytes = 0;
    for (int l = 0; l < m.w.n_layers; l++)
        if (m.w.layers[l].q_b.packed)
            bf16_bytes += (uint64_t)m.w.layers[l].q_b.rows * m.w.layers[l].q_b.cols * 2;
    CHECK_MSG(int8 > 0 && bf16 == m.w.n_layers && m.w.unpacked_bytes == 0,
              "plenty: %d q8, %d bf16 packed, %llu left out", int8, bf16,
              (unsigned long long)m.w.unpacked_bytes);
    /* room for every copy once, not for the bf16 ones twice: the bf16 copies go */
    const int int8_all = int8;
    pack_with_memory(&m, (all + 1023) / 1024, &int8, &bf16);
    CHECK_MSG(int8 == int8_all && bf16 == 0 && m.w.unpacked_bytes == bf16_bytes,
              "tight: %d q8, %d bf16 packed, %llu of %llu bf16 bytes left out", int8, bf16,
              (unsigned long long)m.w.unpacked_bytes, (unsigned long long)bf16_bytes);
    pack_with_memory(&m, 1, &int8, &bf16); /* 1 kB: nothing */
    CHECK_MSG(int8 == 0 && bf16 == 0 && m.w.packed_arena == NULL && m.w.unpacked_bytes == all,
              "1 kB: %d q8, %d bf16 packed, %llu of %llu bytes left out", int8, bf16,
              (unsigned long long)m.w.unpacked_bytes, (unsigned long long)all);
    model_close(&m);
}

/* A matrix of more blocks than one packing work item takes (the head: 6400 blocks) is packed
 * by several items, on any thread: the copy must be exactly the blocks packed one by one. q6
 * (600 blocks of 16 rows) and q8 (300, two items). */
TEST(large_matrices_pack_in_pieces_into_the_same_bytes)
{
    if (!cpu_pack_useful() || !dsq_qpack_fits(DSQ_TYPE_Q6, 9600, 64, 32)) {
        printf("  skipped: this CPU has no AVX2 (the packed kernels do not run here)\n");
        return;
    }
    static const struct { uint32_t type; int rows; } cases[] = {{DSQ_TYPE_Q6, 9600},
                                                                {DSQ_TYPE_Q8, 4800}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const uint64_t rows = (uint64_t)cases[c].rows, cols = 64;
        uint64_t bytes;
        CHECK(dsq_type_nbytes(cases[c].type, rows, cols, 32, &bytes));
        uint8_t *data = malloc(bytes), *want = malloc(bytes);
        uint64_t state = 0x9e3779b97f4a7c15ull;
        for (uint64_t i = 0; i < bytes; i++) { /* any codes; scales kept finite below */
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            data[i] = (uint8_t)state;
        }
        const uint64_t codes = bytes - 2 * rows * (cols / 32);
        for (uint64_t i = 0; i < rows * (cols / 32); i++)
            ((uint16_t *)(void *)(data + codes))[i] = dsq_f32_to_f16(0.001f * (float)(i % 7));
        if (cases[c].type == DSQ_TYPE_Q8) /* q8 codes stay in [-127, 127] */
            for (uint64_t i = 0; i < codes; i++)
                data[i] = data[i] == 0x80 ? 0x81 : data[i];
        for (uint64_t b = 0; b < rows / DSQ_QPACK_ROWS; b++)
            dsq_qpack_block(cases[c].type, data, rows, cols, 32, b, want);
        model_weights w = {0};
        w.output = (dsq_matrix){data, cases[c].type, (int)rows, (int)cols, 32, NULL};
        dsq_error err = {0};
        CHECK(cpu_pack_weights(&w, 0, &err) == DSQ_OK);
        CHECK_MSG(w.output.packed && memcmp(w.output.packed, want, bytes) == 0,
                  "type %u: the packed copy differs", cases[c].type);
        cpu_pack_free(&w, 0);
        free(data);
        free(want);
    }
}

/* With routed experts on a device (the CUDA offload), only the others get packed copies: the
 * host computes nothing else. */
TEST(packing_for_a_device_takes_only_the_host_experts)
{
    if (!cpu_pack_useful()) {
        printf("  no packed kernels on this CPU: nothing to check\n");
        return;
    }
    model m;
    if (!open_fixture("tiny-v2-lite", "q4", &m))
        return;
    const int ne = m.cfg->n_routed_experts;
    unsigned char *on_gpu = calloc((size_t)m.w.n_layers * ne, 1);
    for (int l = 0; l < m.w.n_layers; l++)
        for (int e = 0; e < ne; e += 2)
            on_gpu[(size_t)l * ne + e] = 1;
    dsq_error err = {0};
    CHECK(cpu_pack_host_experts(&m.w, ne, on_gpu, &err) == DSQ_OK);
    int host = 0, device = 0;
    CHECK(m.w.output.packed == NULL);
    for (int l = 0; l < m.w.n_layers; l++) {
        const layer_weights *L = &m.w.layers[l];
        const dsq_matrix *other[] = {&L->wq,         &L->kv_a,        &L->kv_b,       &L->wo,
                                     &L->dense.gate, &L->shared.gate, &L->shared.down};
        for (size_t i = 0; i < sizeof other / sizeof *other; i++)
            CHECK(other[i]->packed == NULL);
        for (int e = 0; L->moe && e < ne; e++) {
            const ffn_weights *x = &L->experts[e];
            const bool on_host = !on_gpu[(size_t)l * ne + e];
            CHECK((x->gate.packed != NULL) == on_host && (x->up.packed != NULL) == on_host &&
                  (x->down.packed != NULL) == on_host);
            on_host ? host++ : device++;
        }
    }
    CHECK(host > 0 && device > 0);
    printf("  %d host experts packed, %d device experts left planar\n", host, device);
    free(on_gpu);
    model_close(&m);
}
