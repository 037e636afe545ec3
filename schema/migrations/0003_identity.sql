-- 0003 identity: users, groups and their members, service accounts and their API keys,
-- login sessions with their refresh tokens, and login throttling (issue 5).
--
-- The rules of every tenant table (this file and the next ones; docs/storage.md):
--   * tenant_id uuid NOT NULL REFERENCES tenants, defaulting to the transaction's tenant;
--   * primary key (tenant_id, id), ids from uuid_v7() (unique across tenants);
--   * every foreign key into another tenant table includes tenant_id, so a row can only point
--     at rows of its own tenant, and every index starts with tenant_id (the shard key);
--   * row-level security ENABLEd and FORCEd (the owner is subject to it too), one policy
--     `tenant_isolation` USING and WITH CHECK tenant_id = dossier.current_tenant();
--   * dossier_app: SELECT, INSERT, UPDATE, DELETE (audit_log: SELECT, INSERT only).
-- tests/integration/test_isolation.c checks all of it for every table with a tenant_id.
--
-- Authorship columns (created_by) point at users and become NULL if the user is deleted; a
-- change made by a service account, an operator or the system leaves them NULL, and the audit
-- log names the actor either way.

CREATE TABLE dossier.users (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    email text NOT NULL CONSTRAINT users_email_format
        CHECK (char_length(email) BETWEEN 3 AND 254 AND position('@' IN email) > 1),
    display_name text NOT NULL DEFAULT ''
        CONSTRAINT users_display_name_length CHECK (char_length(display_name) <= 200),
    -- argon2id in PHC string format; NULL: no password login (invited, or SSO later).
    password_hash text
        CONSTRAINT users_password_hash_length CHECK (char_length(password_hash) <= 512),
    password_changed_at timestamptz,
    -- Tenant-level roles, carried in access tokens.
    roles text[] NOT NULL DEFAULT '{viewer}' CONSTRAINT users_roles_check
        CHECK (cardinality(roles) BETWEEN 1 AND 3 AND roles <@ '{viewer,editor,admin}'::text[]),
    status text NOT NULL DEFAULT 'active'
        CONSTRAINT users_status_check CHECK (status IN ('active', 'deactivated')),
    deactivated_at timestamptz,
    last_login_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    row_version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT users_deactivated_dated CHECK (status <> 'deactivated' OR deactivated_at IS NOT NULL)
);
-- Case-insensitive uniqueness without citext: login looks users up by lower(email).
CREATE UNIQUE INDEX users_email_key ON dossier.users (tenant_id, lower(email));
CREATE TRIGGER users_touch BEFORE UPDATE ON dossier.users
    FOR EACH ROW EXECUTE FUNCTION dossier.touch_row();

