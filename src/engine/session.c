/*
 * Sessions: a model bound to a backend with a KV cache for max_batch sequences of up to
 * max_context tokens. The session owns the sequence lengths and validates every argument
 * (sequence ids, token ids, lengths against the cache and the usable context) before a
 * backend sees it, so each backend only has to compute.
 *
 * The cache is either one slot of max_context tokens per sequence (the default), or paged:
 * blocks of block_size tokens from a free list that the session owns, a block table per
 * sequence, and a sequence taking blocks as it grows (before the backend runs, so a call
 * that cannot get its blocks fails with GA_ERR_NO_CACHE having changed nothing) and giving
 * them back on reset. The backend owns the blocks' memory and reads K/V through the tables.
 */
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/capture.h"
#include "core/tp_shard.h"
#include "cpu/cpu_hybrid.h"
#ifdef GA_HAVE_CUDA
#include "cuda/cuda_hybrid.h"
#endif
#include "engine/sampler.h"

struct ga_session {
    const ga_model *model;
    ga_backend *backend;
    int max_context, max_batch;
    int *seq_len;             /* max_batch */
    ga_attn_capture *capture; /* attached for the next prefill of sequence 0 */
    /* paged mode (paged true): the block allocator */
    bool paged, paged_refused;
    int block_size, n_blocks, max_blocks; /* max_blocks: table entries per sequence */
    int32_t *free_list;                   /* n_blocks; a stack of free block ids */
    int n_free;
    int32_t *table_mem; /* (max_batch, max_blocks) */
    int32_t **tables;   /* max_batch pointers into table_mem */
    int *n_held;        /* max_batch: blocks in each sequence's table */
};

static int blocks_for(const ga_session *s, int64_t tokens) {
    return (int)((tokens + s->block_size - 1) / s->block_size);
}

/* Gives a sequence's blocks back to the free list, last taken first back on top. */
static void free_blocks(ga_session *s, int seq) {
    if (!s->paged) return;
    for (int i = 0; i < s->n_held[seq]; i++)
        s->free_list[s->n_free++] = s->tables[seq][i];
    s->n_held[seq] = 0;
}

/* The paged allocator behind the session: block size, count and tables. */
static ga_status paged_setup(ga_session *s, const ga_session_opts *o, ga_err *err) {
    ga_backend *b = s->backend;
    if (!b->paged_init) {
        s->paged_refused = true; /* the backend made its slot cache instead */
        return GA_OK;
    }
    int64_t n = o->kv_blocks;
    if (!n) {
        /* what the cache holds whatever the lengths (a hybrid's DeltaNet states) is paid first */
        int64_t per = (int64_t)b->kv_token_bytes * s->block_size;
        int64_t fixed = (int64_t)b->kv_fixed_bytes;
        n = o->kv_memory > fixed ? (o->kv_memory - fixed) / per : 0;
        if (n < 1)
            return ga_err_set(err, GA_ERR_ARG,
                              "kv_memory of %lld bytes holds no block (a block of %d tokens takes "
                              "%lld bytes on %s, besides %lld bytes of per-sequence state)",
                              (long long)o->kv_memory, s->block_size, (long long)per, b->name,
                              (long long)fixed);
        if (n > (1 << 24)) n = 1 << 24;
    }
    s->n_blocks = (int)n;
    s->max_blocks = blocks_for(s, s->max_context);
    s->free_list = malloc((size_t)s->n_blocks * sizeof *s->free_list);
    s->table_mem = calloc((size_t)s->max_batch * s->max_blocks, sizeof *s->table_mem);
    s->tables = malloc((size_t)s->max_batch * sizeof *s->tables);
    s->n_held = calloc((size_t)s->max_batch, sizeof *s->n_held);
    if (!s->free_list || !s->table_mem || !s->tables || !s->n_held)
        return ga_err_set(err, GA_ERR_OOM, "out of memory for %d block tables", s->max_batch);
    for (int i = 0; i < s->n_blocks; i++)
        s->free_list[i] = s->n_blocks - 1 - i; /* block 0 on top */
    s->n_free = s->n_blocks;
    for (int i = 0; i < s->max_batch; i++)
        s->tables[i] = s->table_mem + (size_t)i * s->max_blocks;
    s->paged = true;
    return b->paged_init(b, s->n_blocks, s->block_size, (const int32_t *const *)s->tables, err);
}

