/*
 * RoPE with the scaling in force: the inverse frequencies and the cos/sin scale of a config's
 * ga_rope_scaling, and the (position, rot_dim/2) cos/sin tables both backends build from them
 * (src/cpu at backend creation, src/cuda on the host before the upload), so the two backends
 * share one statement of the math and the kernels only read tables.
 */
#ifndef GATTN_CORE_ROPE_H
#define GATTN_CORE_ROPE_H

#include "gattn/gattn.h"

/* inv_freq[i] for i in [0, rot_dim/2) and the factor that scales cos and sin (1 except for
 * yarn), in double. rot_dim: the rotated dimensions of a head (head_dim today; partial RoPE
 * passes fewer). The scaling must have passed ga_rope_scaling_check. */
void ga_rope_freqs(const ga_config *c, int rot_dim, double *inv_freq, double *attn_factor);

/* malloc'd cos and sin tables of n_pos rows of rot_dim/2: attn_factor * cos(p * inv_freq[i]),
 * the angle taken in double and rounded once to fp32. (transformers forms the angle in fp32,
 * off by up to about p * inv_freq * 2^-24 rad; the double angle has no such error at 128k.) */
ga_status ga_rope_tables(const ga_config *c, int rot_dim, int n_pos, float **cos_tab,
                         float **sin_tab, ga_err *err);

#endif
