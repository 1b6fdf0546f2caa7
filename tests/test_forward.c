/* Forward-pass consistency on the fixture families: prefill equals token-by-token decode, and
 * MLA's absorbed form equals the expanded form. Reference logits are tested in test_golden.c. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "fixture_model.h"

static const char *families[] = {"tiny-v1", "tiny-v2-lite", "tiny-v2"};
static const int prompt[] = {510, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 260, 300, 17};
#define N_PROMPT (int)(sizeof prompt / sizeof prompt[0])

/* Largest |a - b| over n floats, relative to the largest |a|. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double diff = 0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)a[i]));
    }
    return diff / scale;
}

/* fp32 with different summation orders: each logit is a chain of dot products of length
 * <= 128 over 3 layers; observed differences stay near 1e-6 of the logit scale, and 1e-4
 * leaves room for reordering while catching any real error (which shows at 1e-2 or more). */
#define ORDER_TOL 1e-4

TEST(prefill_equals_decode)
{
    for (int f = 0; f < 3; f++) {
        model m;
        open_fixture_model(families[f], 64, &m);
        int vocab = m.cfg->vocab_size;
        float *all = malloc((size_t)N_PROMPT * vocab * sizeof(float));
        float *one = malloc((size_t)vocab * sizeof(float));
        dsq_error err;
        CHECK(model_forward(&m, prompt, N_PROMPT, all, true, &err) == DSQ_OK);
        model_reset(&m);
        double worst = 0;
        for (int t = 0; t < N_PROMPT; t++) {
            CHECK(model_forward(&m, prompt + t, 1, one, false, &err) == DSQ_OK);
            worst = fmax(worst, rel_diff(all + (size_t)t * vocab, one, (size_t)vocab));
        }
        printf("  %s: prefill vs decode max relative difference %.2g\n", families[f], worst);
        CHECK_MSG(worst < ORDER_TOL, "%s: prefill vs decode differ by %.3g", families[f], worst);
        free(all);
        free(one);
        model_close(&m);
    }
}

TEST(mla_absorbed_equals_expanded)
{
    for (int f = 1; f < 3; f++) {
        model m;
        open_fixture_model(families[f], 64, &m);
        int vocab = m.cfg->vocab_size;
        float *a = malloc((size_t)N_PROMPT * vocab * sizeof(float));
        float *b = malloc((size_t)N_PROMPT * vocab * sizeof(float));
        dsq_error err;
        m.mode = ATTN_EXPANDED;
        CHECK(model_forward(&m, prompt, N_PROMPT, a, true, &err) == DSQ_OK);
        model_reset(&m);
        m.mode = ATTN_ABSORBED;
        CHECK(model_forward(&m, prompt, N_PROMPT, b, true, &err) == DSQ_OK);
        double d = rel_diff(a, b, (size_t)N_PROMPT * vocab);
        printf("  %s: absorbed vs expanded max relative difference %.2g\n", families[f], d);
        CHECK_MSG(d < ORDER_TOL, "%s: absorbed vs expanded differ by %.3g", families[f], d);
        free(a);
        free(b);
        model_close(&m);
    }
}

/* Absorbed decode over a long cache: it takes the cache in pieces of 16 to 128 positions with
 * the softmax combined across them (runtime/attention.c). Decoding token by token to 1,030
 * cached positions passes every piece size, a last piece cut short and up to 9 pieces; each
 * step's logits must match the expanded form's, which takes one softmax over the whole cache.
 * Same bound as above: the attention output is a convex combination of cached values, so its
 * rounding does not grow with the cache length beyond the sums' log-length terms. */
TEST(mla_absorbed_decode_long_cache)
{
    enum { STEPS = 1030 };
    for (int f = 1; f < 3; f++) {
        model a, b;
        open_fixture_model(families[f], STEPS, &a);
        open_fixture_model(families[f], STEPS, &b);
        a.mode = ATTN_EXPANDED;
        b.mode = ATTN_ABSORBED;
        const int vocab = a.cfg->vocab_size;
        float *la = malloc((size_t)vocab * sizeof(float));
        float *lb = malloc((size_t)vocab * sizeof(float));
        dsq_error err;
        double worst = 0;
        int worst_at = 0;
        for (int t = 0; t < STEPS; t++) {
            const int tok = (int)((t * 7919u + 3) % (unsigned)vocab);
            CHECK(model_forward(&a, &tok, 1, la, false, &err) == DSQ_OK);
            CHECK(model_forward(&b, &tok, 1, lb, false, &err) == DSQ_OK);
            const double d = rel_diff(la, lb, (size_t)vocab);
            if (d > worst) {
                worst = d;
                worst_at = t;
            }
        }
        printf("  %s: absorbed vs expanded decode to %d tokens: max relative difference %.2g "
               "(step %d)\n", families[f], STEPS, worst, worst_at);
        CHECK_MSG(worst < ORDER_TOL, "%s: absorbed vs expanded decode differ by %.3g at step %d",
                  families[f], worst, worst_at);
        free(la);
        free(lb);
        model_close(&a);
        model_close(&b);
    }
}

TEST(context_limits)
{
    model m;
    open_fixture_model("tiny-v2", 64, &m);
    float *logits = malloc((size_t)m.cfg->vocab_size * sizeof(float));
    dsq_error err;
    int toks[64] = {0};
    CHECK(model_forward(&m, toks, 64, logits, false, &err) == DSQ_OK);
    CHECK(model_forward(&m, toks, 1, logits, false, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "context full");
    model_reset(&m);
    toks[0] = 512;
    CHECK(model_forward(&m, toks, 1, logits, false, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "token id 512");
    free(logits);
    model_close(&m);
    char out[512];
    snprintf(out, sizeof out, "%s/tiny-v2.dsq", test_tmp_dir());
    CHECK(model_open(&m, out, 0, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "--ctx 0 out of range");
    CHECK(model_open(&m, out, 1 << 30, &err) == DSQ_EUSAGE);
}
