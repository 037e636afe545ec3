-- 0006 audit chain: appending to a tenant's hash-chained audit log (issue 5, DESIGN.md §4).
--
-- Every writer goes through dossier.audit_append(), in the same transaction as the change it
-- records, so the entry commits or rolls back with it. The function takes the tenant's chain
-- lock (a transaction advisory lock on hashtextextended('dossier.audit_log:' || tenant, 0)),
-- reads the head through audit_log_seq_key and inserts seq + 1 with
--
--     hash = SHA-256(prev_hash || encoding)
--
-- where prev_hash is the head's hash (32 zero bytes for seq 1) and encoding is version 1 of the
-- canonical encoding of the entry: fifteen fields, each a 4-byte big-endian byte length and the
-- field's UTF-8 text, or the 4 bytes ff ff ff ff for NULL, in this order:
--
--      1 the literal 'dossier.audit.v1'     9 action
--      2 tenant_id (canonical uuid text)    10 object_type
--      3 seq (decimal)                      11 object_id (uuid text)
--      4 id (uuid text)                     12 ip::text (inet's text cast: '10.0.0.1/32')
--      5 created_at as microseconds since   13 request_id
--        the Unix epoch (decimal)           14 outcome
--      6 actor_type                         15 details::text (jsonb's normalized text)
--      7 actor_id (uuid text)
--      8 actor_label
--
-- `dossier audit verify` recomputes it in C (actors/audit) from the columns' text forms, so
-- neither this function nor the table has to be trusted: an edited, deleted or inserted row
-- breaks the chain, and a chain rewritten from some point on, or cut at its tail, no longer
-- matches the head signed into the checkpoints kept outside PostgreSQL.
--
-- created_at is clock_timestamp() taken under the lock, so it never goes backwards along the
-- chain (now() is the transaction's start, which may precede an earlier entry's).

CREATE FUNCTION dossier.audit_field(p text) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT CASE WHEN p IS NULL THEN '\xffffffff'::bytea
                    ELSE int4send(octet_length(convert_to(p, 'UTF8'))) || convert_to(p, 'UTF8')
               END
    $$;

CREATE FUNCTION dossier.audit_encode(p_tenant uuid, p_seq bigint, p_id uuid,
                                     p_created_at timestamptz, p_actor_type text,
                                     p_actor_id uuid, p_actor_label text, p_action text,
                                     p_object_type text, p_object_id uuid, p_ip inet,
                                     p_request_id text, p_outcome text, p_details jsonb)
    RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT dossier.audit_field('dossier.audit.v1')
            || dossier.audit_field(p_tenant::text)
            || dossier.audit_field(p_seq::text)
            || dossier.audit_field(p_id::text)
            || dossier.audit_field(
                   ((extract(epoch FROM p_created_at) * 1000000)::bigint)::text)
            || dossier.audit_field(p_actor_type)
            || dossier.audit_field(p_actor_id::text)
            || dossier.audit_field(p_actor_label)
            || dossier.audit_field(p_action)
            || dossier.audit_field(p_object_type)
            || dossier.audit_field(p_object_id::text)
            || dossier.audit_field(p_ip::text)
            || dossier.audit_field(p_request_id)
            || dossier.audit_field(p_outcome)
            || dossier.audit_field(p_details::text)
    $$;

-- Appends one entry to the current tenant's chain and returns its seq. Runs as the caller
-- (dossier_app may INSERT into audit_log), so row-level security applies as to any insert.
CREATE FUNCTION dossier.audit_append(p_actor_type text, p_actor_id uuid, p_actor_label text,
                                     p_action text, p_object_type text, p_object_id uuid,
                                     p_ip inet, p_request_id text, p_outcome text,
                                     p_details jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_tenant uuid := dossier.current_tenant();
    v_seq bigint;
    v_prev bytea;
    v_id uuid := dossier.uuid_v7();
    v_at timestamptz;
    v_details jsonb := COALESCE(p_details, '{}'::jsonb);
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'audit_append: no tenant in this transaction' USING ERRCODE = '42501';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('dossier.audit_log:' || v_tenant::text, 0));
    SELECT a.seq, a.hash INTO v_seq, v_prev
        FROM dossier.audit_log a
        WHERE a.tenant_id = v_tenant
        ORDER BY a.seq DESC
        LIMIT 1;
    IF NOT FOUND THEN
        v_seq := 0;
        v_prev := decode(repeat('00', 32), 'hex');
    END IF;
    v_seq := v_seq + 1;
    v_at := clock_timestamp();
    INSERT INTO dossier.audit_log (tenant_id, id, seq, prev_hash, hash, created_at, actor_type,
                                   actor_id, actor_label, action, object_type, object_id, ip,
                                   request_id, outcome, details)
    VALUES (v_tenant, v_id, v_seq, v_prev,
            sha256(v_prev || dossier.audit_encode(v_tenant, v_seq, v_id, v_at, p_actor_type,
                                                  p_actor_id, p_actor_label, p_action,
                                                  p_object_type, p_object_id, p_ip,
                                                  p_request_id, p_outcome, v_details)),
            v_at, p_actor_type, p_actor_id, p_actor_label, p_action, p_object_type,
            p_object_id, p_ip, p_request_id, p_outcome, v_details);
    RETURN v_seq;
END
$$;

REVOKE ALL ON FUNCTION dossier.audit_field(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.audit_encode(uuid, bigint, uuid, timestamptz, text, uuid, text,
                                            text, text, uuid, inet, text, text, jsonb)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.audit_append(text, uuid, text, text, text, uuid, inet, text,
                                            text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dossier.audit_field(text) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.audit_encode(uuid, bigint, uuid, timestamptz, text, uuid, text,
                                               text, text, uuid, inet, text, text, jsonb)
    TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.audit_append(text, uuid, text, text, text, uuid, inet, text,
                                               text, jsonb) TO dossier_app;
