/* safetensors.h - a small reader and writer for the safetensors format (host memory only).
 *
 * Layout of a file: 8 bytes little-endian N, N bytes of JSON header, then the data buffer.
 * The header is one object: "__metadata__" maps strings to strings; every other key is a
 * tensor {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} whose bytes are
 * buffer[begin, end), row-major, little-endian.
 *
 * The reader checks everything a consumer could trip on (sizes, offsets, overlaps, dtypes)
 * before handing out a tensor, so callers may index a tensor's bytes freely. Tensor bytes are
 * not aligned (they follow the header at any byte offset): copy them with memcpy. */
#ifndef S2S_SAFETENSORS_H
#define S2S_SAFETENSORS_H

#include "internal.h"
#include <cjson/cJSON.h>
#include <stdint.h>

#define S2S_ST_MAX_DIMS 8
#define S2S_ST_MAX_HEADER (100u * 1000u * 1000u) /* bytes: a larger header is refused */

typedef enum s2s_st_dtype {
    S2S_ST_BOOL = 0, S2S_ST_U8, S2S_ST_I8, S2S_ST_U16, S2S_ST_I16, S2S_ST_F16, S2S_ST_BF16,
    S2S_ST_U32, S2S_ST_I32, S2S_ST_F32, S2S_ST_U64, S2S_ST_I64, S2S_ST_F64,
    S2S_ST_F8_E5M2, S2S_ST_F8_E4M3,
    S2S_ST_DTYPE_COUNT
} s2s_st_dtype;

/* "F32" etc., and the size of one element in bytes. */
const char *s2s_st_dtype_name(s2s_st_dtype d);
size_t s2s_st_dtype_size(s2s_st_dtype d);

/* ---- reading ---------------------------------------------------------------------------- */

typedef struct s2s_st_tensor {
    const char *name;        /* points into the parsed header (valid while the file is open) */
    s2s_st_dtype dtype;
    int ndim;                /* 0 (a scalar) .. S2S_ST_MAX_DIMS */
    int64_t shape[S2S_ST_MAX_DIMS];
    size_t numel;            /* product of shape (1 for a scalar) */
    size_t begin, end;       /* byte offsets in the data buffer; end - begin = numel * size */
    const uint8_t *data;     /* buffer + begin */
} s2s_st_tensor;

typedef struct s2s_st_file {
    char path[512];          /* for messages (truncated when longer) */
    uint8_t *bytes;          /* the whole file */
    size_t size;
    cJSON *header;           /* the parsed header object */
    const cJSON *meta;       /* its "__metadata__" object, or NULL */
    int count;               /* tensors, in header order */
    s2s_st_tensor *t;
} s2s_st_file;

/* Reads and checks the whole file at path. Errors: S2S_ERR_IO (open/read, with the OS
 * reason), S2S_ERR_FORMAT (naming the file and the offending tensor or field),
 * S2S_ERR_OUT_OF_MEMORY. On failure *f is left empty (s2s_st_close is still safe). */
s2s_status s2s_st_open(const char *path, s2s_st_file *f);
void s2s_st_close(s2s_st_file *f);
/* The tensor called name, or NULL. */
const s2s_st_tensor *s2s_st_find(const s2s_st_file *f, const char *name);
/* The metadata string under key, or NULL when absent. */
const char *s2s_st_meta(const s2s_st_file *f, const char *key);

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct s2s_st_out {
    const char *name;
    s2s_st_dtype dtype;
    int ndim;
    int64_t shape[S2S_ST_MAX_DIMS];
    const void *data;        /* numel * dtype size bytes, host; may be NULL when that is 0 */
} s2s_st_out;

typedef struct s2s_st_kv {
    const char *key, *value;
} s2s_st_kv;

/* Writes the tensors (data laid out in the given order, no gaps) and metadata to path
 * atomically: a temporary file PATH.tmp.XXXXXX beside it is written, synced and renamed over
 * path, then the directory is synced. On failure the temporary file is removed and an existing
 * file at path is untouched; S2S_ERR_IO names the path and the OS reason. */
s2s_status s2s_st_write(const char *path, const s2s_st_kv *meta, int nmeta, const s2s_st_out *t, int nt);

#endif
