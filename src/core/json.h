/*
 * Strict JSON for every JSON file gattn reads as input (config.json, a safetensors header,
 * model.safetensors.index.json, tokenizer.json, tokenizer_config.json). cJSON alone is lenient in
 * ways that bind the wrong thing: it keeps the first of two equal keys (Python's json, which
 * transformers uses, keeps the last), it cuts a string at an escaped or raw NUL
 * ("a.weight\u0000evil" reads as "a.weight"), and it ignores bytes after the value.
 * ga_json_parse_strict refuses all three, so a file means one thing to every reader or is rejected.
 */
#ifndef GATTN_CORE_JSON_H
#define GATTN_CORE_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "gattn/gattn.h"

/* Parses text[0, len) as exactly one JSON value. Refused, with a message naming `path` (and
 * `what`, e.g. "safetensors header", in the message when not NULL):
 *   - text that is not JSON;
 *   - a string (key or value) holding a NUL, escaped (\u0000) or raw, or any other raw
 *     control character (JSON forbids them; Python's json refuses them too);
 *   - a key that appears twice in one object, at any depth (the message names the key and
 *     where the object sits, e.g. "model.vocab" or "added_tokens[0]");
 *   - anything after the value other than JSON whitespace (space, tab, CR, LF), which also
 *     covers the space padding a safetensors header may carry.
 * On success *out is the tree (cJSON_Delete it); on failure *out is NULL. */
ga_status ga_json_parse_strict(const char *text, size_t len, const char *path, const char *what,
                               cJSON **out, ga_err *err);

#endif