CREATE TABLE dossier.groups (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    name text NOT NULL CONSTRAINT groups_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT ''
        CONSTRAINT groups_description_length CHECK (char_length(description) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    row_version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX groups_name_key ON dossier.groups (tenant_id, lower(name));
CREATE TRIGGER groups_touch BEFORE UPDATE ON dossier.groups
    FOR EACH ROW EXECUTE FUNCTION dossier.touch_row();

-- Memberships (PUT|DELETE /v1/groups/{id}/members/{user_id}); gone with the group or user.
CREATE TABLE dossier.group_members (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    group_id uuid NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT group_members_pair_key UNIQUE (tenant_id, group_id, user_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES dossier.groups (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES dossier.users (tenant_id, id) ON DELETE CASCADE
);
-- The groups of a user (effective permissions, access tokens).
CREATE INDEX group_members_user_idx ON dossier.group_members (tenant_id, user_id);

-- Service accounts: non-human principals for integrations, authenticated by API keys.
CREATE TABLE dossier.service_accounts (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    name text NOT NULL
        CONSTRAINT service_accounts_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT ''
        CONSTRAINT service_accounts_description_length CHECK (char_length(description) <= 2000),
    roles text[] NOT NULL DEFAULT '{viewer}' CONSTRAINT service_accounts_roles_check
        CHECK (cardinality(roles) BETWEEN 1 AND 3 AND roles <@ '{viewer,editor,admin}'::text[]),
    status text NOT NULL DEFAULT 'active'
        CONSTRAINT service_accounts_status_check CHECK (status IN ('active', 'disabled')),
    disabled_at timestamptz,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    row_version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES dossier.users (tenant_id, id)
        ON DELETE SET NULL (created_by)
);
CREATE UNIQUE INDEX service_accounts_name_key ON dossier.service_accounts (tenant_id, lower(name));
CREATE INDEX service_accounts_created_by_idx ON dossier.service_accounts (tenant_id, created_by);
CREATE TRIGGER service_accounts_touch BEFORE UPDATE ON dossier.service_accounts
    FOR EACH ROW EXECUTE FUNCTION dossier.touch_row();

-- API keys: the secret is shown once; only SHA-256 of it is kept. The key sent by a client
-- names its tenant and key id (so the lookup runs under that tenant) and is told apart from an
-- access token by its prefix; key_prefix is the few leading characters shown in listings.
CREATE TABLE dossier.api_keys (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    service_account_id uuid NOT NULL,
    name text NOT NULL DEFAULT ''
        CONSTRAINT api_keys_name_length CHECK (char_length(name) <= 200),
    key_prefix text NOT NULL
        CONSTRAINT api_keys_key_prefix_length CHECK (char_length(key_prefix) BETWEEN 1 AND 32),
    key_hash bytea NOT NULL CONSTRAINT api_keys_key_hash_length CHECK (octet_length(key_hash) = 32),
    scopes text[] NOT NULL DEFAULT '{}'
        CONSTRAINT api_keys_scopes_count CHECK (cardinality(scopes) <= 64),
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    last_used_at timestamptz,
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT api_keys_hash_key UNIQUE (tenant_id, key_hash),
    FOREIGN KEY (tenant_id, service_account_id) REFERENCES dossier.service_accounts (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, created_by) REFERENCES dossier.users (tenant_id, id)
        ON DELETE SET NULL (created_by)
);
CREATE INDEX api_keys_service_account_idx ON dossier.api_keys (tenant_id, service_account_id);
CREATE INDEX api_keys_created_by_idx ON dossier.api_keys (tenant_id, created_by);

-- A login session is one refresh-token family: every refresh rotates the token within the
-- session; presenting a rotated token again revokes the whole session (reuse detection).
-- Logout revokes one session, "log out everywhere" all of a user's.
CREATE TABLE dossier.sessions (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    user_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    -- Absolute end of the session, whatever the refreshes.
    expires_at timestamptz NOT NULL,
    ip inet,
    user_agent text CONSTRAINT sessions_user_agent_length CHECK (char_length(user_agent) <= 512),
    revoked_at timestamptz,
    revoked_reason text CONSTRAINT sessions_revoked_reason_check CHECK (revoked_reason IN (
        'logout', 'logout_all', 'token_reuse', 'admin', 'password_change', 'user_deactivated')),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES dossier.users (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT sessions_revoked_reason_set CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX sessions_user_idx ON dossier.sessions (tenant_id, user_id);

-- Refresh tokens: opaque to the client, stored as SHA-256. A token is used once: the refresh
-- sets rotated_at and replaced_by and issues the successor in the same session.
CREATE TABLE dossier.refresh_tokens (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    session_id uuid NOT NULL,
    token_hash bytea NOT NULL
        CONSTRAINT refresh_tokens_token_hash_length CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz,
    replaced_by uuid,
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT refresh_tokens_hash_key UNIQUE (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, session_id) REFERENCES dossier.sessions (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, replaced_by) REFERENCES dossier.refresh_tokens (tenant_id, id)
        ON DELETE SET NULL (replaced_by),
    CONSTRAINT refresh_tokens_rotation CHECK ((rotated_at IS NULL) = (replaced_by IS NULL))
);
CREATE INDEX refresh_tokens_session_idx ON dossier.refresh_tokens (tenant_id, session_id);
CREATE INDEX refresh_tokens_replaced_by_idx ON dossier.refresh_tokens (tenant_id, replaced_by);

-- Failed-login throttling with backoff, per account and per client address. Keyed by SHA-256
-- of the normalized subject (lower(email), or the address), so an email that matches no user
-- is throttled exactly like one that does (no existence oracle) and none is stored in clear.
CREATE TABLE dossier.login_throttles (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    kind text NOT NULL CONSTRAINT login_throttles_kind_check CHECK (kind IN ('account', 'address')),
    subject_hash bytea NOT NULL
        CONSTRAINT login_throttles_subject_hash_length CHECK (octet_length(subject_hash) = 32),
    failures integer NOT NULL DEFAULT 0
        CONSTRAINT login_throttles_failures_check CHECK (failures >= 0),
    first_failure_at timestamptz NOT NULL DEFAULT now(),
    last_failure_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT login_throttles_subject_key UNIQUE (tenant_id, kind, subject_hash)
);
-- Expiry sweeps.
CREATE INDEX login_throttles_last_failure_idx
    ON dossier.login_throttles (tenant_id, last_failure_at);

ALTER TABLE dossier.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.users
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.groups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.groups
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.group_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.group_members
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.service_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.service_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.service_accounts
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.api_keys
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.sessions
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.refresh_tokens
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.login_throttles ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.login_throttles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.login_throttles
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

GRANT SELECT, INSERT, UPDATE, DELETE ON
    dossier.users, dossier.groups, dossier.group_members, dossier.service_accounts,
    dossier.api_keys, dossier.sessions, dossier.refresh_tokens, dossier.login_throttles
    TO dossier_app;
