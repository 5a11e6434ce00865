/* The consumers orderd runs, reachable by name, so orderctl re-applies events through the very
 * handler (and consumer bookkeeping) the live service uses: projection.<table> for each generated
 * projection, payment-flow for the payment reactor (with the configured gateway). */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "orderctl.h"
#include "upcasters.h"
#include "payment_flow.h"

#define PAYMENT_FLOW "payment-flow"

void ctl_projection_consumer_name(const es_projection_def *def, char *out, size_t len)
{
    snprintf(out, len, "projection.%s", def->name);
}

int ctl_consumer_get(ctl *c, const char *name, ctl_consumer *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < c->n_projections; i++) {
        const es_projection_def *def = c->projections[i];
        char want[160];
        ctl_projection_consumer_name(def, want, sizeof want);
        if (strcmp(want, name) != 0)
            continue;
        out->name = name;
        out->projection = def;
        out->data = es_projector_new(def, c->json);
        es_projector_set_upcasters(out->data, orders_upcasters, orders_n_upcasters);
        out->handle = es_projector_handle;
        out->reset = es_projector_reset;
        return CTL_OK;
    }
    if (strcmp(name, PAYMENT_FLOW) == 0) {
        es_pipeline *p = ctl_pipeline(c);
        if (!p)
            return CTL_ERROR;
        char gerr[256];
        payment_gateway *g = gateway_sim_new(c->payment_gateway, c->payment_delay_ms, gerr, sizeof gerr);
        if (!g) {
            fprintf(stderr, "orderctl: --payment-gateway: %s\n", gerr);
            return CTL_ERROR;
        }
        payment_flow *pf = es_xcalloc(1, sizeof *pf);
        pf->pipeline = p;
        pf->gateway = g;
        out->name = name;
        out->data = pf;
        out->handle = payment_flow_handle;
        return CTL_OK;
    }
    fprintf(stderr, "orderctl: no consumer named %s in this binary (known: %s", name, PAYMENT_FLOW);
    for (size_t i = 0; i < c->n_projections; i++)
        fprintf(stderr, ", projection.%s", c->projections[i]->name);
    fprintf(stderr, ")\n");
    return CTL_ERROR;
}

void ctl_consumer_release(ctl_consumer *cc)
{
    if (!cc || !cc->data)
        return;
    if (cc->projection) {
        es_projector_free(cc->data);
    } else {
        payment_flow *pf = cc->data;
        gateway_sim_free(pf->gateway);
        free(pf);
    }
    cc->data = NULL;
}
