/*
 * gattn: inference for Qwen3-family decoders with gated attention.
 *
 * This is the one header a user of libgattn includes. It owns the public types (errors,
 * config, model, session) and the calls that load a Hugging Face model folder and run it on
 * a backend (CPU reference or CUDA). Everything else lives behind it.
 *
 * Conventions: every call that can fail returns a ga_status and, when it fails, writes a
 * one-line message into the caller's ga_err (naming the file, tensor or argument). Library
 * code never exits or prints; the CLI decides what to do with an error.
 */
#ifndef GATTN_GATTN_H
#define GATTN_GATTN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

typedef enum ga_status {
    GA_OK = 0,
    GA_ERR_IO,          /* a file could not be opened, read or mapped */
    GA_ERR_FORMAT,      /* a model file is malformed (bad JSON, bad safetensors header, ...) */
    GA_ERR_SHAPE,       /* a tensor has the wrong dtype or shape, or is missing */
    GA_ERR_ARG,         /* a caller argument is out of range (token id, length, option) */
    GA_ERR_OOM,         /* host or device memory ran out */
    GA_ERR_UNSUPPORTED, /* a valid but unsupported feature (rope_scaling type, no GPU, ...) */
    GA_ERR_CUDA,        /* a CUDA / cuBLAS call failed */
    GA_ERR_NO_CACHE,    /* a paged KV cache has too few free blocks for the call (nothing ran) */
} ga_status;

typedef struct ga_err {
    char msg[512];
} ga_err;

