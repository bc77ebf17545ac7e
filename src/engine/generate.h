/*
 * Text generation on a session: a prompt of token ids in, generated ids out through a
 * callback, for one sequence or for many prompts decoded together (one KV slot each).
 *
 * Definition (what the tests check): the first token comes from the prefill's last-position
 * logits, each later token from one ga_session_decode_sample step that appends the previous
 * token. Token selection follows src/engine/sampler.h; the token at sequence position p draws
 * with counter p from stream ga_gen_opts.stream, the same for every prompt: a draw depends on
 * (seed, stream, position) only, never on the prompt's index or slot, so a prompt gets the
 * same tokens alone or in any batch (as per-request seeds do in serving engines; two equal
 * prompts in one batch get equal tokens). Generation of a sequence stops
 *  - at a stop id (the EOS id is not passed to the callback and not counted),
 *  - after max_new_tokens tokens,
 *  - when the callback returns nonzero (that token is counted),
 *  - or when the KV cache of the slot is full (the last token is still produced: a token
 *    is only appended to the cache when the next one is wanted).
 */
#ifndef GATTN_ENGINE_GENERATE_H
#define GATTN_ENGINE_GENERATE_H

#include "gattn/gattn.h"
#include "gattn/tokenizer.h"

#define GA_GEN_MAX_STOP 16

typedef enum ga_gen_stop {
    GA_GEN_STOP_LENGTH = 0,   /* max_new_tokens reached */
    GA_GEN_STOP_EOS = 1,      /* a stop id was produced */
    GA_GEN_STOP_CALLBACK = 2, /* the callback asked to stop */
    GA_GEN_STOP_CONTEXT = 3,  /* the slot's KV cache is full */
} ga_gen_stop;

typedef struct ga_gen_opts {
    int max_new_tokens;   /* >= 1 */
    ga_sampling sampling; /* temperature <= 0: greedy */
    uint64_t stream;      /* random stream of every prompt (0 unless a caller wants another) */
    int n_stop;           /* stop ids (0..GA_GEN_MAX_STOP) */
    int32_t stop_ids[GA_GEN_MAX_STOP];
} ga_gen_opts;

typedef struct ga_gen_stats {
    int64_t prompt_tokens;    /* tokens prefilled */
    int64_t generated_tokens; /* tokens passed to the callback */
    int64_t decode_tokens;    /* tokens produced by decode steps (generated minus firsts) */
    double prefill_s;         /* wall time of the prefills (first token included) */
    double decode_s;          /* wall time of the decode steps */
} ga_gen_stats;

/* Called with each generated token of prompt `index` (0 for ga_generate); return nonzero to
 * stop that sequence. */
typedef int (*ga_gen_token_fn)(void *user, int index, int32_t token);

/* Fills o->stop_ids with the config's eos_token_ids plus, when tok is non-NULL, the
 * tokenizer's eos token, <|im_end|> and <|endoftext|> (each once). */
void ga_gen_default_stops(const ga_config *c, const ga_tokenizer *tok, ga_gen_opts *o);

/* Generates for one prompt in slot `seq` (reset first) of a session made from m.
 * stop_reason may be NULL. */
ga_status ga_generate(ga_session *s, const ga_model *m, int seq, const int32_t *prompt,
                      int n_prompt, const ga_gen_opts *o, ga_gen_token_fn cb, void *user,
                      ga_gen_stats *stats, ga_gen_stop *stop_reason, ga_err *err);

/* Generates for n prompts at once (n <= ga_session_max_batch): prompt i is prefilled into
 * slot i, then every step decodes all sequences still running in one batch. Callbacks for a
 * step come in prompt order. stop_reasons (n entries) may be NULL. */
ga_status ga_generate_batch(ga_session *s, const ga_model *m, const int32_t *const *prompts,
                            const int *n_prompts, int n, const ga_gen_opts *o, ga_gen_token_fn cb,
                            void *user, ga_gen_stats *stats, ga_gen_stop *stop_reasons,
                            ga_err *err);

const char *ga_gen_stop_name(ga_gen_stop s);

#endif