int ga_session_kv_blocks_needed(const ga_session *s, int seq, int n) {
    if (!s->paged || seq < 0 || seq >= s->max_batch || n < 0) return 0;
    int need = blocks_for(s, (int64_t)s->seq_len[seq] + n) - s->n_held[seq];
    return need > 0 ? need : 0;
}

void ga_session_kv_info(const ga_session *s, ga_kv_info *out) {
    *out = (ga_kv_info){.paged = s->paged, .paged_refused = s->paged_refused};
    if (!s->paged) return;
    out->block_size = s->block_size;
    out->blocks_total = s->n_blocks;
    out->blocks_free = s->n_free;
}

/* Takes the blocks n more tokens of seq need; all or nothing. */
static ga_status grow(ga_session *s, int seq, int n, ga_err *err) {
    int need = ga_session_kv_blocks_needed(s, seq, n);
    if (need > s->n_free)
        return ga_err_set(err, GA_ERR_NO_CACHE,
                          "paged KV cache: sequence %d needs %d more blocks for %d tokens, %d of "
                          "%d are free",
                          seq, need, n, s->n_free, s->n_blocks);
    for (int i = 0; i < need; i++)
        s->tables[seq][s->n_held[seq]++] = s->free_list[--s->n_free];
    return GA_OK;
}

