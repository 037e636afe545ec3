-- 0007 access: the grant model's queries (who may do what on a folder or document) and the
-- user lifecycle functions that must hold under concurrency (the plan's user limit).
--
-- Roles rank viewer < editor < admin. A principal's effective role on an object is the highest
-- of:
--   * 'admin' when the principal is a tenant admin ('admin' in users.roles or
--     service_accounts.roles): tenant admins see every object of the tenant;
--   * the grants on the object itself, and, inherited, on every folder of its chain: for a
--     folder its ancestors, for a document its folder and that folder's ancestors;
--   * for a user, the grants to any group it is a member of.
-- An object in the trash (deleted_at set on it or on any folder of its chain) is visible to
-- no one; a deactivated user or a disabled service account has no role anywhere.
--
-- Every lookup is one statement over indexes, whatever the size of the tenant: the object's
-- chain is dossier.folder_path_ids(path) of one folder row (at most 64 ids), and the grants are
-- found with `folder_id = ANY (chain)` through grants_folder_idx. As 0004 explains, under
-- row-level security only leakproof qualifiers may become index conditions ahead of the
-- policy. uuid equality (and `= ANY` over it) is leakproof, but folder_path_ids() (substr,
-- string_to_array, the cast to uuid[]) is not: applied to a column of a joined row it would
-- make the grants qualifier leaky and the grants of the whole tenant would be filtered row by
-- row. So the chain, the document id and the principal's groups are computed once, in
-- uncorrelated scalar sub-selects of a CTE (InitPlans: parameters, not columns, by the time
-- grants is scanned). tests/integration/test_access.c checks the plan at 20k folders.
--
-- These functions run as the caller (dossier_app), under its tenant: another tenant's objects
-- and principals do not exist for them.

-- The folder chain of an object of the current tenant and its liveness: one row (folder_ids
-- root first, document_id for a document, live = nothing on the chain is in the trash), or
-- none when the object does not exist here. An inlinable SQL function (no SET clause, single
-- SELECT), so callers' plans see through it; OFFSET 0 keeps the sub-select x whole, so the
-- chain is looked up once rather than once per use of x.ids.
CREATE FUNCTION dossier.object_chain(p_object_type text, p_object_id uuid)
    RETURNS TABLE (folder_ids uuid[], document_id uuid, live boolean)
    LANGUAGE sql STABLE
    AS $$
        SELECT x.ids, x.document_id,
               x.document_live AND NOT EXISTS (
                   SELECT 1 FROM dossier.folders a
                   WHERE a.tenant_id = dossier.current_tenant()
                     AND a.id = ANY (x.ids) AND a.deleted_at IS NOT NULL)
        FROM (SELECT (SELECT dossier.folder_path_ids(f.path) FROM dossier.folders f
                      WHERE f.tenant_id = dossier.current_tenant()
                        AND f.id = (SELECT p_object_id WHERE p_object_type = 'folder'
                                    UNION ALL
                                    SELECT d.folder_id FROM dossier.documents d
                                    WHERE p_object_type = 'document'
                                      AND d.tenant_id = dossier.current_tenant()
                                      AND d.id = p_object_id)) AS ids,
                     CASE WHEN p_object_type = 'document' THEN p_object_id END AS document_id,
                     p_object_type = 'folder' OR EXISTS (
                         SELECT 1 FROM dossier.documents d
                         WHERE p_object_type = 'document'
                           AND d.tenant_id = dossier.current_tenant()
                           AND d.id = p_object_id AND d.deleted_at IS NULL) AS document_live
              OFFSET 0) x
        WHERE x.ids IS NOT NULL
    $$;

-- The effective role ('viewer', 'editor', 'admin') of a principal ('user', 'group' or
-- 'service_account') on an object ('folder' or 'document') of the current tenant, or NULL:
-- no grant reaches it, the object or the principal does not exist in this tenant, the object
-- is in the trash, the user is deactivated or the service account disabled, or a type is not
-- one of those named. A group's role counts only its own grants.
CREATE FUNCTION dossier.effective_role(p_principal_type text, p_principal_id uuid,
                                       p_object_type text, p_object_id uuid)
    RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        WITH obj AS (
            SELECT c.folder_ids, c.document_id
            FROM dossier.object_chain(p_object_type, p_object_id) c
            WHERE c.live
        ),
        -- One row for an active principal: the grantee ids that count for it.
        principal AS (
            SELECT u.id AS user_id, NULL::uuid AS service_account_id,
                   ARRAY(SELECT m.group_id FROM dossier.group_members m
                         WHERE m.tenant_id = dossier.current_tenant()
                           AND m.user_id = p_principal_id) AS group_ids,
                   'admin' = ANY (u.roles) AS tenant_admin
            FROM dossier.users u
            WHERE p_principal_type = 'user' AND u.tenant_id = dossier.current_tenant()
              AND u.id = p_principal_id AND u.status = 'active'
            UNION ALL
            SELECT NULL, NULL, ARRAY[g.id], false
            FROM dossier.groups g
            WHERE p_principal_type = 'group' AND g.tenant_id = dossier.current_tenant()
              AND g.id = p_principal_id
            UNION ALL
            SELECT NULL, s.id, '{}', 'admin' = ANY (s.roles)
            FROM dossier.service_accounts s
            WHERE p_principal_type = 'service_account'
              AND s.tenant_id = dossier.current_tenant()
              AND s.id = p_principal_id AND s.status = 'active'
        ),
        -- The grants on the chain and on the document, to the principal or its groups.
        reaching AS (
            SELECT g.role FROM dossier.grants g
            WHERE g.tenant_id = dossier.current_tenant()
              AND g.folder_id = ANY ((SELECT o.folder_ids FROM obj o)::uuid[])
              AND (g.user_id = (SELECT p.user_id FROM principal p)
                   OR g.group_id = ANY ((SELECT p.group_ids FROM principal p)::uuid[])
                   OR g.service_account_id = (SELECT p.service_account_id FROM principal p))
            UNION ALL
            SELECT g.role FROM dossier.grants g
            WHERE g.tenant_id = dossier.current_tenant()
              AND g.document_id = (SELECT o.document_id FROM obj o)
              AND (g.user_id = (SELECT p.user_id FROM principal p)
                   OR g.group_id = ANY ((SELECT p.group_ids FROM principal p)::uuid[])
                   OR g.service_account_id = (SELECT p.service_account_id FROM principal p))
        )
        SELECT CASE
                   WHEN NOT EXISTS (SELECT 1 FROM obj) OR NOT EXISTS (SELECT 1 FROM principal)
                       THEN NULL
                   WHEN (SELECT p.tenant_admin FROM principal p) THEN 'admin'
                   ELSE (SELECT CASE max(CASE r.role WHEN 'admin' THEN 3 WHEN 'editor' THEN 2
                                                     ELSE 1 END)
                                    WHEN 3 THEN 'admin' WHEN 2 THEN 'editor' WHEN 1 THEN 'viewer'
                                END
                         FROM reaching r)
               END
    $$;

-- Tenant admins, for the listing below without a pass over all of a tenant's users.
CREATE INDEX users_tenant_admins_idx ON dossier.users (tenant_id, id)
    WHERE 'admin' = ANY (roles) AND status = 'active';
CREATE INDEX service_accounts_tenant_admins_idx ON dossier.service_accounts (tenant_id, id)
    WHERE 'admin' = ANY (roles) AND status = 'active';

-- Who has what on an object of the current tenant, and why: one row per (principal, reason),
-- none when the object does not exist here or is in the trash.
--   * A grant on the object or its chain gives a row to its grantee (principal_type 'user',
--     'group' or 'service_account'), and a grant to a group gives one more row to each active
--     member (principal_type 'user', via_group_id the group): group grants are expanded, so
--     every principal's rows explain its whole role, and the group's own rows remain for
--     listing "granted to group X".
--   * A tenant admin gets a row with grant_id NULL (grant_role 'admin', no via, inherited
--     false): tenant admins see everything (the API lists them apart as "tenant_admins").
--   * role is the principal's effective role (the highest over its rows, equal to
--     effective_role() for users and service accounts); grant_role is the row's own.
--   * inherited: the grant is on a folder above the object (for a document: on any folder).
-- Deactivated users and disabled service accounts get no rows. Sorted by principal, then
-- strongest grant first, then from the object upwards.
CREATE FUNCTION dossier.object_permissions(p_object_type text, p_object_id uuid)
    RETURNS TABLE (principal_type text, principal_id uuid, role text, grant_id uuid,
                   grant_role text, via_folder_id uuid, via_document_id uuid, via_group_id uuid,
                   inherited boolean)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        WITH obj AS (
            SELECT c.folder_ids, c.document_id
            FROM dossier.object_chain(p_object_type, p_object_id) c
            WHERE c.live
        ),
        g AS (
            SELECT g.id, g.role, g.folder_id, g.document_id, g.user_id, g.group_id,
                   g.service_account_id,
                   array_position((SELECT o.folder_ids FROM obj o), g.folder_id) AS depth
            FROM dossier.grants g
            WHERE g.tenant_id = dossier.current_tenant()
              AND g.folder_id = ANY ((SELECT o.folder_ids FROM obj o)::uuid[])
            UNION ALL
            SELECT g.id, g.role, g.folder_id, g.document_id, g.user_id, g.group_id,
                   g.service_account_id, 65
            FROM dossier.grants g
            WHERE g.tenant_id = dossier.current_tenant()
              AND g.document_id = (SELECT o.document_id FROM obj o)
        ),
        reasons AS (
            SELECT CASE WHEN g.user_id IS NOT NULL THEN 'user'
                        WHEN g.group_id IS NOT NULL THEN 'group'
                        ELSE 'service_account' END AS principal_type,
                   coalesce(g.user_id, g.group_id, g.service_account_id) AS principal_id,
                   g.id AS grant_id, g.role AS grant_role, g.folder_id, g.document_id,
                   NULL::uuid AS via_group_id, g.depth
            FROM g
            WHERE (g.user_id IS NULL OR EXISTS (
                       SELECT 1 FROM dossier.users u
                       WHERE u.tenant_id = dossier.current_tenant() AND u.id = g.user_id
                         AND u.status = 'active'))
              AND (g.service_account_id IS NULL OR EXISTS (
                       SELECT 1 FROM dossier.service_accounts s
                       WHERE s.tenant_id = dossier.current_tenant()
                         AND s.id = g.service_account_id AND s.status = 'active'))
            UNION ALL
            SELECT 'user', u.id, g.id, g.role, g.folder_id, g.document_id, g.group_id, g.depth
            FROM g
            JOIN dossier.group_members m
                ON m.tenant_id = dossier.current_tenant() AND m.group_id = g.group_id
            JOIN dossier.users u
                ON u.tenant_id = dossier.current_tenant() AND u.id = m.user_id
               AND u.status = 'active'
            UNION ALL
            SELECT 'user', u.id, NULL, 'admin', NULL, NULL, NULL, 66
            FROM dossier.users u
            WHERE EXISTS (SELECT 1 FROM obj) AND u.tenant_id = dossier.current_tenant()
              AND 'admin' = ANY (u.roles) AND u.status = 'active'
            UNION ALL
            SELECT 'service_account', s.id, NULL, 'admin', NULL, NULL, NULL, 66
            FROM dossier.service_accounts s
            WHERE EXISTS (SELECT 1 FROM obj) AND s.tenant_id = dossier.current_tenant()
              AND 'admin' = ANY (s.roles) AND s.status = 'active'
        ),
        ranked AS (
            SELECT r.*, CASE r.grant_role WHEN 'admin' THEN 3 WHEN 'editor' THEN 2 ELSE 1 END
                            AS rank
            FROM reasons r
        )
        SELECT r.principal_type, r.principal_id,
               CASE max(r.rank) OVER (PARTITION BY r.principal_type, r.principal_id)
                   WHEN 3 THEN 'admin' WHEN 2 THEN 'editor' ELSE 'viewer' END,
               r.grant_id, r.grant_role, r.folder_id, r.document_id, r.via_group_id,
               r.grant_id IS NOT NULL
                   AND r.folder_id IS DISTINCT FROM
                       (CASE WHEN p_object_type = 'folder' THEN p_object_id END)
        FROM ranked r
        ORDER BY r.principal_type, r.principal_id, r.rank DESC, r.depth DESC, r.grant_id
    $$;

