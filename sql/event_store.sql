-- The event store, outbox checkpoint and consumer bookkeeping. Aggregate-agnostic.
-- The runtime compiles this file into its store library (es_event_store_sql) and applies it first.
CREATE TABLE IF NOT EXISTS es_events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL UNIQUE,
    stream_type     text        NOT NULL,
    stream_id       text        NOT NULL,
    version         bigint      NOT NULL CHECK (version > 0),
    event_type      text        NOT NULL,
    schema_name     text        NOT NULL,
    schema_version  integer     NOT NULL,
    schema_hash     text        NOT NULL,
    payload         bytea       NOT NULL,
    command_id      text,
    correlation_id  text,
    causation_id    text,
    actor           text,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS es_events_feed ON es_events (txid, position);
-- The event as proto3 JSON (proto field names), written at append by a service that has a JSON
-- registry, so BI tools and psql can read the history; NULL when the writer supplied none. The
-- protobuf payload stays the source of truth.
ALTER TABLE es_events ADD COLUMN IF NOT EXISTS payload_json jsonb;

-- Every event with its metadata and JSON, for readers who cannot decode protobuf.
CREATE OR REPLACE VIEW es_events_json AS
SELECT position, event_id, stream_type, stream_id, version, event_type, schema_name,
       schema_version, recorded_at, command_id, correlation_id, causation_id, actor, payload_json
  FROM es_events;

