/* The bf16 KV cache (runtime/kv_bf16.h): the AMX tile kernels and MHA's kernels against a double
 * sum over the same bf16 values, and whole fixture models with the bf16 cache against the f32
 * cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_model.h"
#include "float16.h"
#include "kv_bf16.h"
#include "mha_exact.h"

#define TEST_RNG_SEED 0x1a7e47b16ull
#include "test_rng.h"

/* A value of the tile kernels against the exact sum of its terms: the hi/lo split leaves each
 * fp32 operand within 2^-16 of itself (two bf16 roundings, 2^-8 each, the second of what the
 * first left), and TDPBF16PS adds 2 terms per pair into fp32 sums, (2 n + 2) 2^-24 of the sum
 * of |terms| over n products at worst. Without the lo part the first term would be 2^-8. */
static bool within(double got, double exact, double abs_sum, int n)
{
    return fabs(got - exact) <= (ldexp(1, -16) + (2.0 * n + 2) * ldexp(1, -24)) * abs_sum;
}

static uint16_t *random_latents(int ns, size_t cstride)
{
    uint16_t *c = malloc((size_t)ns * cstride * sizeof *c);
    for (size_t i = 0; i < (size_t)ns * cstride; i++) /* a few large values, as RMSNorm outputs */
        c[i] = dsq_f32_to_bf16(rng_uniform(-1, 1) * (i % 61 == 0 ? 20.0f : 1.0f));
    return c;
}

/* scores and weighted sums for one shape, over the first kvr values of cached rows cstride
 * apart; returns the values off their bound, and counts values written outside the rows and
 * positions asked for into *stray. */
static int check_shape(int kvr, size_t cstride, int rows, int ns, int *stray)
{
    const size_t sstride = (size_t)ns + 3; /* scores rows wider than the piece */
    uint16_t *c = random_latents(ns, cstride);
    float *q = malloc((size_t)rows * kvr * sizeof *q);
    for (size_t i = 0; i < (size_t)rows * kvr; i++)
        q[i] = rng_uniform(-2, 2);
    uint16_t *packed = malloc(latent_amx_queries_len(rows, kvr) * sizeof *packed);
    void *scratch = malloc(latent_amx_scratch_bytes(rows, ns, cstride));
    const int spare = 16; /* rows past `rows` that must stay untouched */
    float *scores = malloc((size_t)(rows + spare) * sstride * sizeof *scores);
    float *sums = malloc((size_t)(rows + spare) * kvr * sizeof *sums);
    for (size_t i = 0; i < (size_t)(rows + spare) * sstride; i++)
        scores[i] = NAN;
    for (size_t i = 0; i < (size_t)(rows + spare) * kvr; i++)
        sums[i] = NAN;
    latent_amx_pack_queries(q, rows, kvr, packed);
    latent_amx_scores(c, kvr, cstride, ns, packed, rows, scores, sstride, scratch);
    int bad = 0;
    for (int r = 0; r < rows + spare; r++)
        for (size_t i = 0; i < sstride; i++) {
            const float v = scores[r * sstride + i];
            if (r >= rows || (int)i >= ns) {
                *stray += !isnan(v);
                continue;
            }
            double exact = 0, abs_sum = 0;
            for (int k = 0; k < kvr; k++) {
                const double t =
                    (double)q[(size_t)r * kvr + k] * dsq_bf16_to_f32(c[i * cstride + (size_t)k]);
                exact += t;
                abs_sum += fabs(t);
            }
            bad += !within(v, exact, abs_sum, kvr);
        }
    /* probabilities: the scores' shape, zeros past each row's last seen position as the
     * attention writes them, one row all zeros */
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < ns; i++)
            scores[r * sstride + i] = r == 1 || i > ns - 1 - r % 5 ? 0 : rng_uniform(0, 1);
    latent_amx_weighted_sum(c, kvr, cstride, ns, scores, sstride, rows, sums, scratch, c,
                            cstride * 2);
    for (int r = 0; r < rows + spare; r++)
        for (int j = 0; j < kvr; j++) {
            const float v = sums[(size_t)r * kvr + j];
            if (r >= rows) {
                *stray += !isnan(v);
                continue;
            }
            double exact = 0, abs_sum = 0;
            for (int i = 0; i < ns; i++) {
                const double t =
                    (double)scores[r * sstride + i] * dsq_bf16_to_f32(c[(size_t)i * cstride + j]);
                exact += t;
                abs_sum += fabs(t);
            }
            bad += !within(v, exact, abs_sum, ns);
        }
    free(c);
    free(q);
    free(packed);
    free(scratch);
    free(scores);
    free(sums);
    return bad;
}

