/* Perplexity and KL-divergence (runtime/perplexity.h, runtime/logits_file.h): the evaluation
 * against an independent token-by-token computation, the statistics against hand-computed
 * values, the saved log-probs' precision, and the refusal of a base file that does not fit. */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "backend_cpu.h"
#include "convert.h"
#include "logits_file.h"
#include "model.h"
#include "perplexity.h"
#include "test.h"
#include "tokenizer.h"

#define CTX 32

/* Converts tiny-v2-lite once per test program and opens it with a cache of `ctx` tokens. */
/* ppl_evaluate through the CPU engine (the reference, whatever devices the machine has). */
static int ppl_on_cpu(model *m, const int *tokens, size_t n, const ppl_options *o, ppl_result *r,
                      dsq_error *err)
{
    engine e;
    engine_options eo = {.backend = "cpu"};
    int rc = engine_open(&e, m, &eo, err);
    if (!rc) {
        rc = ppl_evaluate(&e, tokens, n, o, r, err);
        engine_close(&e);
    }
    return rc;
}

static bool open_fixture(model *m, int ctx)
{
    char dir[512], out[512];
    snprintf(dir, sizeof dir, "%s/tiny-v2-lite", test_data_dir());
    snprintf(out, sizeof out, "%s/tiny-v2-lite.dsq", test_tmp_dir());
    dsq_error err = {0};
    if (access(out, F_OK) != 0) {
        convert_options o = {.hf_dir = dir, .out_path = out, .threads = 2};
        convert_stats st;
        if (dsq_convert(&o, &st, &err) != DSQ_OK) {
            CHECK_MSG(0, "%s", err.msg);
            return false;
        }
    }
    model_set_kv_cache(KV_CACHE_F32); /* prefill and decode round no cache apart */
    const int rc = model_open(m, out, ctx, &err);
    model_set_kv_cache(KV_CACHE_BF16);
    if (rc != DSQ_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return false;
    }
    return true;
}

/* The fixture's text: sentences that differ in their numbers, tokenized with BOS. */
typedef struct {
    int *ids;
    size_t n;
    int bos;
    uint64_t tokenizer_hash;
} test_text;

static bool make_text(model *m, int sentences, test_text *t)
{
    const json_t *tj = json_object_get(m->file.file.meta, "tokenizer");
    tokenizer *tok = NULL;
    dsq_error err;
    if (tokenizer_load(&tok, tj, "fixture", &err) != DSQ_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return false;
    }
    char *text = malloc((size_t)sentences * 96 + 1);
    size_t len = 0;
    for (int i = 0; i < sentences; i++)
        len += (size_t)sprintf(text + len,
                               "Sentence %d: the quick brown fox jumps over the lazy "
                               "dog %d times.\n",
                               i + 1, (i * 7) % 13);
    int add = tokenizer_default_add(tok);
    CHECK(add & TOKENIZER_ADD_BOS);
    bool ok = tokenizer_encode(tok, text, len, add, &t->ids, &t->n, &err) == DSQ_OK;
    CHECK_MSG(ok, "%s", err.msg);
    t->bos = tokenizer_bos(tok);
    char *dump = json_dumps(json_object_get(tj, "tokens"), JSON_COMPACT);
    t->tokenizer_hash = dump ? XXH3_64bits(dump, strlen(dump)) : 0;
    free(dump);
    free(text);
    tokenizer_free(tok);
    return ok;
}

static logits_header header_for(const model *m, const test_text *t, int ctx)
{
    return (logits_header){.vocab = (uint32_t)m->cfg->vocab_size,
                           .ctx = (uint32_t)ctx,
                           .n_chunk = (uint32_t)(t->n / (size_t)ctx),
                           .scored = (uint32_t)(ctx - 1 - ctx / 2),
                           .n_tokens = t->n,
                           .text_hash = logits_hash_tokens(t->ids, t->n),
                           .tokenizer_hash = t->tokenizer_hash};
}

/* (1) The evaluation equals an independent computation: every window fed one token at a time
 * through the KV cache (BOS first), log-softmax in double written out here, the same scoring
 * rule. The logits are fp32 and the batching differs (the module prefills half a window at a
 * time; here every token is a decode step, and MLA uses the absorbed form): test_forward.c sees
 * ~1e-6 relative differences in the logits, which move each NLL by ~1e-6 of the logit scale;
 * 1e-5 relative on the NLL sum leaves room for that and still catches any scoring error (one
 * position off, a missing BOS, a wrong token: each changes the sum by >= 1e-3). Both take f32
 * activations: a prompt's bf16 matmuls on AMX round them to bf16, which a decode step does not,
 * and that moves the sum by ~1e-5 (quant/bf16pack.h). */
