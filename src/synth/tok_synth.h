/* The synthetic tokenizer's built-in training text (tok_synth_text.c). */
#ifndef GATTN_SYNTH_TOK_SYNTH_H
#define GATTN_SYNTH_TOK_SYNTH_H

extern const char ga_tok_synth_text[];

#endif
