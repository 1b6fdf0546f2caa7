/* Which routed experts a device engine keeps for a --vram budget (runtime/offload.c): the
 * engine's own memory plan for the experts it uploads stays within the budget, the budgets
 * offload_budget gives keep the share asked for, and a budget below the smallest is refused
 * with the file named. The device side of the same plan is tested by tests/gpu/test_model_gpu. */
#include <stdlib.h>
#include <string.h>

#include "fixture_model.h"
#include "offload.h"
#include "types.h"
#include "vram_plan.h"

/* What the CUDA engine plans (cuda/engine.cu): the file less the experts left in host memory,
 * the caches of n_seq sequences, the work buffers, and the host's results. */
static uint64_t engine_plan(const model *m, int n_seq, const unsigned char *on_gpu,
                            uint64_t *host_bytes)
{
    *host_bytes = 0;
    const int ne = m->cfg->n_routed_experts;
    for (int l = 0; l < m->cfg->n_layers; l++)
        for (int e = 0; m->w.layers[l].moe && e < ne; e++) {
            if (on_gpu[(size_t)l * ne + e])
                continue;
            const dsq_matrix *ms[3] = {&m->w.layers[l].experts[e].gate,
                                       &m->w.layers[l].experts[e].up,
                                       &m->w.layers[l].experts[e].down};
            for (int i = 0; i < 3; i++) {
                uint64_t b = 0;
                CHECK(dsq_type_nbytes(ms[i]->type, (uint64_t)ms[i]->rows, (uint64_t)ms[i]->cols,
                                      ms[i]->group, &b));
                *host_bytes += b;
            }
        }
    vram_model vm = placement_vram_model(m->cfg, m->file.file.size - *host_bytes);
    vm.n_seq = n_seq;
    vram_plan p;
    vram_plan_make(&p, &vm, m->ctx);
    return p.total + vram_host_result_bytes(m->cfg->hidden_size);
}

TEST(plans_fit_their_budgets)
{
    const char *families[] = {"tiny-v1", "tiny-v2-lite", "tiny-v2"};
    for (int f = 0; f < 3; f++) {
        model m;
        open_fixture_model(families[f], 64, &m);
        const int ne = m.cfg->n_routed_experts;
        for (int n_seq = 1; n_seq <= 3; n_seq += 2) {
            const double shares[] = {0, 0.25, 0.5, 1};
            uint64_t all_experts = 0, one_expert = 0;
            for (int s = 0; s < 4; s++) {
                uint64_t budget = 0, host = 0;
                dsq_error err = {0};
                CHECK_MSG(offload_budget(&m, n_seq, shares[s], &budget, &err) == DSQ_OK, "%s",
                          err.msg);
                placement p;
                unsigned char *on_gpu = NULL;
                CHECK_MSG(offload_plan(&m, n_seq, budget, NULL, &p, &on_gpu, &err) == DSQ_OK, "%s",
                          err.msg);
                if (!on_gpu)
                    continue;
                const uint64_t need = engine_plan(&m, n_seq, on_gpu, &host);
                CHECK_MSG(need <= budget, "%s share %.2f: the engine plans %llu for %llu",
                          families[f], shares[s], (unsigned long long)need,
                          (unsigned long long)budget);
                all_experts = p.class_bytes[TC_ROUTED_EXPERT];
                one_expert = all_experts / ((uint64_t)p.n_moe * ne);
                /* the experts kept are the share asked for, less at most one expert's bytes */
                const double want = shares[s] * (double)all_experts;
                CHECK_MSG((double)p.experts_gpu_bytes <= want &&
                              (double)p.experts_gpu_bytes + (double)one_expert > want,
                          "%s share %.2f: %llu of %llu expert bytes kept", families[f], shares[s],
                          (unsigned long long)p.experts_gpu_bytes, (unsigned long long)all_experts);
                CHECK(host == all_experts - p.experts_gpu_bytes);
                /* dense layers have no expert flags set */
                for (int l = 0; l < m.cfg->n_layers; l++)
                    for (int e = 0; !m.w.layers[l].moe && e < ne; e++)
                        CHECK(on_gpu[(size_t)l * ne + e] == 0);
                if (s == 0) { /* one byte less than the smallest budget is refused */
                    free(on_gpu);
                    placement_free(&p);
                    CHECK(offload_plan(&m, n_seq, budget - 1, NULL, &p, &on_gpu, &err) ==
                          DSQ_ERESOURCE);
                    CHECK(on_gpu == NULL);
                    CHECK_MSG(strstr(err.msg, m.file.file.path) &&
                                  strstr(err.msg, "not enough device memory"),
                              "%s", err.msg);
                }
                free(on_gpu);
                placement_free(&p);
            }
            CHECK(all_experts > 0 && one_expert > 0);
        }
        model_close(&m);
    }
}
