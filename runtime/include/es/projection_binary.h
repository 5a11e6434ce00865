/* A projection row in COPY's binary format, written straight from the folded state: the same
 * columns and values as the projector's text form (es__projector_row_text, es/projection.h) as
 * PostgreSQL stores them, without rendering each value as text and parsing it back.
 * Used by the set-based rebuild (es/projection_rebuild.h); usable by any COPY ... FROM STDIN
 * (FORMAT binary) of def's columns followed by es_state, in def->columns order. */
#ifndef ES_PROJECTION_BINARY_H
#define ES_PROJECTION_BINARY_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "es/arena.h"
#include "es/buf.h"
#include "es/json.h"
#include "es/pg_copy.h"
#include "es/schema.h"
#include "es/status.h"

/* No binary encoding for the pair (es_projection_binary_kind). */
#define ES_PROJECTION_BINARY_NONE (-1)

/* The COPY binary type of a column of sql_type filled from field f (NULL: none), or
 * ES_PROJECTION_BINARY_NONE: only the pairs whose text form the projector produces and
 * es_pg_copy_binary_value reads (a custom sql_type on a string field, say, is left to the
 * server's own parsing in the text format). Repeated fields and messages other than Timestamp
 * go to jsonb only. */
int es_projection_binary_kind(const char *sql_type, const ProtobufCFieldDescriptor *f);

/* 1 when every column of def has a kind, i.e. es_projection_binary_row can write its rows. */
int es_projection_binary_supported(const es_projection_def *def);

/* Appends to out one COPY binary tuple: def's columns of the row def->from_state makes of state
 * at version, then es_state (state packed). json (borrowed) is the registry the projector
 * encodes jsonb columns with (the one given to es_projector_new), so the JSON is the live
 * path's byte for byte. Scratch memory comes from a (the caller resets it). Requires
 * es_projection_binary_supported(def). Returns ES_OK, or the JSON encoder's error (out may
 * then hold part of the tuple: the COPY is abandoned anyway). */
int es_projection_binary_row(const es_projection_def *def, const es_json_registry *json, const ProtobufCMessage *state,
                             int64_t version, es_arena *a, es_buf *out, es_error *err);

#endif
