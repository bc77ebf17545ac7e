/*
 * safetensors reading: a store of named tensors from one file or from the shards listed in
 * model.safetensors.index.json, each file memory-mapped read-only.
 *
 * Every byte of a model file is untrusted: the header length is checked against the file
 * size, the JSON header is parsed strictly, every tensor's dtype, shape and byte span are
 * checked (offsets inside the data section, span == numel * dtype size, no overlaps), and
 * names are unique across shards.
 */
#ifndef GATTN_CORE_SAFETENSORS_H
#define GATTN_CORE_SAFETENSORS_H

#include "tensor.h"

typedef struct ga_store ga_store;

/* Opens one .safetensors file. */
ga_status ga_store_open_file(const char *path, ga_store **out, ga_err *err);
/* Opens a model folder: model.safetensors, or the shards of model.safetensors.index.json. */
ga_status ga_store_open_dir(const char *dir, ga_store **out, ga_err *err);
/* An empty store whose tensors point at buffers the store owns (for in-memory models). */
ga_store *ga_store_new_memory(void);
/* Adds a tensor with a fresh zeroed buffer owned by the store; returns NULL on OOM. */
ga_tensor *ga_store_add_owned(ga_store *s, const char *name, ga_dtype dtype, int ndim,
                              const int64_t *shape);
void ga_store_free(ga_store *s);

const ga_tensor *ga_store_find(const ga_store *s, const char *name);
int ga_store_count(const ga_store *s);
const ga_tensor *ga_store_at(const ga_store *s, int i);

/* Binds every F8_E4M3 tensor "<name>" to its block scales "<name>_scale_inv" (F32, BF16 or
 * F16, shape (ceil(rows / block[0]), ceil(cols / block[1]))), so that the tensor readers
 * return dequantised values. Errors, each naming the tensors: an F8 tensor when block[0] is 0
 * (config.json not quantised; `where` names the folder), one that is not 2-D, a missing scale,
 * a scale of the wrong dtype or shape, and a scale beside a weight that is not F8. Call it once
 * the store holds every tensor (the bindings point into its array). */
ga_status ga_store_bind_fp8(ga_store *s, const int block[2], const char *where, ga_err *err);

/* Parses the safetensors header `hdr` (hdr_len bytes of JSON) describing a data section of
 * data_len bytes at `data`. Exposed for tests. */
ga_status ga_store_parse_header(ga_store *s, const char *path, const char *hdr, uint64_t hdr_len,
                                const uint8_t *data, uint64_t data_len, ga_err *err);

/* Writes tensors as one safetensors file (tensors in the given order). */
ga_status ga_safetensors_write(const char *path, const ga_tensor *const *tensors, int n,
                               ga_err *err);

#endif
