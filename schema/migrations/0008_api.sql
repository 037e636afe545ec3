-- 0008 api: what the HTTP API (actors/api) asks of the database beyond plain DML: the JSON
-- form of each resource (so a response is built by the query that reads it, in one round
-- trip), and the authentication steps that must be atomic (login throttling, session start,
-- refresh-token rotation with reuse detection, logout).
--
-- All of it runs as dossier_app under the transaction's tenant (row-level security applies);
-- nothing here is SECURITY DEFINER.

-- --- Resources as JSON (the shapes of docs/openapi.yaml) ---------------------------------

CREATE FUNCTION dossier.api_user(u dossier.users) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT json_build_object('id', u.id, 'email', u.email, 'display_name', u.display_name,
                                 'roles', u.roles, 'status', u.status,
                                 'created_at', u.created_at, 'updated_at', u.updated_at,
                                 'last_login_at', u.last_login_at)
    $$;

CREATE FUNCTION dossier.api_group(g dossier.groups) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT json_build_object('id', g.id, 'name', g.name, 'description', g.description,
                                 'created_at', g.created_at, 'updated_at', g.updated_at)
    $$;

CREATE FUNCTION dossier.api_folder(f dossier.folders) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT json_build_object('id', f.id, 'name', f.name, 'parent_id', f.parent_id,
                                 'depth', f.depth, 'created_at', f.created_at,
                                 'updated_at', f.updated_at)
    $$;

CREATE FUNCTION dossier.api_grant(r dossier.grants) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT json_build_object('id', r.id, 'role', r.role, 'folder_id', r.folder_id,
                                 'document_id', r.document_id, 'user_id', r.user_id,
                                 'group_id', r.group_id,
                                 'service_account_id', r.service_account_id,
                                 'created_by', r.created_by, 'created_at', r.created_at)
    $$;

CREATE FUNCTION dossier.api_service_account(s dossier.service_accounts) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT json_build_object('id', s.id, 'name', s.name, 'description', s.description,
                                 'roles', s.roles, 'status', s.status,
                                 'created_at', s.created_at, 'updated_at', s.updated_at)
    $$;

-- An API key as listed (never the key itself: only its prefix is kept in clear).
CREATE FUNCTION dossier.api_api_key(k dossier.api_keys) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT json_build_object('id', k.id, 'service_account_id', k.service_account_id,
                                 'name', k.name, 'prefix', k.key_prefix, 'scopes', k.scopes,
                                 'created_at', k.created_at, 'expires_at', k.expires_at,
                                 'last_used_at', k.last_used_at, 'revoked_at', k.revoked_at)
    $$;

CREATE FUNCTION dossier.api_audit_entry(a dossier.audit_log) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT json_build_object('seq', a.seq, 'id', a.id, 'created_at', a.created_at,
                                 'actor_type', a.actor_type, 'actor_id', a.actor_id,
                                 'actor_label', a.actor_label, 'action', a.action,
                                 'object_type', a.object_type, 'object_id', a.object_id,
                                 'ip', host(a.ip), 'request_id', a.request_id,
                                 'outcome', a.outcome, 'details', a.details)
    $$;

