/* fp32 building blocks of the CPU backend (see cpu_ops.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "core/rope.h"

/* Eight independent partial sums let the compiler vectorise the dot product without
 * -ffast-math (which would let it reassociate everywhere). */
static float dot(const float *a, const float *b, int n) {
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += a[i + k] * b[i + k];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++)
        r += a[i] * b[i];
    return r;
}

typedef struct mm_job {
    float *y;
    const float *x, *w, *b;
    int T, in, out, rows_per_task;
} mm_job;

/* 16-byte vectors: SSE2 is the x86-64 baseline, so no -march flag is needed; two of them
 * hold dot()'s eight partial sums (lanes 0-3 and 4-7). */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *p) {
    v4f v;
    __builtin_memcpy(&v, p, sizeof v); /* rows need not be 16-byte aligned */
    return v;
}

/* The same eight partial sums and reduction order as dot(), so every output is bit-identical
 * whichever path computes it (prefill + decode must equal full recompute exactly). */
static inline float reduce8(v4f lo, v4f hi) {
    return ((lo[0] + lo[1]) + (lo[2] + lo[3])) + ((hi[0] + hi[1]) + (hi[2] + hi[3]));
}

/* 4 tokens x 2 output features at once: each loaded x and w vector feeds several products,
 * instead of two loads per multiply-add in dot(). Tails (n % 8) as in dot(). */
static void dot_4x2(const float *x, size_t ldx, const float *w0, const float *w1, int n,
                    float out[4][2]) {
    v4f lo[4][2] = {{{0}}}, hi[4][2] = {{{0}}};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v4f b0l = load4(w0 + i), b0h = load4(w0 + i + 4);
        v4f b1l = load4(w1 + i), b1h = load4(w1 + i + 4);
        for (int t = 0; t < 4; t++) {
            v4f xl = load4(x + t * ldx + i), xh = load4(x + t * ldx + i + 4);
            lo[t][0] += xl * b0l;
            hi[t][0] += xh * b0h;
            lo[t][1] += xl * b1l;
            hi[t][1] += xh * b1h;
        }
    }
    for (int t = 0; t < 4; t++) {
        float r0 = reduce8(lo[t][0], hi[t][0]), r1 = reduce8(lo[t][1], hi[t][1]);
        for (int k = i; k < n; k++) {
            r0 += x[t * ldx + k] * w0[k];
            r1 += x[t * ldx + k] * w1[k];
        }
        out[t][0] = r0;
        out[t][1] = r1;
    }
}

/* One task: a block of output features for every token, so each weight row is read from
 * memory once and reused from cache across the tokens. */
static void mm_task(void *ctx, int task) {
    const mm_job *j = ctx;
    int o0 = task * j->rows_per_task, o1 = o0 + j->rows_per_task;
    if (o1 > j->out) o1 = j->out;
    const size_t in = (size_t)j->in, out = (size_t)j->out;
    for (int t0 = 0; t0 < j->T; t0 += 16) {
        int t1 = t0 + 16 < j->T ? t0 + 16 : j->T;
        int o = o0;
        for (; o + 2 <= o1; o += 2) {
            const float *w0 = j->w + (size_t)o * in, *w1 = w0 + in;
            float b0 = j->b ? j->b[o] : 0.0f, b1 = j->b ? j->b[o + 1] : 0.0f;
            int t = t0;
            for (; t + 4 <= t1; t += 4) {
                float r[4][2];
                dot_4x2(j->x + (size_t)t * in, in, w0, w1, j->in, r);
                for (int k = 0; k < 4; k++) {
                    j->y[(size_t)(t + k) * out + o] = r[k][0] + b0;
                    j->y[(size_t)(t + k) * out + o + 1] = r[k][1] + b1;
                }
            }
            for (; t < t1; t++) {
                j->y[(size_t)t * out + o] = dot(j->x + (size_t)t * in, w0, j->in) + b0;
                j->y[(size_t)t * out + o + 1] = dot(j->x + (size_t)t * in, w1, j->in) + b1;
            }
        }
        for (; o < o1; o++) {
            const float *wr = j->w + (size_t)o * in;
            float bias = j->b ? j->b[o] : 0.0f;
            for (int t = t0; t < t1; t++)
                j->y[(size_t)t * out + o] = dot(j->x + (size_t)t * in, wr, j->in) + bias;
        }
    }
}

