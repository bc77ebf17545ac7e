/*
 * CPU reference attention: causal grouped-query attention over the fp32 KV cache (one
 * contiguous slot, or blocks through a block table), the
 * sigmoid output gate, and (for heatmaps) the pooled attention maps and first-token share
 * recorded from the very probabilities that produce the output.
 *
 * Work is split into tasks over query rows. When a map is being recorded, the task
 * boundaries follow the pooling blocks, so no two tasks write the same row of the map.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "cpu_attention.h"
#include "cpu_ops.h"

typedef struct att_job {
    const ga_cpu_attn_args *a;
    int n_tasks;
    float *scratch;        /* n_tasks * kv_len scores */
    double *first_partial; /* n_tasks */
} att_job;

/* First query row of pooling block b (rows i with floor(i*res/T) == b). */
static int block_start(int b, int T, int res) {
    return (int)(((int64_t)b * T + res - 1) / res);
}

/* Row s of a KV head: contiguous (pitch hd), or through a block table, where rows
 * [b*bs, (b+1)*bs) lie at table[b] * block_pitch from the head's base, bs rows of hd each. */
typedef struct kv_rows {
    const int32_t *table; /* NULL: contiguous */
    int bs;
    size_t block_pitch;
} kv_rows;

static inline const float *kv_row(const float *base, const kv_rows *r, int s, int hd) {
    if (!r->table) return base + (size_t)s * hd;
    return base + (size_t)r->table[s / r->bs] * r->block_pitch + (size_t)(s % r->bs) * hd;
}

/* ga_cpu_attend over rows found through r: the same operations in the same order whatever
 * the layout, so a paged cache gives bit-identical results to a contiguous one. */
static double attend_rows(const float *q, const float *K, const float *V, const kv_rows *r,
                          int n_keys, int hd, float scale, const float *gate, ga_gate_mode mode,
                          float *out, float *p) {
    /* Scores minus their maximum before expf: scaled q.k reaches hundreds for long rows with
     * large q/k norms, and expf overflows past 88.7. */
    float mx = -INFINITY;
    for (int s = 0; s < n_keys; s++) {
        const float *kr = kv_row(K, r, s, hd);
        float d = 0;
        for (int e = 0; e < hd; e++)
            d += q[e] * kr[e];
        p[s] = d * scale;
        if (p[s] > mx) mx = p[s];
    }
    double sum = 0; /* double: tens of thousands of terms of very different sizes */
    for (int s = 0; s < n_keys; s++) {
        p[s] = expf(p[s] - mx);
        sum += p[s];
    }
    float inv = (float)(1.0 / sum);
    memset(out, 0, (size_t)hd * sizeof *out);
    for (int s = 0; s < n_keys; s++) {
        float pw = p[s] * inv;
        p[s] = pw;
        const float *vr = kv_row(V, r, s, hd);
        for (int e = 0; e < hd; e++)
            out[e] += pw * vr[e];
    }
    if (mode == GA_GATE_HEADWISE) {
        float gv = ga_sigmoidf(gate[0]);
        for (int e = 0; e < hd; e++)
            out[e] *= gv;
    } else if (mode == GA_GATE_ELEMENTWISE) {
        for (int e = 0; e < hd; e++)
            out[e] *= ga_sigmoidf(gate[e]);
    }
    return (double)mx + log(sum);
}

double ga_cpu_attend(const float *q, const float *K, const float *V, int n_keys, int hd,
                     float scale, const float *gate, ga_gate_mode mode, float *out, float *p) {
    const kv_rows r = {0};
    return attend_rows(q, K, V, &r, n_keys, hd, scale, gate, mode, out, p);
}

static void att_task(void *ctx, int task) {
    const att_job *j = ctx;
    const ga_cpu_attn_args *a = j->a;
    int T = a->T, res = a->res;
    int t0, t1;
    if (a->map) { /* whole pooling blocks per task */
        int b0 = (int)((int64_t)task * res / j->n_tasks),
            b1 = (int)((int64_t)(task + 1) * res / j->n_tasks);
        t0 = block_start(b0, T, res);
        t1 = block_start(b1, T, res);
    } else {
        t0 = (int)((int64_t)task * T / j->n_tasks);
        t1 = (int)((int64_t)(task + 1) * T / j->n_tasks);
    }
    int hd = a->hd, nh = a->n_heads;
    const ga_gate_layout gl = ga_gate_layout_make(nh, a->n_kv_heads, hd, a->gate_mode);
    float *sc = j->scratch + (size_t)task * (a->pos0 + T);
    const kv_rows rows = {a->table, a->kv_stride, a->block_pitch};
    double first = 0;
    for (int t = t0; t < t1; t++) {
        int p = a->pos0 + t, nk = p + 1; /* causal: keys 0..p */
        float map_w = 0;
        int bi = 0;
        if (a->map) {
            bi = ga_pool_bin(t, T, res);
            int cnt = block_start(bi + 1, T, res) - block_start(bi, T, res);
            map_w = 1.0f / (float)cnt / (a->head < 0 ? (float)nh : 1.0f);
        }
        for (int h = 0; h < nh; h++) {
            int kvh = ga_gate_layout_kv_head(&gl, h);
            const float *g =
                a->gate ? a->gate + (size_t)t * a->gate_dim + ga_gate_layout_gate_idx(&gl, h)
                        : NULL;
            double lse = attend_rows(
                a->q + ((size_t)t * nh + h) * hd, a->k + (size_t)kvh * a->kv_stride * hd,
                a->v + (size_t)kvh * a->kv_stride * hd, &rows, nk, hd, a->scale, g,
                g ? a->gate_mode : GA_GATE_NONE, a->out + ((size_t)t * nh + h) * hd, sc);
            if (a->lse) a->lse[(size_t)h * T + t] = (float)lse;
            if (a->first_share && t > 0) first += sc[0];
            if (a->map && (a->head < 0 || a->head == h)) {
                float *row = a->map + (size_t)bi * res;
                for (int s = 0; s < nk; s++)
                    row[ga_pool_bin(s, T, res)] += sc[s] * map_w;
            }
        }
    }
    j->first_partial[task] = first;
}

int ga_cpu_attention(ga_pool *pool, const ga_cpu_attn_args *a) {
    int n_tasks = ga_pool_threads(pool) * 4;
    if (a->map && n_tasks > a->res) n_tasks = a->res;
    if (n_tasks > a->T) n_tasks = a->T;
    if (n_tasks < 1) n_tasks = 1;
    att_job j = {a, n_tasks, malloc((size_t)n_tasks * (a->pos0 + a->T) * sizeof(float)),
                 calloc((size_t)n_tasks, sizeof(double))};
    if (!j.scratch || !j.first_partial) {
        free(j.scratch);
        free(j.first_partial);
        return -1;
    }
    ga_pool_run(pool, att_task, &j, n_tasks);
    if (a->first_share) {
        double s = 0;
        for (int i = 0; i < n_tasks; i++)
            s += j.first_partial[i];
        *a->first_share = a->T > 1 ? s / ((double)a->n_heads * (a->T - 1)) : NAN;
    }
    free(j.scratch);
    free(j.first_partial);
    return 0;
}
