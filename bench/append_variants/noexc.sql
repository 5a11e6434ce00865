-- Measurement prototype (bench/append_variants/run.sh), not applied by orderd: es_append with
-- no per-command EXCEPTION block (a conflict aborts the whole transaction).
CREATE OR REPLACE FUNCTION public.es_append_noexc(p_stream_type text, p_stream_id text, p_expected bigint, p_command_id text, p_record_command boolean, p_correlation_id text, p_causation_id text, p_actor text, p_event_ids uuid[], p_event_types text[], p_schema_names text[], p_schema_versions integer[], p_schema_hashes text[], p_payloads bytea[], p_result bytea, p_snapshot_version bigint, p_snapshot_schema text, p_snapshot_hash text, p_snapshot bytea, p_payload_jsons text[], p_request_hash bytea, p_expires_at timestamp with time zone, OUT status text, OUT first_version bigint, OUT last_version bigint, OUT stream_id text, OUT event_ids bytea, OUT message text)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
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
    END;
END
$function$