TEST(ppl_equals_token_by_token)
{
    dsq_cpu_set_int8_activations(false);
    model m;
    if (!open_fixture(&m, CTX))
        return;
    test_text t;
    if (!make_text(&m, 8, &t)) {
        model_close(&m);
        return;
    }
    CHECK_EQ_INT(t.ids[0], t.bos);
    const int vocab = m.cfg->vocab_size, first = CTX / 2;
    const int n_chunk = (int)(t.n / CTX);
    printf("  %zu tokens, %d windows of %d\n", t.n, n_chunk, CTX);
    CHECK(n_chunk >= 4);

    ppl_options o = {.ctx = CTX, .bos = t.bos};
    ppl_result r;
    dsq_error err;
    CHECK_MSG(ppl_on_cpu(&m, t.ids, t.n, &o, &r, &err) == DSQ_OK, "%s", err.msg);

    float *logits = malloc((size_t)vocab * sizeof(float));
    double want = 0, want2 = 0;
    size_t count = 0;
    for (int c = 0; c < n_chunk; c++) {
        model_reset(&m);
        for (int j = 0; j < CTX - 1; j++) {
            int tok = j == 0 ? t.bos : t.ids[(size_t)c * CTX + j];
            CHECK(model_forward(&m, &tok, 1, logits, false, &err) == DSQ_OK);
            if (j < first)
                continue;
            double mx = logits[0], sum = 0;
            for (int i = 1; i < vocab; i++)
                mx = logits[i] > mx ? logits[i] : mx;
            for (int i = 0; i < vocab; i++)
                sum += exp((double)logits[i] - mx);
            double nll = mx + log(sum) - logits[t.ids[(size_t)c * CTX + j + 1]];
            want += nll;
            want2 += nll * nll;
            count++;
        }
    }
    printf("  NLL sum %.9f (module) vs %.9f (token by token), relative %.2g\n", r.sum_nll, want,
           fabs(r.sum_nll - want) / want);
    CHECK_EQ_INT(r.n_chunk, n_chunk);
    CHECK_EQ_INT(r.scored_per_chunk, CTX - 1 - first);
    CHECK_EQ_INT(r.count, count);
    CHECK_EQ_INT(count, (size_t)n_chunk * (CTX - 1 - first));
    CHECK_NEAR(r.sum_nll / want, 1.0, 1e-5);
    CHECK_NEAR(r.ppl.value / exp(want / (double)count), 1.0, 1e-5);
    /* the final +/-: PPL * sqrt((mean(nll^2) - mean^2) / (count - 1)) */
    double mean = want / (double)count;
    double unc = exp(mean) * sqrt((want2 / (double)count - mean * mean) / (double)(count - 1));
    CHECK_NEAR(r.ppl.uncertainty / unc, 1.0, 1e-3);
    free(logits);
    ppl_result_free(&r);
    free(t.ids);
    model_close(&m);
    dsq_cpu_set_int8_activations(true);
}

/* (2) The statistics against values computed by hand. */
TEST(kl_divergence_closed_forms)
{
    const double p[3] = {0.5, 0.3, 0.2}, q[3] = {0.2, 0.5, 0.3};
    double lp[3], lq[3];
    for (int i = 0; i < 3; i++) {
        lp[i] = log(p[i]);
        lq[i] = log(q[i]);
    }
    CHECK(ppl_kl_divergence(lp, lp, 3) == 0.0);
    double want = 0.5 * log(0.5 / 0.2) + 0.3 * log(0.3 / 0.5) + 0.2 * log(0.2 / 0.3);
    CHECK_NEAR(ppl_kl_divergence(lp, lq, 3), want, 1e-15);
    CHECK_NEAR(want, 0.223804657, 1e-9); /* 0.5 ln 2.5 + 0.3 ln 0.6 + 0.2 ln(2/3) */
    /* log-sum-exp and argmax of float rows */
    const float row[4] = {1.0f, 3.0f, 3.0f, -2.0f};
    CHECK_NEAR(ppl_log_sum_exp(row, 4), log(exp(1.0) + 2 * exp(3.0) + exp(-2.0)), 1e-14);
    CHECK_EQ_INT(ppl_argmax(row, 4), 1); /* the first of a tie, as llama.cpp */
}