/* Writes a printf-style message into err (if non-NULL) and returns code. */
ga_status ga_err_set(ga_err *err, ga_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *ga_status_name(ga_status s);

/* ---------------------------------------------------------------- config */

typedef enum ga_gate_mode {
    GA_GATE_NONE = 0,        /* baseline attention */
    GA_GATE_HEADWISE = 1,    /* one sigmoid gate per head */
    GA_GATE_ELEMENTWISE = 2, /* one sigmoid gate per element of the head's output */
} ga_gate_mode;

typedef enum ga_dtype {
    GA_F32 = 0,
    GA_F16 = 1,
    GA_BF16 = 2,
    GA_F8_E4M3 = 3, /* stored weights only (FP8 checkpoints, with block scales): never a compute
                     * type; readers dequantise (src/core/tensor.h) */
} ga_dtype;

#define GA_MAX_EOS 8

/* RoPE scaling (config.json's rope_scaling / rope_parameters, or --rope-* on the command line).
 * Frequencies and the cos/sin scale follow transformers 5's modeling_rope_utils
 * (_compute_linear_scaling_rope_parameters, _compute_yarn_parameters); see src/core/rope.c.
 * "dynamic" NTK is refused (src/core/rope.c says why). */
typedef enum ga_rope_type {
    GA_ROPE_DEFAULT = 0, /* theta^(-2i/d) */
    GA_ROPE_LINEAR = 1,  /* default frequencies / factor (position interpolation) */
    GA_ROPE_YARN = 2,    /* YaRN: per-frequency blend of interpolation and extrapolation, and an
                          * attention factor on cos/sin */
} ga_rope_type;

typedef struct ga_rope_scaling {
    ga_rope_type type;
    double factor;                        /* linear, yarn: the context extension factor (> 0) */
    int original_max_position_embeddings; /* the pretraining context; 0: max_position_embeddings */
    double beta_fast, beta_slow;          /* yarn: ramp bounds in rotations (0: 32 and 1) */
    double attention_factor;              /* yarn: cos/sin scale (0: from factor and mscale) */
    double mscale, mscale_all_dim;        /* yarn: DeepSeek-style attention factor (0: absent) */
    bool no_truncate; /* yarn: truncate = false (keep the ramp bounds unrounded) */
} ga_rope_scaling;

/* The model families config.json's model_type names (transformers 5.17). Qwen3 runs on every
 * backend; the hybrids (issue 15) run on the CPU backend (src/cpu/cpu_hybrid_backend.c), and
 * the CUDA backend refuses them. */
typedef enum ga_arch {
    GA_ARCH_QWEN3 = 0,       /* "qwen3" (or no model_type): the gated-attention Qwen3 models */
    GA_ARCH_QWEN3_NEXT = 1,  /* "qwen3_next": hybrid, MoE, fused in_proj_qkvz / in_proj_ba */
    GA_ARCH_QWEN3_5 = 2,     /* "qwen3_5" (text_config) / "qwen3_5_text": hybrid, dense MLP */
    GA_ARCH_QWEN3_5_MOE = 3, /* "qwen3_5_moe" (text_config) / "qwen3_5_moe_text": hybrid, MoE */
} ga_arch;

#define GA_MAX_LAYERS 1024

/* What the hybrid families add to a config (zero for Qwen3). src/core/config_hybrid.c has the
 * meaning and the transformers default of every field. */
typedef struct ga_hybrid_config {
    bool vl_wrapper;             /* config.json nests the text model in "text_config"; the text
                                  * weights are model.language_model.*, model.visual.* is ignored */
    int n_linear_layers;         /* layers whose layer_types entry is "linear_attention" */
    int full_attention_interval; /* every k-th layer is full attention (0: irregular pattern) */
    unsigned char layer_is_linear[GA_MAX_LAYERS]; /* 1: Gated DeltaNet, 0: full attention */
    /* Gated DeltaNet (linear_attention) layers */
    int linear_conv_kernel_dim; /* depthwise causal conv1d width over [q|k|v] */
    int linear_num_key_heads;   /* q/k heads */
    int linear_num_value_heads; /* v heads; a multiple of the key heads */
    int linear_key_head_dim;    /* d_k; the recurrent state is d_k x d_v per value head */
    int linear_value_head_dim;  /* d_v */
    /* full-attention layers: q_proj gives per query head [head_dim query | head_dim gate] */
    bool attn_output_gate;        /* the sigmoid output gate (true in every released model) */
    double partial_rotary_factor; /* RoPE covers the first head_dim * factor dimensions */
    int rotary_dim;               /* head_dim * partial_rotary_factor (even) */
    int n_mrope_section;          /* entries of rope_parameters.mrope_section (0: none) */
    int mrope_section[4];         /* multimodal RoPE split (t, h, w); text input only */
    bool mrope_interleaved;
    /* MLP */
    bool moe;                            /* sparse MoE blocks (qwen3_next, qwen3_5_moe) */
    int num_experts;                     /* routed experts per MoE layer */
    int num_experts_per_tok;             /* top-k */
    int moe_intermediate_size;           /* per-expert SwiGLU width */
    int shared_expert_intermediate_size; /* the shared expert's width (0: none) */
    bool norm_topk_prob;                 /* renormalise the top-k routing weights to sum 1 */
    int decoder_sparse_step;             /* qwen3_next: MoE on layers with (l+1) % step == 0 */
    int n_moe_layers; /* layers with an MoE block (others: dense, intermediate) */
    unsigned char layer_is_moe[GA_MAX_LAYERS]; /* after decoder_sparse_step and mlp_only_layers */
    int mtp_num_hidden_layers;                 /* multi-token-prediction layers (mtp.*, ignored) */
} ga_hybrid_config;

typedef struct ga_config {
    ga_arch arch;
    bool norm_zero_centred; /* RMSNorm scales by (1 + weight) (every hybrid norm but the gated
                             * one of the DeltaNet output) */
    ga_hybrid_config hybrid;
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int n_layers;
    int n_heads;    /* query heads */
    int n_kv_heads; /* key/value heads; G = n_heads / n_kv_heads */
    int head_dim;
    float rms_norm_eps;
    double rope_theta;
    int max_position_embeddings;
    bool tie_word_embeddings;
    bool use_qk_norm;
    bool attention_bias; /* q/k/v projections carry biases (attention_bias or qkv_bias) */
    bool o_bias;         /* o_proj carries a bias (attention_bias only, as in transformers) */
    ga_gate_mode gate;
    ga_dtype torch_dtype; /* as declared in config.json; tensors may still differ per file */
    /* quantization_config {"quant_method": "fp8", "fmt": "e4m3"}: F8_E4M3 weights with
     * (fp8_block[0] x fp8_block[1]) block scales (weight_block_size, default 128 x 128);
     * fp8_block[0] == 0 when the folder is not quantised. */
    int fp8_block[2];
    int n_eos;
    int eos_token_ids[GA_MAX_EOS];
    int bos_token_id; /* -1 when absent */
    ga_rope_scaling rope_scaling;
} ga_config;

/* Rows of q_proj: queries plus, per KV group, the gate rows (see ga_config_q_rows). */
int ga_config_q_rows(const ga_config *c);
/* Gate values per token: 0, n_heads (headwise) or n_heads*head_dim (elementwise). */
int ga_config_gate_dim(const ga_config *c);
int64_t ga_config_param_count(const ga_config *c);
const char *ga_gate_mode_name(ga_gate_mode g);
const char *ga_dtype_name(ga_dtype d);
size_t ga_dtype_size(ga_dtype d);
const char *ga_rope_type_name(ga_rope_type t);
/* The longest sequence the model takes with the RoPE scaling in force: max_position_embeddings,
 * or factor * original_max_position_embeddings when that is larger (linear, yarn). Sessions
 * accept a context up to this. */
int ga_config_max_context(const ga_config *c);
/* Checks a scaling against a config (factor, original length, yarn fields); `what` names its
 * source in the error ("rope_scaling", "--rope-factor"). */
ga_status ga_rope_scaling_check(const ga_config *c, const ga_rope_scaling *rs, const char *what,
                                ga_err *err);

const char *ga_arch_name(ga_arch a);
/* Parameters a token passes through: the total less the experts it is not routed to (the total
 * for dense models). */
int64_t ga_config_active_param_count(const ga_config *c);
/* NULL when this build can run the model, else the first missing feature, one phrase. */
const char *ga_config_unsupported(const ga_config *c);
/* GA_OK when this build can run the model the config describes; otherwise GA_ERR_UNSUPPORTED
 * and one line naming the first missing feature (for a hybrid, e.g. RoPE scaling or attention
 * biases, which its reference forward does not implement), prefixed by `what` (the model
 * folder). Session creation calls it, so every command that runs a model refuses the same way. */
ga_status ga_config_check_runnable(const ga_config *c, const char *what, ga_err *err);

/* Parses and validates a config.json; `path` is used in error messages. */
ga_status ga_config_parse(const char *json_text, size_t len, const char *path, ga_config *out,
                          ga_err *err);
ga_status ga_config_load(const char *path, ga_config *out, ga_err *err);

/* ---------------------------------------------------------------- model */

typedef struct ga_model ga_model;

/* Opens a Hugging Face model folder (config.json + model.safetensors or
 * model.safetensors.index.json with shards). Tensors are memory-mapped and bound by name,
 * dtype and shape; nothing is converted until a backend is created. */
ga_status ga_model_load(const char *dir, ga_model **out, ga_err *err);

/* Builds a model with random weights in memory (no files), for benchmarks and tests. */
ga_status ga_model_random(const ga_config *cfg, uint64_t seed, ga_dtype dtype, ga_model **out,
                          ga_err *err);
void ga_model_free(ga_model *m);

const ga_config *ga_model_config(const ga_model *m);
/* Folder name (last path component), or "random" for an in-memory model. */
const char *ga_model_name(const ga_model *m);
const char *ga_model_dir(const ga_model *m);
/* The dtype most of the weights are stored in. */
ga_dtype ga_model_weight_dtype(const ga_model *m);
/* Tensors (and their bytes as stored, if bytes is non-NULL) whose names start with prefix;
 * "" counts all. gattn info uses it to report the groups a hybrid folder carries and ignores
 * (model.visual., mtp.). */
int ga_model_count_prefix(const ga_model *m, const char *prefix, uint64_t *bytes);
/* Bytes of all weight tensors as stored. */
uint64_t ga_model_weight_bytes(const ga_model *m);
/* Replaces the model's RoPE scaling (as a user overrides config.json for long inputs, e.g.
 * yarn factor 4 on a 32k model); sessions created afterwards use it, existing ones keep
 * theirs. Checked with ga_rope_scaling_check; the model is unchanged on error. */
ga_status ga_model_set_rope_scaling(ga_model *m, const ga_rope_scaling *rs, ga_err *err);

/* Options for writing a random-weight model folder in the published format. */
typedef struct ga_write_opts {
    uint64_t seed;
    ga_dtype dtype; /* GA_F32, GA_F16, GA_BF16, or GA_F8_E4M3 (block-quantised projections) */
    int fp8_block;  /* GA_F8_E4M3: the square block edge of the scales (0: 128, as released) */
    float init_std; /* std of the normal init of projection weights (0: 0.02) */
    int n_shards;   /* 1: model.safetensors; >1: sharded with an index json */
    bool tokenizer; /* also write a small byte-level BPE tokenizer.json */
} ga_write_opts;

/* Writes config.json + safetensors (+ tokenizer files) into dir (created if missing). */
ga_status ga_model_write_random(const char *dir, const ga_config *cfg, const ga_write_opts *opts,
                                ga_err *err);

/* ---------------------------------------------------------------- sessions */

typedef enum ga_device {
    GA_DEVICE_AUTO = 0, /* CUDA when a GPU is present, else CPU */
    GA_DEVICE_CPU = 1,
    GA_DEVICE_CUDA = 2,
} ga_device;

/* The CUDA backend's GEMM. The alternatives to cuBLAS exist to tell a cuBLAS problem on a
 * given machine from a bug in the rest of the backend. */
typedef enum ga_cuda_gemm_impl {
    GA_CUDA_GEMM_CUBLAS = 0,      /* cuBLAS, and the weight-streaming GEMV of kernels/gemv.cu for
                                   * decode batches where it is faster (the default) */
    GA_CUDA_GEMM_LT = 1,          /* cuBLASLt with a heuristic algorithm per call */
    GA_CUDA_GEMM_FALLBACK = 2,    /* the plain tiled kernel (kernels/gemm_fallback.cu) */
    GA_CUDA_GEMM_CUBLAS_ONLY = 3, /* cuBLAS for every shape, decode batches too */
} ga_cuda_gemm_impl;

/* How the CUDA backend holds the FP8 (F8_E4M3, block-scaled) projections of an FP8 folder.
 * Both forms compute every product on the same bf16 value of the dequantised weight, so their
 * logits are bitwise equal; FP8 takes half the memory and half the weight bytes of a decode
 * step at batch 1-2, and adds a dequantisation pass to prefill and to larger decode batches. */
typedef enum ga_cuda_weights {
    GA_CUDA_WEIGHTS_AUTO = 0, /* FP8 folders: FP8 (the default); other folders: bf16 */
    GA_CUDA_WEIGHTS_BF16 = 1, /* dequantised to bf16 at upload (twice the memory) */
    GA_CUDA_WEIGHTS_FP8 = 2,  /* FP8 (a hybrid's experts too); refused for a folder without
                                 FP8 projections */
} ga_cuda_weights;

/* How the CUDA FP8 GEMV (projections of 1-2 rows: decode steps at batch 1-2) computes with FP8
 * weights kept as FP8 (ga_session_opts.fp8_math). EXACT rounds every weight to the bf16 value
 * of the dequantised weight before its FMA: the logits are bitwise those of bf16 weights. FAST
 * multiplies each 8-code dot product with the input by the block scale once (kernels/gemv.cu
 * says why and what it costs): faster and deterministic, a row's bits independent of the
 * GEMV's batch as in EXACT, but not bitwise the bf16 logits (no per-weight bf16 rounding, a
 * relative difference of up to 2^-9 a weight). Longer prefills and larger batches compute on
 * the dequantised bf16 weights either way. */
typedef enum ga_fp8_math {
    GA_FP8_MATH_EXACT = 0, /* the default */
    GA_FP8_MATH_FAST = 1,
} ga_fp8_math;

/* The most tensor-parallel ranks a session takes (ga_session_opts.tensor_parallel). */
#define GA_TP_MAX 8

typedef struct ga_session_opts {
    ga_device device;
    int max_context; /* KV cache length per sequence (0: min(ga_config_max_context, 4096)) */
    int max_batch;   /* sequences held at once in the KV cache (0: 1) */
    int n_threads;   /* CPU backend threads (0: all cores) */
    int cuda_device; /* CUDA device ordinal */
    ga_cuda_gemm_impl cuda_gemm;  /* CUDA GEMM implementation (0: cuBLAS) */
    ga_cuda_weights cuda_weights; /* FP8 folders on CUDA: FP8 or bf16 on the device (0: auto) */
    ga_fp8_math fp8_math;         /* FP8 weights kept as FP8: the decode GEMV's math (0: exact) */
    /* Called while the backend converts and uploads weights, with done in [0, 1]
     * (optional; for progress bars). */
    void (*progress)(void *user, float done);
    void *progress_user;
    /* A paged KV cache (blocks taken as sequences grow, not max_context per sequence) when
     * kv_blocks or kv_memory is set; otherwise one slot of max_context tokens per sequence.
     * A backend without paged support keeps slots: see ga_session_kv_info. */
    int kv_blocks;     /* blocks in the cache (0: from kv_memory) */
    int64_t kv_memory; /* bytes for the cache's blocks (used when kv_blocks is 0) */
    int kv_block_size; /* tokens per block (0: 16) */
    /* Batch-invariant arithmetic: every row's logits depend only on its own sequence, never on
     * the batch it runs in, how its prompt was split into chunks, or the KV-length bucket, so
     * greedy decoding gives the same tokens alone and beside any others (the serving
     * guarantee of issue 13). The CPU backend is so already. CUDA: the plain GEMM of
     * kernels/gemm_fallback.cu for every shape instead of cuBLAS and the GEMV (cuda_gemm must
     * be left 0 or be GA_CUDA_GEMM_FALLBACK), and a fixed decode-attention split
     * (GA_DECODE_INVARIANT_SPLITS). Costs speed: the plain GEMM is far from cuBLAS. */
    bool deterministic;
    /* Prompt tokens per prefill pass of the CUDA backend (Qwen3 models): every GEMM of a
     * prefill runs on this many rows at once, and the activation buffers are sized for it
     * (0: GA_PREFILL_CHUNK_DEFAULT; at most GA_PREFILL_CHUNK_MAX; capped at max_context). A
     * longer prompt runs in passes, each a continuation of the one before. More rows fill
     * more of a large GPU per GEMM and pay each small kernel's launch fewer times; fewer take
     * less memory. Logits do not depend on it beyond the rounding of GEMMs of another height
     * (none with deterministic). The CPU and hybrid backends ignore it. Not the serving
     * scheduler's per-step prompt budget (ga_sched_opts.prefill_chunk in
     * src/engine/scheduler.h), which bounds the rows one step hands the session in all. */
    int prefill_chunk;
    /* Tensor parallelism (CUDA, Qwen3 models): tensor_parallel ranks (0 or 1: none), each
     * holding 1/N of every layer's heads and MLP (Megatron's split; README "Tensor
     * parallelism"), rank r on CUDA device tp_devices[r] (n_tp_devices 0: devices 0..N-1,
     * else exactly N entries). Distinct devices all-reduce through NCCL; one device named N
     * times runs N ranks on it with a loopback all-reduce (for testing the split on one GPU).
     * cuda_device is ignored then. Hybrid models, the CPU backend and attention capture
     * refuse it. */
    int tensor_parallel;
    int tp_devices[GA_TP_MAX];
    int n_tp_devices;
} ga_session_opts;

/* ga_session_opts.prefill_chunk: what 0 means (a plain literal: the CLI's help prints it), and
 * the largest value accepted. */
#define GA_PREFILL_CHUNK_DEFAULT 512
#define GA_PREFILL_CHUNK_MAX (1 << 20)

typedef struct ga_session ga_session;

ga_status ga_session_create(const ga_model *m, const ga_session_opts *opts, ga_session **out,
                            ga_err *err);
void ga_session_free(ga_session *s);
ga_device ga_session_device(const ga_session *s);
const char *ga_session_device_name(const ga_session *s);

/* Runs n tokens of sequence `seq` starting at its current length (prefill when the sequence
 * is empty, continuation otherwise) and appends their K/V to the cache. Logits (fp32) are
 * written for the last token (logits: vocab floats) or, with all_positions, for every token
 * (n * vocab floats, row-major). logits may be NULL to skip the LM head. */
ga_status ga_session_forward(ga_session *s, int seq, const int32_t *tokens, int n,
                             bool all_positions, float *logits, ga_err *err);

/* Several sequences' tokens in one pass: for i < ns, tokens[offsets[i] .. offsets[i+1]) are
 * appended to sequence seqs[i] (distinct ids) from its current length, as ns calls of
 * ga_session_forward would, but the rows of all of them share each weight GEMM (attention stays
 * within each sequence). offsets has ns + 1 entries, offsets[0] = 0, each span non-empty.
 * Logits: with all_positions, offsets[ns] rows in token order; otherwise ns rows, each
 * sequence's last token; NULL skips the LM head. All or nothing: on failure every sequence of
 * the call is reset (its cache may hold part of the call's K/V). No attention capture. */
ga_status ga_session_forward_multi(ga_session *s, int ns, const int *seqs, const int32_t *tokens,
                                   const int *offsets, bool all_positions, float *logits,
                                   ga_err *err);

/* One decode step for nb sequences at once: seqs[i] gets tokens[i] appended; logits receives
 * nb * vocab floats. */
ga_status ga_session_decode_batch(ga_session *s, const int *seqs, const int32_t *tokens, int nb,
                                  float *logits, ga_err *err);

/* Token selection: greedy when temperature <= 0 or top_k == 1; otherwise softmax at the
 * temperature, restricted to the top_k most likely tokens (0: all) and then to the smallest
 * set whose probability reaches top_p (>= 1: all). Draws are reproducible: the random number
 * for a sequence depends only on (seed, stream, position). */
typedef struct ga_sampling {
    float temperature;
    int top_k;
    float top_p;
    uint64_t seed;
} ga_sampling;

/* Like ga_session_decode_batch, but instead of logits returns each sequence's next token,
 * chosen on the backend (on the GPU nothing but the ids crosses the bus). sp NULL: greedy.
 * streams (may be NULL: stream 0 for every row) name each row's random stream; a row's draw
 * depends on (seed, its stream, its position) only, not on its slot or place in the batch. */
ga_status ga_session_decode_sample(ga_session *s, const int *seqs, const int32_t *tokens, int nb,
                                   const ga_sampling *sp, const uint64_t *streams, int32_t *next,
                                   ga_err *err);

/* One step of both kinds of work: nd decode rows (dseqs[i] gets dtokens[i] appended, as
 * ga_session_decode_sample when dnext is given, else as ga_session_decode_batch into dlogits:
 * exactly one of the two) and np prefill pieces (ptokens[poffsets[i] .. poffsets[i+1])
 * appended to pseqs[i], as ga_session_forward_multi without all_positions: plogits gets np
 * rows, each piece's last token, or NULL skips them). Every sequence of the call distinct,
 * nd + np <= max_batch. On a backend that runs it in one pass (ga_session_has_step_mixed),
 * the decode rows and the prompt tokens share each weight GEMM; otherwise it is those two
 * calls. A decode row gets what it would get in a decode step up to the rounding of a batch
 * of another height (bitwise the same on the CPU and in deterministic mode). All or nothing:
 * on failure every sequence of the call is reset. */
ga_status ga_session_step_mixed(ga_session *s, int nd, const int *dseqs, const int32_t *dtokens,
                                const ga_sampling *sp, const uint64_t *streams, int32_t *dnext,
                                float *dlogits, int np, const int *pseqs, const int32_t *ptokens,
                                const int *poffsets, float *plogits, ga_err *err);
/* Whether the backend runs ga_session_step_mixed as one pass (else it is two calls). */
bool ga_session_has_step_mixed(const ga_session *s);

/* Current length of a sequence's cache, and its reset to empty. */
int ga_session_seq_len(const ga_session *s, int seq);
void ga_session_reset(ga_session *s, int seq);
int ga_session_max_context(const ga_session *s);
int ga_session_max_batch(const ga_session *s);

/* The KV cache's shape: paged false means one slot of max_context tokens per sequence (and
 * the block fields are 0). paged_refused is true when paged mode was asked for but the
 * backend has no paged support, so the session fell back to slots. */
typedef struct ga_kv_info {
    bool paged, paged_refused;
    int block_size, blocks_total, blocks_free;
} ga_kv_info;
void ga_session_kv_info(const ga_session *s, ga_kv_info *out);
/* Blocks that n more tokens of sequence seq would take from the free list (0 for slots). */
int ga_session_kv_blocks_needed(const ga_session *s, int seq, int n);

/* ---------------------------------------------------------------- attention capture
 *
 * For heatmaps and attention-sink metrics. When a capture is attached, the next prefill of
 * sequence 0 (from an empty cache) records, from the backend's own attention path:
 *  - for each layer with layers[l] set: a res x res map, pooled from the T x T matrix of
 *    attention probabilities (head mean, or one head) by taking, for query block bi and key
 *    block bj, the sum over keys in bj of the mean over queries in bi. Each pooled row thus
 *    sums to 1 like the rows it covers. Block b covers positions [b*T/res, (b+1)*T/res).
 *    res = min(T, max_res).
 *  - for every layer: first-token share and gate statistics (see ga_layer_metrics).
 */
typedef struct ga_layer_metrics {
    double first_token_share; /* mean over heads and queries 1..T-1 of p(key 0); NaN if T<2 */
    double gate_mean;         /* mean sigmoid gate value; NaN for baseline models */
    double gate_below_0_1;    /* share of gate values < 0.1; NaN for baseline models */
} ga_layer_metrics;

typedef struct ga_attn_capture {
    /* inputs */
    const bool *layers; /* n_layers flags: which layers' maps to record */
    int head;           /* -1: mean over heads; else that query head */
    int max_res;        /* pooled resolution cap (>= 1) */
    /* outputs, owned by the capture (ga_attn_capture_free) */
    int res;                   /* resolution used */
    int n_tokens;              /* T */
    float **maps;              /* n_layers pointers; maps[l] is res*res floats or NULL */
    ga_layer_metrics *metrics; /* n_layers entries */
    int n_layers_alloc;        /* internal: entries allocated in maps and metrics */
} ga_attn_capture;

/* Attaches cap to the session for the next prefill (NULL detaches). The session fills the
 * outputs and then detaches it. */
ga_status ga_session_set_capture(ga_session *s, ga_attn_capture *cap, ga_err *err);
void ga_attn_capture_free(ga_attn_capture *cap);

/* ---------------------------------------------------------------- misc */

const char *ga_version(void);
/* True when this build has the CUDA backend and a usable GPU is present. */
bool ga_cuda_available(void);

#ifdef __cplusplus
}
#endif

#endif /* GATTN_GATTN_H */