void ga_cpu_matmul(ga_pool *pool, float *y, const float *x, const float *w, const float *b, int T,
                   int in, int out) {
    int tasks = ga_pool_threads(pool) * 8;
    int rows = (out + tasks - 1) / tasks;
    if (rows < 4) rows = 4;
    mm_job j = {y, x, w, b, T, in, out, rows};
    ga_pool_run(pool, mm_task, &j, (out + rows - 1) / rows);
}

void ga_cpu_rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0; /* double: the mean of squares over thousands of elements, exactly */
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        out[i] = w[i] * (x[i] * inv);
}

void ga_cpu_rope(float *x, const float *c, const float *s, int hd) {
    int h = hd / 2;
    for (int i = 0; i < h; i++) {
        float a = x[i], b = x[i + h];
        x[i] = a * c[i] - b * s[i];
        x[i + h] = b * c[i] + a * s[i];
    }
}

int ga_cpu_rope_table(float **cos_tab, float **sin_tab, int max_pos, int hd, double theta) {
    ga_config c = {.head_dim = hd, .rope_theta = theta, .max_position_embeddings = max_pos};
    return ga_rope_tables(&c, hd, max_pos, cos_tab, sin_tab, NULL) ? -1 : 0;
}

void ga_cpu_qk_prep(const ga_cpu_qk_args *a) {
    const ga_gate_layout *L = a->layout;
    int hd = L->hd;
    for (int h = 0; h < L->n_heads; h++) {
        float *qh = a->q_out + (size_t)h * hd;
        memcpy(qh, a->qg + ga_gate_layout_q_off(L, h), (size_t)hd * sizeof(float));
        if (a->q_norm) ga_cpu_rmsnorm(qh, qh, a->q_norm, hd, a->eps);
        ga_cpu_rope(qh, a->cos_row, a->sin_row, hd);
        if (a->gate_out && L->per_head)
            memcpy(a->gate_out + ga_gate_layout_gate_idx(L, h),
                   a->qg + ga_gate_layout_gate_off(L, h), (size_t)L->per_head * sizeof(float));
    }
    for (int j = 0; j < L->n_kv_heads; j++) {
        float *kd = a->k_out + (size_t)j * a->kv_pitch, *vd = a->v_out + (size_t)j * a->kv_pitch;
        const float *ks = a->k + (size_t)j * hd;
        if (a->k_norm)
            ga_cpu_rmsnorm(kd, ks, a->k_norm, hd, a->eps);
        else
            memcpy(kd, ks, (size_t)hd * sizeof(float));
        ga_cpu_rope(kd, a->cos_row, a->sin_row, hd);
        memcpy(vd, a->v + (size_t)j * hd, (size_t)hd * sizeof(float));
    }
}

void ga_cpu_swiglu(float *out, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = ga_siluf(g[i]) * u[i];
}

void ga_cpu_embed(float *x, const float *table, const int32_t *tokens, int T, int dim) {
    for (int t = 0; t < T; t++)
        memcpy(x + (size_t)t * dim, table + (size_t)tokens[t] * dim, (size_t)dim * sizeof(float));
}

void ga_cpu_gate_stats(const float *gate, size_t n, float threshold, double *sum, size_t *below) {
    double s = 0;
    size_t b = 0;
    for (size_t i = 0; i < n; i++) {
        float g = ga_sigmoidf(gate[i]);
        s += g;
        b += g < threshold;
    }
    *sum = s;
    *below = b;
}
