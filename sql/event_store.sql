-- The event store, outbox checkpoint and consumer bookkeeping. Aggregate-agnostic.
-- The runtime compiles this file into its store library (es_event_store_sql) and applies it first.
-- es_events is range-partitioned by position (docs/SCALING.md, "Growth: partitioned es_events"):
-- an old partition can be vacuumed, moved to another tablespace or archived as a unit. Partitions
-- are es_events_p<first position> covering [from, to) (es_events_p0 from MINVALUE), made by
-- es_events_partitions_ensure (below; orderd runs it at start and once a minute with its
-- event-partition-size); es_events_default takes any position no partition covers yet, so an
-- append never fails because that maintenance lagged.
--
-- The unpartitioned table's guarantees, and what keeps each one now that a unique index on a
-- partitioned table must include position (PostgreSQL checks any other per partition only):
--   position              the primary key (it includes the partition key), from
--                         es_events_position_seq: the database assigns it, never the client;
--   (stream_id, version)  a unique index on every partition, and across partitions es_append's
--                         guard: es_streams, the stream's head (its last version), moved from at
--                         most the expected version to the last appended one under its row lock;
--                         a racing append of the same versions waits for that lock, then finds
--                         the head past its expected version: 'conflict', as a unique violation;
--   event_id              es_event_ids, whose primary key is the global unique index of event
--                         ids (es_append writes it beside the events).
--
-- Upgrade in place from the unpartitioned table (the releases before this one): the old table
-- becomes the first partition es_events_p0, FROM (MINVALUE) TO (the next position), without
-- copying an event (its ids enter es_event_ids, its streams' heads es_streams). The DO blocks
-- below and the statements between them do it in the migration's transaction, under its
-- advisory lock; on a partitioned es_events they do nothing.
DO $es_events_convert_1$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('es_events')) IS DISTINCT FROM 'r' THEN
        RETURN;
    END IF;
    -- Appends of older binaries wait for the conversion (one scan of the table, below).
    LOCK TABLE es_events IN ACCESS EXCLUSIVE MODE;
    -- The views over es_events, as text naming es_events, made again over the new parent below.
    CREATE TEMP TABLE es_events_convert_views ON COMMIT DROP AS
    SELECT DISTINCT v.oid::regclass::text AS name, pg_get_viewdef(v.oid) AS def
      FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class
     WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = 'es_events'::regclass
       AND v.relkind = 'v';
    ALTER TABLE es_events RENAME TO es_events_p0;
    ALTER SEQUENCE IF EXISTS es_events_position_seq RENAME TO es_events_p0_position_seq;
    ALTER TABLE es_events_p0 RENAME CONSTRAINT es_events_pkey TO es_events_p0_pkey;
    ALTER TABLE es_events_p0 RENAME CONSTRAINT es_events_event_id_key TO es_events_p0_event_id_key;
    ALTER TABLE es_events_p0 RENAME CONSTRAINT es_events_stream_id_version_key TO es_events_p0_stream_version_key;
    ALTER INDEX IF EXISTS es_events_feed RENAME TO es_events_p0_feed;
    ALTER TABLE es_events_p0 ADD COLUMN IF NOT EXISTS payload_json jsonb;
END
$es_events_convert_1$;

CREATE SEQUENCE IF NOT EXISTS es_events_position_seq AS bigint;
CREATE TABLE IF NOT EXISTS es_events (
    position        bigint      NOT NULL DEFAULT nextval('es_events_position_seq'),
    txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    stream_type     text        NOT NULL,
    stream_id       text        NOT NULL,
    version         bigint      NOT NULL CONSTRAINT es_events_version_check CHECK (version > 0),
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
    -- The event as proto3 JSON (proto field names), written at append by a service that has a
    -- JSON registry, so BI tools and psql can read the history; NULL when the writer supplied
    -- none. The protobuf payload stays the source of truth.
    payload_json    jsonb,
    PRIMARY KEY (position)
) PARTITION BY RANGE (position);
ALTER SEQUENCE es_events_position_seq OWNED BY es_events.position;
CREATE INDEX IF NOT EXISTS es_events_feed ON es_events (txid, position);

-- The global unique index of event ids (see above): one row per event, written with it.
CREATE TABLE IF NOT EXISTS es_event_ids (event_id uuid PRIMARY KEY);
-- Each stream's head, es_append's guard of (stream_id, version) across partitions (see above).
-- An event inserted into es_events by other means than es_append does not move it.
CREATE TABLE IF NOT EXISTS es_streams (
    stream_id       text        PRIMARY KEY,
    version         bigint      NOT NULL
);