ga_status ga_session_create(const ga_model *m, const ga_session_opts *o, ga_session **out,
                            ga_err *err) {
    *out = NULL;
    ga_session_opts opts = o ? *o : (ga_session_opts){0};
    const ga_config *c = &m->cfg;
    ga_status run_st = ga_config_check_runnable(c, m->dir ? m->dir : m->name, err);
    if (run_st) return run_st;
    int max_ctx = opts.max_context;
    if (max_ctx < 0) return ga_err_set(err, GA_ERR_ARG, "max_context %d is negative", max_ctx);
    const int usable = ga_config_max_context(c); /* with the RoPE scaling in force */
    if (max_ctx == 0) max_ctx = usable < 4096 ? usable : 4096;
    if (max_ctx > usable)
        return ga_err_set(
            err, GA_ERR_ARG, "context of %d tokens exceeds the model's %s %d", max_ctx,
            c->rope_scaling.type == GA_ROPE_DEFAULT ? "max_position_embeddings"
                                                    : "usable context with its RoPE scaling",
            usable);
    int max_batch = opts.max_batch ? opts.max_batch : 1;
    if (max_batch < 1 || max_batch > 4096)
        return ga_err_set(err, GA_ERR_ARG, "max_batch %d out of range [1, 4096]", max_batch);
    if (opts.prefill_chunk < 0 || opts.prefill_chunk > GA_PREFILL_CHUNK_MAX)
        return ga_err_set(err, GA_ERR_ARG,
                          "prefill_chunk %d out of range [1, %d] (0: the default, %d)",
                          opts.prefill_chunk, GA_PREFILL_CHUNK_MAX, GA_PREFILL_CHUNK_DEFAULT);
    int block_size = opts.kv_block_size ? opts.kv_block_size : 16;
    if (block_size < 1 || block_size > 4096)
        return ga_err_set(err, GA_ERR_ARG, "kv_block_size %d out of range [1, 4096]", block_size);
    if (opts.kv_blocks < 0 || opts.kv_blocks > (1 << 24) || opts.kv_memory < 0)
        return ga_err_set(err, GA_ERR_ARG, "kv_blocks %d / kv_memory %lld out of range",
                          opts.kv_blocks, (long long)opts.kv_memory);
    ga_device dev = opts.device;
    /* Hybrid (Gated DeltaNet) models have their own backends (issue 15): the CPU reference
     * (src/cpu/cpu_hybrid_backend.c) and the CUDA one (src/cuda/cuda_hybrid*.c). */
    const bool hybrid = c->arch != GA_ARCH_QWEN3;
    if (dev == GA_DEVICE_AUTO) dev = ga_cuda_available() ? GA_DEVICE_CUDA : GA_DEVICE_CPU;
    /* Tensor parallelism (the CUDA backend's ranks, src/cuda/cuda_tp.c): never a silent fall
     * back to one device or the CPU. */
    const bool tp = opts.tensor_parallel > 1;
    if (opts.tensor_parallel < 0 || opts.tensor_parallel > GA_TP_MAX || opts.n_tp_devices < 0 ||
        opts.n_tp_devices > GA_TP_MAX)
        return ga_err_set(err, GA_ERR_ARG,
                          "tensor_parallel %d / %d tp_devices out of range [0, %d]",
                          opts.tensor_parallel, opts.n_tp_devices, GA_TP_MAX);
    ga_status tst = tp ? ga_tp_check(c, opts.tensor_parallel, err) : GA_OK; /* hybrids too */
    if (tst) return tst;
    if (tp && dev != GA_DEVICE_CUDA)
        return ga_err_set(
            err, GA_ERR_UNSUPPORTED, "tensor parallelism (--tp %d) runs on the CUDA backend only%s",
            opts.tensor_parallel,
            opts.device == GA_DEVICE_CPU ? ", not --device cpu" : ": no CUDA GPU here");
    ga_session *s = calloc(1, sizeof *s);
    if (!s) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    s->model = m;
    s->max_context = max_ctx;
    s->max_batch = max_batch;
    s->block_size = block_size;
    s->seq_len = calloc((size_t)max_batch, sizeof *s->seq_len);
    ga_status st = s->seq_len ? GA_OK : ga_err_set(err, GA_ERR_OOM, "out of memory");
    if (!st) {
        if (dev == GA_DEVICE_CUDA) {
#ifdef GA_HAVE_CUDA
            st = hybrid
                     ? ga_cuda_hybrid_backend_create(m, &opts, max_ctx, max_batch, &s->backend, err)
                     : ga_cuda_backend_create(m, &opts, max_ctx, max_batch, &s->backend, err);
            /* "auto" means the best backend that can run this model: a model the GPU kernels
             * do not cover (a head_dim other than 64/128) runs on the CPU instead. An explicit
             * --device cuda keeps the error. */
            if (st == GA_ERR_UNSUPPORTED && opts.device == GA_DEVICE_AUTO && !tp) {
                st = hybrid ? ga_cpu_hybrid_backend_create(m, &opts, max_ctx, max_batch,
                                                           &s->backend, err)
                            : ga_cpu_backend_create(m, &opts, max_ctx, max_batch, &s->backend, err);
            }
#else
            st = ga_err_set(err, GA_ERR_UNSUPPORTED,
                            "--device cuda: this build of gattn has no CUDA backend");
#endif
        } else if (hybrid) {
            st = ga_cpu_hybrid_backend_create(m, &opts, max_ctx, max_batch, &s->backend, err);
        } else {
            st = ga_cpu_backend_create(m, &opts, max_ctx, max_batch, &s->backend, err);
        }
    }
    if (!st && ga_opts_paged(&opts)) st = paged_setup(s, &opts, err);
    if (st) {
        ga_session_free(s);
        return st;
    }
    *out = s;
    return GA_OK;
}

void ga_session_free(ga_session *s) {
    if (!s) return;
    if (s->backend) s->backend->free(s->backend);
    free(s->seq_len);
    free(s->free_list);
    free(s->table_mem);
    free(s->tables);
    free(s->n_held);
    free(s);
}

ga_device ga_session_device(const ga_session *s) {
    return s->backend->device;
}
const char *ga_session_device_name(const ga_session *s) {
    return s->backend->name;
}
int ga_session_max_context(const ga_session *s) {
    return s->max_context;
}
int ga_session_max_batch(const ga_session *s) {
    return s->max_batch;
}

int ga_session_seq_len(const ga_session *s, int seq) {
    return (seq >= 0 && seq < s->max_batch) ? s->seq_len[seq] : -1;
}

