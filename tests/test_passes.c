/*
 * ga_pass_pieces (src/core/passes.c), the pass plan of both CUDA backends' forward_multi,
 * against a row-by-row walk written here: for random sequence lengths (one row and up; the
 * session refuses empty sequences before a backend sees them),
 * slots, start positions and pass heights, every row of every pass must belong to the piece
 * of the sequence that owns it, at the right position, pieces in sequence order, and
 * first_end / n_end must name exactly the sequences whose last row lies in the pass.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/passes.h"
#include "testutil.h"

#define MAXS 12

static void check(int ns, const int *seqs, const int *pos0, const int *off, int chunk) {
    const int total = off[ns];
    int ps[MAXS], pp[MAXS], po[MAXS + 1];
    int ends_seen = 0;
    for (int r0 = 0; r0 < total; r0 += chunk) {
        const int len = total - r0 < chunk ? total - r0 : chunk;
        int first_end = 7, n_end = 7;
        const int np = ga_pass_pieces(ns, seqs, pos0, off, r0, len, ps, pp, po, &first_end, &n_end);
        CHECK(np >= 1 && np <= ns && po[0] == 0 && po[np] == len);
        /* row by row: the owner of pass row j is the sequence i with off[i] <= r0 + j < off[i+1] */
        int k = 0;
        for (int j = 0; j < len; j++) {
            int i = 0;
            while (!(off[i] <= r0 + j && r0 + j < off[i + 1]))
                i++;
            while (k < np && j >= po[k + 1])
                k++;
            CHECK_MSG(k < np && po[k] <= j && ps[k] == seqs[i] &&
                          pp[k] + (j - po[k]) == pos0[i] + (r0 + j - off[i]),
                      "chunk %d pass at %d row %d: piece %d of %d", chunk, r0, j, k, np);
        }
        for (k = 0; k < np; k++)
            CHECK(po[k] < po[k + 1]); /* no empty piece */
        /* the sequences ending in this pass */
        int expect_first = -1, expect_n = 0;
        for (int i = 0; i < ns; i++)
            if (off[i + 1] > off[i] && off[i + 1] > r0 && off[i + 1] <= r0 + len) {
                if (expect_first < 0) expect_first = i;
                expect_n++;
            }
        CHECK_MSG(first_end == expect_first && n_end == expect_n,
                  "chunk %d pass at %d: first_end %d n_end %d, expected %d %d", chunk, r0,
                  first_end, n_end, expect_first, expect_n);
        for (int e = 0; e < n_end; e++) /* consecutive, as the backends assume */
            CHECK(off[first_end + e + 1] > off[first_end + e]);
        ends_seen += n_end;
    }
    int nonempty = 0;
    for (int i = 0; i < ns; i++)
        nonempty += off[i + 1] > off[i];
    CHECK_MSG(ends_seen == nonempty, "%d ends for %d sequences", ends_seen, nonempty);
}

int main(void) {
    uint64_t rng = 12345;
    int cases = 0;
    for (int t = 0; t < 3000; t++) {
        const int ns = 1 + (int)(ga_test_rand_u64(&rng) % MAXS);
        int seqs[MAXS], pos0[MAXS], off[MAXS + 1] = {0};
        for (int i = 0; i < ns; i++) {
            seqs[i] = (int)(ga_test_rand_u64(&rng) % 64);
            pos0[i] = (int)(ga_test_rand_u64(&rng) % 1000);
            /* mostly short, sometimes one row, sometimes longer than a pass */
            const int r = (int)(ga_test_rand_u64(&rng) % 10);
            const int n = r == 0  ? 1
                          : r < 7 ? 1 + (int)(ga_test_rand_u64(&rng) % 40)
                                  : 1 + (int)(ga_test_rand_u64(&rng) % 300);
            off[i + 1] = off[i] + n;
        }
        const int chunk = 1 + (int)(ga_test_rand_u64(&rng) % 128);
        check(ns, seqs, pos0, off, chunk);
        cases++;
    }
    printf("%d random splits checked\n", cases);
    return ga_test_finish();
}
