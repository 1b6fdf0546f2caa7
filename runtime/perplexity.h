/* Perplexity and KL-divergence measured the way llama.cpp's llama-perplexity measures them
 * (tools/perplexity/perplexity.cpp: perplexity() and kl_divergence()), so numbers compare:
 *
 *  - The text is tokenized once (BOS as the tokenizer adds it); n_chunk = n_tokens / ctx windows
 *    of ctx tokens, not overlapping, the remainder unused. Each window is a fresh sequence whose
 *    first token is replaced by BOS when the tokenizer adds BOS.
 *  - In each window, the positions first = ctx/2 .. ctx-2 are scored: -log p(token at j+1 |
 *    tokens 0..j), so ctx - 1 - first tokens per window; the first half only gives context.
 *  - PPL = exp(mean NLL). Its uncertainty is llama.cpp's final estimate: with m = mean NLL and
 *    v = mean(NLL^2) - m^2, +/- PPL * sqrt(v / (count - 1)) (the standard error of the mean NLL,
 *    carried through exp).
 *  - KL statistics against a base: per token KLD = sum_i p_base_i (log p_base_i - log p_q_i);
 *    dp = p_q(correct) - p_base(correct); top-1 agreement. Means with llama.cpp's
 *    mean_and_uncertainty (stderr sqrt(v / (count - 1)), reported as 0 for count <= 10), its
 *    covariance of ln PPL(Q) and ln PPL(base) (0 for count < 10), RMS dp = sqrt(mean dp^2) +/-
 *    0.5 / RMS * stderr(dp^2), same top p +/- sqrt(p (1 - p) / (count - 1)), and its percentile:
 *    over the sorted values, x = f (n - 1), linear between the two neighbours (numpy's 'linear';
 *    f <= 0 the minimum, f >= 1 the maximum); the median is the middle value or the mean of the
 *    two middle ones.
 *
 * Where this differs from llama.cpp, on purpose:
 *  - log-softmax in double with exp() (llama.cpp: expf, sum in double); sums in window order,
 *    so results do not depend on the thread count.
 *  - KLD sums over the whole vocabulary (llama.cpp drops entries whose stored base log-prob is
 *    <= -16, which its encoding clamps); the stored base distribution is renormalized, and
 *    PPL(base), dp and top-1 use the base's exact NLL and argmax (logits_file.h).
 *  - One window of text is enough (llama.cpp asks for 2 * ctx tokens); ctx must be even and >= 4.
 *  - The uncertainty of ln(PPL(Q)/PPL(base)) is sqrt(max(0, ...)) (llama.cpp's can be the sqrt of
 *    a rounding-negative number when Q and base are the same model). */
#ifndef DSQ_PERPLEXITY_H
#define DSQ_PERPLEXITY_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "logits_file.h"
#include "engine.h"

/* ---- one row of logits -------------------------------------------------------------------- */

/* log(sum_i exp(logits_i)) in double (max subtracted first). */
double ppl_log_sum_exp(const float *logits, int n);
/* Index of the largest value, the first one on ties. */
int ppl_argmax(const float *logits, int n);
/* KL(base || q) = sum_i exp(logp_base_i) (logp_base_i - logp_q_i), in double, over n entries of
 * log-probabilities. */
double ppl_kl_divergence(const double *logp_base, const double *logp_q, int n);

/* ---- estimators over plain numbers -------------------------------------------------------- */

typedef struct {
    double value, uncertainty;
} ppl_estimate;

/* llama.cpp's mean_and_uncertainty: mean sum/count and the standard error of the mean,
 * sqrt((sum2/count - mean^2) / (count - 1)), 0 when that variance is not positive or count <= 10
 * (count 0: both 0). */
ppl_estimate ppl_mean_and_uncertainty(double sum, double sum2, size_t count);
/* llama.cpp's covariance of two means: (sumab/count - suma/count * sumb/count) / (count - 1);
 * 0 for count < 10. */
