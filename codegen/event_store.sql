-- The event store, outbox checkpoint and consumer bookkeeping. Aggregate-agnostic.
-- Emitted by protoc-gen-es as generated/sql/0001_event_store.sql.
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

-- One row per command id: a retried command returns its first result.
CREATE TABLE IF NOT EXISTS es_commands (
    command_id      text        PRIMARY KEY,
    stream_id       text        NOT NULL,
    first_version   bigint      NOT NULL,
    last_version    bigint      NOT NULL,
    result          bytea,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS es_snapshots (
    stream_id       text        PRIMARY KEY,
    stream_type     text        NOT NULL,
    version         bigint      NOT NULL,
    schema_name     text        NOT NULL,
    schema_hash     text        NOT NULL,
    state           bytea       NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now()
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
