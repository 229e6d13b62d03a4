/* graphs.c - recorded op sequences of a model (CUDA graphs), cached by key and replayed.
 *
 * A fixed sequence of ops (the encoder for decoding, a chunk of greedy decoder steps, the
 * teacher-forced decoder loop and its backward) is recorded the second time its key is seen
 * and replayed from then on; the first sighting runs it directly, so shapes seen once (a long
 * tail of batch shapes) never pay for recording. Replays are valid because the workspace
 * arena hands out the same addresses for the same sequence of requests until its generation
 * changes (arena.c), which is part of every key, and the arena's position is checked before
 * a replay; what a sequence allocates and the host-side state it fills are restored from the
 * recording; everything else a recording reads at run time (the training step of the dropout
 * masks, the token ids) lives in device memory. Where recording fails (a sequence the device
 * cannot capture), that kind of sequence runs directly from then on. */
#include "model.h"
#include <stdlib.h>
#include <string.h>

static int same_key(const int *a, const int *b) { return memcmp(a, b, sizeof(int) * S2S_GRAPH_KEY) == 0; }

static size_t arena_used(const s2s_arena *a) { return a->nchunks ? a->chunk[a->nchunks - 1].used : 0; }

static struct s2s_graph_entry *find(s2s_model *m, const int *key)
{
    for (int i = 0; i < S2S_GRAPH_CACHE; i++) {
        struct s2s_graph_entry *e = &m->graphs[i];
        if (e->graph && e->generation == m->arena.generation && same_key(e->key, key) &&
            e->nchunks == m->arena.nchunks && e->used_before == arena_used(&m->arena))
            return e;
    }
    return NULL;
}

/* Whether key was seen before (in this generation); remembers it either way. */
static int seen_before(s2s_model *m, const int *key)
{
    for (int i = 0; i < S2S_GRAPH_SEEN; i++)
        if (m->seen[i].generation == m->arena.generation && m->seen[i].used && same_key(m->seen[i].key, key))
            return 1;
    struct s2s_graph_seen *s = &m->seen[m->seen_next];
    m->seen_next = (m->seen_next + 1) % S2S_GRAPH_SEEN;
    memcpy(s->key, key, sizeof s->key);
    s->generation = m->arena.generation;
    s->used = 1;
    return 0;
}

static void entry_clear(s2s_model *m, struct s2s_graph_entry *e)
{
    if (e->graph)
        m->be->ops->graph_free(m->be, e->graph);
    free(e->host);
    memset(e, 0, sizeof *e);
}

/* Records fn into a graph and launches it (the recording ran nothing). *kept: whether the
 * graph went into the cache (not when the arena grew while recording). */
static s2s_status record(s2s_model *m, const int *key, s2s_graph_fn fn, void *arg, void *host, size_t bytes)
{
    s2s_backend *be = m->be;
    int n0 = m->arena.nchunks;
    size_t used0 = arena_used(&m->arena);
    unsigned gen0 = m->arena.generation;
    void *graph = NULL, *copy = NULL;
    S2S_TRY(be->ops->graph_begin(be));
    s2s_status st = fn(m, arg);
    s2s_status end = be->ops->graph_end(be, &graph); /* always ends the recording */
    if (st == S2S_OK)
        st = end;
    if (st == S2S_OK && bytes && !(copy = s2s_host_alloc(bytes, "recorded host state")))
        st = S2S_ERR_OUT_OF_MEMORY;
    if (st != S2S_OK) {
        be->ops->graph_free(be, graph);
        return st;
    }
    if (bytes)
        memcpy(copy, host, bytes);
    st = be->ops->graph_launch(be, graph);
    if (st != S2S_OK || m->arena.generation != gen0) { /* not replayable: run once, not kept */
        if (st == S2S_OK)
            st = be->ops->sync(be);
        be->ops->graph_free(be, graph);
        free(copy);
        return st;
    }
    struct s2s_graph_entry *e = &m->graphs[m->graph_next];
    m->graph_next = (m->graph_next + 1) % S2S_GRAPH_CACHE;
    entry_clear(m, e);
    memcpy(e->key, key, sizeof e->key);
    e->generation = gen0;
    e->graph = graph;
    e->nchunks = n0;
    e->used_before = used0;
    e->used_after = arena_used(&m->arena);
    e->host = copy;
    e->host_bytes = bytes;
    return S2S_OK;
}

s2s_status s2s_graph_run_state(s2s_model *m, const int key[S2S_GRAPH_KEY], s2s_graph_fn fn, void *arg, void *host,
                               size_t bytes)
{
    s2s_backend *be = m->be;
    int what = key[0] & 7;
    if (!be->ops->graph_begin || !m->use_graphs || m->graph_broken[what])
        return fn(m, arg);
    struct s2s_graph_entry *e = find(m, key);
    if (e) {
        if (e->nchunks)
            m->arena.chunk[e->nchunks - 1].used = e->used_after;
        if (bytes)
            memcpy(host, e->host, bytes);
        return be->ops->graph_launch(be, e->graph);
    }
    if (!seen_before(m, key))
        return fn(m, arg);
    int n0 = m->arena.nchunks;
    size_t used0 = arena_used(&m->arena);
    s2s_status st = record(m, key, fn, arg, host, bytes);
    if (st == S2S_OK)
        return S2S_OK;
    /* The device could not record it: rewind what the recording allocated (nothing ran) and
     * run it directly, now and from now on. */
    s2s_log(m->ctx, S2S_LOG_DEBUG, "recording a graph failed (%s); running that sequence directly", s2s_last_error());
    m->graph_broken[what] = 1;
    if (m->arena.nchunks == n0 && n0)
        m->arena.chunk[n0 - 1].used = used0;
    return fn(m, arg);
}

s2s_status s2s_graph_run(s2s_model *m, const int key[S2S_GRAPH_KEY], s2s_graph_fn fn, void *arg)
{
    return s2s_graph_run_state(m, key, fn, arg, NULL, 0);
}

void s2s_model_graphs_free(s2s_model *m)
{
    for (int i = 0; i < S2S_GRAPH_CACHE; i++)
        entry_clear(m, &m->graphs[i]);
}