double ppl_covariance(double suma, double sumb, double sumab, size_t count);
/* exp(mean NLL) and llama.cpp's final "+/-": PPL * sqrt((mean(NLL^2) - mean^2) / (count - 1)),
 * 0 when count < 2 or the variance is not positive. */
ppl_estimate ppl_from_nll(double sum_nll, double sum_nll2, size_t count);
/* Percentile of n >= 1 ascending values, fraction in [0, 1] (llama.cpp's definition above). */
double ppl_percentile(const double *sorted, size_t n, double fraction);
/* Middle value, or mean of the two middle values, of n >= 1 ascending values. */
double ppl_median(const double *sorted, size_t n);

/* Running sums of the KL statistics (llama.cpp's kl_divergence_result, plus sum |dp|). */
typedef struct {
    double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
    double sum_kld, sum_kld2, sum_p_diff, sum_p_diff2, sum_p_diff4, sum_abs_p_diff;
    size_t n_same_top, count;
} kld_sums;

/* Adds one scored token: NLL under Q and under the base, its KLD, whether the top-1 agree.
 * Returns dp = exp(-nll) - exp(-nll_base). */
double kld_sums_add(kld_sums *s, double nll, double nll_base, double kld, bool same_top);

/* Percentiles reported (in this order), as llama.cpp prints them for KLD and dp (KLD omits
 * 75% and 25%); the 0.5 slot holds ppl_median. */
#define KLD_N_PCT 11
extern const double kld_pct_fraction[KLD_N_PCT]; /* .999 .99 .95 .90 .75 .5 .25 .10 .05 .01 .001 */

typedef struct {
    size_t count;
    ppl_estimate ppl_q, ppl_base, ln_ppl_ratio, ppl_ratio, ppl_diff;
    double cor_ln_ppl; /* correlation of ln PPL(Q) and ln PPL(base) */
    ppl_estimate kld;  /* mean and its standard error */
    double kld_max, kld_min, kld_pct[KLD_N_PCT];
    ppl_estimate p_diff; /* mean dp (a probability, not %) */
    double p_diff_max, p_diff_min, p_diff_pct[KLD_N_PCT];
    ppl_estimate p_diff_rms;
    double p_diff_abs_mean;
    ppl_estimate same_top; /* fraction of tokens whose top-1 agree */
} kld_stats;

/* Everything but the order statistics (max, min, percentiles), from the sums alone: the running
 * estimates printed after each window. */
void kld_stats_from_sums(const kld_sums *s, kld_stats *out);
/* Final statistics from the sums and the per-token KLD and dp values (n = s->count of each,
 * sorted in place). */
void kld_stats_compute(const kld_sums *s, double *kld, double *p_diff, kld_stats *out);

/* ---- evaluation over a text --------------------------------------------------------------- */

typedef struct {
    int chunk, n_chunk; /* window just finished (0-based) and the number of windows */
    double seconds;     /* since the evaluation started */
    size_t count;       /* tokens scored so far */
    double sum_nll, sum_nll2;
    const kld_sums *kld; /* NULL without a base */
} ppl_progress;

typedef struct {
    int ctx;             /* window, even, >= 4, <= the model's cache */
    int bos;             /* put at position 0 of every window; -1: keep the text's token */
    logits_writer *save; /* optional: receives every scored row (header already written) */
    logits_reader *base; /* optional: base rows (already checked against this text) */
    void (*on_chunk)(void *user, const ppl_progress *p);
    void *user;
} ppl_options;

typedef struct {
    int n_chunk, scored_per_chunk;
    size_t count; /* n_chunk * scored_per_chunk */
    double sum_nll, sum_nll2;
    ppl_estimate ppl;
    double seconds;
    /* with a base: */
    kld_sums kld;
    double *kld_values, *p_diff_values; /* count each, in text order */
} ppl_result;

/* Evaluates the text's n_tokens tokens (at least ctx) in windows of o->ctx. */
int ppl_evaluate(engine *e, const int *tokens, size_t n_tokens, const ppl_options *o, ppl_result *r,
                 dsq_error *err);
void ppl_result_free(ppl_result *r);

#endif
