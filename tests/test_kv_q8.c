/* The q8 KV cache (runtime/kv_q8.h): its rounding, MHA's kernels against a double sum over the
 * same codes on every path this CPU has, and the V1 fixture with the q8 cache against the f32
 * cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dot.h"
#include "fixture_model.h"
#include "kv_q8.h"
#include "mha_exact.h"

#define TEST_RNG_SEED 0x8c0de5ull
#include "test_rng.h"

TEST(store_rounds_to_nearest_within_half_a_step)
{
    enum { G = 32 };
    float x[3 * G], back[3 * G], scales[3];
    int8_t codes[3 * G];
    for (int i = 0; i < G; i++) {
        x[i] = (float)(i - 16) * 0.25f; /* largest magnitude 4 (i = 0): scale 4 / 127 */
        x[G + i] = 0;                   /* an all-zero group: scale 0, codes 0 */
        x[2 * G + i] = rng_uniform(-1e-30f, 1e-30f);
    }
    kv_q8_store(x, 3 * G, G, codes, scales);
    kv_q8_widen(codes, scales, 3 * G, G, back);
    CHECK(scales[0] == 4.0f / 127 && scales[1] == 0);
    for (int i = 0; i < G; i++) { /* (i - 16) / 4 * 127 / 4 = (i - 16) * 7.9375 */
        const long want = lrint((i - 16) * 7.9375);
        CHECK_MSG(codes[i] == want, "x %g: code %d, want %ld", x[i], codes[i], want);
        CHECK(codes[G + i] == 0 && back[G + i] == 0);
    }
    CHECK_EQ_INT(codes[0], -127);
    for (int g = 0; g < 3; g += 2) /* every value within half a step of its group's scale */
        for (int i = 0; i < G; i++)
            CHECK_MSG(fabsf(back[g * G + i] - x[g * G + i]) <= scales[g] * (0.5f + 0x1p-20f),
                      "group %d: %g -> %g (scale %g)", g, x[g * G + i], back[g * G + i], scales[g]);
    for (int i = 0; i < G; i++) /* too small for a scale (1e-44 / 127 underflows): zeros */
        x[i] = i % 2 ? 1e-44f : -5e-45f;
    kv_q8_store(x, G, G, codes, scales);
    CHECK(scales[0] == 0);
    for (int i = 0; i < G; i++)
        CHECK(codes[i] == 0);
    x[5] = NAN; /* damaged activations stay visible: a NaN scale, which the logits check meets */
    kv_q8_store(x, G, G, codes, scales);
    CHECK(isnan(scales[0]));
}

typedef struct {
    const int8_t *codes;
    const float *scales;
    int group;
} q8_cache;

static double cached_q8(const void *cache, size_t at)
{
    const q8_cache *c = cache;
    return (double)c->codes[at] * c->scales[at / (size_t)c->group];
}

/* Scores and weighted sums against double sums of the same terms (tests/mha_exact.h), over rows
 * of every kv head per position padded by a scale group. */
static int check_mha(int nh, int group, int hd, int ns, int *stray)
{
    const int g = kv_q8_group(hd);
    const size_t stride = (size_t)(nh / group * hd + g), pstride = 40, n = ns * stride;
    int8_t *keys = malloc(n), *values = malloc(n);
    float *kscales = malloc(n / g * sizeof(float)), *vscales = malloc(n / g * sizeof(float));
    float *q = malloc((size_t)nh * hd * sizeof(float));
    float *p = malloc((size_t)nh * pstride * sizeof(float));
    float *scores = malloc((size_t)nh * pstride * sizeof(float));
    float *out = malloc((size_t)nh * hd * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        keys[i] = (int8_t)(rng_next() % 255 - 127);
        values[i] = (int8_t)(rng_next() % 255 - 127);
    }
    for (size_t i = 0; i < n / g; i++) {
        kscales[i] = rng_uniform(0.001f, 0.1f);
        vscales[i] = rng_uniform(0.001f, 0.1f);
    }
    for (int i = 0; i < nh * hd; i++)
        q[i] = rng_uniform(-2, 2);
    for (size_t i = 0; i < (size_t)nh * pstride; i++) {
        p[i] = rng_uniform(0, 1);
        scores[i] = NAN;
    }
    mha_q8_scores(keys, kscales, stride, ns, q, nh, group, hd, scores, pstride);
    mha_q8_weighted_sum(values, vscales, stride, ns, p, pstride, nh, group, hd, out);
    const q8_cache kc = {keys, kscales, g}, vc = {values, vscales, g};
    const int bad = mha_results_off(nh, group, hd, ns, stride, q, p, pstride, scores, out,
                                    cached_q8, &kc, &vc, stray);
    free(keys);
    free(values);
    free(kscales);
    free(vscales);
    free(q);
    free(p);
    free(scores);
    free(out);
    return bad;
}

/* Heads of 128 (MoE-16B: groups of 32, the AVX-512 kernels), 16 and 24 (one group a head), 64
 * with four query heads a key head, and 12 (too short for the AVX2 kernels: the reference);
 * the reference forced too. */
