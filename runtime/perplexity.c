/* Perplexity and KL-divergence over non-overlapping windows (definitions in perplexity.h). */
#include "perplexity.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

/* ---- one row of logits -------------------------------------------------------------------- */

double ppl_log_sum_exp(const float *logits, int n)
{
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)logits[i] - (double)mx);
    return (double)mx + log(sum);
}

int ppl_argmax(const float *logits, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

double ppl_kl_divergence(const double *logp_base, const double *logp_q, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp(logp_base[i]) * (logp_base[i] - logp_q[i]);
    return sum;
}

/* ---- estimators --------------------------------------------------------------------------- */

ppl_estimate ppl_mean_and_uncertainty(double sum, double sum2, size_t count)
{
    if (count < 1)
        return (ppl_estimate){0, 0};
    double f = sum / (double)count;
    double df = sum2 / (double)count - f * f;
    df = df > 0 && count > 10 ? sqrt(df / (double)(count - 1)) : 0.0;
    return (ppl_estimate){f, df};
}

double ppl_covariance(double suma, double sumb, double sumab, size_t count)
{
    if (count < 10)
        return 0.0;
    double n = (double)count;
    return (sumab / n - (suma / n) * (sumb / n)) / (n - 1);
}

ppl_estimate ppl_from_nll(double sum_nll, double sum_nll2, size_t count)
{
    if (count < 1)
        return (ppl_estimate){NAN, 0};
    double mean = sum_nll / (double)count;
    double var = sum_nll2 / (double)count - mean * mean;
    double ppl = exp(mean);
    double unc = count > 1 && var > 0 ? sqrt(var / (double)(count - 1)) * ppl : 0.0;
    return (ppl_estimate){ppl, unc};
}

double ppl_percentile(const double *sorted, size_t n, double fraction)
{
    if (fraction <= 0)
        return sorted[0];
    if (fraction >= 1)
        return sorted[n - 1];
    double p = fraction * (double)(n - 1);
    size_t ip = (size_t)p;
    p -= (double)ip;
    size_t next = ip + 1 < n ? ip + 1 : n - 1;
    return (1 - p) * sorted[ip] + p * sorted[next];
}

double ppl_median(const double *sorted, size_t n)
{
    return n % 2 == 0 ? 0.5 * (sorted[n / 2] + sorted[n / 2 - 1]) : sorted[n / 2];
}

double kld_sums_add(kld_sums *s, double nll, double nll_base, double kld, bool same_top)
{
    s->sum_nll += nll;
    s->sum_nll2 += nll * nll;
    s->sum_nll_base += nll_base;
    s->sum_nll_base2 += nll_base * nll_base;
    s->sum_nll_nll_base += nll * nll_base;
    s->sum_kld += kld;
    s->sum_kld2 += kld * kld;
    const double p_diff = exp(-nll) - exp(-nll_base);
    const double p_diff2 = p_diff * p_diff;
    s->sum_p_diff += p_diff;
    s->sum_p_diff2 += p_diff2;
    s->sum_p_diff4 += p_diff2 * p_diff2;
    s->sum_abs_p_diff += fabs(p_diff);
    s->n_same_top += same_top;
    s->count++;
    return p_diff;
}

const double kld_pct_fraction[KLD_N_PCT] = {0.999, 0.990, 0.950, 0.900, 0.750, 0.5,
                                            0.250, 0.100, 0.050, 0.010, 0.001};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static ppl_estimate exp_estimate(ppl_estimate log_est)
{
    double v = exp(log_est.value);
    return (ppl_estimate){v, v * log_est.uncertainty};
}

void kld_stats_from_sums(const kld_sums *s, kld_stats *o)
{
    memset(o, 0, sizeof *o);
    const size_t n = s->count;
    o->count = n;
    if (n == 0)
        return;
    const ppl_estimate log_q = ppl_mean_and_uncertainty(s->sum_nll, s->sum_nll2, n);
    const ppl_estimate log_b = ppl_mean_and_uncertainty(s->sum_nll_base, s->sum_nll_base2, n);
    o->ppl_q = exp_estimate(log_q);
    o->ppl_base = exp_estimate(log_b);
    const double cov = ppl_covariance(s->sum_nll, s->sum_nll_base, s->sum_nll_nll_base, n);
    const double denom = log_q.uncertainty * log_b.uncertainty;
    o->cor_ln_ppl = denom > 0 ? cov / denom : NAN;
    const double ratio_var =
        log_q.uncertainty * log_q.uncertainty + log_b.uncertainty * log_b.uncertainty - 2.0 * cov;
    o->ln_ppl_ratio = (ppl_estimate){log_q.value - log_b.value, sqrt(fmax(0.0, ratio_var))};
    o->ppl_ratio = exp_estimate(o->ln_ppl_ratio);
    const double ppl_cov = o->ppl_q.value * o->ppl_base.value * cov;
    const double diff_var = o->ppl_q.uncertainty * o->ppl_q.uncertainty +
                            o->ppl_base.uncertainty * o->ppl_base.uncertainty - 2.0 * ppl_cov;
    o->ppl_diff = (ppl_estimate){o->ppl_q.value - o->ppl_base.value, sqrt(fmax(0.0, diff_var))};
    o->kld = ppl_mean_and_uncertainty(s->sum_kld, s->sum_kld2, n);
    o->p_diff = ppl_mean_and_uncertainty(s->sum_p_diff, s->sum_p_diff2, n);
    const ppl_estimate mse = ppl_mean_and_uncertainty(s->sum_p_diff2, s->sum_p_diff4, n);
    const double rms = sqrt(mse.value);
    o->p_diff_rms = (ppl_estimate){rms, rms > 0 ? 0.5 / rms * mse.uncertainty : 0.0};
    o->p_diff_abs_mean = s->sum_abs_p_diff / (double)n;
    const double same = (double)s->n_same_top / (double)n;
    o->same_top = (ppl_estimate){same, n > 1 ? sqrt(same * (1.0 - same) / (double)(n - 1)) : 0.0};
}

void kld_stats_compute(const kld_sums *s, double *kld, double *p_diff, kld_stats *o)
{
    kld_stats_from_sums(s, o);
    const size_t n = s->count;
    if (n == 0)
        return;
    qsort(kld, n, sizeof *kld, cmp_double);
    qsort(p_diff, n, sizeof *p_diff, cmp_double);
    o->kld_max = kld[n - 1];
    o->kld_min = kld[0];
    o->p_diff_max = p_diff[n - 1];
    o->p_diff_min = p_diff[0];
    for (int i = 0; i < KLD_N_PCT; i++) {
        const bool median = kld_pct_fraction[i] == 0.5;
        o->kld_pct[i] = median ? ppl_median(kld, n) : ppl_percentile(kld, n, kld_pct_fraction[i]);
        o->p_diff_pct[i] =
            median ? ppl_median(p_diff, n) : ppl_percentile(p_diff, n, kld_pct_fraction[i]);
    }
}

/* ---- evaluation --------------------------------------------------------------------------- */

void ppl_result_free(ppl_result *r)
{
    free(r->kld_values);
    free(r->p_diff_values);
    r->kld_values = r->p_diff_values = NULL;
}

static bool all_finite(const float *x, int n)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return false;
    return true;
}

