/* params.c - the parameter block: every tensor a named view into one device allocation, with
 * a gradient block of the same layout. */
#include "nn.h"
#include "philox.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void s2s_params_init(s2s_params *p, s2s_backend *be)
{
    memset(p, 0, sizeof *p);
    p->be = be;
}

int s2s_params_add(s2s_params *p, const char *name, int rows, int cols, int ndim)
{
    if (p->count == S2S_MAX_PARAMS) {
        S2S_FAIL(S2S_ERR_INTERNAL, "more than %d parameter tensors", S2S_MAX_PARAMS);
        return -1;
    }
    if (strlen(name) >= S2S_PARAM_NAME || rows <= 0 || cols <= 0) {
        S2S_FAIL(S2S_ERR_INTERNAL, "bad parameter tensor '%s' [%d, %d]", name, rows, cols);
        return -1;
    }
    int i = p->count++;
    snprintf(p->t[i].name, S2S_PARAM_NAME, "%s", name);
    p->t[i].ndim = ndim;
    p->t[i].shape[0] = rows;
    p->t[i].shape[1] = cols;
    p->t[i].numel = (size_t)rows * (size_t)cols;
    /* Keep every view 64-float aligned (256 bytes) for vector loads on the GPU. */
    p->t[i].offset = p->total;
    p->total += (p->t[i].numel + 63) & ~(size_t)63;
    return i;
}

s2s_status s2s_params_alloc(s2s_params *p)
{
    void *d = NULL, *g = NULL;
    S2S_TRY(p->be->ops->alloc(p->be, p->total * sizeof(float), &d));
    s2s_status st = p->be->ops->alloc(p->be, p->total * sizeof(float), &g);
    if (st != S2S_OK) {
        p->be->ops->release(p->be, d);
        return st;
    }
    p->data = d;
    p->grad = g;
    S2S_TRY(p->be->ops->fill(p->be, p->data, p->total, 0.0f));
    return p->be->ops->fill(p->be, p->grad, p->total, 0.0f);
}

void s2s_params_free(s2s_params *p)
{
    if (p->be) {
        p->be->ops->release(p->be, p->data);
        p->be->ops->release(p->be, p->grad);
    }
    p->data = p->grad = NULL;
}

int s2s_params_find(const s2s_params *p, const char *name)
{
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->t[i].name, name) == 0)
            return i;
    return -1;
}

s2s_pview s2s_params_view(const s2s_params *p, int i)
{
    s2s_pview v = {p->data + p->t[i].offset, p->grad + p->t[i].offset, p->t[i].shape[0], p->t[i].shape[1]};
    return v;
}

/* Standard normal from two Philox uniforms (Box-Muller). */
static float philox_normal(uint64_t seed, uint64_t stream, uint64_t e)
{
    float u1 = s2s_philox_uniform(seed, stream, 2 * e), u2 = s2s_philox_uniform(seed, stream, 2 * e + 1);
    if (u1 < 1e-12f)
        u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

s2s_status s2s_params_init_values(s2s_params *p, uint64_t seed, const s2s_init_kind *kind, const float *bound)
{
    float *host = s2s_host_calloc(p->total, sizeof(float), "initial parameter values");
    if (!host)
        return S2S_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < p->count; i++) {
        s2s_init_kind k = kind[i];
        float *w = host + p->t[i].offset;
        uint64_t stream = 0x1000u + (uint64_t)i; /* one Philox stream per tensor */
        for (size_t e = 0; e < p->t[i].numel; e++) {
            int pad = (k == S2S_INIT_NORMAL_PAD0 || k == S2S_INIT_UNIFORM_PAD0) && e < (size_t)p->t[i].shape[1];
            if (pad) /* row 0 = pad */
                w[e] = 0.0f;
            else if (k == S2S_INIT_UNIFORM || k == S2S_INIT_UNIFORM_PAD0)
                w[e] = (2.0f * s2s_philox_uniform(seed, stream, e) - 1.0f) * bound[i];
            else if (k == S2S_INIT_NORMAL_PAD0)
                w[e] = philox_normal(seed, stream, e);
            else
                w[e] = 0.0f;
        }
    }
    s2s_status st = p->be->ops->to_device(p->be, p->data, host, p->total * sizeof(float));
    free(host);
    return st;
}