TEST(mha_kernels_match_the_exact_sums)
{
    const int shapes[][3] = {{16, 1, 128}, {8, 2, 128}, {4, 1, 16},
                             {8, 4, 64},   {6, 2, 24},  {3, 1, 12}};
    const int positions[] = {1, 7, 32, 33};
    int stray = 0;
    for (int ref = 0; ref < 2; ref++) {
        dsq_dot_force_reference(ref);
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (size_t n = 0; n < sizeof positions / sizeof *positions; n++) {
                const int off =
                    check_mha(shapes[s][0], shapes[s][1], shapes[s][2], positions[n], &stray);
                CHECK_MSG(off == 0, "%s: %d heads (group %d) of %d, %d positions: %d off",
                          ref ? "reference" : dsq_dot_path(), shapes[s][0], shapes[s][1],
                          shapes[s][2], positions[n], off);
            }
    }
    dsq_dot_force_reference(false);
    CHECK_EQ_INT(stray, 0);
}

/* Logits of the V1 fixture with the q8 cache against the f32 cache on the same tokens: a prompt,
 * decode steps over a cache of many pieces, a second prompt over that cache (the widened path),
 * more steps. Bound: a cached value's error is uniform within half its group's step, RMS
 * scale / sqrt 12 with scale = max |x| / 127 <= sqrt(G) RMS(x), so the cache's relative RMS
 * error is at most sqrt(G) / (127 sqrt 12) (G = 16 here, one scale a head: 0.0091); 9 times
 * that bounds its effect through the fixture's stages, as for the bf16 cache
 * (tests/test_kv_bf16.c). */
TEST(q8_cache_tracks_the_f32_cache)
{
    enum { PROMPT = 24, STEPS = 300, MIDDLE = 16, CTX = PROMPT + 2 * STEPS + MIDDLE };
    model a, b;
    open_fixture_model("tiny-v1", CTX, &a); /* f32 */
    char path[512];
    snprintf(path, sizeof path, "%s/tiny-v1.dsq", test_tmp_dir());
    dsq_error err = {0};
    model_set_kv_cache(KV_CACHE_Q8);
    CHECK_MSG(model_open(&b, path, CTX, &err) == DSQ_OK, "%s", err.msg);
    model_set_kv_cache(KV_CACHE_BF16);
    CHECK(b.keys_q8 && b.values_q8 && b.key_scales && b.value_scales && !b.keys_bf16 &&
          !b.cache_a && !b.cache_b);
    const int vocab = a.cfg->vocab_size, g = kv_q8_group(a.cfg->head_dim);
    float *la = malloc((size_t)CTX * vocab * sizeof(float));
    float *lb = malloc((size_t)CTX * vocab * sizeof(float));
    int tokens[PROMPT];
    for (int t = 0; t < PROMPT; t++)
        tokens[t] = (int)((t * 7919u + 5) % (unsigned)vocab);
    int at = 0;
    for (int part = 0; part < 4; part++) { /* prompt, steps, prompt, steps */
        const int n = part == 0 ? PROMPT : part == 2 ? MIDDLE : 1;
        for (int step = 0; step < (part % 2 ? STEPS : 1); step++) {
            if (part % 2)
                tokens[0] = (int)((at * 104729u + 11) % (unsigned)vocab);
            CHECK(model_forward(&a, tokens, n, la + (size_t)at * vocab, true, &err) == DSQ_OK);
            CHECK(model_forward(&b, tokens, n, lb + (size_t)at * vocab, true, &err) == DSQ_OK);
            at += n;
        }
    }
    CHECK_EQ_INT(at, CTX);
    double diff2 = 0, base2 = 0;
    for (size_t i = 0; i < (size_t)CTX * vocab; i++) {
        diff2 += ((double)lb[i] - la[i]) * ((double)lb[i] - la[i]);
        base2 += (double)la[i] * la[i];
    }
    const double rel = sqrt(diff2 / base2), bound = 9 * sqrt(g) / (127 * sqrt(12.0));
    printf("  tiny-v1: q8 vs f32 cache over %d tokens: logits rel. RMS %.4f (bound %.4f)\n", CTX,
           rel, bound);
    CHECK_MSG(rel <= bound && rel > 0, "logits moved %.4f", rel);
    free(la);
    free(lb);
    model_close(&a);
    model_close(&b);
}

/* MLA's latent has no q8 form: refused at open, saying why. */
TEST(q8_cache_refused_for_mla)
{
    model m;
    open_fixture_model("tiny-v2-lite", 8, &m); /* converts it */
    model_close(&m);
    char path[512];
    snprintf(path, sizeof path, "%s/tiny-v2-lite.dsq", test_tmp_dir());
    dsq_error err = {0};
    model_set_kv_cache(KV_CACHE_Q8);
    const int rc = model_open(&m, path, 8, &err);
    model_set_kv_cache(KV_CACHE_BF16);
    CHECK_EQ_INT(rc, DSQ_EUSAGE);
    CHECK_MSG(strstr(err.msg, "--kv-cache q8") && strstr(err.msg, "MLA"), "%s", err.msg);
}

/* A code a value and a 4-byte scale a group: 32 at MoE-16B's heads of 128, the whole head at
 * the fixture's 16. */
TEST(cache_bytes_of_q8)
{
    model m;
    open_fixture_model("tiny-v1", 8, &m);
    dsq_model_config c = *m.cfg;
    model_close(&m);
    const size_t values = (size_t)c.n_layers * 100 * 2 * c.n_kv_heads * c.head_dim;
    CHECK(model_cache_bytes(&c, 100, KV_CACHE_Q8) == values + values / 16 * 4);
    c.head_dim = 128;
    const size_t wide = (size_t)c.n_layers * 100 * 2 * c.n_kv_heads * 128;
    CHECK(model_cache_bytes(&c, 100, KV_CACHE_Q8) == wide + wide / 32 * 4);
}
