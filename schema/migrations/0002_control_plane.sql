-- 0002 control plane: which tenants exist, where they live, what they may use, and what
-- operators did to them. No personal data here (DESIGN.md §4, "Regions").
--
-- These are not tenant tables: they have no row-level security, and dossier_app has no
-- privilege on them at all. The application reads what login, routing and scheduling need
-- through the SECURITY DEFINER functions at the end of this file.

CREATE TABLE dossier.tenants (
    id uuid PRIMARY KEY DEFAULT dossier.uuid_v7(),
    -- A DNS label: the login subdomain (acme.example.com).
    slug text NOT NULL UNIQUE
        CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    name text NOT NULL CONSTRAINT tenants_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    region text NOT NULL
        CONSTRAINT tenants_region_format CHECK (region ~ '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$'),
    plan text NOT NULL DEFAULT 'standard'
        CONSTRAINT tenants_plan_check CHECK (plan IN ('standard', 'professional', 'enterprise')),
    status text NOT NULL DEFAULT 'active'
        CONSTRAINT tenants_status_check CHECK (status IN ('active', 'suspended', 'offboarding')),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- When the tenant entered its current suspension or offboarding; history is in
    -- control_audit.
    suspended_at timestamptz,
    offboarding_at timestamptz,
    CONSTRAINT tenants_suspended_dated CHECK (status <> 'suspended' OR suspended_at IS NOT NULL),
    CONSTRAINT tenants_offboarding_dated
        CHECK (status <> 'offboarding' OR offboarding_at IS NOT NULL)
);

-- Per-tenant overrides of the plan's limits (config/: plans). One row per overridden field;
-- value NULL means unlimited. The keys are the plan's field names.
CREATE TABLE dossier.tenant_plan_overrides (
    tenant_id uuid NOT NULL REFERENCES dossier.tenants (id) ON DELETE CASCADE,
    key text NOT NULL CONSTRAINT tenant_plan_overrides_key_check CHECK (key IN (
        'api_requests_per_minute', 'searches_per_minute', 'storage_gb', 'max_documents',
        'max_users', 'concurrent_uploads', 'max_file_size_mb', 'search_timeout_s',
        'export_documents_per_hour', 'scheduler_weight', 'mailbox_limit', 'bytes_in_flight',
        'statement_timeout_ms', 'pool_connections')),
    value bigint CONSTRAINT tenant_plan_overrides_value_check CHECK (value IS NULL OR value >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Operator actions on the control plane (`dossier tenant create|suspend|...`). Append-only by
-- convention; only the owner role writes it. tenant_id has no foreign key on purpose: the
-- record of what happened to a tenant outlives the tenant.
CREATE TABLE dossier.control_audit (
    id uuid PRIMARY KEY DEFAULT dossier.uuid_v7(),
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL CONSTRAINT control_audit_actor_length CHECK (char_length(actor) <= 512),
    action text NOT NULL CONSTRAINT control_audit_action_format
        CHECK (action ~ '^[a-z][a-z0-9_.]{0,99}$'),
    tenant_id uuid,
    details jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT control_audit_details_object CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX control_audit_at_idx ON dossier.control_audit (at);
CREATE INDEX control_audit_tenant_idx ON dossier.control_audit (tenant_id, at);

REVOKE ALL ON dossier.tenants, dossier.tenant_plan_overrides, dossier.control_audit FROM PUBLIC;

-- Routing for the application role: exactly the columns login, routing and scheduling need.
-- SECURITY DEFINER runs them as the owner; the fixed search_path keeps a caller's objects from
-- standing in for ours.
CREATE FUNCTION dossier.tenant_by_slug(p_slug text)
    RETURNS TABLE (id uuid, slug text, region text, plan text, status text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT t.id, t.slug, t.region, t.plan, t.status
        FROM dossier.tenants t
        WHERE t.slug = p_slug
    $$;

CREATE FUNCTION dossier.tenant_by_id(p_id uuid)
    RETURNS TABLE (id uuid, slug text, region text, plan text, status text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT t.id, t.slug, t.region, t.plan, t.status
        FROM dossier.tenants t
        WHERE t.id = p_id
    $$;

-- The tenant's plan overrides (value NULL: unlimited); no rows when it has none.
CREATE FUNCTION dossier.tenant_overrides_by_id(p_id uuid)
    RETURNS TABLE (key text, value bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT o.key, o.value
        FROM dossier.tenant_plan_overrides o
        WHERE o.tenant_id = p_id
        ORDER BY o.key
    $$;

REVOKE ALL ON FUNCTION dossier.tenant_by_slug(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.tenant_by_id(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.tenant_overrides_by_id(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dossier.tenant_by_slug(text) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.tenant_by_id(uuid) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.tenant_overrides_by_id(uuid) TO dossier_app;