-- Makes partition p_name of es_events: FOR VALUES FROM (p_from) TO (p_to), or the DEFAULT
-- partition when both are NULL, with its unique index of (stream_id, version); the parent's
-- indexes (the primary key, the feed's) come with the attach. Made empty, then attached: the
-- parent is locked only SHARE UPDATE EXCLUSIVE (appends go on); the default partition is locked
-- while a range is attached (PostgreSQL checks it holds no row of the new range). The one place
-- partitions are made.
CREATE OR REPLACE FUNCTION es_events_partition_create(p_name text, p_from bigint, p_to bigint)
RETURNS void LANGUAGE plpgsql AS $es_part$
BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE es_events INCLUDING CONSTRAINTS)', p_name);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I UNIQUE (stream_id, version)', p_name,
                   p_name || '_stream_version_key');
    IF p_from IS NULL AND p_to IS NULL THEN
        EXECUTE format('ALTER TABLE es_events ATTACH PARTITION %I DEFAULT', p_name);
    ELSE
        EXECUTE format('ALTER TABLE es_events ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', p_name,
                       coalesce(p_from::text, 'MINVALUE'), coalesce(p_to::text, 'MAXVALUE'));
    END IF;
END
$es_part$;

DO $es_events_convert_2$
DECLARE
    next_pos bigint;
    v record;
    g record;
BEGIN
    IF (SELECT relispartition FROM pg_class WHERE oid = to_regclass('es_events_p0')) IS DISTINCT FROM false THEN
        RETURN;
    END IF;
    -- The next position: past every one the old identity handed out (rolled-back ones too) and
    -- past every stored event.
    IF to_regclass('es_events_p0_position_seq') IS NOT NULL THEN
        SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END INTO next_pos
          FROM es_events_p0_position_seq;
    END IF;
    next_pos := greatest(coalesce(next_pos, 1), coalesce((SELECT max(position) FROM es_events_p0), 0) + 1);
    ALTER TABLE es_events_p0 ALTER COLUMN position DROP IDENTITY IF EXISTS;
    PERFORM setval('es_events_position_seq', next_pos, false);
    -- The range as a validated CHECK first (the conversion's one scan of the old table), so that
    -- ATTACH finds it proven and does not scan again.
    EXECUTE format('ALTER TABLE es_events_p0 ADD CONSTRAINT es_events_p0_range CHECK (position < %s)', next_pos);
    EXECUTE format('ALTER TABLE es_events ATTACH PARTITION es_events_p0 FOR VALUES FROM (MINVALUE) TO (%s)', next_pos);
    ALTER TABLE es_events_p0 DROP CONSTRAINT es_events_p0_range;
    -- The stored ids enter the global unique index of event ids, the streams' heads theirs
    -- (the two copies the conversion makes: ids and heads, not events).
    -- The ids load without their index, which is then built in one sorted pass.
    ALTER TABLE es_event_ids DROP CONSTRAINT es_event_ids_pkey;
    INSERT INTO es_event_ids (event_id) SELECT event_id FROM es_events_p0;
    ALTER TABLE es_event_ids ADD CONSTRAINT es_event_ids_pkey PRIMARY KEY (event_id);
    INSERT INTO es_streams (stream_id, version) SELECT stream_id, max(version) FROM es_events_p0 GROUP BY stream_id;
    -- Who could read or append to the old table may do so on the new one.
    FOR g IN SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS who,
                    a.privilege_type AS priv
               FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
              WHERE c.oid = 'es_events_p0'::regclass AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON es_events TO %s', g.priv, g.who);
        IF g.priv = 'INSERT' THEN
            EXECUTE format('GRANT USAGE ON SEQUENCE es_events_position_seq TO %s', g.who);
            EXECUTE format('GRANT INSERT ON es_event_ids TO %s', g.who);
            EXECUTE format('GRANT SELECT, INSERT, UPDATE ON es_streams TO %s', g.who);
        END IF;
    END LOOP;
    IF to_regclass('pg_temp.es_events_convert_views') IS NOT NULL THEN
        FOR v IN SELECT name, def FROM pg_temp.es_events_convert_views LOOP
            EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v.name, v.def);
        END LOOP;
    END IF;
END
$es_events_convert_2$;

