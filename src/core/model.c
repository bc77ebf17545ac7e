/*
 * The model: the list of tensors a config requires (one place names them all), binding them
 * by name, dtype and shape, loading a model folder, and building random in-memory models.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "path.h"

/* ------------------------------------------------------------------ the tensor list */

ga_status ga_model_visit_tensors(const ga_config *c, ga_tensor_visit_fn fn, void *ctx,
                                 ga_err *err) {
    if (c->arch != GA_ARCH_QWEN3) return ga_model_hyb_visit(c, fn, ctx, err);
    char name[128];
    int64_t h = c->hidden_size, hd = c->head_dim, q = ga_config_q_rows(c);
    int64_t kv = (int64_t)c->n_kv_heads * hd, o_in = (int64_t)c->n_heads * hd;
    int64_t I = c->intermediate_size, V = c->vocab_size;
    ga_status st;
#define VISIT(nd, ...)                                                                             \
    do {                                                                                           \
        int64_t shp_[] = {__VA_ARGS__};                                                            \
        if ((st = fn(ctx, name, nd, shp_, err))) return st;                                        \
    } while (0)
    snprintf(name, sizeof name, "model.embed_tokens.weight");
    VISIT(2, V, h);
    for (int l = 0; l < c->n_layers; l++) {
#define LNAME(suffix) snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix)
        LNAME("input_layernorm.weight");
        VISIT(1, h);
        LNAME("self_attn.q_proj.weight");
        VISIT(2, q, h);
        if (c->attention_bias) {
            LNAME("self_attn.q_proj.bias");
            VISIT(1, q);
        }
        LNAME("self_attn.k_proj.weight");
        VISIT(2, kv, h);
        if (c->attention_bias) {
            LNAME("self_attn.k_proj.bias");
            VISIT(1, kv);
        }
        LNAME("self_attn.v_proj.weight");
        VISIT(2, kv, h);
        if (c->attention_bias) {
            LNAME("self_attn.v_proj.bias");
            VISIT(1, kv);
        }
        LNAME("self_attn.o_proj.weight");
        VISIT(2, h, o_in);
        if (c->o_bias) {
            LNAME("self_attn.o_proj.bias");
            VISIT(1, h);
        }
        if (c->use_qk_norm) {
            LNAME("self_attn.q_norm.weight");
            VISIT(1, hd);
            LNAME("self_attn.k_norm.weight");
            VISIT(1, hd);
        }
        LNAME("post_attention_layernorm.weight");
        VISIT(1, h);
        LNAME("mlp.gate_proj.weight");
        VISIT(2, I, h);
        LNAME("mlp.up_proj.weight");
        VISIT(2, I, h);
        LNAME("mlp.down_proj.weight");
        VISIT(2, h, I);
#undef LNAME
    }
    snprintf(name, sizeof name, "model.norm.weight");
    VISIT(1, h);
    if (!c->tie_word_embeddings) {
        snprintf(name, sizeof name, "lm_head.weight");
        VISIT(2, V, h);
    }
#undef VISIT
    return GA_OK;
}

/* ------------------------------------------------------------------ binding */

typedef struct bind_ctx {
    ga_model *m;
    const char *where; /* model folder, for messages */
} bind_ctx;

static const ga_tensor **slot_for(ga_model *m, const char *name) {
    if (!strcmp(name, "model.embed_tokens.weight")) return &m->embed;
    if (!strcmp(name, "model.norm.weight")) return &m->final_norm;
    if (!strcmp(name, "lm_head.weight")) return &m->lm_head;
    int l, off = 0;
    if (sscanf(name, "model.layers.%d.%n", &l, &off) != 1 || off == 0 || l < 0 ||
        l >= m->cfg.n_layers)
        return NULL;
    ga_layer_w *w = &m->layers[l];
    const char *s = name + off;
    static const struct {
        const char *suffix;
        size_t offset;
    } map[] = {
        {"input_layernorm.weight", offsetof(ga_layer_w, input_norm)},
        {"self_attn.q_proj.weight", offsetof(ga_layer_w, q_proj)},
        {"self_attn.q_proj.bias", offsetof(ga_layer_w, q_bias)},
        {"self_attn.k_proj.weight", offsetof(ga_layer_w, k_proj)},
        {"self_attn.k_proj.bias", offsetof(ga_layer_w, k_bias)},
        {"self_attn.v_proj.weight", offsetof(ga_layer_w, v_proj)},
        {"self_attn.v_proj.bias", offsetof(ga_layer_w, v_bias)},
        {"self_attn.o_proj.weight", offsetof(ga_layer_w, o_proj)},
        {"self_attn.o_proj.bias", offsetof(ga_layer_w, o_bias)},
        {"self_attn.q_norm.weight", offsetof(ga_layer_w, q_norm)},
        {"self_attn.k_norm.weight", offsetof(ga_layer_w, k_norm)},
        {"post_attention_layernorm.weight", offsetof(ga_layer_w, post_norm)},
        {"mlp.gate_proj.weight", offsetof(ga_layer_w, gate_proj)},
        {"mlp.up_proj.weight", offsetof(ga_layer_w, up_proj)},
        {"mlp.down_proj.weight", offsetof(ga_layer_w, down_proj)},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(s, map[i].suffix)) return (const ga_tensor **)((char *)w + map[i].offset);
    return NULL;
}

