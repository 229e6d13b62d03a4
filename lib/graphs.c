/* graphs.c - recorded op sequences of a model (CUDA graphs), cached by key and replayed.
 *
 * A fixed sequence of ops (a chunk of greedy decoder steps, the teacher-forced decoder loop
 * and its backward) is recorded the second time its key is seen and replayed from then on;
 * the first sighting runs it directly, so shapes seen once (a long tail of batch shapes)
 * never pay for recording. Replays are valid because the workspace arena hands out the same
 * addresses for the same sequence of requests until its generation changes (arena.c), which
 * is part of every key; everything else a recording reads at run time (the training step of
 * the dropout masks) lives in device memory. */
#include "model.h"
#include <string.h>

static int same_key(const int *a, const int *b) { return memcmp(a, b, sizeof(int) * S2S_GRAPH_KEY) == 0; }

static struct s2s_graph_entry *find(s2s_model *m, const int *key)
{
    for (int i = 0; i < S2S_GRAPH_CACHE; i++) {
        struct s2s_graph_entry *e = &m->graphs[i];
        if (e->graph && e->generation == m->arena.generation && same_key(e->key, key))
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

static s2s_status record(s2s_model *m, const int *key, s2s_graph_fn fn, void *arg, void **graph)
{
    s2s_backend *be = m->be;
    S2S_TRY(be->ops->graph_begin(be));
    s2s_status st = fn(m, arg);
    s2s_status end = be->ops->graph_end(be, graph); /* always ends the recording */
    if (st != S2S_OK) {
        be->ops->graph_free(be, *graph);
        *graph = NULL;
        return st;
    }
    S2S_TRY(end);
    struct s2s_graph_entry *e = &m->graphs[m->graph_next];
    m->graph_next = (m->graph_next + 1) % S2S_GRAPH_CACHE;
    be->ops->graph_free(be, e->graph);
    memcpy(e->key, key, sizeof e->key);
    e->generation = m->arena.generation;
    e->graph = *graph;
    return S2S_OK;
}

s2s_status s2s_graph_run(s2s_model *m, const int key[S2S_GRAPH_KEY], s2s_graph_fn fn, void *arg)
{
    s2s_backend *be = m->be;
    if (!be->ops->graph_begin || !m->use_graphs)
        return fn(m, arg);
    struct s2s_graph_entry *e = find(m, key);
    void *graph = e ? e->graph : NULL;
    if (!graph) {
        if (!seen_before(m, key))
            return fn(m, arg);
        S2S_TRY(record(m, key, fn, arg, &graph));
    }
    return be->ops->graph_launch(be, graph);
}

void s2s_model_graphs_free(s2s_model *m)
{
    for (int i = 0; i < S2S_GRAPH_CACHE; i++) {
        if (m->graphs[i].graph)
            m->be->ops->graph_free(m->be, m->graphs[i].graph);
        m->graphs[i].graph = NULL;
    }
}