-- --- Login throttling ----------------------------------------------------------------------
-- Failures are counted, in a window of 15 minutes after the last failure, per subject:
--   'pair'     the account from one client address (SHA-256 of lower(email) and the address):
--              5 free failures; what stops one client guessing one password;
--   'address'  the client address, over all accounts: 20 free failures;
--   'account'  the account from anywhere: 100 free failures; what stops a guess spread over
--              many addresses, high enough that a stranger cannot lock a user out cheaply
--              (the victim's own address has its own 'pair' count).
-- Past its free failures each further failure locks the subject for 2^(n - free) seconds, at
-- most 15 minutes. A successful login clears the account's and the pair's counts. Subjects
-- are hashes computed by the server, whether or not the account exists.
ALTER TABLE dossier.login_throttles DROP CONSTRAINT login_throttles_kind_check;
ALTER TABLE dossier.login_throttles ADD CONSTRAINT login_throttles_kind_check
    CHECK (kind IN ('account', 'address', 'pair'));

CREATE FUNCTION dossier.api_login_locked(p_account bytea, p_address bytea, p_pair bytea)
    RETURNS integer
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT COALESCE(max(ceil(extract(epoch FROM t.locked_until - now())))::integer, 0)
        FROM dossier.login_throttles t
        WHERE ((t.kind = 'account' AND t.subject_hash = p_account)
               OR (t.kind = 'address' AND t.subject_hash = p_address)
               OR (t.kind = 'pair' AND t.subject_hash = p_pair))
          AND t.locked_until > now()
    $$;

CREATE FUNCTION dossier.api_login_failed(p_account bytea, p_address bytea, p_pair bytea)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_kind text;
    v_hash bytea;
    v_free integer;
    v_failures integer;
    v_lock integer := 0;
BEGIN
    FOR v_kind, v_hash, v_free IN
        VALUES ('pair', p_pair, 5), ('address', p_address, 20), ('account', p_account, 100)
    LOOP
        CONTINUE WHEN v_hash IS NULL;
        INSERT INTO dossier.login_throttles AS t (kind, subject_hash, failures)
        VALUES (v_kind, v_hash, 1)
        ON CONFLICT (tenant_id, kind, subject_hash) DO UPDATE
            SET failures = CASE WHEN t.last_failure_at < now() - interval '15 minutes' THEN 1
                                ELSE t.failures + 1 END,
                first_failure_at = CASE WHEN t.last_failure_at < now() - interval '15 minutes'
                                        THEN now() ELSE t.first_failure_at END,
                last_failure_at = now()
        RETURNING failures INTO v_failures;
        IF v_failures > v_free THEN
            UPDATE dossier.login_throttles t
                SET locked_until = now() + make_interval(
                        secs => least(900, power(2, least(v_failures - v_free, 10))::integer))
                WHERE t.kind = v_kind AND t.subject_hash = v_hash;
            v_lock := greatest(v_lock, least(900, power(2, least(v_failures - v_free, 10))));
        END IF;
    END LOOP;
    RETURN v_lock;
END
$$;

-- The caller of a change is still who its token says: an active user or service account, and
-- an admin if the token claims the role. Raises DS002 (not active) or DS003 (not an admin any
-- more), which abort the transaction before the change runs. Access tokens live 15 minutes;
-- this keeps a deactivated or demoted admin from changing anything meanwhile.
CREATE FUNCTION dossier.api_guard(p_type text, p_id uuid, p_admin boolean) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_roles text[];
BEGIN
    IF p_type = 'user' THEN
        SELECT u.roles INTO v_roles FROM dossier.users u
            WHERE u.id = p_id AND u.status = 'active';
    ELSIF p_type = 'service_account' THEN
        SELECT s.roles INTO v_roles FROM dossier.service_accounts s
            WHERE s.id = p_id AND s.status = 'active';
    END IF;
    IF v_roles IS NULL THEN
        RAISE EXCEPTION 'the caller is not active' USING ERRCODE = 'DS002';
    END IF;
    IF p_admin AND NOT 'admin' = ANY (v_roles) THEN
        RAISE EXCEPTION 'the caller is no longer an admin' USING ERRCODE = 'DS003';
    END IF;
END
$$;

-- --- Sessions and refresh tokens -----------------------------------------------------------

-- A successful login: clears the account's failures, stamps the user, opens a session (the
-- refresh-token family, alive p_session_s seconds at most) with its first refresh token
-- (alive p_refresh_s seconds). Returns the session id.
CREATE FUNCTION dossier.api_login_succeeded(p_user uuid, p_account bytea, p_pair bytea,
                                            p_token_hash bytea, p_refresh_s integer,
                                            p_session_s integer, p_ip inet, p_user_agent text)
    RETURNS uuid
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_session uuid;
BEGIN
    DELETE FROM dossier.login_throttles t
        WHERE (t.kind = 'account' AND t.subject_hash = p_account)
           OR (t.kind = 'pair' AND t.subject_hash = p_pair);
    UPDATE dossier.users u SET last_login_at = now() WHERE u.id = p_user;
    INSERT INTO dossier.sessions (user_id, expires_at, ip, user_agent)
    VALUES (p_user, now() + make_interval(secs => p_session_s), p_ip, left(p_user_agent, 512))
    RETURNING id INTO v_session;
    INSERT INTO dossier.refresh_tokens (session_id, token_hash, expires_at)
    VALUES (v_session, p_token_hash,
            least(now() + make_interval(secs => p_refresh_s),
                  now() + make_interval(secs => p_session_s)));
    RETURN v_session;