TEST(tile_kernels_match_the_exact_sums)
{
    if (!latent_amx_fits(512)) {
        printf("  skipped: this CPU has no AMX-BF16 (the bf16 cache widens its latents)\n");
        return;
    }
    CHECK(!latent_amx_fits(48) && !latent_amx_fits(0)); /* k steps of 32 */
    /* rows: one query row to eight blocks (V2-Lite decodes 16 query rows, V2 128); positions:
     * partial blocks of 16 and 32, a piece of 128; cached rows as long as the values or longer (the
     * sums read the latents of [latent | key] rows; V2's scores take the 576 values of a row) */
    const int kvrs[] = {32, 64, 512, 576}, row_counts[] = {1, 4, 16, 17, 33, 64, 128};
    const int extra[] = {0, 32, 64, 0}; /* cached values past kvr */
    const int position_counts[] = {1, 5, 16, 17, 31, 32, 33, 64, 100, 128};
    int bad = 0, stray = 0, shapes = 0;
    for (size_t a = 0; a < sizeof kvrs / sizeof *kvrs; a++)
        for (size_t b = 0; b < sizeof row_counts / sizeof *row_counts; b++)
            for (size_t c = 0; c < sizeof position_counts / sizeof *position_counts; c++) {
                if (kvrs[a] >= 512 && row_counts[b] > 16 && position_counts[c] < 128)
                    continue; /* the double sums of every shape at 512 take seconds */
                const size_t cstride = (size_t)(kvrs[a] + extra[a]);
                const int off =
                    check_shape(kvrs[a], cstride, row_counts[b], position_counts[c], &stray);
                CHECK_MSG(off == 0, "kvr %d of rows of %zu, %d rows, %d positions: %d values off",
                          kvrs[a], cstride, row_counts[b], position_counts[c], off);
                bad += off;
                shapes++;
            }
    printf("  %d shapes: %d values off their bound, %d written outside\n", shapes, bad, stray);
    CHECK_EQ_INT(stray, 0);
}

/* MHA's kernels over bf16 rows (mha_bf16_scores, mha_bf16_weighted_sum) against the exact sums
 * of their terms (tests/mha_exact.h; a widened bf16 value is exact). Heads of
 * 8 to 128 values (16 is the tiny MHA fixture's, 128 DeepSeek-MoE's), 20 (not whole vectors: a
 * scalar tail or loop), shared key heads (group 2), pieces of 1 to 32 positions, rows wider
 * than the heads they hold. */
static double cached_bf16(const void *cache, size_t at)
{
    return dsq_bf16_to_f32(((const uint16_t *)cache)[at]);
}

