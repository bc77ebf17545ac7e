/*
 * Tensor parallelism's split of a Qwen3 layer over N ranks (Megatron-LM's column / row
 * parallel pairs), the host side that backends and tests share:
 *   - attention: rank r takes KV heads [r*n_kv/N, (r+1)*n_kv/N) with their query heads and
 *     their gate rows. q_proj's rows are grouped per KV head (core/gate_layout.h: the group's
 *     queries, then its gate), so the rank's q rows are one contiguous range of q_proj (and
 *     q_bias); its k and v rows are the range of its KV heads; o_proj keeps every output row
 *     and takes the input columns of the rank's query heads.
 *   - MLP: rank r takes rows [r*I/N, (r+1)*I/N) of gate_proj and up_proj and the same columns
 *     of down_proj.
 *   - everything else (embedding, norms, q/k norm weights, o_bias, LM head) is replicated.
 * So every rank's o_proj and down_proj product is a partial sum of the full one over its
 * slice of the inner dimension; summing the ranks' partials (an all-reduce) gives the full
 * product, to which o_bias is then added once (by each rank's copy of the residual stream).
 * A rank is an ordinary model of the sliced config (n_heads/N, n_kv_heads/N, intermediate/N)
 * in which every layout (gate groups, GQA) is the full model's restricted to its heads.
 */
#ifndef GATTN_CORE_TP_SHARD_H
#define GATTN_CORE_TP_SHARD_H

#include "model.h"

typedef struct ga_tp_shard {
    int rank, n;
    ga_config cfg;            /* the rank's config: n_heads, n_kv_heads, intermediate over n */
    int64_t q_row0, q_rows;   /* q_proj rows (and q_bias entries): queries and gate */
    int64_t kv_row0, kv_rows; /* k_proj / v_proj rows (and their biases) */
    int64_t o_col0, o_cols;   /* o_proj input columns */
    int64_t i_row0, i_rows;   /* gate_proj / up_proj rows, down_proj input columns */
} ga_tp_shard;

/* GA_OK when a Qwen3 config splits over n ranks (1 <= n <= GA_TP_MAX; heads, KV heads and
 * intermediate size divisible by n); else GA_ERR_ARG / GA_ERR_UNSUPPORTED naming the numbers. */
ga_status ga_tp_check(const ga_config *c, int n, ga_err *err);

/* Rank `rank`'s slice of a config that ga_tp_check accepts. */
ga_status ga_tp_shard_of(const ga_config *c, int n, int rank, ga_tp_shard *out, ga_err *err);

/* Device bytes rank `rank` of n holds for the weights of config c as the CUDA backend stores a
 * rank (ga_cuda_weight_plan of its model: every matrix bf16, the embedding on every rank, an
 * untied LM head on rank 0 only, the hidden-size norms fp32). c must pass ga_tp_check. */
uint64_t ga_tp_rank_weight_bytes(const ga_config *c, int n, int rank);

/* Rows [r0, r0 + nr) x columns [c0, c0 + nc) of the 2-D tensor t (any stored dtype) as bf16,
 * row-major (nr, nc) into dst: the values the bf16 upload of t holds (ga_tensor_read_bf16). A
 * 1-D tensor takes nr = 1, c0 = its first element. */
void ga_tp_slice_bf16(const ga_tensor *t, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                      uint16_t *dst);

/* Rank `rank`'s model: m's config sliced (ga_tp_shard_of) and every sliced tensor of every
 * layer copied into host bf16 (named as the original, file "<tensor-parallel slice>"), the
 * replicated ones pointing at m's own views. Owns only what it allocated: free it with
 * ga_tp_model_free (never ga_model_free); m must outlive it. Holds the rank's share of the
 * weights in host memory until freed (a backend frees it once its rank is uploaded). */
ga_status ga_tp_model(const ga_model *m, int n, int rank, ga_model **out, ga_err *err);
void ga_tp_model_free(ga_model *shard);

#endif