END
$$;

-- Presents refresh token p_hash and, if it is live, rotates it to p_new_hash. One row:
--   outcome 'ok'      rotated; user_id, roles and session_id say for whom to sign;
--           'invalid' no such token (or another tenant's): nothing changed;
--           'reuse'   the token was already rotated: its whole session is revoked now
--                     (committed with the 401 the caller answers);
--           'revoked' its session was revoked (logout, reuse, deactivation...);
--           'expired' the token or its session has expired;
--           'inactive' the user is deactivated (the session is revoked).
CREATE FUNCTION dossier.api_refresh(p_hash bytea, p_new_hash bytea, p_refresh_s integer)
    RETURNS TABLE (outcome text, user_id uuid, roles text[], session_id uuid)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_tok dossier.refresh_tokens;
    v_ses dossier.sessions;
    v_user dossier.users;
    v_new uuid;
BEGIN
    SELECT * INTO v_tok FROM dossier.refresh_tokens t WHERE t.token_hash = p_hash FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'invalid'::text, NULL::uuid, NULL::text[], NULL::uuid;
        RETURN;
    END IF;
    SELECT * INTO v_ses FROM dossier.sessions s WHERE s.id = v_tok.session_id FOR UPDATE;
    SELECT * INTO v_user FROM dossier.users u WHERE u.id = v_ses.user_id;
    IF v_tok.rotated_at IS NOT NULL AND v_ses.revoked_at IS NULL THEN
        UPDATE dossier.sessions s SET revoked_at = now(), revoked_reason = 'token_reuse'
            WHERE s.id = v_ses.id;
        UPDATE dossier.refresh_tokens t SET revoked_at = now()
            WHERE t.session_id = v_ses.id AND t.revoked_at IS NULL;
        RETURN QUERY SELECT 'reuse'::text, v_user.id, v_user.roles, v_ses.id;
        RETURN;
    END IF;
    IF v_ses.revoked_at IS NOT NULL OR v_tok.revoked_at IS NOT NULL
       OR v_tok.rotated_at IS NOT NULL THEN
        RETURN QUERY SELECT 'revoked'::text, v_user.id, v_user.roles, v_ses.id;
        RETURN;
    END IF;
    IF v_tok.expires_at <= now() OR v_ses.expires_at <= now() THEN
        RETURN QUERY SELECT 'expired'::text, v_user.id, v_user.roles, v_ses.id;
        RETURN;
    END IF;
    IF v_user.status <> 'active' THEN
        UPDATE dossier.sessions s SET revoked_at = now(), revoked_reason = 'user_deactivated'
            WHERE s.id = v_ses.id;
        RETURN QUERY SELECT 'inactive'::text, v_user.id, v_user.roles, v_ses.id;
        RETURN;
    END IF;
    INSERT INTO dossier.refresh_tokens (session_id, token_hash, expires_at)
    VALUES (v_ses.id, p_new_hash,
            least(now() + make_interval(secs => p_refresh_s), v_ses.expires_at))
    RETURNING id INTO v_new;
    UPDATE dossier.refresh_tokens t SET rotated_at = now(), replaced_by = v_new
        WHERE t.id = v_tok.id;
    UPDATE dossier.sessions s SET last_used_at = now() WHERE s.id = v_ses.id;
    RETURN QUERY SELECT 'ok'::text, v_user.id, v_user.roles, v_ses.id;
END
$$;

-- Logout of user p_user: the session of refresh token p_hash (if it is the user's), or with
-- p_everywhere every live session of the user. Returns the number of sessions revoked.
CREATE FUNCTION dossier.api_logout(p_user uuid, p_hash bytea, p_everywhere boolean)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE dossier.sessions s
        SET revoked_at = now(),
            revoked_reason = CASE WHEN p_everywhere THEN 'logout_all' ELSE 'logout' END
        WHERE s.user_id = p_user AND s.revoked_at IS NULL
          AND (p_everywhere OR s.id = (SELECT t.session_id FROM dossier.refresh_tokens t
                                       WHERE t.token_hash = p_hash));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    UPDATE dossier.refresh_tokens t SET revoked_at = now()
        WHERE t.revoked_at IS NULL
          AND t.session_id IN (SELECT s.id FROM dossier.sessions s
                               WHERE s.user_id = p_user AND s.revoked_reason IN ('logout',
                                                                                 'logout_all'));
    RETURN v_count;
END
$$;

-- Revokes every live session of a user (deactivation, password change by an admin).
CREATE FUNCTION dossier.api_revoke_sessions(p_user uuid, p_reason text) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE dossier.sessions s SET revoked_at = now(), revoked_reason = p_reason
        WHERE s.user_id = p_user AND s.revoked_at IS NULL;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    UPDATE dossier.refresh_tokens t SET revoked_at = now()
        WHERE t.revoked_at IS NULL
          AND t.session_id IN (SELECT s.id FROM dossier.sessions s WHERE s.user_id = p_user);
    RETURN v_count;
END
$$;

-- --- Idempotency-Key ------------------------------------------------------------------------
-- Claims (principal, key) for a create. One row:
--   claimed true            the key is new (or its old claim expired): go on, and complete it
--                           in the create's own transaction;
--   claimed false, same_request, state, status, headers, body
--                           the key was seen: replay a completed response of the same request,
--                           or refuse (another request: 422; still in progress: 409).
-- A claim left in progress for 2 minutes (its node died) may be claimed again.
CREATE FUNCTION dossier.api_idem_claim(p_principal uuid, p_key text, p_method text,
                                       p_route text, p_hash bytea)
    RETURNS TABLE (claimed boolean, same_request boolean, state text, status smallint,
                   headers jsonb, body text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v dossier.idempotency_keys;
BEGIN
    DELETE FROM dossier.idempotency_keys k
        WHERE k.principal_id = p_principal AND k.key = p_key
          AND (k.expires_at <= now()
               OR (k.state = 'in_progress' AND k.created_at < now() - interval '2 minutes'));
    INSERT INTO dossier.idempotency_keys (principal_id, key, method, route, request_hash)
    VALUES (p_principal, p_key, p_method, left(p_route, 512), p_hash)
    ON CONFLICT ON CONSTRAINT idempotency_keys_principal_key DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT true, true, 'in_progress'::text, NULL::smallint, NULL::jsonb,
                            NULL::text;
        RETURN;
    END IF;
    SELECT * INTO v FROM dossier.idempotency_keys k
        WHERE k.principal_id = p_principal AND k.key = p_key;
    RETURN QUERY SELECT false, v.request_hash = p_hash, v.state, v.response_status,
                        v.response_headers, convert_from(v.response_body, 'UTF8');
END
$$;

REVOKE ALL ON FUNCTION dossier.api_user(dossier.users), dossier.api_group(dossier.groups),
    dossier.api_folder(dossier.folders),
    dossier.api_grant(dossier.grants), dossier.api_service_account(dossier.service_accounts),
    dossier.api_api_key(dossier.api_keys), dossier.api_audit_entry(dossier.audit_log),
    dossier.api_login_locked(bytea, bytea, bytea), dossier.api_login_failed(bytea, bytea, bytea),
    dossier.api_login_succeeded(uuid, bytea, bytea, bytea, integer, integer, inet, text),
    dossier.api_refresh(bytea, bytea, integer), dossier.api_logout(uuid, bytea, boolean),
    dossier.api_revoke_sessions(uuid, text),
    dossier.api_idem_claim(uuid, text, text, text, bytea),
    dossier.api_guard(text, uuid, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dossier.api_user(dossier.users), dossier.api_group(dossier.groups),
    dossier.api_folder(dossier.folders),
    dossier.api_grant(dossier.grants), dossier.api_service_account(dossier.service_accounts),
    dossier.api_api_key(dossier.api_keys), dossier.api_audit_entry(dossier.audit_log),
    dossier.api_login_locked(bytea, bytea, bytea), dossier.api_login_failed(bytea, bytea, bytea),
    dossier.api_login_succeeded(uuid, bytea, bytea, bytea, integer, integer, inet, text),
    dossier.api_refresh(bytea, bytea, integer), dossier.api_logout(uuid, bytea, boolean),
    dossier.api_revoke_sessions(uuid, text),
    dossier.api_idem_claim(uuid, text, text, text, bytea),
    dossier.api_guard(text, uuid, boolean)
    TO dossier_app;
