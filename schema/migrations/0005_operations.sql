-- 0005 operations: the tenant's audit log, idempotency keys and background jobs, and the
-- owner's purge of a tenant's data. Tenant-table rules as in 0003, except that dossier_app may
-- only INSERT and SELECT audit_log.

-- The audit log: one hash chain per tenant (issue 5). Entry seq n stores prev_hash = hash of
-- entry n-1 (32 zero bytes for n = 1) and hash = SHA-256(prev_hash || canonical encoding of
-- the entry), computed by the server. An appender takes the per-tenant advisory lock
-- hashtextextended('dossier.audit_log:' || tenant_id, 0) for the transaction, reads the head
-- (the highest seq, through audit_log_seq_key) and inserts seq + 1; the unique (tenant_id, seq)
-- turns a missed lock into an error instead of a fork. Chain heads are signed and checkpointed
-- outside PostgreSQL, so even the owner role, which can still edit this table, cannot rewrite
-- or cut it unnoticed. No foreign keys: entries outlive the users and objects they name.
CREATE TABLE dossier.audit_log (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    seq bigint NOT NULL CONSTRAINT audit_log_seq_check CHECK (seq >= 1),
    prev_hash bytea NOT NULL
        CONSTRAINT audit_log_prev_hash_length CHECK (octet_length(prev_hash) = 32),
    hash bytea NOT NULL CONSTRAINT audit_log_hash_length CHECK (octet_length(hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    actor_type text NOT NULL CONSTRAINT audit_log_actor_type_check
        CHECK (actor_type IN ('user', 'service_account', 'operator', 'anonymous', 'system')),
    -- A user or service account id; NULL for operators, anonymous callers and the system.
    actor_id uuid,
    -- Operators: the OS user and command.
    actor_label text
        CONSTRAINT audit_log_actor_label_length CHECK (char_length(actor_label) <= 512),
    action text NOT NULL
        CONSTRAINT audit_log_action_format CHECK (action ~ '^[a-z][a-z0-9_.]{0,99}$'),
    object_type text
        CONSTRAINT audit_log_object_type_format CHECK (object_type ~ '^[a-z][a-z0-9_]{0,63}$'),
    object_id uuid,
    ip inet,
    request_id text CONSTRAINT audit_log_request_id_length CHECK (char_length(request_id) <= 128),
    outcome text NOT NULL CONSTRAINT audit_log_outcome_check
        CHECK (outcome IN ('success', 'denied', 'failure', 'error')),
    details jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT audit_log_details_object CHECK (jsonb_typeof(details) = 'object'),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT audit_log_seq_key UNIQUE (tenant_id, seq)
);
-- GET /v1/audit filters (actor, object, action, time range), newest first by seq.
CREATE INDEX audit_log_actor_idx ON dossier.audit_log (tenant_id, actor_id, seq)
    WHERE actor_id IS NOT NULL;
CREATE INDEX audit_log_object_idx ON dossier.audit_log (tenant_id, object_id, seq)
    WHERE object_id IS NOT NULL;
CREATE INDEX audit_log_action_idx ON dossier.audit_log (tenant_id, action, seq);
CREATE INDEX audit_log_created_at_idx ON dossier.audit_log (tenant_id, created_at);

-- Idempotency-Key on creates: the first request claims (principal, key) in_progress; its
-- response is stored when it completes and replayed to retries with the same request_hash
-- (SHA-256 of method, route and body); the same key with another request is refused.
-- principal_id is a user or service account id (no foreign key: it may be either).
CREATE TABLE dossier.idempotency_keys (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    principal_id uuid NOT NULL,
    key text NOT NULL
        CONSTRAINT idempotency_keys_key_length CHECK (char_length(key) BETWEEN 1 AND 255),
    method text NOT NULL CONSTRAINT idempotency_keys_method_format CHECK (method ~ '^[A-Z]{1,16}$'),
    route text NOT NULL CONSTRAINT idempotency_keys_route_length CHECK (char_length(route) <= 512),
    request_hash bytea NOT NULL
        CONSTRAINT idempotency_keys_request_hash_length CHECK (octet_length(request_hash) = 32),
    state text NOT NULL DEFAULT 'in_progress'
        CONSTRAINT idempotency_keys_state_check CHECK (state IN ('in_progress', 'completed')),
    response_status smallint
        CONSTRAINT idempotency_keys_status_check CHECK (response_status BETWEEN 100 AND 599),
    response_headers jsonb,
    response_body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT idempotency_keys_principal_key UNIQUE (tenant_id, principal_id, key),
    CONSTRAINT idempotency_keys_completed
        CHECK ((state = 'completed') = (response_status IS NOT NULL AND completed_at IS NOT NULL))
);
CREATE INDEX idempotency_keys_expires_idx ON dossier.idempotency_keys (tenant_id, expires_at);

-- Background jobs of a tenant (exports, re-indexing, purges...), claimed by the tenant's own
-- workers: UPDATE ... SET state = 'running', locked_by, locked_until ... FOR UPDATE SKIP
-- LOCKED over jobs_queued_idx. A running job whose lease (locked_until) ran out is queued
-- again. dedupe_key, when set, allows one live job per (kind, key).
CREATE TABLE dossier.jobs (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    kind text NOT NULL CONSTRAINT jobs_kind_format CHECK (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
    state text NOT NULL DEFAULT 'queued' CONSTRAINT jobs_state_check
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0 CONSTRAINT jobs_attempts_check CHECK (attempts >= 0),
    max_attempts integer NOT NULL DEFAULT 5
        CONSTRAINT jobs_max_attempts_check CHECK (max_attempts >= 1),
    payload jsonb NOT NULL DEFAULT '{}',
    dedupe_key text CONSTRAINT jobs_dedupe_key_length CHECK (char_length(dedupe_key) <= 255),
    last_error text CONSTRAINT jobs_last_error_length CHECK (char_length(last_error) <= 4096),
    locked_by text CONSTRAINT jobs_locked_by_length CHECK (char_length(locked_by) <= 255),
    locked_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    row_version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT jobs_running_leased CHECK (state <> 'running' OR locked_until IS NOT NULL)
);
CREATE INDEX jobs_queued_idx ON dossier.jobs (tenant_id, run_at) WHERE state = 'queued';
CREATE INDEX jobs_running_idx ON dossier.jobs (tenant_id, locked_until) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_dedupe_key ON dossier.jobs (tenant_id, kind, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');
CREATE TRIGGER jobs_touch BEFORE UPDATE ON dossier.jobs
    FOR EACH ROW EXECUTE FUNCTION dossier.touch_row();

ALTER TABLE dossier.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.audit_log
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.idempotency_keys
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.jobs
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

GRANT SELECT, INSERT ON dossier.audit_log TO dossier_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON dossier.idempotency_keys, dossier.jobs TO dossier_app;

-- Deletes every row of one tenant from every tenant table (a table of schema dossier with a
-- tenant_id column and forced row-level security), children before parents: a table goes once
-- no remaining table still refers to it by a foreign key that would block the delete (cascades
-- and SET NULL do not block; self references are deleted in the same statement). Returns the
-- number of rows its DELETEs reported (rows removed by cascades are not counted). The control
-- plane (tenants, overrides, control_audit) is left to the caller. Owner only: offboarding and
-- tests; never granted to dossier_app.
CREATE FUNCTION dossier.tenant_purge(p_tenant uuid) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_left oid[];
    v_rel oid;
    v_rows bigint;
    v_total bigint := 0;
    v_progress boolean;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    SELECT coalesce(array_agg(c.oid), '{}') INTO v_left
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
    WHERE n.nspname = 'dossier' AND c.relkind IN ('r', 'p') AND c.relforcerowsecurity;
    WHILE cardinality(v_left) > 0 LOOP
        v_progress := false;
        FOREACH v_rel IN ARRAY v_left LOOP
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM pg_constraint k
                WHERE k.contype = 'f' AND k.confrelid = v_rel AND k.conrelid <> v_rel
                  AND k.conrelid = ANY (v_left) AND k.confdeltype NOT IN ('c', 'n', 'd'));
            EXECUTE format('DELETE FROM %s WHERE tenant_id = $1', v_rel::regclass) USING p_tenant;
            GET DIAGNOSTICS v_rows = ROW_COUNT;
            v_total := v_total + v_rows;
            v_left := array_remove(v_left, v_rel);
            v_progress := true;
        END LOOP;
        IF NOT v_progress THEN
            RAISE EXCEPTION 'cannot order the purge of tables %', v_left::regclass[];
        END IF;
    END LOOP;
    RETURN v_total;
END
$$;
REVOKE ALL ON FUNCTION dossier.tenant_purge(uuid) FROM PUBLIC;
