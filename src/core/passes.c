#include "passes.h"

int ga_pass_pieces(int ns, const int *seqs, const int *pos0, const int *off, int r0, int len,
                   int *ps, int *pp, int *po, int *first_end, int *n_end) {
    int np = 0;
    *first_end = -1;
    *n_end = 0;
    po[0] = 0;
    for (int i = 0; i < ns; i++) {
        const int a = off[i] > r0 ? off[i] : r0;
        const int e = off[i + 1] < r0 + len ? off[i + 1] : r0 + len;
        if (a >= e) continue;
        ps[np] = seqs[i];
        pp[np] = pos0[i] + (a - off[i]);
        po[np + 1] = e - r0;
        np++;
        if (e == off[i + 1]) { /* the sequence's last row is in this pass */
            if (*first_end < 0) *first_end = i;
            (*n_end)++;
        }
    }
    return np;
}
