-- Measurement prototype (bench/append_variants/run.sh), not applied by orderd, and incomplete
-- (no mismatch or conflict statuses, no snapshot, constant correlation fields): one call per group; commands i=1..n, events flattened with p_ev_cmd (command index)
CREATE OR REPLACE FUNCTION es_append_group_proto(
    p_stream_types text[], p_stream_ids text[], p_expected bigint[], p_command_ids text[],
    p_results bytea[], p_hashes bytea[], p_expires timestamptz[], p_n integer[],
    p_ev_cmd integer[], p_event_ids uuid[], p_event_types text[], p_schema_names text[],
    p_schema_versions integer[], p_schema_hashes text[], p_payloads bytea[], p_payload_jsons text[],
    OUT idx integer, OUT status text)
RETURNS SETOF record LANGUAGE plpgsql AS $g$
DECLARE
    recorded integer[];
    moved integer[];
BEGIN
    WITH c AS (
        INSERT INTO es_commands AS c (command_id, stream_id, first_version, last_version, result, request_hash, expires_at)
        SELECT x.cid, x.sid, x.ex + 1, x.ex + x.n, x.r, x.h, x.e
          FROM unnest(p_command_ids, p_stream_ids, p_expected, p_n, p_results, p_hashes, p_expires)
               AS x(cid, sid, ex, n, r, h, e)
        ON CONFLICT (command_id) DO UPDATE
           SET stream_id = EXCLUDED.stream_id, first_version = EXCLUDED.first_version,
               last_version = EXCLUDED.last_version, result = EXCLUDED.result,
               request_hash = EXCLUDED.request_hash, expires_at = EXCLUDED.expires_at, recorded_at = now()
         WHERE c.expires_at IS NOT NULL AND c.expires_at <= now()
        RETURNING c.command_id)
    SELECT array_agg(i) INTO recorded FROM c JOIN unnest(p_command_ids) WITH ORDINALITY AS u(cid, i) ON u.cid = c.command_id;
    WITH h AS (
        INSERT INTO es_streams AS h (stream_id, version)
        SELECT x.sid, x.ex + x.n
          FROM unnest(p_stream_ids, p_expected, p_n) WITH ORDINALITY AS x(sid, ex, n, i)
         WHERE x.i = ANY (recorded) ORDER BY x.sid
        ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version WHERE h.version <= EXCLUDED.version - 1
        RETURNING h.stream_id)
    SELECT array_agg(i) INTO moved FROM h JOIN unnest(p_stream_ids) WITH ORDINALITY AS u(sid, i) ON u.sid = h.stream_id;
    INSERT INTO es_event_ids (event_id)
    SELECT e.id FROM unnest(p_event_ids, p_ev_cmd) AS e(id, k) WHERE e.k = ANY (moved);
    INSERT INTO es_events (event_id, stream_type, stream_id, version, event_type, schema_name,
                           schema_version, schema_hash, payload, command_id, correlation_id,
                           causation_id, actor, payload_json)
    SELECT e.id, p_stream_types[e.k], p_stream_ids[e.k], p_expected[e.k] + e.v,
           e.t, e.sn, e.sv, e.sh, e.p, p_command_ids[e.k], 'corr', 'cause', 'actor', e.j::jsonb
      FROM (SELECT u.*, row_number() OVER (PARTITION BY u.k ORDER BY u.i) AS v
              FROM unnest(p_event_ids, p_ev_cmd, p_event_types, p_schema_names, p_schema_versions,
                          p_schema_hashes, p_payloads, p_payload_jsons) WITH ORDINALITY
                   AS u(id, k, t, sn, sv, sh, p, j, i)) e
     WHERE e.k = ANY (moved) ORDER BY e.i;
    PERFORM pg_notify('es_events', '');
    RETURN QUERY SELECT u.i::integer, CASE WHEN u.i = ANY (moved) THEN 'ok' ELSE 'duplicate' END
      FROM generate_series(1, cardinality(p_stream_ids)) AS u(i);
END
$g$;