/* Per-row results of one window, filled in parallel and summed in order. */
typedef struct {
    double nll, nll_base, kld;
    int same_top;
    int bad; /* a non-finite logit */
} row_result;

/* Scores the rows of one window: NLL, and with a base its KLD, NLL and top-1; encodes the rows
 * to save. Returns false if scratch memory ran out. */
static bool score_window(const float *logits, int vocab, int scored, const int *next,
                         const uint8_t *base_rows, uint8_t *save_rows, row_result *out)
{
    const size_t rb = logits_row_bytes((uint32_t)vocab);
    int oom = 0;
#pragma omp parallel
    {
        double *lb = NULL, *lq = NULL;
        if (base_rows) {
            lb = malloc((size_t)vocab * sizeof(double));
            lq = malloc((size_t)vocab * sizeof(double));
            if (!lb || !lq) {
#pragma omp atomic write
                oom = 1;
            }
        }
#pragma omp for schedule(static)
        for (int r = 0; r < scored; r++) {
            const float *lg = logits + (size_t)r * vocab;
            row_result *o = &out[r];
            memset(o, 0, sizeof *o);
            if (!all_finite(lg, vocab)) {
                o->bad = 1;
                continue;
            }
            const double lse = ppl_log_sum_exp(lg, vocab);
            o->nll = lse - (double)lg[next[r]];
            const int top = ppl_argmax(lg, vocab);
            if (save_rows)
                logits_row_encode(lg, (uint32_t)vocab, lse, (uint32_t)top, o->nll,
                                  save_rows + (size_t)r * rb);
            if (base_rows && lb && lq) {
                const uint8_t *row = base_rows + (size_t)r * rb;
                logits_row_info info;
                logits_row_read_info(row, &info);
                logits_row_decode(row, (uint32_t)vocab, lb);
                for (int i = 0; i < vocab; i++)
                    lq[i] = (double)lg[i] - lse;
                o->kld = ppl_kl_divergence(lb, lq, vocab);
                o->nll_base = (double)info.nll;
                o->same_top = (uint32_t)top == info.top;
            }
        }
        free(lb);
        free(lq);
    }
    return !oom;
}