void ga_session_reset(ga_session *s, int seq) {
    if (seq < 0 || seq >= s->max_batch) return;
    s->seq_len[seq] = 0;
    free_blocks(s, seq);
}

static ga_status check_tokens(const ga_session *s, const int32_t *tokens, int n, ga_err *err) {
    int V = s->model->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return ga_err_set(err, GA_ERR_ARG, "token id %d at position %d is outside [0, %d)",
                              tokens[i], i, V);
    return GA_OK;
}

static ga_status check_room(const ga_session *s, int seq, int n, ga_err *err) {
    int have = s->seq_len[seq];
    if ((int64_t)have + n > s->max_context)
        return ga_err_set(
            err, GA_ERR_ARG,
            "%d tokens after %d cached exceed the context of %d tokens (sequence %d%s)", n, have,
            s->max_context, seq,
            s->max_context == ga_config_max_context(&s->model->cfg) ? ", the model's usable context"
                                                                    : "");
    return GA_OK;
}

/* Finite weights can still overflow (a weight of 1e37 is a valid bf16): rows x V logits that
 * a backend returned must be finite, or the call fails instead of handing NaN to a sampler. */
static ga_status check_logits(const float *logits, int rows, int V, ga_err *err) {
    if (!logits) return GA_OK;
    int64_t bad = ga_f32_find_nonfinite(logits, (int64_t)rows * V);
    if (bad < 0) return GA_OK;
    return ga_err_set(err, GA_ERR_FORMAT,
                      "non-finite logit (row %lld, token %lld): the model's activations "
                      "overflowed; its weights are finite but too large",
                      (long long)(bad / V), (long long)(bad % V));
}

ga_status ga_session_forward(ga_session *s, int seq, const int32_t *tokens, int n,
                             bool all_positions, float *logits, ga_err *err) {
    if (seq < 0 || seq >= s->max_batch)
        return ga_err_set(err, GA_ERR_ARG, "sequence %d outside [0, %d)", seq, s->max_batch);
    if (n < 1 || !tokens) return ga_err_set(err, GA_ERR_ARG, "no tokens to run");
    ga_status st;
    if ((st = check_tokens(s, tokens, n, err)) || (st = check_room(s, seq, n, err))) return st;
    ga_attn_capture *cap = NULL;
    if (s->capture) {
        if (seq != 0 || s->seq_len[seq] != 0)
            return ga_err_set(
                err, GA_ERR_ARG,
                "attention capture needs a prefill of sequence 0 from an empty cache");
        cap = s->capture;
        if ((st = ga_capture_prepare(cap, s->model->cfg.n_layers, n, err))) return st;
    }
    if ((st = grow(s, seq, n, err))) {
        if (cap) s->capture = NULL; /* one prefill per attachment, as after a failed run */
        return st;
    }
    st = s->backend->forward(s->backend, seq, s->seq_len[seq], tokens, n, all_positions, logits,
                             cap, err);
    if (!st) st = check_logits(logits, all_positions ? n : 1, s->model->cfg.vocab_size, err);
    if (cap) s->capture = NULL; /* one prefill per attachment */
    if (st) {
        /* The cache may hold part of this call's K/V: the sequence is no longer usable. */
        ga_session_reset(s, seq);
        return st;
    }
    s->seq_len[seq] += n;
    return GA_OK;
}

/* Validated pieces (blocks taken, pos0 their first positions) on the backend: its
 * multi-sequence pass, else one forward per piece. */
static ga_status multi_run(ga_session *s, int ns, const int *seqs, const int *pos0,
                           const int32_t *tokens, const int *offsets, bool all_positions,
                           float *logits, ga_err *err) {
    ga_backend *b = s->backend;
    if (b->forward_multi)
        return b->forward_multi(b, ns, seqs, pos0, tokens, offsets, all_positions, logits, err);
    const size_t V = (size_t)s->model->cfg.vocab_size;
    ga_status st = GA_OK;
    for (int i = 0; i < ns && !st; i++) {
        float *dst = !logits         ? NULL
                     : all_positions ? logits + (size_t)offsets[i] * V
                                     : logits + (size_t)i * V;
        st = b->forward(b, seqs[i], pos0[i], tokens + offsets[i], offsets[i + 1] - offsets[i],
                        all_positions, dst, NULL, err);
    }
    return st;
}

