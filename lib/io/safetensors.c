/* safetensors.c - reader and writer for safetensors files (format: safetensors.h).
 * Everything read from a file is checked before it is used: the header length against the
 * file, each tensor's dtype, shape and offsets against the buffer, and overlaps between
 * tensors. Writing is atomic (temporary file, fsync, rename, directory fsync). */
#include "safetensors.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[S2S_ST_DTYPE_COUNT] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"U16", 2}, {"I16", 2},  {"F16", 2},     {"BF16", 2},   {"U32", 4},
    {"I32", 4},  {"F32", 4}, {"U64", 8}, {"I64", 8}, {"F64", 8},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
};

const char *s2s_st_dtype_name(s2s_st_dtype d) { return d < S2S_ST_DTYPE_COUNT ? dtypes[d].name : "?"; }
size_t s2s_st_dtype_size(s2s_st_dtype d) { return d < S2S_ST_DTYPE_COUNT ? dtypes[d].size : 0; }

static int dtype_parse(const char *s, s2s_st_dtype *d)
{
    for (int i = 0; i < S2S_ST_DTYPE_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *d = (s2s_st_dtype)i;
            return 1;
        }
    return 0;
}

/* ---- reading ---------------------------------------------------------------------------- */

/* Reads the whole regular file at path into *out (malloc'd). */
static s2s_status read_all(const char *path, uint8_t **out, size_t *size)
{
    int fd;
    S2S_TRY(s2s_open_input(path, "model file", &fd));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) { /* standard input: a file's size is needed */
        s2s_status st = S2S_FAIL(S2S_ERR_IO, "model file '%s' is not a regular file; a safetensors file is read "
                                             "whole, so give its path", path);
        close(fd);
        return st;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    uint8_t *buf = s2s_host_alloc(n, "reading a safetensors file");
    if (!buf) {
        close(fd);
        return S2S_ERR_OUT_OF_MEMORY;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            const char *why = r < 0 ? strerror(errno) : "the file shrank while being read";
            s2s_status st = S2S_FAIL(S2S_ERR_IO, "cannot read '%s' (%zu of %zu bytes read): %s", path, got, n, why);
            free(buf);
            close(fd);
            return st;
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *size = n;
    return S2S_OK;
}

/* A JSON number that is a whole number in 0..2^53 (exact in a double). */
static int json_count(const cJSON *x, uint64_t *out)
{
    if (!cJSON_IsNumber(x))
        return 0;
    double v = x->valuedouble;
    if (!(v >= 0.0 && v <= 9007199254740992.0) || floor(v) != v)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

static s2s_status parse_shape(const s2s_st_file *f, const char *name, const cJSON *shape, s2s_st_tensor *t)
{
    int n = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (n < 0 || n > S2S_ST_MAX_DIMS)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': \"shape\" must be an array of at most %d integers",
                        f->path, name, S2S_ST_MAX_DIMS);
    t->ndim = n;
    t->numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        uint64_t v;
        if (!json_count(d, &v))
            return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", f->path, name,
                            i);
        /* Overflow guard: numel must fit size_t even after multiplying by the dtype size. */
        if (v != 0 && t->numel > (SIZE_MAX / 8) / v)
            return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': shape is too large", f->path, name);
        t->shape[i++] = (int64_t)v;
        t->numel *= (size_t)v;
    }
    return S2S_OK;
}

static s2s_status parse_offsets(const s2s_st_file *f, const char *name, const cJSON *off, size_t data_size,
                                s2s_st_tensor *t)
{
    uint64_t b, e;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_count(cJSON_GetArrayItem(off, 0), &b) ||
        !json_count(cJSON_GetArrayItem(off, 1), &e))
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end], two non-negative "
                        "integers", f->path, name);
    if (b > e)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", f->path,
                        name, (unsigned long long)b, (unsigned long long)e);
    if (e > data_size)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the data buffer "
                        "(%zu bytes): the file is truncated or corrupt", f->path, name, (unsigned long long)b,
                        (unsigned long long)e, data_size);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    return S2S_OK;
}

static s2s_status parse_tensor(const s2s_st_file *f, const cJSON *item, const uint8_t *data, size_t data_size,
                               s2s_st_tensor *t)
{
    const char *name = item->string;
    memset(t, 0, sizeof *t);
    t->name = name;
    if (!cJSON_IsObject(item))
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", f->path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!cJSON_IsString(dt) || !dtype_parse(dt->valuestring, &t->dtype))
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': unknown or missing dtype '%s' (known: F32, U8, F16, ...)",
                        f->path, name, cJSON_IsString(dt) ? dt->valuestring : "");
    S2S_TRY(parse_shape(f, name, cJSON_GetObjectItemCaseSensitive(item, "shape"), t));
    S2S_TRY(parse_offsets(f, name, cJSON_GetObjectItemCaseSensitive(item, "data_offsets"), data_size, t));
    size_t want = t->numel * s2s_st_dtype_size(t->dtype);
    if (t->end - t->begin != want)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s': data_offsets span %zu bytes but dtype %s and its shape "
                        "need %zu", f->path, name, t->end - t->begin, s2s_st_dtype_name(t->dtype), want);
    t->data = data + t->begin;
    return S2S_OK;
}