-- One row per command id: a retried command returns its first result.
CREATE TABLE IF NOT EXISTS es_commands (
    command_id      text        PRIMARY KEY,
    stream_id       text        NOT NULL,
    first_version   bigint      NOT NULL,
    last_version    bigint      NOT NULL,
    result          bytea,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
-- A fingerprint of the request a client's idempotency key was first used with (a repeat with
-- another request is refused, never answered with the first result), and when the key may be
-- used again: NULL for ids the service derives itself (reactions), which never expire.
ALTER TABLE es_commands ADD COLUMN IF NOT EXISTS request_hash bytea;
ALTER TABLE es_commands ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE INDEX IF NOT EXISTS es_commands_expiry ON es_commands (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS es_snapshots (
    stream_id       text        PRIMARY KEY,
    stream_type     text        NOT NULL,
    version         bigint      NOT NULL,
    schema_name     text        NOT NULL,
    schema_hash     text        NOT NULL,
    state           bytea       NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now()
);

-- One command's append, all or nothing, as one statement: the command's idempotency row, its
-- events at versions p_expected+1.., an optional snapshot, and the relay's wake-up. The block's
-- exception handler is a per-command savepoint: when the group committer sends many of these in
-- one transaction (libpq pipeline mode), a conflicting command reports 'conflict' and is undone
-- alone instead of aborting its neighbours. Statuses: 'ok'; 'duplicate' (p_command_id was seen:
-- the first result is returned, nothing is written); 'conflict' (a unique violation on the stream
-- version or a deadlock: retry against fresh state); 'error' (message says why).
-- p_payload_jsons (NULL, or one JSON text or NULL per event) fills es_events.payload_json.
-- p_request_hash / p_expires_at: the client's request fingerprint and the key's expiry (see
-- es_commands): status 'mismatch' when p_command_id was first recorded with another hash; an
-- expired key is taken over. An earlier 19-argument es_append may also remain from older
-- releases; calls resolve by their argument count.
CREATE OR REPLACE FUNCTION es_append(
    p_stream_type text, p_stream_id text, p_expected bigint,
    p_command_id text, p_record_command boolean,
    p_correlation_id text, p_causation_id text, p_actor text,
    p_event_ids uuid[], p_event_types text[], p_schema_names text[], p_schema_versions integer[],
    p_schema_hashes text[], p_payloads bytea[], p_result bytea,
    p_snapshot_version bigint, p_snapshot_schema text, p_snapshot_hash text, p_snapshot bytea,
    p_payload_jsons text[], p_request_hash bytea, p_expires_at timestamptz,
    OUT status text, OUT first_version bigint, OUT last_version bigint, OUT stream_id text,
    OUT event_ids bytea, OUT message text)
LANGUAGE plpgsql AS $es_append$
#variable_conflict use_column
DECLARE
    n integer := cardinality(p_event_ids);
BEGIN
    stream_id := p_stream_id;
    BEGIN
        IF p_record_command THEN
            -- An expired key is taken over by the new request; a live one answers the first
            -- result, or 'mismatch' when it was first used with another request.
            INSERT INTO es_commands AS c (command_id, stream_id, first_version, last_version, result,
                                          request_hash, expires_at)
            VALUES (p_command_id, p_stream_id, p_expected + 1, p_expected + n, p_result,
                    p_request_hash, p_expires_at)
            ON CONFLICT (command_id) DO UPDATE
               SET stream_id = EXCLUDED.stream_id, first_version = EXCLUDED.first_version,
                   last_version = EXCLUDED.last_version, result = EXCLUDED.result,
                   request_hash = EXCLUDED.request_hash, expires_at = EXCLUDED.expires_at,
                   recorded_at = now()
             WHERE c.expires_at IS NOT NULL AND c.expires_at <= now();
            IF NOT FOUND THEN
                SELECT CASE WHEN c.request_hash IS DISTINCT FROM p_request_hash
                             AND c.request_hash IS NOT NULL AND p_request_hash IS NOT NULL
                            THEN 'mismatch' ELSE 'duplicate' END,
                       c.first_version, c.last_version, c.stream_id, c.result
                  INTO status, first_version, last_version, stream_id, event_ids
                  FROM es_commands c WHERE c.command_id = p_command_id;
                RETURN;
            END IF;
        END IF;
        INSERT INTO es_events (event_id, stream_type, stream_id, version, event_type, schema_name,
                               schema_version, schema_hash, payload, command_id, correlation_id,
                               causation_id, actor, payload_json)
        SELECT e.event_id, p_stream_type, p_stream_id, p_expected + e.i, e.event_type,
               e.schema_name, e.schema_version, e.schema_hash, e.payload, p_command_id,
               p_correlation_id, p_causation_id, p_actor, e.payload_json::jsonb
          FROM unnest(p_event_ids, p_event_types, p_schema_names, p_schema_versions,
                      p_schema_hashes, p_payloads, p_payload_jsons)
               WITH ORDINALITY AS e(event_id, event_type, schema_name, schema_version,
                                    schema_hash, payload, payload_json, i)
         ORDER BY e.i;
        IF p_snapshot IS NOT NULL THEN
            INSERT INTO es_snapshots AS s (stream_id, stream_type, version, schema_name,
                                           schema_hash, state)
            VALUES (p_stream_id, p_stream_type, p_snapshot_version, p_snapshot_schema,
                    p_snapshot_hash, p_snapshot)
            ON CONFLICT ON CONSTRAINT es_snapshots_pkey DO UPDATE
               SET version = EXCLUDED.version, schema_name = EXCLUDED.schema_name,
                   schema_hash = EXCLUDED.schema_hash, state = EXCLUDED.state, taken_at = now()
             WHERE s.version < EXCLUDED.version;
        END IF;
        PERFORM pg_notify('es_events', '');
        status := 'ok';
        first_version := p_expected + 1;
        last_version := p_expected + n;
    EXCEPTION
        WHEN unique_violation OR serialization_failure OR deadlock_detected THEN
            status := 'conflict';
            message := SQLERRM;
        WHEN OTHERS THEN
            status := 'error';
            message := SQLSTATE || ': ' || SQLERRM;
    END;
END
$es_append$;

-- The 20-argument form of the previous release stays for its binaries during a rolling upgrade:
-- the append above without a request fingerprint and with a key that never expires (what that
-- release recorded).
CREATE OR REPLACE FUNCTION es_append(
    p_stream_type text, p_stream_id text, p_expected bigint,
    p_command_id text, p_record_command boolean,
    p_correlation_id text, p_causation_id text, p_actor text,
    p_event_ids uuid[], p_event_types text[], p_schema_names text[], p_schema_versions integer[],
    p_schema_hashes text[], p_payloads bytea[], p_result bytea,
    p_snapshot_version bigint, p_snapshot_schema text, p_snapshot_hash text, p_snapshot bytea,
    p_payload_jsons text[],
    OUT status text, OUT first_version bigint, OUT last_version bigint, OUT stream_id text,
    OUT event_ids bytea, OUT message text)
LANGUAGE sql AS $es_append$
    -- The previous release's call: no request fingerprint, a key that never expires.
    SELECT * FROM es_append(p_stream_type, p_stream_id, p_expected, p_command_id, p_record_command,
                            p_correlation_id, p_causation_id, p_actor, p_event_ids, p_event_types,
                            p_schema_names, p_schema_versions, p_schema_hashes, p_payloads, p_result,
                            p_snapshot_version, p_snapshot_schema, p_snapshot_hash, p_snapshot,
                            p_payload_jsons, NULL::bytea, NULL::timestamptz)
$es_append$;

-- The generated forward steps of each package's projection tables (es_schema.migration_steps)
-- that ran here: numbered from the released schema (baseline: its name, as generated), with the
-- SHA-256 of the step's SQL and the descriptor-set hash of the binary that applied it. A step
-- runs once (es_migrate_steps); a recorded step whose SQL changed runs again (steps are idempotent).
CREATE TABLE IF NOT EXISTS es_migration_steps (
    package         text        NOT NULL,
    baseline        text        NOT NULL,
    step            integer     NOT NULL,
    name            text        NOT NULL,
    sql_hash        text        NOT NULL,
    schema_hash     text        NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (package, baseline, step)
);

-- The shape each projection table was last built with (SHA-256 of its generated DDL). A start
-- that finds another shape, or none beside a table with rows, rebuilds the table from the event
-- store before its consumer runs, so rows written before a column was added get its value.
CREATE TABLE IF NOT EXISTS es_projection_shapes (
    name            text        PRIMARY KEY,
    shape_hash      text        NOT NULL,
    events          bigint,
    rows            bigint,
    built_at        timestamptz NOT NULL DEFAULT now()
);

-- Relay position in the feed, with the Kafka cluster it was delivered to.
CREATE TABLE IF NOT EXISTS es_relay_checkpoint (
    name            text        PRIMARY KEY,
    txid            xid8        NOT NULL DEFAULT '0',
    position        bigint      NOT NULL DEFAULT 0,
    cluster_id      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Per consumer, the last stream version applied (written with the handler's effects, in the same
-- transaction). dead_letter_id parks the stream behind an unresolved dead letter: later events
-- of the stream are dead-lettered too instead of being applied past the gap.
CREATE TABLE IF NOT EXISTS es_consumer_streams (
    consumer        text        NOT NULL,
    stream_id       text        NOT NULL,
    version         bigint      NOT NULL,
    dead_letter_id  bigint,
    PRIMARY KEY (consumer, stream_id)
);
-- The parked streams alone (few), for /readyz's once-a-second count.
CREATE INDEX IF NOT EXISTS es_consumer_streams_parked ON es_consumer_streams (consumer)
    WHERE dead_letter_id IS NOT NULL;

-- Messages a consumer could not apply (undecodable, or the handler failed after its retries),
-- with the error and the raw Kafka value. Resolving one: fix, replay, set retried_at and clear
-- es_consumer_streams.dead_letter_id.
CREATE TABLE IF NOT EXISTS es_dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer        text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    stream_id       text,
    version         bigint,
    error           text        NOT NULL,
    message         bytea,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    retried_at      timestamptz
);
CREATE INDEX IF NOT EXISTS es_dead_letters_open ON es_dead_letters (consumer, stream_id)
    WHERE retried_at IS NULL;

-- Every descriptor set the service has written events with.
CREATE TABLE IF NOT EXISTS es_schemas (
    hash            text        PRIMARY KEY,
    package         text        NOT NULL,
    descriptor_set  bytea       NOT NULL,
    first_seen      timestamptz NOT NULL DEFAULT now()
);
