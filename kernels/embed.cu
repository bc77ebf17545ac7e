/*
 * Embedding gather: bf16 table rows -> the fp32 residual stream. One block per token; rows
 * whose dim is a multiple of 8 are read 16 bytes (8 bf16) at a time and written as two
 * float4. bf16 -> fp32 is exact, so the residual stream starts bit-identical to the table.
 */
#include <cuda_bf16.h>

#include "cuda_check.h"
#include "kernels.h"

#define EMBED_THREADS 256

__global__ void __launch_bounds__(EMBED_THREADS)
    k_embed(const int32_t *__restrict__ tokens, const __nv_bfloat16 *__restrict__ table,
            float *__restrict__ x, int dim, int vocab) {
    const int t = blockIdx.x;
    const int32_t tok = tokens[t];
    float *xr = x + (size_t)t * dim;
    if (tok < 0 || tok >= vocab) {
        // Never expected (the session validates ids); a NaN row makes a bad id visible
        // instead of reading outside the table.
        for (int i = threadIdx.x; i < dim; i += blockDim.x)
            xr[i] = __int_as_float(0x7fc00000);
        return;
    }
    const __nv_bfloat16 *row = table + (size_t)tok * dim;
    if (dim % 8 == 0) {
        for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) {
            const uint4 v = reinterpret_cast<const uint4 *>(row)[i];
            const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
            const float2 a = __bfloat1622float2(h[0]), b = __bfloat1622float2(h[1]);
            const float2 c = __bfloat1622float2(h[2]), d = __bfloat1622float2(h[3]);
            reinterpret_cast<float4 *>(xr)[2 * i] = make_float4(a.x, a.y, b.x, b.y);
            reinterpret_cast<float4 *>(xr)[2 * i + 1] = make_float4(c.x, c.y, d.x, d.y);
        }
    } else {
        for (int i = threadIdx.x; i < dim; i += blockDim.x)
            xr[i] = __bfloat162float(row[i]);
    }
}

extern "C" ga_status ga_embed(const int32_t *tokens, const void *table, float *x, int T, int dim,
                              int vocab, cudaStream_t stream, ga_err *err) {
    if (T < 0 || dim <= 0 || vocab <= 0 || !tokens || !table || !x)
        return ga_err_set(err, GA_ERR_ARG, "ga_embed: bad arguments (T %d, dim %d)", T, dim);
    if (T == 0) return GA_OK;
    k_embed<<<T, EMBED_THREADS, 0, stream>>>(tokens, static_cast<const __nv_bfloat16 *>(table), x,
                                             dim, vocab);
    GA_CUDA_CHECK_LAUNCH();
    return GA_OK;
}
