/* Quantized fixture models against their bf16 original: logits close within a bound from the
 * measured weight error, and q8 closer than q4 in KL-divergence. */
#include <math.h>
#include <stdlib.h>

#include "backend_cpu.h"
#include "convert.h"
#include "model.h"
#include "test.h"

static const int prompt[] = {510, 32, 256, 72, 81, 275, 342, 78, 70, 450, 270, 77, 275, 291, 267,
                             78, 391, 83, 288, 277, 76, 315, 68, 291, 256, 259, 13};
#define N_PROMPT (int)(sizeof prompt / sizeof prompt[0])

/* Converts tiny-v2-lite with a preset (group 32: the fixture's rows are 32 or 64 long) and
 * returns its logits for the prompt; *weight_error gets the largest per-class relative RMSE. */
static float *logits_for(const char *preset, double *weight_error)
{
    char dir[512], out[512];
    snprintf(dir, sizeof dir, "%s/tiny-v2-lite", test_data_dir());
    snprintf(out, sizeof out, "%s/tiny-%s.dsq", test_tmp_dir(), preset);
    convert_options o = {.hf_dir = dir, .out_path = out, .threads = 2,
                         .recipe = {.preset = preset, .group_size = 32}};
    convert_stats st;
    dsq_error err = {0};
    CHECK_MSG(dsq_convert(&o, &st, &err) == DSQ_OK, "%s: %s", preset, err.msg);
    model m;
    CHECK_MSG(model_open(&m, out, 64, &err) == DSQ_OK, "%s", err.msg);
    const json_t *errors = json_object_get(json_object_get(m.file.file.meta, "recipe"), "error");
    const char *cls;
    const json_t *e;
    *weight_error = 0;
    json_object_foreach((json_t *)errors, cls, e)
        *weight_error = fmax(*weight_error,
                             json_number_value(json_object_get(e, "relative_rmse")));
    float *logits = malloc((size_t)N_PROMPT * m.cfg->vocab_size * sizeof(float));
    CHECK(model_forward(&m, prompt, N_PROMPT, logits, true, &err) == DSQ_OK);
    model_close(&m);
    return logits;
}

/* Mean KL(base || q) over positions, and the relative RMS difference of the logits. */
static void compare(const float *base, const float *q, int vocab, double *kld, double *rel_rms)
{
    double kl_sum = 0, diff2 = 0, base2 = 0;
    for (int t = 0; t < N_PROMPT; t++) {
        const float *a = base + (size_t)t * vocab, *b = q + (size_t)t * vocab;
        double ma = a[0], mb = b[0], za = 0, zb = 0;
        for (int i = 1; i < vocab; i++) {
            ma = fmax(ma, a[i]);
            mb = fmax(mb, b[i]);
        }
        for (int i = 0; i < vocab; i++) {
            za += exp(a[i] - ma);
            zb += exp(b[i] - mb);
        }
        for (int i = 0; i < vocab; i++) {
            double la = a[i] - ma - log(za), lb = b[i] - mb - log(zb);
            kl_sum += exp(la) * (la - lb);
            diff2 += (a[i] - b[i]) * (a[i] - b[i]);
            base2 += a[i] * a[i];
        }
    }
    *kld = kl_sum / N_PROMPT;
    *rel_rms = sqrt(diff2 / base2);
}

/* Bound: a linear layer whose weights carry relative RMS error e gives outputs with relative
 * error about e (independent rounding errors against an input they do not depend on). The
 * fixture has about 20 such stages in series (3 layers of projections, experts, router, head);
 * independent errors add in quadrature, sqrt(20) ~ 4.5. Twice that, 9 e, is the bound.
 * With int8 activations (the default) each q8/q4 matmul's input also carries relative RMS error
 * at most e_x = sqrt(G) / (127 sqrt(12)): each element moves at most max|x| / 254 of its group,
 * uniformly, so RMS max|x| / (127 sqrt 12), and max|x| <= sqrt(G) RMS(x) over a group of G.
 * The errors are independent, so the bound becomes 9 sqrt(e^2 + e_x^2). */
static void check_quantized_logits(bool int8_x)
{
    dsq_cpu_set_int8_activations(int8_x);
    const double ex = int8_x ? sqrt(32.0) / (127 * sqrt(12.0)) : 0; /* group 32 */
    double e_bf16, e8, e4, kld8, kld4, rms8, rms4;
    float *base = logits_for("bf16", &e_bf16);
    float *q8 = logits_for("q8", &e8);
    float *q4 = logits_for("q4", &e4);
    const int vocab = 512;
    compare(base, q8, vocab, &kld8, &rms8);
    compare(base, q4, vocab, &kld4, &rms4);
    const double b8 = 9 * sqrt(e8 * e8 + ex * ex), b4 = 9 * sqrt(e4 * e4 + ex * ex);
    printf("  %s activations\n", int8_x ? "int8" : "f32");
    printf("  q8: weight rel. RMSE %.4f, logits rel. RMS diff %.4f, mean KLD %.3g\n", e8, rms8,
           kld8);
    printf("  q4: weight rel. RMSE %.4f, logits rel. RMS diff %.4f, mean KLD %.3g\n", e4, rms4,
           kld4);
    CHECK(e_bf16 == 0);
    CHECK(e8 > 0 && e4 > e8);
    CHECK_MSG(rms8 <= b8, "q8 logits moved %.4f, bound %.4f", rms8, b8);
    CHECK_MSG(rms4 <= b4, "q4 logits moved %.4f, bound %.4f", rms4, b4);
    CHECK(kld8 < kld4);
    free(base);
    free(q8);
    free(q4);
    dsq_cpu_set_int8_activations(true);
}

TEST(quantized_logits_track_bf16_f32_activations)
{
    check_quantized_logits(false);
}

TEST(quantized_logits_track_bf16_int8_activations)
{
    check_quantized_logits(true);
}
