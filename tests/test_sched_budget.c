/*
 * ga_sched_prefill_budget (src/engine/sched_step.c), the prompt-token budget of a serving
 * step's prefill pass under --prefill-share, and ga_sched_mixed_budget, a mixed step's prompt
 * tokens beside its decode rows, case by case against values worked out here.
 */
#include <stdio.h>

#include "engine/scheduler.h"
#include "testutil.h"

static void expect(int chunk, double share, double decode_s, double tok_s, int want) {
    const int got = ga_sched_prefill_budget(chunk, share, decode_s, tok_s);
    CHECK_MSG(got == want, "chunk %d share %g decode %g s per-token %g s: %d, expected %d", chunk,
              share, decode_s, tok_s, got, want);
}

static void expect_mixed(int chunk, int nd, int want) {
    const int got = ga_sched_mixed_budget(chunk, nd);
    CHECK_MSG(got == want, "mixed: chunk %d, %d decode rows: %d prompt tokens, expected %d", chunk,
              nd, got, want);
}

int main(void) {
    /* a mixed step: the chunk's rows less the decode rows, at least 32 (or the chunk) */
    expect_mixed(512, 64, 448);
    expect_mixed(512, 1, 511);
    expect_mixed(512, 480, 32);
    expect_mixed(512, 500, 32);
    expect_mixed(7, 3, 7);
    expect_mixed(7, 16, 7);
    expect_mixed(40, 4, 36);
    expect_mixed(40, 10, 32);
    /* no limit: off, no decode this step, or no per-token time measured yet */
    expect(512, -1, 0.002, 1e-5, 512);
    expect(512, 1, 0, 1e-5, 512);
    expect(512, 1, 0.002, 0, 512);
    /* the cap: share x decode / per token = 1 x 2 ms / 10 us = 200 tokens */
    expect(512, 1, 0.002, 1e-5, 200);
    expect(512, 0.5, 0.002, 1e-5, 100);
    expect(512, 2.5, 0.002, 1e-5, 500);
    /* above the chunk: the chunk */
    expect(512, 3, 0.002, 1e-5, 512);
    expect(512, 1000, 0.002, 1e-5, 512);
    /* below the floor: GA_SCHED_MIN_PREFILL (32), or the chunk when that is smaller */
    expect(512, 1, 0.0001, 1e-5, GA_SCHED_MIN_PREFILL);
    expect(512, 0.01, 0.002, 1e-5, GA_SCHED_MIN_PREFILL);
    expect(7, 0.01, 0.002, 1e-5, 7);
    expect(40, 1, 0.0002, 1e-5, 32);
    /* a fraction rounds down */
    expect(512, 1, 0.002, 3e-5, 66);
    return ga_test_finish();
}
