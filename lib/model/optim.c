/* optim.c - global-norm clipping and the Adam / SGD updates over the whole parameter block
 * (one op call each: the block is contiguous, its alignment gaps hold zeros). */
#include "model.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

S2S_API s2s_optimizer_options s2s_optimizer_options_default(void)
{
    s2s_optimizer_options o;
    memset(&o, 0, sizeof o);
    o.type = S2S_OPT_ADAM;
    o.lr = 1e-3f;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.eps = 1e-8f;
    o.momentum = 0.0f;
    o.weight_decay = 0.0f;
    o.clip_norm = 5.0f;
    return o;
}

S2S_API s2s_status s2s_optimizer_create(s2s_model *model, const s2s_optimizer_options *opts, s2s_optimizer **out)
{
    if (!model || !out)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_optimizer_create: model and out must not be NULL");
    *out = NULL;
    s2s_optimizer_options o = opts ? *opts : s2s_optimizer_options_default();
    if (o.type != S2S_OPT_ADAM && o.type != S2S_OPT_SGD)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "unknown optimizer type %d", (int)o.type);
    if (!(o.lr > 0.0f) || !(o.beta1 >= 0.0f && o.beta1 < 1.0f) || !(o.beta2 >= 0.0f && o.beta2 < 1.0f) ||
        !(o.eps > 0.0f) || !(o.momentum >= 0.0f) || !(o.weight_decay >= 0.0f))
        return S2S_FAIL(S2S_ERR_INVALID_ARG,
                        "optimizer options out of range (lr %g > 0, 0 <= beta1 %g, beta2 %g < 1, eps %g > 0, momentum "
                        "%g >= 0, weight_decay %g >= 0)",
                        o.lr, o.beta1, o.beta2, o.eps, o.momentum, o.weight_decay);
    s2s_optimizer *opt = s2s_host_calloc(1, sizeof *opt, "the optimizer");
    if (!opt)
        return S2S_ERR_OUT_OF_MEMORY;
    opt->model = model;
    opt->o = o;
    s2s_backend *be = model->be;
    size_t n = model->params.total;
    s2s_status st = S2S_OK;
    int nbuf = o.type == S2S_OPT_ADAM ? 2 : o.momentum > 0.0f ? 1 : 0;
    float **buf[2] = {&opt->m, &opt->v};
    for (int i = 0; i < nbuf && st == S2S_OK; i++) {
        void *p = NULL;
        st = be->ops->alloc(be, n * sizeof(float), &p);
        *buf[i] = p;
        if (st == S2S_OK)
            st = be->ops->fill(be, p, n, 0.0f);
    }
    if (st != S2S_OK) {
        s2s_optimizer_free(opt);
        return st;
    }
    *out = opt;
    return S2S_OK;
}

S2S_API void s2s_optimizer_free(s2s_optimizer *opt)
{
    if (!opt)
        return;
    s2s_backend *be = opt->model->be;
    be->ops->release(be, opt->m);
    be->ops->release(be, opt->v);
    free(opt);
}

S2S_API s2s_status s2s_optimizer_step(s2s_optimizer *opt, float lr, float *grad_norm)
{
    if (!opt)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_optimizer_step: optimizer is NULL");
    s2s_model *m = opt->model;
    s2s_backend *be = m->be;
    size_t n = m->params.total;
    double ss = 0.0;
    S2S_TRY(be->ops->sumsq(be, m->params.grad, n, &ss));
    float norm = (float)sqrt(ss);
    if (grad_norm)
        *grad_norm = norm;
    if (!isfinite(norm))
        return S2S_FAIL(S2S_ERR_NUMERIC, "gradient norm is %g: update skipped (weights unchanged)", norm);
    float gscale = opt->o.clip_norm > 0.0f && norm > opt->o.clip_norm ? opt->o.clip_norm / (norm + 1e-6f) : 1.0f;
    float rate = lr > 0.0f ? lr : opt->o.lr;
    opt->step++;
    s2s_model_weights_changed(m);
    if (opt->o.type == S2S_OPT_ADAM)
        return be->ops->adam(be, m->params.data, m->params.grad, opt->m, opt->v, n, rate, opt->o.beta1, opt->o.beta2,
                             opt->o.eps, opt->o.weight_decay, gscale, opt->step);
    return be->ops->sgd(be, m->params.data, m->params.grad, opt->m, n, rate, opt->o.momentum, opt->o.weight_decay,
                        gscale);
}