static int check_mha(int nh, int group, int hd, int ns, int *stray)
{
    const size_t stride = (size_t)(nh / group) * hd + 8, pstride = (size_t)ns + 2;
    uint16_t *keys = random_latents(ns, stride), *values = random_latents(ns, stride);
    float *q = malloc((size_t)nh * hd * sizeof *q), *p = malloc((size_t)nh * pstride * sizeof *p);
    float *scores = malloc((size_t)nh * pstride * sizeof *scores);
    float *out = malloc((size_t)nh * hd * sizeof *out);
    for (int i = 0; i < nh * hd; i++)
        q[i] = rng_uniform(-2, 2);
    for (size_t i = 0; i < (size_t)nh * pstride; i++) {
        p[i] = rng_uniform(0, 1);
        scores[i] = NAN;
    }
    mha_bf16_scores(keys, stride, ns, q, nh, group, hd, scores, pstride);
    mha_bf16_weighted_sum(values, stride, ns, p, pstride, nh, group, hd, out);
    const int bad = mha_results_off(nh, group, hd, ns, stride, q, p, pstride, scores, out,
                                    cached_bf16, keys, values, stray);
    free(keys);
    free(values);
    free(q);
    free(p);
    free(scores);
    free(out);
    return bad;
}

TEST(mha_kernels_match_the_exact_sums)
{
    const int shapes[][3] = {{16, 1, 128}, {8, 2, 128}, {4, 1, 16},
                             {4, 2, 8},    {6, 2, 24},  {3, 1, 20}};
    const int positions[] = {1, 7, 32};
    int stray = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t n = 0; n < sizeof positions / sizeof *positions; n++) {
            const int off =
                check_mha(shapes[s][0], shapes[s][1], shapes[s][2], positions[n], &stray);
            CHECK_MSG(off == 0, "%d heads (group %d) of %d, %d positions: %d values off",
                      shapes[s][0], shapes[s][1], shapes[s][2], positions[n], off);
        }
    CHECK_EQ_INT(stray, 0);
}

TEST(store_rounds_and_widen_restores)
{
    const float x[] = {1.0f, 1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -3.1415926f, 0x1p-130f, 65504.0f};
    const float want[] = {1.0f, 1.0f, 1.0f + 0x1p-6f, -3.140625f, 0x1p-130f, 65536.0f};
    uint16_t h[6];
    float back[6];
    kv_bf16_store(x, 6, h);
    kv_bf16_widen(h, 6, back);
    for (int i = 0; i < 6; i++) /* nearest, ties to even (1 + 2^-8 is a tie) */
        CHECK_MSG(back[i] == want[i], "%g -> %g, want %g", x[i], back[i], want[i]);
}

/* Logits of a fixture model with the bf16 cache against the f32 cache, on the same tokens: a
 * prompt then decode steps over a cache that grows to several pieces. V1: the decode steps
 * widen each piece of keys and values. V2: the prompt takes the expanded form, the decode steps
 * the absorbed one, widened to fp32, and where the CPU has AMX on the tiles, which the
 * fixtures' 4 heads take from pieces of 64 positions, 505 cached tokens (checked over those
 * steps too). The
 * bound is the rounding bound of tests/test_cpu_pack.c for bf16 inputs: each cached latent carries
 * a relative rounding error uniform within 2^-8, RMS 2^-8 / sqrt 3, and 9 times that bounds its
 * effect through the fixture's stages. */