static int by_begin(const void *a, const void *b)
{
    const s2s_st_tensor *x = *(const s2s_st_tensor *const *)a, *y = *(const s2s_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* No two tensors may share a byte (empty tensors occupy none); sorted by begin, each must
 * end before the next non-empty one starts. */
static s2s_status check_overlaps(const s2s_st_file *f)
{
    const s2s_st_tensor **order = s2s_host_calloc((size_t)f->count, sizeof *order, "checking tensor offsets");
    if (!order)
        return S2S_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < f->count; i++)
        order[i] = &f->t[i];
    qsort(order, (size_t)f->count, sizeof *order, by_begin);
    const s2s_st_tensor *prev = NULL;
    s2s_status st = S2S_OK;
    for (int i = 0; i < f->count && st == S2S_OK; i++) {
        const s2s_st_tensor *t = order[i];
        if (t->begin == t->end)
            continue;
        if (prev && t->begin < prev->end)
            st = S2S_FAIL(S2S_ERR_FORMAT, "%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap in the data "
                          "buffer", f->path, prev->name, prev->begin, prev->end, t->name, t->begin, t->end);
        prev = t;
    }
    free(order);
    return st;
}

static s2s_status check_metadata(const s2s_st_file *f, const cJSON *meta)
{
    if (!cJSON_IsObject(meta))
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: \"__metadata__\" must be an object of strings", f->path);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, meta) {
        if (!cJSON_IsString(kv))
            return S2S_FAIL(S2S_ERR_FORMAT, "%s: metadata '%s' is not a string (safetensors metadata values are "
                            "strings)", f->path, kv->string);
    }
    return S2S_OK;
}

/* Splits the file into header and buffer and parses the header. */
static s2s_status parse_file(s2s_st_file *f)
{
    if (f->size < 8)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file (8-byte header length "
                        "first): the file is truncated", f->path, f->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | f->bytes[i];
    if (n > f->size - 8 || n > S2S_ST_MAX_HEADER)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: header length %llu exceeds the %zu bytes after it%s: the file is "
                        "truncated or not a safetensors file", f->path, (unsigned long long)n, f->size - 8,
                        n > S2S_ST_MAX_HEADER ? " (or the 100 MB limit)" : "");
    const char *text = (const char *)f->bytes + 8, *end = NULL;
    f->header = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
    /* Only whitespace (the writers' padding) may follow the object: cJSON would ignore more. */
    while (f->header && end < text + n && *end && strchr(" \t\r\n", *end))
        end++;
    if (!cJSON_IsObject(f->header) || end != text + n)
        return S2S_FAIL(S2S_ERR_FORMAT, "%s: the %llu-byte header is not a JSON object: the file is corrupt or not "
                        "a safetensors file", f->path, (unsigned long long)n);
    const uint8_t *data = f->bytes + 8 + n;
    size_t data_size = f->size - 8 - (size_t)n;
    int count = cJSON_GetArraySize(f->header);
    f->t = s2s_host_calloc((size_t)count, sizeof *f->t, "safetensors header");
    if (!f->t)
        return S2S_ERR_OUT_OF_MEMORY;
    const cJSON *item;
    cJSON_ArrayForEach(item, f->header) {
        if (strcmp(item->string, "__metadata__") == 0) {
            S2S_TRY(check_metadata(f, item));
            f->meta = item;
            continue;
        }
        if (s2s_st_find(f, item->string))
            return S2S_FAIL(S2S_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", f->path, item->string);
        S2S_TRY(parse_tensor(f, item, data, data_size, &f->t[f->count]));
        f->count++;
    }
    return check_overlaps(f);
}

s2s_status s2s_st_open(const char *path, s2s_st_file *f)
{
    memset(f, 0, sizeof *f);
    if (!path)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "safetensors: path must not be NULL");
    snprintf(f->path, sizeof f->path, "%s", path);
    S2S_TRY(read_all(path, &f->bytes, &f->size));
    s2s_status st = parse_file(f);
    if (st != S2S_OK) {
        s2s_st_close(f);
        return st;
    }
    return S2S_OK;
}

void s2s_st_close(s2s_st_file *f)
{
    if (!f)
        return;
    cJSON_Delete(f->header);
    free(f->t);
    free(f->bytes);
    memset(f, 0, sizeof *f);
}