const ga_tensor *ga_model_expect(const ga_store *store, const char *where, const char *name,
                                 int ndim, const int64_t *shape, ga_err *err, ga_status *st) {
    const ga_tensor *t = ga_store_find(store, name);
    char want[96], got[96];
    ga_shape_str(ndim, shape, want, sizeof want);
    if (!t) {
        *st = ga_err_set(err, GA_ERR_SHAPE, "%s: missing tensor \"%s\" (expected shape %s)", where,
                         name, want);
        return NULL;
    }
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        *st = ga_err_set(err, GA_ERR_SHAPE, "%s: tensor \"%s\": expected shape %s, found %s",
                         t->file, name, want, ga_shape_str(t->ndim, t->shape, got, sizeof got));
        return NULL;
    }
    return t;
}

static ga_status bind_one(void *vctx, const char *name, int ndim, const int64_t *shape,
                          ga_err *err) {
    bind_ctx *c = vctx;
    ga_status st = GA_OK;
    const ga_tensor *t = ga_model_expect(c->m->store, c->where, name, ndim, shape, err, &st);
    if (!t) return st;
    const ga_tensor **slot = slot_for(c->m, name);
    if (!slot) return ga_err_set(err, GA_ERR_SHAPE, "internal: no slot for tensor \"%s\"", name);
    *slot = t;
    return GA_OK;
}

ga_status ga_model_bind(ga_model *m, ga_err *err) {
    if (m->cfg.arch != GA_ARCH_QWEN3) return ga_model_hyb_bind(m, err);
    if (!m->layers) {
        m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
        if (!m->layers) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    }
    bind_ctx c = {m, m->dir ? m->dir : "<memory>"};
    ga_status st = ga_model_visit_tensors(&m->cfg, bind_one, &c, err);
    if (st) return st;
    if (m->cfg.tie_word_embeddings) m->lm_head = m->embed;
    return GA_OK;
}

/* ------------------------------------------------------------------ loading */

/* The folder's own name: "." or "model/" name the folder they point at (realpath), so
 * pictures and tables are titled by it; the text as given when realpath fails. */