TEST(percentiles_like_llama_cpp)
{
    const double v[5] = {1, 2, 3, 4, 5};
    CHECK(ppl_percentile(v, 5, 0.0) == 1);
    CHECK(ppl_percentile(v, 5, 1.0) == 5);
    CHECK_NEAR(ppl_percentile(v, 5, 0.5), 3.0, 1e-15);
    CHECK_NEAR(ppl_percentile(v, 5, 0.9), 4.6, 1e-12); /* x = 0.9 * 4 = 3.6 */
    CHECK_NEAR(ppl_percentile(v, 5, 0.999), 4.996, 1e-12);
    CHECK_NEAR(ppl_percentile(v, 5, 0.1), 1.4, 1e-12);
    CHECK_NEAR(ppl_percentile(v, 5, 0.001), 1.004, 1e-12);
    const double one[1] = {7};
    CHECK(ppl_percentile(one, 1, 0.99) == 7);
    CHECK(ppl_median(v, 5) == 3);
    const double w[4] = {1, 2, 10, 20};
    CHECK(ppl_median(w, 4) == 6);
    CHECK_NEAR(ppl_percentile(w, 4, 0.5), 6.0, 1e-12);
}

TEST(estimators_like_llama_cpp)
{
    /* 1..20: mean 10.5, population variance (n^2 - 1) / 12 = 33.25, stderr sqrt(33.25 / 19) */
    double s = 0, s2 = 0;
    for (int i = 1; i <= 20; i++) {
        s += i;
        s2 += (double)i * i;
    }
    ppl_estimate e = ppl_mean_and_uncertainty(s, s2, 20);
    CHECK_NEAR(e.value, 10.5, 1e-12);
    CHECK_NEAR(e.uncertainty, sqrt(1.75), 1e-12);
    /* ten values or fewer: no uncertainty, as llama.cpp */
    e = ppl_mean_and_uncertainty(55, 385, 10);
    CHECK_NEAR(e.value, 5.5, 1e-12);
    CHECK(e.uncertainty == 0);
    e = ppl_mean_and_uncertainty(0, 0, 0);
    CHECK(e.value == 0 && e.uncertainty == 0);
    /* the final PPL estimate: NLL 1, 2, 3 -> e^2 +/- e^2 sqrt((2/3) / 2) */
    e = ppl_from_nll(6, 14, 3);
    CHECK_NEAR(e.value, exp(2.0), 1e-12);
    CHECK_NEAR(e.uncertainty, exp(2.0) * sqrt(1.0 / 3.0), 1e-12);
    e = ppl_from_nll(2, 4, 1); /* one token: no spread */
    CHECK(e.uncertainty == 0);
    /* covariance of a mean with itself is its squared standard error */
    CHECK_NEAR(ppl_covariance(s, s, s2, 20), 1.75, 1e-12);
    CHECK(ppl_covariance(1, 2, 3, 9) == 0);
}

