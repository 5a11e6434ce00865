/* Helpers over the generated schema tables. */
#include "es/schema.h"

#include <string.h>

const es_event_def *es_schema_find_event(const es_aggregate_def *agg, const char *type)
{
    for (size_t i = 0; i < agg->n_events; i++)
        if (strcmp(agg->events[i]->type, type) == 0)
            return agg->events[i];
    return NULL;
}

int es_decision_emit(es_decision *d, const es_event_def *def, ProtobufCMessage *event)
{
    if (d->n >= ES_DECISION_MAX || !def || !event || event->descriptor != def->descriptor)
        return ES_INTERNAL;
    d->defs[d->n] = def;
    d->events[d->n] = event;
    d->n++;
    return ES_OK;
}