TEST(bf16_cache_tracks_the_f32_cache)
{
    enum { PROMPT = 24, STEPS = 600, CTX = PROMPT + STEPS, LATE = 512 };
    const char *families[] = {"tiny-v1", "tiny-v2-lite", "tiny-v2"};
    for (int run = 0; run < 5; run++) { /* V1, then each V2 on the tiles and widened */
        const int f = (run + 1) / 2;
        const bool tiles = f > 0 && run % 2 == 1;
        model a, b;
        open_fixture_model(families[f], CTX, &a); /* f32 */
        char path[512];
        snprintf(path, sizeof path, "%s/%s.dsq", test_tmp_dir(), families[f]);
        dsq_error err = {0};
        CHECK(model_kv_cache() == KV_CACHE_BF16); /* the default */
        CHECK_MSG(model_open(&b, path, CTX, &err) == DSQ_OK, "%s", err.msg);
        CHECK(!a.latent_bf16 && !a.keys_bf16 && a.cache_a && a.cache_b && !b.cache_a &&
              !b.cache_b && (f == 0 ? b.keys_bf16 && b.values_bf16 : b.latent_bf16 != NULL));
        CHECK(b.latent_tiles == (f > 0 && latent_amx_fits((int)b.cache_a_stride)));
        if (tiles && !b.latent_tiles) {
            model_close(&a);
            model_close(&b);
            continue;
        }
        b.latent_tiles = tiles;
        const int vocab = a.cfg->vocab_size;
        float *la = malloc((size_t)(PROMPT + STEPS) * vocab * sizeof(float));
        float *lb = malloc((size_t)(PROMPT + STEPS) * vocab * sizeof(float));
        int tokens[PROMPT];
        for (int t = 0; t < PROMPT; t++)
            tokens[t] = (int)((t * 7919u + 5) % (unsigned)vocab);
        CHECK(model_forward(&a, tokens, PROMPT, la, true, &err) == DSQ_OK);
        CHECK(model_forward(&b, tokens, PROMPT, lb, true, &err) == DSQ_OK);
        for (int t = 0; t < STEPS; t++) {
            const int tok = (int)((t * 104729u + 11) % (unsigned)vocab);
            const size_t at = (size_t)(PROMPT + t) * vocab;
            CHECK(model_forward(&a, &tok, 1, la + at, false, &err) == DSQ_OK);
            CHECK(model_forward(&b, &tok, 1, lb + at, false, &err) == DSQ_OK);
        }
        double diff2[2] = {0}, base2[2] = {0}; /* all steps, and those past LATE */
        for (size_t i = 0; i < (size_t)(PROMPT + STEPS) * vocab; i++)
            for (int w = 0; w < 2; w++)
                if (w == 0 || i >= (size_t)LATE * vocab) {
                    diff2[w] += ((double)lb[i] - la[i]) * ((double)lb[i] - la[i]);
                    base2[w] += (double)la[i] * la[i];
                }
        const double rel = sqrt(diff2[0] / base2[0]), late = sqrt(diff2[1] / base2[1]);
        const double bound = 9 * ldexp(1, -8) / sqrt(3.0);
        printf("  %s: bf16 vs f32 cache over %d prompt and %d decode tokens: logits rel. RMS "
               "%.4f, %.4f past %d tokens (bound %.4f)%s\n",
               families[f], PROMPT, STEPS, rel, late, LATE, bound,
               f == 0  ? ""
               : tiles ? ", AMX tiles"
                       : ", widened");
        CHECK_MSG(rel <= bound && late <= bound && rel > 0, "%s: logits moved %.4f, %.4f",
                  families[f], rel, late);
        free(la);
        free(lb);
        model_close(&a);
        model_close(&b);
    }
}

/* The cache's size follows its type: an MLA row [latent | key hi | key lo] in bf16, padded to
 * 32 values, or both in f32; V1's keys and values in bf16 or f32. */
TEST(cache_bytes_follow_the_type)
{
    model m;
    open_fixture_model("tiny-v2-lite", 8, &m); /* kv_lora_rank 32, rope 8, 3 layers */
    const dsq_model_config c = *m.cfg;
    model_close(&m);
    CHECK_EQ_INT((int)model_cache_bytes(&c, 100, KV_CACHE_BF16), 3 * 100 * 64 * 2); /* 32+2x8 */
    CHECK_EQ_INT((int)model_cache_bytes(&c, 100, KV_CACHE_F32), 3 * 100 * (32 + 8) * 4);
    open_fixture_model("tiny-v1", 8, &m);
    const dsq_model_config v1 = *m.cfg;
    model_close(&m);
    CHECK_EQ_INT((int)model_cache_bytes(&v1, 100, KV_CACHE_BF16),
                 v1.n_layers * 100 * 2 * v1.n_kv_heads * v1.head_dim * 2);
    CHECK_EQ_INT((int)model_cache_bytes(&v1, 100, KV_CACHE_F32),
                 v1.n_layers * 100 * 2 * v1.n_kv_heads * v1.head_dim * 4);
}