TEST(kld_stats_from_known_tokens)
{
    /* 20 tokens: Q's NLL 1 + i/10, base NLL 1, KLD i/100, top-1 agree on 15 of them */
    kld_sums s = {0};
    double kld[20], dp[20];
    for (int i = 0; i < 20; i++) {
        kld[19 - i] = i / 100.0; /* unsorted on purpose */
        dp[19 - i] = kld_sums_add(&s, 1 + i / 10.0, 1.0, i / 100.0, i < 15);
        CHECK_NEAR(dp[19 - i], exp(-(1 + i / 10.0)) - exp(-1.0), 1e-15);
    }
    kld_stats st;
    kld_stats_compute(&s, kld, dp, &st);
    CHECK_EQ_INT(st.count, 20);
    CHECK_NEAR(st.kld.value, 0.095, 1e-12);
    CHECK_NEAR(st.kld.uncertainty, sqrt(1.75) / 100, 1e-12); /* i/100 over 0..19 */
    CHECK_NEAR(st.kld_max, 0.19, 1e-15);
    CHECK_NEAR(st.kld_min, 0.0, 1e-15);
    CHECK_NEAR(st.kld_pct[5], 0.095, 1e-12);                     /* median */
    CHECK_NEAR(st.kld_pct[2], ppl_percentile(kld, 20, 0.95), 0); /* sorted in place */
    CHECK_NEAR(st.kld_pct[2], 0.1805, 1e-12);                    /* x = 18.05 */
    CHECK_NEAR(st.ppl_base.value, exp(1.0), 1e-12);
    CHECK(st.ppl_base.uncertainty == 0);
    CHECK_NEAR(st.ppl_q.value, exp(1.95), 1e-12);
    CHECK_NEAR(st.ppl_q.uncertainty, exp(1.95) * sqrt(1.75) / 10, 1e-10);
    CHECK_NEAR(st.ln_ppl_ratio.value, 0.95, 1e-12);
    CHECK_NEAR(st.ln_ppl_ratio.uncertainty, sqrt(1.75) / 10, 1e-12); /* cov 0: base constant */
    CHECK_NEAR(st.same_top.value, 0.75, 1e-15);
    CHECK_NEAR(st.same_top.uncertainty, sqrt(0.75 * 0.25 / 19), 1e-15);
    double sum = 0, sum2 = 0, sum4 = 0, sabs = 0;
    for (int i = 0; i < 20; i++) {
        double d = exp(-(1 + i / 10.0)) - exp(-1.0);
        sum += d;
        sum2 += d * d;
        sum4 += d * d * d * d;
        sabs += fabs(d);
    }
    CHECK_NEAR(st.p_diff.value, sum / 20, 1e-15);
    CHECK_NEAR(st.p_diff_rms.value, sqrt(sum2 / 20), 1e-15);
    double mse_unc = sqrt((sum4 / 20 - (sum2 / 20) * (sum2 / 20)) / 19);
    CHECK_NEAR(st.p_diff_rms.uncertainty, 0.5 / sqrt(sum2 / 20) * mse_unc, 1e-12);
    CHECK_NEAR(st.p_diff_abs_mean, sabs / 20, 1e-15);
    CHECK_NEAR(st.p_diff_max, 0.0, 1e-15);
    CHECK_NEAR(st.p_diff_min, exp(-2.9) - exp(-1.0), 1e-15);
}

/* The stored row: every log-prob within h = scale/2 (plus the f32 scale's rounding, 1e-3 of a
 * step) of the truth before renormalization, so within 2h after it; KL(decoded || true) <= h^2/2
 * (logits_file.h derives it); the top index and the NLL come back as stored. */
TEST(row_encoding_precision)
{
    enum { V = 1000 };
    float logits[V];
    uint64_t x = 12345;
    for (int i = 0; i < V; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 40.0 - 25.0);
    }
    logits[17] = 30.0f; /* one clear favourite */
    const double lse = ppl_log_sum_exp(logits, V);
    const int top = ppl_argmax(logits, V);
    CHECK_EQ_INT(top, 17);
    uint8_t *row = malloc(logits_row_bytes(V));
    logits_row_encode(logits, V, lse, (uint32_t)top, lse - logits[3], row);
    logits_row_info in;
    logits_row_read_info(row, &in);
    CHECK_EQ_INT(in.top, 17);
    CHECK_NEAR(in.nll, lse - logits[3], 1e-5 * (lse - logits[3]));
    const double h = in.scale * (0.5 + 1e-3);
    CHECK(in.scale > 0 && in.scale < 55.0 / 65535 * 1.001); /* the range is about 55 nats */
    double logp[V], truth[V], worst = 0, total = 0;
    logits_row_decode(row, V, logp);
    for (int i = 0; i < V; i++) {
        truth[i] = (double)logits[i] - lse;
        worst = fmax(worst, fabs(logp[i] - truth[i]));
        total += exp(logp[i]);
    }
    CHECK_NEAR(total, 1.0, 1e-12);
    CHECK_MSG(worst <= 2 * h, "worst %.3g, h %.3g", worst, h);
    const double kl = ppl_kl_divergence(logp, truth, V);
    printf("  row of %d: step %.3g nats, worst error %.3g, KL %.3g (bound %.3g)\n", V,
           (double)in.scale, worst, kl, h * h / 2);
    CHECK(kl >= -1e-15);
    CHECK_MSG(kl <= h * h / 2 + 1e-15, "KL %.3g above the bound %.3g", kl, h * h / 2);
    /* a flat row: scale 0, decoded exactly uniform */
    float flat[8] = {2, 2, 2, 2, 2, 2, 2, 2};
    logits_row_encode(flat, 8, ppl_log_sum_exp(flat, 8), 0, log(8.0), row);
    logits_row_decode(row, 8, logp);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(logp[i], -log(8.0), 1e-15);
    free(row);
}

/* (3) Saving the base's log-probs and comparing the same model with them: only the encoding's
 * rounding separates the two distributions, so each token's KLD is at most h^2 / 2 with h the
 * row's half step (logits_file.h); the fixture's rows span a few nats, h ~ 3e-5, so the mean is
 * ~1e-9, far under 1e-6. The top-1 index and the NLL are stored exactly: 100% agreement and
 * PPL(base) = PPL(Q) up to the f32 rounding of each NLL (6e-8 relative). */