ga_status ga_session_forward_multi(ga_session *s, int ns, const int *seqs, const int32_t *tokens,
                                   const int *offsets, bool all_positions, float *logits,
                                   ga_err *err) {
    if (ns < 1 || ns > s->max_batch)
        return ga_err_set(err, GA_ERR_ARG, "%d sequences outside [1, %d]", ns, s->max_batch);
    if (!seqs || !tokens || !offsets) return ga_err_set(err, GA_ERR_ARG, "no tokens to run");
    if (s->capture)
        return ga_err_set(err, GA_ERR_ARG, "attention capture needs a single-sequence prefill");
    if (offsets[0] != 0) return ga_err_set(err, GA_ERR_ARG, "offsets[0] is %d, not 0", offsets[0]);
    ga_status st = GA_OK;
    for (int i = 0; i < ns; i++) {
        if (seqs[i] < 0 || seqs[i] >= s->max_batch)
            return ga_err_set(err, GA_ERR_ARG, "sequence %d outside [0, %d)", seqs[i],
                              s->max_batch);
        for (int j = 0; j < i; j++)
            if (seqs[j] == seqs[i])
                return ga_err_set(err, GA_ERR_ARG, "sequence %d appears twice in one call",
                                  seqs[i]);
        const int n = offsets[i + 1] - offsets[i];
        if (n < 1 || offsets[i + 1] < offsets[i])
            return ga_err_set(err, GA_ERR_ARG, "sequence %d (entry %d) has no tokens", seqs[i], i);
        if ((st = check_room(s, seqs[i], n, err))) return st;
    }
    const int total = offsets[ns];
    if ((st = check_tokens(s, tokens, total, err))) return st;
    /* Paged: every sequence's blocks before any is taken, all or nothing. */
    int64_t need = 0;
    for (int i = 0; i < ns; i++)
        need += ga_session_kv_blocks_needed(s, seqs[i], offsets[i + 1] - offsets[i]);
    if (need > s->n_free)
        return ga_err_set(err, GA_ERR_NO_CACHE,
                          "paged KV cache: %d sequences need %lld more blocks, %d of %d are free",
                          ns, (long long)need, s->n_free, s->n_blocks);
    for (int i = 0; i < ns && !st; i++)
        st = grow(s, seqs[i], offsets[i + 1] - offsets[i], err);
    const size_t V = (size_t)s->model->cfg.vocab_size;
    int *pos0 = st ? NULL : malloc((size_t)ns * sizeof *pos0);
    if (!st && !pos0) st = ga_err_set(err, GA_ERR_OOM, "out of memory");
    for (int i = 0; i < ns && !st; i++)
        pos0[i] = s->seq_len[seqs[i]];
    if (!st) st = multi_run(s, ns, seqs, pos0, tokens, offsets, all_positions, logits, err);
    free(pos0);
    if (!st) st = check_logits(logits, all_positions ? total : ns, (int)V, err);
    if (st) {
        for (int i = 0; i < ns; i++)
            ga_session_reset(s, seqs[i]);
        return st;
    }
    for (int i = 0; i < ns; i++)
        s->seq_len[seqs[i]] += offsets[i + 1] - offsets[i];
    return GA_OK;
}