static char *base_name(const char *dir) {
    char *real = realpath(dir, NULL);
    if (real) {
        const char *slash = strrchr(real, '/');
        char *s = strdup(slash && slash[1] ? slash + 1 : real);
        free(real);
        return s;
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    if (n == b) return strdup("model");
    char *s = strndup(dir + b, n - b);
    return s;
}

int ga_model_count_prefix(const ga_model *m, const char *prefix, uint64_t *bytes) {
    int n = 0;
    uint64_t b = 0;
    size_t len = strlen(prefix);
    for (int i = 0; i < ga_store_count(m->store); i++) {
        const ga_tensor *t = ga_store_at(m->store, i);
        if (strncmp(t->name, prefix, len) != 0) continue;
        n++;
        b += t->nbytes;
    }
    if (bytes) *bytes = b;
    return n;
}

static ga_status load(const char *dir, bool bind, ga_model **out, ga_err *err) {
    *out = NULL;
    ga_model *m = calloc(1, sizeof *m);
    if (!m) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    m->dir = strdup(dir);
    m->name = base_name(dir);
    char *cfg_path = ga_path_join(dir, "config.json");
    ga_status st;
    if (!m->dir || !m->name || !cfg_path) {
        st = ga_err_set(err, GA_ERR_OOM, "out of memory");
        goto fail;
    }
    if ((st = ga_config_load(cfg_path, &m->cfg, err))) goto fail;
    if ((st = ga_store_open_dir(dir, &m->store, err))) goto fail;
    if ((st = ga_store_bind_fp8(m->store, m->cfg.fp8_block, dir, err))) goto fail;
    /* Hybrid folders (issue 15) bind their text weights; model.visual.* and mtp.* are left. */
    if (bind && (st = ga_model_bind(m, err))) goto fail;
    free(cfg_path);
    *out = m;
    return GA_OK;
fail:
    free(cfg_path);
    ga_model_free(m);
    return st;
}

ga_status ga_model_load(const char *dir, ga_model **out, ga_err *err) {
    return load(dir, true, out, err);
}

ga_status ga_model_open_unbound(const char *dir, ga_model **out, ga_err *err) {
    return load(dir, false, out, err);
}

void ga_model_free(ga_model *m) {
    if (!m) return;
    ga_store_free(m->store);
    free(m->layers);
    free(m->hyb);
    free(m->hyb_experts);
    free(m->dir);
    free(m->name);
    free(m);
}

const ga_config *ga_model_config(const ga_model *m) {
    return &m->cfg;
}
const char *ga_model_name(const ga_model *m) {
    return m->name;
}
const char *ga_model_dir(const ga_model *m) {
    return m->dir;
}

uint64_t ga_model_weight_bytes(const ga_model *m) {
    uint64_t b = 0;
    for (int i = 0; i < ga_store_count(m->store); i++)
        b += ga_store_at(m->store, i)->nbytes;
    return b;
}

ga_dtype ga_model_weight_dtype(const ga_model *m) {
    /* By bytes, ties to the later dtype: BF16 over F16 over F32 as before, and an FP8 folder
     * (whose F8 matrices usually outweigh its BF16 embeddings) reads as F8_E4M3. */
    static const ga_dtype order[] = {GA_F32, GA_F16, GA_BF16, GA_F8_E4M3};
    uint64_t by[4] = {0, 0, 0, 0};
    for (int i = 0; i < ga_store_count(m->store); i++) {
        const ga_tensor *t = ga_store_at(m->store, i);
        if ((unsigned)t->dtype < 4) by[t->dtype] += t->nbytes;
    }
    ga_dtype best = GA_F32;
    for (int k = 0; k < 4; k++)
        if (by[order[k]] >= by[best]) best = order[k];
    return best;
}

/* ------------------------------------------------------------------ random models */

typedef struct rand_ctx {
    ga_store *store;
    uint64_t state;
    ga_dtype dtype;
    float std;
} rand_ctx;

static uint64_t rng_next(uint64_t *s) { /* splitmix64: fast, and good enough for weights */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void put(ga_tensor *t, int64_t i, float v) {
    uint8_t *p = (uint8_t *)t->data;
    if (t->dtype == GA_F32) {
        memcpy(p + 4 * i, &v, 4);
    } else {
        uint16_t h = t->dtype == GA_BF16 ? ga_f32_to_bf16(v) : ga_f32_to_f16(v);
        memcpy(p + 2 * i, &h, 2);
    }
}

static ga_status rand_one(void *vctx, const char *name, int ndim, const int64_t *shape,
                          ga_err *err) {
    rand_ctx *c = vctx;
    ga_tensor *t = ga_store_add_owned(c->store, name, c->dtype, ndim, shape);
    if (!t) return ga_err_set(err, GA_ERR_OOM, "out of memory creating tensor \"%s\"", name);
    int64_t n = ga_tensor_numel(t);
    size_t len = strlen(name);
    bool is_norm = len > 11 && !strcmp(name + len - 11, "norm.weight");
    bool is_bias = len > 5 && !strcmp(name + len - 5, ".bias");
    /* Norm weights near 1 (as trained models have them), biases and projections uniform with
     * the requested standard deviation (uniform keeps generation of billions of values fast). */
    float amp = c->std * 1.7320508f; /* uniform(-a, a) has std a/sqrt(3) */
    for (int64_t i = 0; i < n; i++) {
        float u = (float)((rng_next(&c->state) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
        float v = is_norm ? 1.0f + 0.1f * u : is_bias ? 0.1f * u : amp * u;
        put(t, i, v);
    }
    return GA_OK;
}

ga_status ga_model_random_store(const ga_config *cfg, uint64_t seed, ga_dtype dtype, float std,
                                ga_store **out, ga_err *err) {
    rand_ctx c = {ga_store_new_memory(), seed * 0x2545f4914f6cdd1dull + 1, dtype,
                  std > 0 ? std : 0.02f};
    if (!c.store) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    ga_status st = ga_model_visit_tensors(cfg, rand_one, &c, err);
    if (st) {
        ga_store_free(c.store);
        return st;
    }
    *out = c.store;
    return GA_OK;
}

ga_status ga_model_random(const ga_config *cfg, uint64_t seed, ga_dtype dtype, ga_model **out,
                          ga_err *err) {
    *out = NULL;
    ga_status st0 = ga_rope_scaling_check(cfg, &cfg->rope_scaling, "rope_scaling", err);
    if (!st0) st0 = ga_config_check_runnable(cfg, "random model", err);
    if (st0) return st0;
    ga_model *m = calloc(1, sizeof *m);
    if (!m) return ga_err_set(err, GA_ERR_OOM, "out of memory");
    m->cfg = *cfg;
    m->name = strdup("random");
    ga_status st = m->name ? GA_OK : ga_err_set(err, GA_ERR_OOM, "out of memory");
    if (!st) st = ga_model_random_store(cfg, seed, dtype, 0.02f, &m->store, err);
    if (!st) st = ga_model_bind(m, err);
    if (st) {
        ga_model_free(m);
        return st;
    }
    *out = m;
    return GA_OK;
}