TEST(save_then_kld_same_model)
{
    model m;
    if (!open_fixture(&m, CTX))
        return;
    test_text t;
    if (!make_text(&m, 8, &t)) {
        model_close(&m);
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/base.logits", test_tmp_dir());
    logits_header h = header_for(&m, &t, CTX);
    logits_writer w;
    dsq_error err;
    CHECK_MSG(logits_writer_open(&w, path, &h, &err) == DSQ_OK, "%s", err.msg);
    ppl_options o = {.ctx = CTX, .bos = t.bos, .save = &w};
    ppl_result base_run;
    CHECK_MSG(ppl_on_cpu(&m, t.ids, t.n, &o, &base_run, &err) == DSQ_OK, "%s", err.msg);
    CHECK(access(path, F_OK) != 0); /* not there before it is complete */
    CHECK_MSG(logits_writer_finish(&w, &err) == DSQ_OK, "%s", err.msg);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == logits_file_size(&h));

    logits_reader rd;
    CHECK_MSG(logits_reader_open(&rd, path, &err) == DSQ_OK, "%s", err.msg);
    CHECK_MSG(logits_reader_check(&rd, &h, &err) == DSQ_OK, "%s", err.msg);
    /* the bound of every token, from its row's step */
    const size_t rb = logits_row_bytes(h.vocab);
    uint8_t *rows = malloc((size_t)h.scored * rb);
    double *bound = malloc((size_t)h.n_chunk * h.scored * sizeof(double));
    for (uint32_t c = 0; c < h.n_chunk; c++) {
        CHECK(logits_reader_read_chunk(&rd, c, rows, &err) == DSQ_OK);
        for (uint32_t i = 0; i < h.scored; i++) {
            logits_row_info in;
            logits_row_read_info(rows + i * rb, &in);
            double half = in.scale * (0.5 + 1e-3);
            bound[c * h.scored + i] = half * half / 2;
        }
    }
    o = (ppl_options){.ctx = CTX, .bos = t.bos, .base = &rd};
    ppl_result q;
    CHECK_MSG(ppl_on_cpu(&m, t.ids, t.n, &o, &q, &err) == DSQ_OK, "%s", err.msg);
    CHECK_EQ_INT(q.kld.count, q.count);
    for (size_t i = 0; i < q.count; i++)
        CHECK_MSG(q.kld_values[i] <= bound[i] + 1e-15, "token %zu: KLD %.3g above %.3g", i,
                  q.kld_values[i], bound[i]);
    kld_stats ks;
    kld_stats_compute(&q.kld, q.kld_values, q.p_diff_values, &ks);
    printf("  same model: mean KLD %.3g, max %.3g; same top %.1f%%\n", ks.kld.value, ks.kld_max,
           100 * ks.same_top.value);
    CHECK(ks.kld.value <= 1e-6);
    CHECK(ks.kld_min >= -1e-15);
    CHECK(ks.same_top.value == 1.0);
    CHECK_NEAR(ks.ppl_base.value / ks.ppl_q.value, 1.0, 1e-6);
    CHECK_NEAR(ks.ppl_q.value / base_run.ppl.value, 1.0, 1e-12);
    CHECK(fabs(ks.p_diff_max) < 1e-6 && fabs(ks.p_diff_min) < 1e-6);
    free(rows);
    free(bound);
    ppl_result_free(&q);
    ppl_result_free(&base_run);
    logits_reader_close(&rd);
    free(t.ids);
    model_close(&m);
}

/* Writes a complete file for header h with rows of zeros (a valid encoding: uniform). */
static void write_file(const char *path, const logits_header *h)
{
    logits_writer w;
    dsq_error err;
    CHECK_MSG(logits_writer_open(&w, path, h, &err) == DSQ_OK, "%s", err.msg);
    uint8_t *row = calloc(1, logits_row_bytes(h->vocab));
    for (uint64_t i = 0; i < (uint64_t)h->n_chunk * h->scored; i++)
        CHECK(logits_writer_write(&w, row, 1, &err) == DSQ_OK);
    CHECK_MSG(logits_writer_finish(&w, &err) == DSQ_OK, "%s", err.msg);
    free(row);
}

/* (4) A base file from another --ctx, text or tokenizer, a truncated or damaged one: refused,
 * naming the file and the mismatch. */
