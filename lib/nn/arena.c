/* arena.c - per-batch workspace: bump allocation over a few large device allocations. */
#include "nn.h"
#include <string.h>

#define ARENA_ALIGN 256
#define ARENA_MIN_CHUNK ((size_t)4 << 20)

void s2s_arena_init(s2s_arena *a, s2s_backend *be)
{
    memset(a, 0, sizeof *a);
    a->be = be;
}

static s2s_status arena_bytes(s2s_arena *a, size_t bytes, void **out)
{
    bytes = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (bytes == 0)
        bytes = ARENA_ALIGN;
    if (a->nchunks > 0) {
        int i = a->nchunks - 1;
        if (a->chunk[i].size - a->chunk[i].used >= bytes) {
            *out = a->chunk[i].base + a->chunk[i].used;
            a->chunk[i].used += bytes;
            return S2S_OK;
        }
    }
    if (a->nchunks == S2S_ARENA_MAX_CHUNKS)
        return S2S_FAIL(S2S_ERR_INTERNAL, "workspace arena ran out of chunks (%d)", S2S_ARENA_MAX_CHUNKS);
    size_t size = bytes;
    if (a->nchunks > 0 && size < 2 * a->chunk[a->nchunks - 1].size)
        size = 2 * a->chunk[a->nchunks - 1].size;
    if (size < ARENA_MIN_CHUNK)
        size = ARENA_MIN_CHUNK;
    void *p;
    S2S_TRY(a->be->ops->alloc(a->be, size, &p));
    a->chunk[a->nchunks].base = p;
    a->chunk[a->nchunks].size = size;
    a->chunk[a->nchunks].used = bytes;
    a->nchunks++;
    a->generation++;
    *out = p;
    return S2S_OK;
}

s2s_status s2s_arena_floats(s2s_arena *a, size_t n, float **out)
{
    void *p = NULL;
    s2s_status st = arena_bytes(a, n * sizeof(float), &p);
    *out = p;
    return st;
}

s2s_status s2s_arena_ints(s2s_arena *a, size_t n, int32_t **out)
{
    void *p = NULL;
    s2s_status st = arena_bytes(a, n * sizeof(int32_t), &p);
    *out = p;
    return st;
}

s2s_status s2s_arena_zeros(s2s_arena *a, size_t n, float **out)
{
    S2S_TRY(s2s_arena_floats(a, n, out));
    return a->be->ops->fill(a->be, *out, n, 0.0f);
}

void s2s_arena_reset(s2s_arena *a)
{
    size_t used = 0;
    for (int i = 0; i < a->nchunks; i++)
        used += a->chunk[i].used;
    if (used > a->high_water)
        a->high_water = used;
    if (a->nchunks > 1) {
        /* Several chunks: this batch outgrew the first. Free them all; the next allocation
         * takes one chunk big enough for the largest batch seen. */
        size_t want = a->high_water + a->high_water / 8;
        s2s_arena_free(a);
        void *p;
        if (a->be->ops->alloc(a->be, want, &p) == S2S_OK) {
            a->chunk[0].base = p;
            a->chunk[0].size = want;
            a->nchunks = 1;
            a->generation++;
        }
    }
    for (int i = 0; i < a->nchunks; i++)
        a->chunk[i].used = 0;
}

void s2s_arena_free(s2s_arena *a)
{
    for (int i = 0; i < a->nchunks; i++)
        a->be->ops->release(a->be, a->chunk[i].base);
    a->nchunks = 0;
    a->generation++;
}