-- The first partition, in the transaction that made es_events (a new database, or the upgrade
-- above): nobody can append through the new parent before it commits, so the partition may
-- start right at the sequence's next value (es_events_partitions_ensure keeps a margin from it
-- otherwise, see there). 10,000,000 positions, event-partition-size's default; orderd's
-- maintenance makes the next ones with the configured size.
DO $es_events_first$
DECLARE
    nxt bigint;
BEGIN
    IF (SELECT c.xmin::text FROM pg_class c WHERE c.oid = 'es_events'::regclass)
       <> (pg_current_xact_id()::text::bigint % 4294967296)::text
       OR EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'es_events'::regclass
                   AND inhrelid <> coalesce(to_regclass('es_events_p0'), 0)) THEN
        RETURN;
    END IF;
    SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END INTO nxt FROM es_events_position_seq;
    PERFORM es_events_partition_create('es_events_p' || nxt, nxt, nxt + 10000000);
END
$es_events_first$;

DO $es_events_default$
BEGIN
    IF to_regclass('es_events_default') IS NULL THEN
        PERFORM es_events_partition_create('es_events_default', NULL, NULL);
    END IF;
END
$es_events_default$;

-- Every event with its metadata and JSON, for readers who cannot decode protobuf.
CREATE OR REPLACE VIEW es_events_json AS
SELECT position, event_id, stream_type, stream_id, version, event_type, schema_name,
       schema_version, recorded_at, command_id, correlation_id, causation_id, actor, payload_json
  FROM es_events;