-- The plan's user limit. Every change that can add an active user (create, reactivate) takes
-- this per-tenant transaction lock, then counts: two racing creates run one after the other,
-- and the second one's count (a new snapshot under READ COMMITTED, taken after the first
-- committed and released the lock) sees the first one's user. Under REPEATABLE READ the
-- snapshot would predate the lock, so that level is refused. SQLSTATE DS001 ('plan limit
-- reached') when the tenant has p_max_users active users already; NULL p_max_users: no limit.
CREATE FUNCTION dossier.user_seat_check(p_max_users bigint) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_tenant uuid := dossier.current_tenant();
    v_active bigint;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'no tenant in this transaction' USING ERRCODE = '42501';
    END IF;
    IF current_setting('transaction_isolation') = 'repeatable read' THEN
        RAISE EXCEPTION 'the user limit cannot be enforced under REPEATABLE READ'
            USING ERRCODE = '25001', HINT = 'Use READ COMMITTED or SERIALIZABLE.';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('dossier.users:' || v_tenant::text, 0));
    IF p_max_users IS NULL THEN
        RETURN;
    END IF;
    SELECT count(*) INTO v_active
    FROM dossier.users u
    WHERE u.tenant_id = v_tenant AND u.status = 'active';
    IF v_active >= p_max_users THEN
        RAISE EXCEPTION 'plan limit reached'
            USING ERRCODE = 'DS001',
                  DETAIL = format('The plan allows %s active users.', p_max_users);
    END IF;
