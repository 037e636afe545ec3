-- 0009 inline renderers: the JSON form of each resource (0008_api.sql) without a SET clause.
-- A function with SET search_path is never inlined and saves, sets and restores the setting on
-- every call: about 4.6 us a row on the machine of docs/benchmarks.md, against 2.6 us for the
-- json_build_object itself, paid for every row of every list. None of these is SECURITY
-- DEFINER, so pinning the path protected nothing the caller's own path does not; every name
-- in them is schema-qualified instead, so the planner inlines them into the query that reads
-- the rows, under any search_path. The shapes are those of docs/openapi.yaml, unchanged.

CREATE OR REPLACE FUNCTION dossier.api_user(u dossier.users) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT pg_catalog.json_build_object('id', u.id, 'email', u.email,
                                            'display_name', u.display_name, 'roles', u.roles,
                                            'status', u.status, 'created_at', u.created_at,
                                            'updated_at', u.updated_at,
                                            'last_login_at', u.last_login_at)
    $$;

CREATE OR REPLACE FUNCTION dossier.api_group(g dossier.groups) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT pg_catalog.json_build_object('id', g.id, 'name', g.name,
                                            'description', g.description,
                                            'created_at', g.created_at,
                                            'updated_at', g.updated_at)
    $$;

CREATE OR REPLACE FUNCTION dossier.api_folder(f dossier.folders) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT pg_catalog.json_build_object('id', f.id, 'name', f.name,
                                            'parent_id', f.parent_id, 'depth', f.depth,
                                            'created_at', f.created_at,
                                            'updated_at', f.updated_at)
    $$;

CREATE OR REPLACE FUNCTION dossier.api_grant(r dossier.grants) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT pg_catalog.json_build_object('id', r.id, 'role', r.role,
                                            'folder_id', r.folder_id,
                                            'document_id', r.document_id,
                                            'user_id', r.user_id, 'group_id', r.group_id,
                                            'service_account_id', r.service_account_id,
                                            'created_by', r.created_by,
                                            'created_at', r.created_at)
    $$;

CREATE OR REPLACE FUNCTION dossier.api_service_account(s dossier.service_accounts) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT pg_catalog.json_build_object('id', s.id, 'name', s.name,
                                            'description', s.description, 'roles', s.roles,
                                            'status', s.status, 'created_at', s.created_at,
                                            'updated_at', s.updated_at)
    $$;

CREATE OR REPLACE FUNCTION dossier.api_api_key(k dossier.api_keys) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT pg_catalog.json_build_object('id', k.id,
                                            'service_account_id', k.service_account_id,
                                            'name', k.name, 'prefix', k.key_prefix,
                                            'scopes', k.scopes, 'created_at', k.created_at,
                                            'expires_at', k.expires_at,
                                            'last_used_at', k.last_used_at,
                                            'revoked_at', k.revoked_at)
    $$;

CREATE OR REPLACE FUNCTION dossier.api_audit_entry(a dossier.audit_log) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT pg_catalog.json_build_object('seq', a.seq, 'id', a.id,
                                            'created_at', a.created_at,
                                            'actor_type', a.actor_type, 'actor_id', a.actor_id,
                                            'actor_label', a.actor_label, 'action', a.action,
                                            'object_type', a.object_type,
                                            'object_id', a.object_id,
                                            'ip', pg_catalog.host(a.ip),
                                            'request_id', a.request_id,
                                            'outcome', a.outcome, 'details', a.details)
    $$;
