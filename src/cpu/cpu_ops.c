/* fp32 building blocks of the CPU backend (see cpu_ops.h). */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"

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

/* One task: a block of output features for every token, so each weight row is read from
 * memory once and reused from cache across the tokens. */
static void mm_task(void *ctx, int task) {
    const mm_job *j = ctx;
    int o0 = task * j->rows_per_task, o1 = o0 + j->rows_per_task;
    if (o1 > j->out) o1 = j->out;
    for (int t0 = 0; t0 < j->T; t0 += 16) {
        int t1 = t0 + 16 < j->T ? t0 + 16 : j->T;
        for (int o = o0; o < o1; o++) {
            const float *wr = j->w + (size_t)o * j->in;
            float bias = j->b ? j->b[o] : 0.0f;
            for (int t = t0; t < t1; t++)
                j->y[(size_t)t * j->out + o] = dot(j->x + (size_t)t * j->in, wr, j->in) + bias;
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
    int h = hd / 2;
    float *c = malloc((size_t)max_pos * h * sizeof(float));
    float *s = malloc((size_t)max_pos * h * sizeof(float));
    if (!c || !s) {
        free(c);
        free(s);
        return -1;
    }
    for (int i = 0; i < h; i++) {
        double inv = pow(theta, -2.0 * i / hd);
        for (int p = 0; p < max_pos; p++) {
            double ang = p * inv;
            c[(size_t)p * h + i] = (float)cos(ang);
            s[(size_t)p * h + i] = (float)sin(ang);
        }
    }
    *cos_tab = c;
    *sin_tab = s;
    return 0;
}