/* Validates a decode batch and returns each row's position (malloc'd) in *pos_out. */
static ga_status check_batch(ga_session *s, const int *seqs, const int32_t *tokens, int nb,
                             int **pos_out, ga_err *err) {
    *pos_out = NULL;
    if (nb < 1 || nb > s->max_batch)
        return ga_err_set(err, GA_ERR_ARG, "batch of %d sequences outside [1, %d]", nb,
                          s->max_batch);
    ga_status st;
    if ((st = check_tokens(s, tokens, nb, err))) return st;
    int *pos = malloc((size_t)nb * sizeof *pos);
    if (!pos) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    for (int i = 0; i < nb && !st; i++) {
        if (seqs[i] < 0 || seqs[i] >= s->max_batch) {
            st = ga_err_set(err, GA_ERR_ARG, "sequence %d outside [0, %d)", seqs[i], s->max_batch);
            break;
        }
        for (int j = 0; j < i && !st; j++)
            if (seqs[j] == seqs[i])
                st = ga_err_set(err, GA_ERR_ARG, "sequence %d appears twice in one batch", seqs[i]);
        if (!st) st = check_room(s, seqs[i], 1, err);
        pos[i] = s->seq_len[seqs[i]];
    }
    /* Paged: every row's block (at most one each) before any is taken, all or nothing. */
    int need = 0;
    for (int i = 0; i < nb && !st; i++)
        need += ga_session_kv_blocks_needed(s, seqs[i], 1);
    if (!st && need > s->n_free)
        st = ga_err_set(err, GA_ERR_NO_CACHE,
                        "paged KV cache: a decode step of %d sequences needs %d more blocks, %d "
                        "of %d are free",
                        nb, need, s->n_free, s->n_blocks);
    for (int i = 0; i < nb && !st; i++)
        st = grow(s, seqs[i], 1, err);
    if (st) {
        free(pos);
        return st;
    }
    *pos_out = pos;
    return GA_OK;
}

ga_status ga_session_decode_batch(ga_session *s, const int *seqs, const int32_t *tokens, int nb,
                                  float *logits, ga_err *err) {
    int *pos;
    ga_status st = check_batch(s, seqs, tokens, nb, &pos, err);
    if (st) return st;
    st = s->backend->decode_batch(s->backend, seqs, pos, tokens, nb, logits, err);
    if (!st) st = check_logits(logits, nb, s->model->cfg.vocab_size, err);
    free(pos);
    if (st) return st;
    for (int i = 0; i < nb; i++)
        s->seq_len[seqs[i]]++;
    return GA_OK;
}

/* The ids of nb validated decode rows at positions pos: picked on the backend when it can
 * (decode_sample), else sampled on the host from decode_batch's logits. streams non-NULL. */
static ga_status decode_pick(ga_session *s, const int *seqs, const int *pos, const int32_t *tokens,
                             int nb, const ga_sampling *sp, const uint64_t *streams, int32_t *next,
                             ga_err *err) {
    if (s->backend->decode_sample)
        return s->backend->decode_sample(s->backend, seqs, pos, tokens, nb, sp, streams, next, err);
    const int V = s->model->cfg.vocab_size;
    float *logits = malloc((size_t)nb * V * sizeof(float));
    void *scratch = malloc(ga_sample_scratch_bytes(V));
    ga_status st = GA_OK;
    if (!logits || !scratch) st = ga_err_set(err, GA_ERR_OOM, "out of memory");
    if (!st) st = s->backend->decode_batch(s->backend, seqs, pos, tokens, nb, logits, err);
    if (!st) st = check_logits(logits, nb, V, err);
    /* The draw for the token at position pos+1 uses that position as its counter. */
    for (int i = 0; i < nb && !st; i++)
        next[i] = ga_sample_host(logits + (size_t)i * V, V, sp, streams[i], (uint64_t)pos[i] + 1,
                                 scratch);
    free(logits);
    free(scratch);
    return st;
}

/* Stream 0 for every row when the caller named none (a row draws the same in any batch, not
 * by its slot): *own is the array to free. */
static ga_status zero_streams(int nb, const uint64_t **streams, uint64_t **own, ga_err *err) {
    *own = NULL;
    if (*streams) return GA_OK;
    *own = calloc((size_t)nb, sizeof **own);
    if (!*own) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    *streams = *own;
    return GA_OK;
}

