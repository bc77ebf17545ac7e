/*
 * gattn tokenizer: the byte-level BPE tokenizer of Qwen models, driven entirely by a Hugging
 * Face tokenizer.json (normalizer, Split pre-tokenizer regex, byte-level mapping, ranked
 * merges, added tokens), plus decoding (whole and streaming), the Qwen chat template and a
 * writer for small synthetic tokenizers.
 *
 * Text is UTF-8 everywhere. Encoding rejects invalid UTF-8 (overlong forms, surrogates,
 * truncated sequences, bytes > U+10FFFF) with GA_ERR_ARG naming the byte offset; nothing is
 * replaced silently. Decoding never fails on valid ids: byte sequences that are not valid
 * UTF-8 (a token sequence cut inside a character) come out as U+FFFD, one per maximal
 * invalid subpart, as Hugging Face's decoder (errors="replace") does.
 *
 * A loaded tokenizer is immutable, so one may be shared by threads; a stream is not.
 */
#ifndef GATTN_TOKENIZER_H
#define GATTN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gattn/gattn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ga_tokenizer ga_tokenizer;

/* Loads a tokenizer.json. Every field is checked; a malformed file gives GA_ERR_FORMAT and a
 * valid but unsupported one (another model type, byte fallback, ...) GA_ERR_UNSUPPORTED, each
 * with a message naming the file and the field. */
ga_status ga_tok_load(const char *tokenizer_json_path, ga_tokenizer **out, ga_err *err);
/* dir/tokenizer.json, plus dir/tokenizer_config.json when present: its added_tokens_decoder
 * must agree with tokenizer.json, and its eos/bos/pad token names are resolved to ids. */
ga_status ga_tok_load_dir(const char *model_dir, ga_tokenizer **out, ga_err *err);
void ga_tok_free(ga_tokenizer *t);

/* Max id + 1, added tokens included. Ids in [0, size) with no token (gaps) are possible. */
int ga_tok_vocab_size(const ga_tokenizer *t);

/* text need not be NUL-terminated. *ids is malloc'd (never NULL on success, even when n=0). */
ga_status ga_tok_encode(const ga_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n,
                        ga_err *err);
/* *text is malloc'd and NUL-terminated; *len excludes the NUL. An id outside the vocabulary or
 * in a gap gives GA_ERR_ARG. Special tokens are decoded as their text. */
ga_status ga_tok_decode(const ga_tokenizer *t, const int32_t *ids, int n, char **text, size_t *len,
                        ga_err *err);

/* The token string as in the vocabulary (byte-level form, e.g. "Ġthe"), NULL if out of range
 * or a gap. */
const char *ga_tok_piece(const ga_tokenizer *t, int32_t id);
/* The bytes of one token made printable for labels: valid UTF-8 characters as they are,
 * \n \t \r as those two-character escapes, other control bytes and bytes that are not
 * complete valid UTF-8 (a token holding part of a character) as \xNN. Writes at most cap-1
 * bytes plus a NUL (cutting only between whole units) and returns the bytes written;
 * -1 for an invalid id (buf gets ""). */
int ga_tok_token_text(const ga_tokenizer *t, int32_t id, char *buf, int cap);
/* The id of the added token with this exact content, or -1. */
int32_t ga_tok_special_id(const ga_tokenizer *t, const char *content);
/* Ids named by tokenizer_config.json (eos_token, bos_token, pad_token), -1 when absent or
 * when only tokenizer.json was loaded. */
int32_t ga_tok_eos_id(const ga_tokenizer *t);
int32_t ga_tok_bos_id(const ga_tokenizer *t);
int32_t ga_tok_pad_id(const ga_tokenizer *t);

/* Streaming decode: push ids as they are generated and get the text that is complete so far.
 * A character whose bytes are split across tokens is held back until its last byte arrives;
 * bytes that can never become valid come out as U+FFFD at once. The concatenation of every
 * push and the final flush equals ga_tok_decode of the same ids. */
typedef struct ga_tok_stream ga_tok_stream;
ga_tok_stream *ga_tok_stream_new(const ga_tokenizer *t); /* NULL when out of memory */
/* *out points into a stream-owned buffer, NUL-terminated, valid until the next call. */
ga_status ga_tok_stream_push(ga_tok_stream *s, int32_t id, char **out, size_t *out_len,
                             ga_err *err);
/* Emits what is held back (an unfinished character becomes U+FFFD) and resets the stream. */
ga_status ga_tok_stream_flush(ga_tok_stream *s, char **out, size_t *out_len, ga_err *err);
void ga_tok_stream_free(ga_tok_stream *s);

/* Qwen chat template: "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then
 * "<|im_start|>assistant\n". *out is malloc'd. n may be 0. */
ga_status ga_tok_chat_format(const char *const *roles, const char *const *contents, int n,
                             char **out, ga_err *err);

/* Writes dir/tokenizer.json and dir/tokenizer_config.json (dir must exist) for a small
 * byte-level BPE tokenizer with exactly vocab_size ids (>= 259): the 256 byte tokens (ids
 * 0..255 in byte order), merges learned greedily from a built-in English + code text (then,
 * when the text has no pair left, deterministic merges of existing tokens) up to id
 * vocab_size-4, and the added special tokens <|endoftext|> = vocab_size-3,
 * <|im_start|> = vocab_size-2, <|im_end|> = vocab_size-1. Same normalizer, pre-tokenizer
 * regex and decoder as Qwen's tokenizer.json. Deterministic. */
ga_status ga_tok_write_synthetic(const char *dir, int vocab_size, ga_err *err);

#ifdef __cplusplus
}
#endif

#endif /* GATTN_TOKENIZER_H */