int ppl_evaluate(engine *e, const int *tokens, size_t n_tokens, const ppl_options *o, ppl_result *r,
                 dsq_error *err)
{
    memset(r, 0, sizeof *r);
    const int ctx = o->ctx, first = ctx / 2, scored = ctx - 1 - first;
    const int vocab = e->desc->vocab;
    if (ctx < 4 || ctx % 2 != 0 || ctx > e->ctx)
        return dsq_fail(err, DSQ_EUSAGE,
                        "--ctx %d: must be even, at least 4 and at most the "
                        "model's cache (%d)",
                        ctx, e->ctx);
    if (n_tokens < (size_t)ctx)
        return dsq_fail(err, DSQ_EINPUT, "needs at least %d tokens, has %zu", ctx, n_tokens);
    const size_t n_chunk_sz = n_tokens / (size_t)ctx;
    if (n_chunk_sz > INT_MAX / 2)
        return dsq_fail(err, DSQ_EINPUT, "%zu windows are too many", n_chunk_sz);
    const int n_chunk = (int)n_chunk_sz;
    if (o->base && (o->base->h.vocab != (uint32_t)vocab || o->base->h.ctx != (uint32_t)ctx ||
                    o->base->h.n_chunk != (uint32_t)n_chunk))
        return dsq_fail(err, DSQ_EINPUT, "%s: made for another model, --ctx or text",
                        o->base->path);
    r->n_chunk = n_chunk;
    r->scored_per_chunk = scored;
    const size_t rb = logits_row_bytes((uint32_t)vocab);
    int *win = malloc((size_t)ctx * sizeof(int));
    float *last = malloc((size_t)vocab * sizeof(float));
    float *logits = malloc((size_t)(ctx - first) * vocab * sizeof(float));
    row_result *rows = malloc((size_t)scored * sizeof(row_result));
    uint8_t *save_rows = o->save ? malloc((size_t)scored * rb) : NULL;
    uint8_t *base_rows = o->base ? malloc((size_t)scored * rb) : NULL;
    if (o->base) {
        r->kld_values = malloc((size_t)n_chunk * scored * sizeof(double));
        r->p_diff_values = malloc((size_t)n_chunk * scored * sizeof(double));
    }
    int rc = DSQ_OK;
    if (!win || !last || !logits || !rows || (o->save && !save_rows) ||
        (o->base && (!base_rows || !r->kld_values || !r->p_diff_values)))
        rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory for the logits of a %d-token window", ctx);
    const double t0 = progress_now();
    for (int c = 0; !rc && c < n_chunk; c++) {
        const int *chunk = tokens + (size_t)c * ctx;
        memcpy(win, chunk, (size_t)ctx * sizeof(int));
        if (o->bos >= 0)
            win[0] = o->bos;
        /* The first half only gives context: its logits are not needed (only the last). */
        engine_reset(e);
        if ((rc = engine_forward(e, win, first, last, false, err)) ||
            (rc = engine_forward(e, win + first, ctx - first, logits, true, err)))
            break;
        if (o->base && (rc = logits_reader_read_chunk(o->base, (uint32_t)c, base_rows, err)))
            break;
        if (!score_window(logits, vocab, scored, chunk + first + 1, base_rows, save_rows, rows)) {
            rc = dsq_fail(err, DSQ_ERESOURCE, "out of memory");
            break;
        }
        for (int i = 0; i < scored; i++) {
            const row_result *x = &rows[i];
            if (x->bad) {
                rc = dsq_fail(err, DSQ_EINPUT,
                              "the model gave a non-finite logit at token %zu "
                              "(window %d, position %d)",
                              (size_t)c * ctx + first + i, c + 1, first + i);
                break;
            }
            r->sum_nll += x->nll;
            r->sum_nll2 += x->nll * x->nll;
            if (o->base) {
                const size_t k = r->count;
                r->kld_values[k] = x->kld;
                r->p_diff_values[k] =
                    kld_sums_add(&r->kld, x->nll, x->nll_base, x->kld, x->same_top);
            }
            r->count++;
        }
        if (!rc && o->save)
            rc = logits_writer_write(o->save, save_rows, (size_t)scored, err);
        if (!rc && o->on_chunk) {
            ppl_progress p = {c,          n_chunk,     progress_now() - t0,     r->count,
                              r->sum_nll, r->sum_nll2, o->base ? &r->kld : NULL};
            o->on_chunk(o->user, &p);
        }
    }
    r->seconds = progress_now() - t0;
    r->ppl = ppl_from_nll(r->sum_nll, r->sum_nll2, r->count);
    free(win);
    free(last);
    free(logits);
    free(rows);
    free(save_rows);
    free(base_rows);
    if (rc)
        ppl_result_free(r);
    return rc;
}