ga_status ga_session_decode_sample(ga_session *s, const int *seqs, const int32_t *tokens, int nb,
                                   const ga_sampling *sp, const uint64_t *streams, int32_t *next,
                                   ga_err *err) {
    int *pos;
    ga_status st = check_batch(s, seqs, tokens, nb, &pos, err);
    if (st) return st;
    uint64_t *own_streams;
    st = zero_streams(nb, &streams, &own_streams, err);
    if (!st) st = decode_pick(s, seqs, pos, tokens, nb, sp, streams, next, err);
    free(own_streams);
    free(pos);
    if (st) return st;
    for (int i = 0; i < nb; i++)
        s->seq_len[seqs[i]]++;
    return GA_OK;
}

bool ga_session_has_step_mixed(const ga_session *s) {
    return s->backend->step_mixed != NULL;
}

/* The sequence of entry i of a mixed step (decode rows first, then the pieces) and the
 * tokens it appends. */
static int mixed_seq(int nd, const int *dseqs, const int *pseqs, int i) {
    return i < nd ? dseqs[i] : pseqs[i - nd];
}
static int mixed_len(int nd, const int *poff, int i) {
    return i < nd ? 1 : poff[i - nd + 1] - poff[i - nd];
}

/* Everything a mixed step checks before it takes any block; pos (nd + np) gets each entry's
 * first position. */
static ga_status check_mixed(const ga_session *s, int nd, const int *dseqs, const int32_t *dtokens,
                             int np, const int *pseqs, const int32_t *ptokens, const int *poff,
                             int *pos, ga_err *err) {
    ga_status st;
    if (poff[0] != 0) return ga_err_set(err, GA_ERR_ARG, "offsets[0] is %d, not 0", poff[0]);
    int64_t need = 0;
    for (int i = 0; i < nd + np; i++) {
        const int seq = mixed_seq(nd, dseqs, pseqs, i), n = mixed_len(nd, poff, i);
        if (seq < 0 || seq >= s->max_batch)
            return ga_err_set(err, GA_ERR_ARG, "sequence %d outside [0, %d)", seq, s->max_batch);
        for (int j = 0; j < i; j++)
            if (mixed_seq(nd, dseqs, pseqs, j) == seq)
                return ga_err_set(err, GA_ERR_ARG, "sequence %d appears twice in one step", seq);
        if (n < 1)
            return ga_err_set(err, GA_ERR_ARG, "sequence %d (piece %d) has no tokens", seq, i - nd);
        if ((st = check_room(s, seq, n, err))) return st;
        pos[i] = s->seq_len[seq];
        need += ga_session_kv_blocks_needed(s, seq, n);
    }
    if ((st = check_tokens(s, dtokens, nd, err)) || (st = check_tokens(s, ptokens, poff[np], err)))
        return st;
    if (need > s->n_free)
        return ga_err_set(err, GA_ERR_NO_CACHE,
                          "paged KV cache: a mixed step of %d sequences needs %lld more blocks, "
                          "%d of %d are free",
                          nd + np, (long long)need, s->n_free, s->n_blocks);
    return GA_OK;
}

/* The step on the backend: its one pass, or the decode rows and then the pieces. dnext set:
 * ids on the backend (decode_pick: host sampling when it cannot), else dlogits. */
