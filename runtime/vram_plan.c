/* The CUDA engine's memory plan (see vram_plan.h). */
#include "vram_plan.h"

#include <string.h>

void vram_plan_make(vram_plan *p, const vram_model *m, int ctx)
{
    memset(p, 0, sizeof *p);
    const size_t H = (size_t)m->hidden, nh = (size_t)m->n_heads;
    const size_t per_token_a =
        m->mla ? (size_t)m->kv_lora_rank : (size_t)m->n_kv_heads * m->head_dim;
    const size_t per_token_b = m->mla ? (size_t)m->qk_rope : per_token_a;
    const size_t n_seq = (size_t)(m->n_seq > 1 ? m->n_seq : 1);
    p->cache_a = n_seq * m->n_layers * ctx * per_token_a;
    p->cache_b = n_seq * m->n_layers * ctx * per_token_b;
    const size_t b = VRAM_SCORE_BYTES / (nh * (size_t)ctx * sizeof(float));
    p->batch = b < 1 ? 1 : b > VRAM_MAX_BATCH ? VRAM_MAX_BATCH : (int)b;
    const size_t B = (size_t)p->batch, k = (size_t)(m->k > 0 ? m->k : 1);
    const size_t qk = m->mla ? (size_t)(m->qk_nope + m->qk_rope) : (size_t)m->head_dim;
    p->q = B * nh * qk;
    p->qa = B * (size_t)m->q_lora_rank;
    p->kv = m->mla ? 0 : B * (size_t)m->n_kv_heads * m->head_dim;
    p->ckv = m->mla ? B * (size_t)(m->kv_lora_rank + m->qk_rope) : 0;
    p->attn = B * nh * (size_t)(m->mla ? m->v_head_dim : m->head_dim);
    p->lat = m->mla ? B * nh * (size_t)m->kv_lora_rank : 0;
    p->scores = B * nh * (size_t)ctx;
    p->ffn = B * (size_t)m->ffn_inter;
    p->h = B * k * (size_t)m->expert_inter;
    p->ye = m->expert_inter ? B * k * H : 0; /* and as much again for inputs grouped by expert */
    p->router = B * (size_t)m->n_experts;
    p->ids = B * k;
    p->logits = B * (size_t)m->vocab;
    p->table_bytes = (size_t)m->n_layers * (3 * m->n_experts + 2) * VRAM_MATRIX_BYTES +
                     2 * (size_t)ctx * (m->rope_dim / 2) * sizeof(float);
    p->sample_bytes = 2 * (size_t)m->vocab * sizeof(uint64_t) + VRAM_SAMPLE_SCRATCH(m->vocab) +
                      sizeof(uint64_t) + ((size_t)ctx + 4) * sizeof(int);
    p->weights = m->file_bytes;
    p->cache_bytes = (p->cache_a + p->cache_b) * sizeof(float);
    /* x, xn, shared-expert output; two of k/v, q_lat/o_lat, gate/up */
    const size_t floats = 3 * B * H + p->q + p->qa + 2 * p->kv + p->ckv + p->attn + 2 * p->lat +
                          p->scores + 2 * p->ffn + p->h + 2 * p->ye + p->router + p->ids +
                          p->logits;
    /* ids and their order by expert, the experts' starts, each token's position, sequence, id,
     * and the zero ids of the one-entry FFN tables */
    const size_t ints = 2 * p->ids + (size_t)m->n_experts + 1 + 4 * B;
    p->work_bytes = floats * sizeof(float) + ints * sizeof(int) + p->table_bytes + p->sample_bytes;
    p->total = p->weights + p->cache_bytes + p->work_bytes;
}
