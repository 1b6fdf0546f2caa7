/* Sampling on the device (cuda/sample.cu) against the CPU sampler (runtime/sampler.c), token for
 * token: 100 seeds x 7 settings (greedy; temperature; top-k; top-p; min-p; repetition penalty;
 * all together) x 4 successive draws per seed, over random logits of the real vocabulary
 * (102400) and a small one, plus greedy picks at a tie and beside NaN logits (as the CPU). Every
 * draw must agree. Both draw from the same splitmix64 stream in the same sorted order; they can
 * disagree only when a draw or a top-p/min-p cut falls within the ulp-level difference of the
 * two sides' probabilities (device expf within 2 ulp, glibc's within 1; double sums in another
 * order), about 5e-7 of the probability mass per draw, so about 1e-3 for the 2,800 draws here.
 * Also timed: one sampling step at the full vocabulary (printed, never asserted). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_check.h"
#include "kernels.h"

static uint64_t rng = 0x853c49e6748fea9bull;
static double gauss(void)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        u[i] = ((rng >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static int passed, failed;

static bool run_setting(const char *what, sampler_params p, int vocab, int seeds, int steps)
{
    const int hist_cap = 128;
    float *logits = (float *)malloc((size_t)vocab * sizeof(float));
    float *cpu_logits = (float *)malloc((size_t)vocab * sizeof(float));
    int hist[128];
    float *dl;
    int *dh, *dn, *dt;
    CUDA_CHECK(cudaMalloc(&dl, (size_t)vocab * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dh, hist_cap * sizeof(int)));
    CUDA_CHECK(cudaMalloc(&dn, sizeof(int)));
    CUDA_CHECK(cudaMalloc(&dt, sizeof(int)));
    int mismatches = 0, draws = 0;
    for (int seed = 0; seed < seeds; seed++) {
        p.seed = 1000 + (uint64_t)seed;
        sampler cpu;
        dsampler dev;
        dsq_error err;
        if (sampler_init(&cpu, &p, vocab, &err) != DSQ_OK) { /* a setting not run fails */
            fprintf(stderr, "  %s: %s\n", what, err.msg);
            failed++;
            return false;
        }
        CUDA_CHECK(dsampler_init(&dev, p, vocab, 1));
        int n_hist = 0;
        for (int i = 0; i < 70; i++) /* a history longer than repeat_last_n, with repeats */
            hist[n_hist++] = (int)(gauss() * 8 + 20) & 63;
        for (int step = 0; step < steps; step++) {
            const double scale = 1 + step; /* peaked to flat */
            for (int i = 0; i < vocab; i++)
                logits[i] = (float)(gauss() * 2.5 / scale);
            memcpy(cpu_logits, logits, (size_t)vocab * sizeof(float));
            const int want = sampler_sample(&cpu, cpu_logits, hist, n_hist);
            CUDA_CHECK(cudaMemcpy(dl, logits, (size_t)vocab * sizeof(float),
                                  cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(dh, hist, (size_t)n_hist * sizeof(int), cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(dn, &n_hist, sizeof(int), cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemset(dt, 0xff, sizeof(int)));
            CUDA_CHECK(launch_sample(&dev, dl, 1, dh, dn, hist_cap, dt, NULL, 0));
            CUDA_CHECK(cudaDeviceSynchronize());
            int got;
            CUDA_CHECK(cudaMemcpy(&got, dt, sizeof(int), cudaMemcpyDeviceToHost));
            draws++;
            if (got != want && mismatches++ < 3)
                fprintf(stderr, "  %s vocab %d seed %d step %d: device %d, cpu %d\n", what, vocab,
                        seed, step, got, want);
            if (n_hist < hist_cap)
                hist[n_hist++] = want;
        }
        sampler_free(&cpu);
        dsampler_free(&dev);
    }
    printf("  %-22s vocab %6d: %d draws, %d differ: %s\n", what, vocab, draws, mismatches,
           mismatches ? "FAIL" : "ok");
    mismatches ? failed++ : passed++;
    cudaFree(dl);
    cudaFree(dh);
    cudaFree(dn);
    cudaFree(dt);
    free(logits);
    free(cpu_logits);
    return true;
}

/* A greedy pick of one full-vocabulary row, device against the CPU's argmax and the index it
 * must be, and the first non-finite logit the device reports (-1: none). */
static void greedy_pick(const char *what, const float *l, int vocab, int want_index, int want_bad)
{
    sampler_params p = sampler_defaults();
    sampler cpu;
    dsampler dev;
    dsq_error err;
    if (sampler_init(&cpu, &p, vocab, &err) != DSQ_OK) {
        fprintf(stderr, "  greedy %s: %s\n", what, err.msg);
        failed++;
        return;
    }
    CUDA_CHECK(dsampler_init(&dev, p, vocab, 1));
    float *dl;
    int *dt, *dn, *db, zero = 0, got = -1, bad = -2;
    CUDA_CHECK(cudaMalloc(&dl, vocab * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dt, sizeof(int)));
    CUDA_CHECK(cudaMalloc(&dn, sizeof(int)));
    CUDA_CHECK(cudaMalloc(&db, sizeof(int)));
    CUDA_CHECK(cudaMemcpy(dl, l, vocab * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dn, &zero, sizeof(int), cudaMemcpyHostToDevice));
    CUDA_CHECK(launch_sample(&dev, dl, 1, dn, dn, 0, dt, db, 0));
    CUDA_CHECK(cudaMemcpy(&got, dt, sizeof(int), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(&bad, db, sizeof(int), cudaMemcpyDeviceToHost));
    float *copy = (float *)malloc(vocab * sizeof(float)); /* the CPU sampler may write its row */
    memcpy(copy, l, vocab * sizeof(float));
    const int want = sampler_sample(&cpu, copy, NULL, 0);
    const bool ok = got == want && want == want_index && bad == want_bad;
    printf("  greedy %s: device %d, cpu %d (want %d), first non-finite %d (want %d): %s\n", what,
           got, want, want_index, bad, want_bad, ok ? "ok" : "FAIL");
    ok ? passed++ : failed++;
    free(copy);
    sampler_free(&cpu);
    dsampler_free(&dev);
    cudaFree(dl);
    cudaFree(dt);
    cudaFree(dn);
    cudaFree(db);
}

/* Tied maxima (the CPU takes the lower index); a NaN at logit 0, which the CPU's argmax never
 * replaces; a NaN further on, which both skip, and an Inf after it, which both pick; the first
 * non-finite logit of each row. */
static void greedy_edges(void)
{
    const int vocab = 102400;
    float *l = (float *)malloc(vocab * sizeof(float));
    for (int i = 0; i < vocab; i++)
        l[i] = (float)gauss();
    l[70001] = l[70000] = 9.0f;
    greedy_pick("tie at 70000/70001", l, vocab, 70000, -1);
    const float first = l[0];
    l[0] = NAN;
    greedy_pick("NaN at 0", l, vocab, 0, 0);
    l[0] = first;
    l[123] = NAN;
    l[90000] = INFINITY; /* the largest, so the pick */
    greedy_pick("NaN at 123, Inf at 90000", l, vocab, 90000, 123);
    free(l);
}

/* One temperature + top-p step at the full vocabulary, median of 21, in microseconds. */
static void time_step(void)
{
    const int vocab = 102400;
    sampler_params p = sampler_defaults();
    p.temperature = 0.8f;
    p.top_p = 0.95f;
    dsampler dev;
    CUDA_CHECK(dsampler_init(&dev, p, vocab, 1));
    float *l = (float *)malloc(vocab * sizeof(float)), *dl;
    for (int i = 0; i < vocab; i++)
        l[i] = (float)gauss() * 2;
    int *dt, *dn, zero = 0;
    CUDA_CHECK(cudaMalloc(&dl, vocab * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dt, sizeof(int)));
    CUDA_CHECK(cudaMalloc(&dn, sizeof(int)));
    CUDA_CHECK(cudaMemcpy(dl, l, vocab * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dn, &zero, sizeof(int), cudaMemcpyHostToDevice));
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    float t[21];
    for (int i = -1; i < 21; i++) {
        CUDA_CHECK(cudaEventRecord(a, 0));
        CUDA_CHECK(launch_sample(&dev, dl, 1, dn, dn, 0, dt, NULL, 0));
        CUDA_CHECK(cudaEventRecord(b, 0));
        CUDA_CHECK(cudaEventSynchronize(b));
        if (i >= 0)
            CUDA_CHECK(cudaEventElapsedTime(&t[i], a, b));
    }
    for (int i = 0; i < 21; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            const float s = t[j];
            t[j] = t[j - 1];
            t[j - 1] = s;
        }
    printf("  one sampling step, vocab 102400, temperature 0.8, top-p 0.95: %.1f us (median)\n",
           t[10] * 1000);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaFree(dl);
    cudaFree(dt);
    cudaFree(dn);
    free(l);
    dsampler_free(&dev);
}

int main(void)
{
    if (!gpu_available("test_sample"))
        return 0;
    sampler_params base = sampler_defaults();
    struct {
        const char *what;
        sampler_params p;
    } set[7];
    for (int i = 0; i < 7; i++)
        set[i].p = base;
    set[0].what = "greedy";
    set[0].p.repeat_penalty = 1.2f;
    set[1].what = "temperature 0.8";
    set[1].p.temperature = 0.8f;
    set[2].what = "top-k 40";
    set[2].p.temperature = 1.0f, set[2].p.top_k = 40;
    set[3].what = "top-p 0.9";
    set[3].p.temperature = 0.7f, set[3].p.top_p = 0.9f;
    set[4].what = "min-p 0.05";
    set[4].p.temperature = 1.0f, set[4].p.min_p = 0.05f;
    set[5].what = "penalty 1.3 last 64";
    set[5].p.temperature = 1.0f, set[5].p.repeat_penalty = 1.3f;
    set[6].what = "all together";
    set[6].p.temperature = 0.9f, set[6].p.top_k = 50, set[6].p.top_p = 0.95f,
    set[6].p.min_p = 0.02f, set[6].p.repeat_penalty = 1.1f;
    for (int i = 0; i < 7; i++) {
        run_setting(set[i].what, set[i].p, 102400, 20, 4);
        run_setting(set[i].what, set[i].p, 1000, 80, 4);
    }
    greedy_edges();
    time_step();
    printf("test_sample: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
