/*
 * ga_sched_prefill_budget (src/engine/sched_step.c), the prompt-token budget of a serving
 * step's prefill pass under --prefill-share, case by case against values worked out here.
 */
#include <stdio.h>

#include "engine/scheduler.h"
#include "testutil.h"

static void expect(int chunk, double share, double decode_s, double tok_s, int want) {
    const int got = ga_sched_prefill_budget(chunk, share, decode_s, tok_s);
    CHECK_MSG(got == want, "chunk %d share %g decode %g s per-token %g s: %d, expected %d", chunk,
              share, decode_s, tok_s, got, want);
}

int main(void) {
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