END
$$;

-- Creates an active user in the current tenant within the plan's limit (see above) and
-- returns its id. p_display_name NULL: ''; p_roles NULL: {viewer}; p_password_hash: an
-- argon2id PHC string, or NULL for no password login. Errors: DS001 plan limit reached,
-- 23505 the email is taken (case-insensitively), 23514 a malformed email, name or roles.
CREATE FUNCTION dossier.user_create(p_email text, p_display_name text, p_password_hash text,
                                    p_roles text[], p_max_users bigint)
    RETURNS uuid
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_id uuid;
BEGIN
    PERFORM dossier.user_seat_check(p_max_users);
    INSERT INTO dossier.users (email, display_name, password_hash, password_changed_at, roles)
    VALUES (p_email, coalesce(p_display_name, ''), p_password_hash,
            CASE WHEN p_password_hash IS NOT NULL THEN now() END,
            coalesce(p_roles, '{viewer}'))
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;

-- Revokes the live sessions of a user (and their refresh tokens) with reason; returns how
-- many sessions it revoked.
CREATE FUNCTION dossier.user_revoke_sessions(p_user_id uuid, p_reason text) RETURNS bigint
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$
        WITH s AS (
            UPDATE dossier.sessions s SET revoked_at = now(), revoked_reason = p_reason
            WHERE s.tenant_id = dossier.current_tenant() AND s.user_id = p_user_id
              AND s.revoked_at IS NULL
            RETURNING s.id
        ),
        t AS (
            UPDATE dossier.refresh_tokens t SET revoked_at = now()
            FROM s
            WHERE t.tenant_id = dossier.current_tenant() AND t.session_id = s.id
              AND t.revoked_at IS NULL
        )
        SELECT count(*) FROM s
    $$;