-- The partitions of es_events in position order, the default last: bounds (from NULL: MINVALUE;
-- both NULL: the default partition), PostgreSQL's row estimate (-1: never vacuumed nor
-- analyzed), size with indexes and TOAST, tablespace (NULL: the database's).
CREATE OR REPLACE FUNCTION es_events_partitions(
    OUT name text, OUT is_default boolean, OUT from_position bigint, OUT to_position bigint,
    OUT rows_estimate bigint, OUT bytes bigint, OUT tablespace text)
RETURNS SETOF record LANGUAGE sql STABLE AS $es_parts$
    SELECT c.relname::text, b.expr = 'DEFAULT',
           nullif(btrim(m[1], ''''), 'MINVALUE')::bigint,
           nullif(btrim(m[2], ''''), 'MAXVALUE')::bigint,
           c.reltuples::bigint, pg_total_relation_size(c.oid), t.spcname::text
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace
      CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) b
      LEFT JOIN LATERAL regexp_match(b.expr, 'FROM \((.*)\) TO \((.*)\)') m ON true
     WHERE i.inhparent = 'es_events'::regclass
     ORDER BY b.expr = 'DEFAULT', nullif(btrim(m[1], ''''), 'MINVALUE')::bigint NULLS FIRST
$es_parts$;

-- Keeps partitions made ahead of need: afterwards, partitions of p_size positions cover every
-- position up to the sequence's next one plus p_size (the one being filled and at least the
-- next). A partition starts where the highest one ends; when maintenance lagged (the sequence
-- within a tenth of a partition, at most 100,000 positions, of the highest end, or past it, its
-- positions going to the default partition) the next starts that margin past the sequence and
-- past any row of the default partition: an append that started before the attach routes its
-- row by the partitions it saw, so it must never get a position in a range attached meanwhile.
-- Under its own advisory lock (tried: while another instance runs it, this call is skipped) and
-- a short lock_timeout (an attach queued behind a long reader of es_events would hold appends
-- behind it; it gives up instead, skipped, and the next run tries again).
CREATE OR REPLACE FUNCTION es_events_partitions_ensure(p_size bigint, OUT created integer, OUT skipped boolean)
LANGUAGE plpgsql AS $es_ensure$
DECLARE
    top bigint;
    nxt bigint;
    margin bigint := greatest(least(p_size / 10, 100000), 1);
    lo bigint;
BEGIN
    created := 0;
    skipped := false;
    IF p_size IS NULL OR p_size < 1 THEN
        RAISE EXCEPTION 'event-partition-size must be positive, not %', p_size
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- "es_parti" as a big-endian integer: one maintenance at a time over every instance.
    IF NOT pg_try_advisory_xact_lock(7310291549124359273) THEN
        skipped := true;
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '200ms', true);
    BEGIN
        SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END INTO nxt FROM es_events_position_seq;
        SELECT max(to_position) INTO top FROM es_events_partitions() WHERE NOT is_default;
        IF top IS NULL OR top < nxt + margin THEN
            lo := greatest(coalesce(top, 1), CASE WHEN top IS NULL AND nxt = 1 THEN 1 ELSE nxt + margin END,
                           coalesce((SELECT max(position) FROM es_events_default), 0) + 1);
            PERFORM es_events_partition_create('es_events_p' || lo, lo, lo + p_size);
            created := created + 1;
            top := lo + p_size;
        END IF;
        WHILE top <= nxt + p_size LOOP
            PERFORM es_events_partition_create('es_events_p' || top, top, top + p_size);
            created := created + 1;
            top := top + p_size;
        END LOOP;
    EXCEPTION WHEN lock_not_available THEN
        created := 0;
        skipped := true;
    END;
END
$es_ensure$;

-- What /metrics shows of the partitions (es/partitions.h): how many (the default included); the
-- positions handed out in the one being filled (an upper bound of its events: a rolled-back
-- append's positions count); the positions left before the highest partition's end (0: new
-- events go to the default partition); the events in the default partition (counted up to
-- 1,000,000).
CREATE OR REPLACE FUNCTION es_events_partition_status(
    OUT partitions integer, OUT newest_events bigint, OUT headroom bigint, OUT default_events bigint)
LANGUAGE sql STABLE AS $es_status$
    WITH s AS (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END AS nxt
                 FROM es_events_position_seq),
         p AS (SELECT * FROM es_events_partitions())
    SELECT (SELECT count(*) FROM p)::integer,
           coalesce((SELECT s.nxt - coalesce(p.from_position, 1) FROM p, s
                      WHERE NOT p.is_default AND s.nxt - 1 >= coalesce(p.from_position, 1)
                        AND s.nxt - 1 < p.to_position), 0),
           greatest(coalesce((SELECT max(p.to_position) FROM p WHERE NOT p.is_default), 0) - (SELECT nxt FROM s), 0),
           (SELECT count(*) FROM (SELECT 1 FROM es_events_default LIMIT 1000000) d)
$es_status$;

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
-- expired key is taken over. Calls of older releases (20 and 19 arguments, below) resolve by
-- their argument count to wrappers of this one, so that every append passes its guard.
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
        -- (stream_id, version) across partitions (see es_events): the stream's head moves from
        -- at most p_expected to p_expected + n under its row lock; a racing append of the same
        -- versions waits here for this transaction's end, then finds the head past p_expected.
        INSERT INTO es_streams AS h (stream_id, version) VALUES (p_stream_id, p_expected + n)
        ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version WHERE h.version <= p_expected;
        IF NOT FOUND THEN
            RAISE unique_violation USING MESSAGE = format('stream %s is past version %s', p_stream_id, p_expected);
        END IF;
        INSERT INTO es_event_ids (event_id) SELECT unnest(p_event_ids);
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

-- The 19-argument form of older releases (before payload_json), which may remain in their
-- databases as a copy of the append without the partitions' guard: a thin wrapper too.
DROP FUNCTION IF EXISTS es_append(text, text, bigint, text, boolean, text, text, text, uuid[], text[], text[],
                                  integer[], text[], bytea[], bytea, bigint, text, text, bytea);
CREATE FUNCTION es_append(
    p_stream_type text, p_stream_id text, p_expected bigint,
    p_command_id text, p_record_command boolean,
    p_correlation_id text, p_causation_id text, p_actor text,
    p_event_ids uuid[], p_event_types text[], p_schema_names text[], p_schema_versions integer[],
    p_schema_hashes text[], p_payloads bytea[], p_result bytea,
    p_snapshot_version bigint, p_snapshot_schema text, p_snapshot_hash text, p_snapshot bytea,
    OUT status text, OUT first_version bigint, OUT last_version bigint, OUT stream_id text,
    OUT event_ids bytea, OUT message text)
LANGUAGE sql AS $es_append$
    SELECT * FROM es_append(p_stream_type, p_stream_id, p_expected, p_command_id, p_record_command,
                            p_correlation_id, p_causation_id, p_actor, p_event_ids, p_event_types,
                            p_schema_names, p_schema_versions, p_schema_hashes, p_payloads, p_result,
                            p_snapshot_version, p_snapshot_schema, p_snapshot_hash, p_snapshot,
                            NULL::text[], NULL::bytea, NULL::timestamptz)
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