TEST(kld_base_refuses_mismatch)
{
    model m;
    if (!open_fixture(&m, CTX))
        return;
    test_text t;
    if (!make_text(&m, 8, &t)) {
        model_close(&m);
        return;
    }
    const logits_header want = header_for(&m, &t, CTX);
    char path[512];
    dsq_error err;
    logits_reader rd;

    /* a file made with --ctx 16 by the real evaluation */
    snprintf(path, sizeof path, "%s/ctx16.logits", test_tmp_dir());
    logits_header h16 = header_for(&m, &t, 16);
    logits_writer w;
    CHECK(logits_writer_open(&w, path, &h16, &err) == DSQ_OK);
    ppl_options o = {.ctx = 16, .bos = t.bos, .save = &w};
    ppl_result r;
    CHECK_MSG(ppl_on_cpu(&m, t.ids, t.n, &o, &r, &err) == DSQ_OK, "%s", err.msg);
    CHECK(logits_writer_finish(&w, &err) == DSQ_OK);
    ppl_result_free(&r);
    CHECK_MSG(logits_reader_open(&rd, path, &err) == DSQ_OK, "%s", err.msg);
    CHECK(logits_reader_check(&rd, &want, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_CONTAINS(err.msg, "made with --ctx 16, this run uses --ctx 32");
    logits_reader_close(&rd);

    /* another text, another tokenizer */
    snprintf(path, sizeof path, "%s/other.logits", test_tmp_dir());
    logits_header other = want;
    other.text_hash ^= 1;
    write_file(path, &other);
    CHECK(logits_reader_open(&rd, path, &err) == DSQ_OK);
    CHECK(logits_reader_check(&rd, &want, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "made from another text");
    logits_reader_close(&rd);
    other = want;
    other.tokenizer_hash ^= 1;
    write_file(path, &other);
    CHECK(logits_reader_open(&rd, path, &err) == DSQ_OK);
    CHECK(logits_reader_check(&rd, &want, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "another tokenizer");
    CHECK_STR_CONTAINS(err.msg, path);
    logits_reader_close(&rd);

    /* truncated: refused at open, before any model work */
    snprintf(path, sizeof path, "%s/short.logits", test_tmp_dir());
    write_file(path, &want);
    CHECK(truncate(path, (off_t)logits_file_size(&want) - 1) == 0);
    CHECK(logits_reader_open(&rd, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, path);
    CHECK_STR_CONTAINS(err.msg, "truncated");
    CHECK(truncate(path, 30) == 0);
    CHECK(logits_reader_open(&rd, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "truncated");
    /* a damaged header, a damaged row, something else entirely */
    write_file(path, &want);
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "\x7f", 1, 20) == 1);
    close(fd);
    CHECK(logits_reader_open(&rd, path, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "damaged");
    write_file(path, &want);
    fd = open(path, O_WRONLY);
    uint8_t bad_top[4] = {0xff, 0xff, 0, 0}; /* top 65535 >= vocab 512 */
    CHECK(fd >= 0 && pwrite(fd, bad_top, 4, LOGITS_HEADER_BYTES + 8) == 4);
    close(fd);
    CHECK(logits_reader_open(&rd, path, &err) == DSQ_OK);
    uint8_t *rows = malloc((size_t)want.scored * logits_row_bytes(want.vocab));
    CHECK(logits_reader_read_chunk(&rd, 0, rows, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "row 1 of chunk 1 is damaged");
    free(rows);
    logits_reader_close(&rd);
    char dsq[512];
    snprintf(dsq, sizeof dsq, "%s/tiny-v2-lite.dsq", test_tmp_dir());
    CHECK(logits_reader_open(&rd, dsq, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "not a dsq logits file");

    /* a writer that stops early leaves nothing behind */
    snprintf(path, sizeof path, "%s/partial.logits", test_tmp_dir());
    CHECK(logits_writer_open(&w, path, &want, &err) == DSQ_OK);
    CHECK(logits_writer_finish(&w, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "rows written");
    CHECK(access(path, F_OK) != 0);

    /* the evaluation itself: a text shorter than one window */
    o = (ppl_options){.ctx = CTX, .bos = t.bos};
    CHECK(ppl_on_cpu(&m, t.ids, CTX - 1, &o, &r, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "needs at least 32 tokens, has 31");
    o.ctx = 31;
    CHECK(ppl_on_cpu(&m, t.ids, t.n, &o, &r, &err) == DSQ_EUSAGE);
    free(t.ids);
    model_close(&m);
}