-- Deactivates a user of the current tenant and revokes its sessions ('user_deactivated').
-- changed is false when it was deactivated already. P0002 when there is no such user.
CREATE FUNCTION dossier.user_deactivate(p_user_id uuid, OUT changed boolean,
                                        OUT sessions_revoked bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_status text;
BEGIN
    SELECT u.status INTO v_status
    FROM dossier.users u
    WHERE u.tenant_id = dossier.current_tenant() AND u.id = p_user_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such user' USING ERRCODE = 'P0002';
    END IF;
    changed := v_status <> 'deactivated';
    IF changed THEN
        UPDATE dossier.users u SET status = 'deactivated', deactivated_at = now()
        WHERE u.tenant_id = dossier.current_tenant() AND u.id = p_user_id;
    END IF;
    sessions_revoked := dossier.user_revoke_sessions(p_user_id, 'user_deactivated');
END
$$;

-- Makes a deactivated user active again, within the plan's limit (DS001, as user_create).
-- Returns false when it was active already. P0002 when there is no such user.
CREATE FUNCTION dossier.user_reactivate(p_user_id uuid, p_max_users bigint) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_status text;
BEGIN
    SELECT u.status INTO v_status
    FROM dossier.users u
    WHERE u.tenant_id = dossier.current_tenant() AND u.id = p_user_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such user' USING ERRCODE = 'P0002';
    END IF;
    IF v_status = 'active' THEN
        RETURN false;
    END IF;
    PERFORM dossier.user_seat_check(p_max_users);
    UPDATE dossier.users u SET status = 'active', deactivated_at = NULL
    WHERE u.tenant_id = dossier.current_tenant() AND u.id = p_user_id;
    RETURN true;
END
$$;

-- Sets a user's password hash (NULL: no password login), stamps password_changed_at and
-- revokes its sessions ('password_change'); returns how many. P0002 when there is no such
-- user.
CREATE FUNCTION dossier.user_set_password(p_user_id uuid, p_password_hash text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    UPDATE dossier.users u SET password_hash = p_password_hash, password_changed_at = now()
    WHERE u.tenant_id = dossier.current_tenant() AND u.id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such user' USING ERRCODE = 'P0002';
    END IF;
    RETURN dossier.user_revoke_sessions(p_user_id, 'password_change');
END
$$;

REVOKE ALL ON FUNCTION dossier.object_chain(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.effective_role(text, uuid, text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.object_permissions(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.user_seat_check(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.user_create(text, text, text, text[], bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.user_revoke_sessions(uuid, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.user_deactivate(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.user_reactivate(uuid, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.user_set_password(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dossier.object_chain(text, uuid) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.effective_role(text, uuid, text, uuid) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.object_permissions(text, uuid) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.user_seat_check(bigint) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.user_create(text, text, text, text[], bigint) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.user_revoke_sessions(uuid, text) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.user_deactivate(uuid) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.user_reactivate(uuid, bigint) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.user_set_password(uuid, text) TO dossier_app;