static ga_status mixed_run(ga_session *s, int nd, const int *dseqs, const int *dpos,
                           const int32_t *dtokens, const ga_sampling *sp, const uint64_t *streams,
                           int32_t *dnext, float *dlogits, int np, const int *pseqs,
                           const int *ppos0, const int32_t *ptokens, const int *poff,
                           float *plogits, ga_err *err) {
    ga_backend *b = s->backend;
    const int V = s->model->cfg.vocab_size;
    ga_status st = GA_OK;
    if (!b->step_mixed) {
        st = dnext ? decode_pick(s, dseqs, dpos, dtokens, nd, sp, streams, dnext, err)
                   : b->decode_batch(b, dseqs, dpos, dtokens, nd, dlogits, err);
        if (!st) st = multi_run(s, np, pseqs, ppos0, ptokens, poff, false, plogits, err);
        if (!st) st = check_logits(dlogits, nd, V, err);
        return st;
    }
    if (!dnext || b->decode_sample) {
        st = b->step_mixed(b, nd, dseqs, dpos, dtokens, sp, streams, dnext, dlogits, np, pseqs,
                           ppos0, ptokens, poff, plogits, err);
        return st ? st : check_logits(dlogits, nd, V, err);
    }
    /* ids asked of a backend that only returns logits: the host samples them */
    float *logits = malloc((size_t)nd * V * sizeof(float));
    void *scratch = malloc(ga_sample_scratch_bytes(V));
    if (!logits || !scratch) st = ga_err_set(err, GA_ERR_OOM, "out of memory");
    if (!st)
        st = b->step_mixed(b, nd, dseqs, dpos, dtokens, sp, streams, NULL, logits, np, pseqs, ppos0,
                           ptokens, poff, plogits, err);
    if (!st) st = check_logits(logits, nd, V, err);
    for (int i = 0; i < nd && !st; i++)
        dnext[i] = ga_sample_host(logits + (size_t)i * V, V, sp, streams[i], (uint64_t)dpos[i] + 1,
                                  scratch);
    free(logits);
    free(scratch);
    return st;
}

ga_status ga_session_step_mixed(ga_session *s, int nd, const int *dseqs, const int32_t *dtokens,
                                const ga_sampling *sp, const uint64_t *streams, int32_t *dnext,
                                float *dlogits, int np, const int *pseqs, const int32_t *ptokens,
                                const int *poffsets, float *plogits, ga_err *err) {
    if (nd < 1 || np < 1 || nd > s->max_batch - np)
        return ga_err_set(err, GA_ERR_ARG,
                          "a mixed step of %d decode rows and %d prefill pieces: each >= 1, "
                          "together at most %d",
                          nd, np, s->max_batch);
    if (!dseqs || !dtokens || !pseqs || !ptokens || !poffsets)
        return ga_err_set(err, GA_ERR_ARG, "no tokens to run");
    if (!dnext == !dlogits)
        return ga_err_set(err, GA_ERR_ARG,
                          "a mixed step's decode rows need exactly one of next ids and logits");
    if (s->capture)
        return ga_err_set(err, GA_ERR_ARG, "attention capture needs a single-sequence prefill");
    int *pos = malloc((size_t)(nd + np) * sizeof *pos);
    if (!pos) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    ga_status st = check_mixed(s, nd, dseqs, dtokens, np, pseqs, ptokens, poffsets, pos, err);
    if (st) {
        free(pos);
        return st;
    }
    for (int i = 0; i < nd + np && !st; i++)
        st = grow(s, mixed_seq(nd, dseqs, pseqs, i), mixed_len(nd, poffsets, i), err);
    uint64_t *own_streams = NULL;
    if (!st) st = zero_streams(nd, &streams, &own_streams, err);
    if (!st)
        st = mixed_run(s, nd, dseqs, pos, dtokens, sp, streams, dnext, dlogits, np, pseqs, pos + nd,
                       ptokens, poffsets, plogits, err);
    if (!st) st = check_logits(plogits, np, s->model->cfg.vocab_size, err);
    free(own_streams);
    free(pos);
    for (int i = 0; i < nd + np; i++) {
        const int seq = mixed_seq(nd, dseqs, pseqs, i);
        if (st)
            ga_session_reset(s, seq); /* the cache may hold part of the step's K/V */
        else
            s->seq_len[seq] += mixed_len(nd, poffsets, i);
    }
    return st;
}

/* ------------------------------------------------------------------ attention capture */

ga_status ga_session_set_capture(ga_session *s, ga_attn_capture *cap, ga_err *err) {
    if (cap) {
        if (!cap->layers) return ga_err_set(err, GA_ERR_ARG, "capture: no layer selection");
        if (cap->head < -1 || cap->head >= s->model->cfg.n_heads)
            return ga_err_set(err, GA_ERR_ARG, "capture: head %d outside [0, %d)", cap->head,
                              s->model->cfg.n_heads);
        if (cap->max_res < 1) return ga_err_set(err, GA_ERR_ARG, "capture: max_res must be >= 1");
    }
    s->capture = cap;
    return GA_OK;
}
