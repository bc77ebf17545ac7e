/*
 * Splitting a backend's forward_multi rows into passes: several sequences' prompts,
 * concatenated (sequence i owns rows off[i] .. off[i+1]-1, at least one: the session refuses
 * empty sequences), go through the GEMMs in passes of
 * at most `chunk` rows, and a sequence may straddle passes (its later part is a continuation).
 * Both CUDA backends (Qwen3 and the hybrids) plan their passes with this one function.
 */
#ifndef GATTN_CORE_PASSES_H
#define GATTN_CORE_PASSES_H

/* The pieces of the rows [r0, r0 + len) of a forward_multi call: for each sequence with rows
 * there, in order, ps[k] = its slot, pp[k] = the position of its first row in the pass, and
 * its rows are po[k] .. po[k+1]-1 of the pass (po[0] = 0). *first_end is the index (into the
 * call's sequences) of the first sequence whose last row lies in the pass and *n_end how many
 * do (they are consecutive), or -1 and 0. ps, pp: room for ns entries; po: ns + 1. Returns the
 * number of pieces. */
int ga_pass_pieces(int ns, const int *seqs, const int *pos0, const int *off, int r0, int len,
                   int *ps, int *pp, int *po, int *first_end, int *n_end);

#endif