const s2s_st_tensor *s2s_st_find(const s2s_st_file *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

const char *s2s_st_meta(const s2s_st_file *f, const char *key)
{
    const cJSON *v = f->meta ? cJSON_GetObjectItemCaseSensitive(f->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- writing ---------------------------------------------------------------------------- */

static cJSON *tensor_json(const s2s_st_out *t, size_t begin, size_t end)
{
    cJSON *o = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *off = cJSON_CreateArray();
    if (!o || !shape || !off) {
        cJSON_Delete(o);
        cJSON_Delete(shape);
        cJSON_Delete(off);
        return NULL;
    }
    cJSON_AddItemToObject(o, "dtype", cJSON_CreateString(s2s_st_dtype_name(t->dtype)));
    for (int d = 0; d < t->ndim; d++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
    cJSON_AddItemToObject(o, "shape", shape);
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)begin));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)end));
    cJSON_AddItemToObject(o, "data_offsets", off);
    return o;
}

static size_t out_bytes(const s2s_st_out *t)
{
    size_t n = s2s_st_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

/* The header text padded with spaces to a multiple of 8 (so the buffer starts 8-aligned);
 * *len excludes the NUL. cJSON failures here can only be allocation failures. */
static s2s_status build_header(const s2s_st_kv *meta, int nmeta, const s2s_st_out *t, int nt, char **out,
                               size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *md = cJSON_CreateObject();
    int ok = root && md;
    for (int i = 0; ok && i < nmeta; i++)
        ok = cJSON_AddStringToObject(md, meta[i].key, meta[i].value) != NULL;
    if (ok && nmeta > 0) {
        cJSON_AddItemToObject(root, "__metadata__", md); /* root owns it now */
        md = NULL;
    }
    size_t off = 0;
    for (int i = 0; ok && i < nt; i++) {
        cJSON *o = tensor_json(&t[i], off, off + out_bytes(&t[i]));
        ok = o != NULL;
        if (ok)
            cJSON_AddItemToObject(root, t[i].name, o);
        off += out_bytes(&t[i]);
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(md);
    cJSON_Delete(root);
    if (!text)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not build a safetensors header (%d tensors)", nt);
    size_t n = strlen(text), padded = (n + 7) & ~(size_t)7;
    char *buf = realloc(text, padded + 1);
    if (!buf) {
        free(text);
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "could not pad a %zu-byte safetensors header", n);
    }
    memset(buf + n, ' ', padded - n);
    buf[padded] = '\0';
    *out = buf;
    *len = padded;
    return S2S_OK;
}

static int write_full(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_body(int fd, const char *header, size_t hlen, const s2s_st_out *t, int nt)
{
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if (write_full(fd, len8, 8) || write_full(fd, header, hlen))
        return -1;
    for (int i = 0; i < nt; i++)
        if (write_full(fd, t[i].data, out_bytes(&t[i])))
            return -1;
    return fsync(fd);
}

/* fsync of the directory holding path, so that the rename survives a crash. Filesystems that
 * cannot sync a directory (EINVAL) are accepted. */
static int sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r != 0 && e != EINVAL ? -1 : 0;
}

/* Writes to a temporary file beside path; on success *tmp names it (the caller renames it). */
static s2s_status write_temp(const char *path, const char *header, size_t hlen, const s2s_st_out *t, int nt,
                             char *tmp, size_t cap)
{
    snprintf(tmp, cap, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return S2S_FAIL(S2S_ERR_IO, "cannot create a temporary file beside '%s': %s (does the directory exist and "
                        "is it writable?)", path, strerror(errno));
    /* mkstemp creates mode 0600; a model file is meant to be shared like any output file. */
    int bad = fchmod(fd, 0644) != 0 || write_body(fd, header, hlen, t, nt) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(tmp);
        return S2S_FAIL(S2S_ERR_IO, "cannot write '%s' (temporary file for '%s'): %s", tmp, path, strerror(e));
    }
    return S2S_OK;
}

s2s_status s2s_st_write(const char *path, const s2s_st_kv *meta, int nmeta, const s2s_st_out *t, int nt)
{
    if (!path || (nt > 0 && !t) || (nmeta > 0 && !meta))
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "safetensors: path, tensors and metadata must not be NULL");
    if (strlen(path) > 4000)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "safetensors: path is longer than 4000 bytes");
    char *header = NULL, tmp[4096];
    size_t hlen = 0;
    S2S_TRY(build_header(meta, nmeta, t, nt, &header, &hlen));
    s2s_status st = write_temp(path, header, hlen, t, nt, tmp, sizeof tmp);
    free(header);
    if (st != S2S_OK)
        return st;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return S2S_FAIL(S2S_ERR_IO, "cannot rename '%s' over '%s': %s (the previous file, if any, is unchanged)", tmp,
                        path, strerror(e));
    }
    if (sync_dir(path) != 0)
        return S2S_FAIL(S2S_ERR_IO, "wrote '%s' but could not sync its directory: %s (the file may not survive a "
                        "crash)", path, strerror(errno));
    return S2S_OK;
}
