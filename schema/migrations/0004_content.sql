-- 0004 content: the folder tree, documents and their versions, grants and share links.
-- Tenant-table rules as in 0003.
--
-- Folder tree: a materialized path of ids.
--   path = '/' || root_id || '/' || ... || '/' || own_id   (uuids in text form, 37 bytes each)
-- so folder R's subtree is every folder whose path equals R.path or starts with R.path || '/'.
-- Ids have a fixed length, so under COLLATE "C" (byte order) that set is exactly the range
--   R.path <= path < R.path || '0'          ('0' is the byte after '/')
-- which the unique btree (tenant_id, path) answers as one index range scan, whatever the size
-- of the tenant (proved at 1M folders by tests/integration/test_schema.c).
--
-- Why a range and not `path LIKE R.path || '%'` (or ltree's <@): with row-level security the
-- planner may use a qualifier as an index condition ahead of the policy only if it is
-- leakproof. The text comparison operators are; textlike, textcat and ltree's operators are
-- not, so under RLS a LIKE would be filtered row by row over the whole tenant. The bounds are
-- therefore computed once (uncorrelated sub-selects, which become parameters) and compared
-- with plain >= and <: see dossier.folder_subtree().
--
-- Moves: the BEFORE trigger derives path and depth from the parent on INSERT and whenever
-- parent_id changes (refusing a move into the folder's own subtree); the AFTER trigger then
-- re-paths the whole subtree with one UPDATE over the same index range. Nothing else may
-- change path or depth. Inserts take a per-tenant advisory lock shared and moves take it
-- exclusive, so a folder created under a subtree that is being moved cannot keep a stale
-- prefix. Renames do not touch paths (they hold ids, not names). Depth is capped at 64 levels
-- (the deepest path, 64 * 37 bytes, stays well inside a btree entry).

CREATE TABLE dossier.folders (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    parent_id uuid,
    name text NOT NULL CONSTRAINT folders_name_check
        CHECK (char_length(name) BETWEEN 1 AND 255 AND strpos(name, '/') = 0),
    path text COLLATE "C" NOT NULL,
    depth smallint NOT NULL CONSTRAINT folders_depth_check CHECK (depth BETWEEN 0 AND 63),
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    row_version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES dossier.folders (tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES dossier.users (tenant_id, id)
        ON DELETE SET NULL (created_by),
    CONSTRAINT folders_not_own_parent CHECK (parent_id <> id)
);
CREATE UNIQUE INDEX folders_path_key ON dossier.folders (tenant_id, path);
-- Children of a folder (listing), and the parent foreign key's lookups.
CREATE INDEX folders_parent_idx ON dossier.folders (tenant_id, parent_id, name);
-- Sibling names are unique outside the trash; top-level folders (parent NULL) included.
CREATE UNIQUE INDEX folders_sibling_name_key ON dossier.folders (tenant_id, parent_id, name)
    NULLS NOT DISTINCT WHERE deleted_at IS NULL;
CREATE INDEX folders_created_by_idx ON dossier.folders (tenant_id, created_by);

CREATE FUNCTION dossier.folders_set_path() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_path text;
    v_depth integer;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'cannot change the id of a folder' USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.parent_id IS NOT DISTINCT FROM OLD.parent_id THEN
        -- Not a move. Only the subtree re-path below (one trigger level down) changes paths.
        IF pg_trigger_depth() <= 1 THEN
            NEW.path := OLD.path;
            NEW.depth := OLD.depth;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_advisory_xact_lock_shared(
            hashtextextended('dossier.folders:' || NEW.tenant_id::text, 0));
    ELSE
        PERFORM pg_advisory_xact_lock(
            hashtextextended('dossier.folders:' || NEW.tenant_id::text, 0));
    END IF;
    IF NEW.parent_id IS NULL THEN
        NEW.path := '/' || NEW.id::text;
        NEW.depth := 0;
        RETURN NEW;
    END IF;
    SELECT p.path, p.depth INTO v_path, v_depth
    FROM dossier.folders p
    WHERE p.tenant_id = NEW.tenant_id AND p.id = NEW.parent_id;
    IF NOT FOUND THEN
        IF NEW.tenant_id IS DISTINCT FROM dossier.current_tenant() THEN
            -- Another tenant's row: the row-level security check that runs right after this
            -- trigger refuses it (42501), as for every other table.
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'parent folder % does not exist', NEW.parent_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND (v_path = OLD.path OR starts_with(v_path, OLD.path || '/')) THEN
        RAISE EXCEPTION 'cannot move a folder into its own subtree'
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.path := v_path || '/' || NEW.id::text;
    NEW.depth := v_depth + 1;
    RETURN NEW;
END
$$;

CREATE FUNCTION dossier.folders_repath_subtree() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NEW.path IS DISTINCT FROM OLD.path THEN
        UPDATE dossier.folders f
        SET path = NEW.path || substr(f.path, char_length(OLD.path) + 1),
            depth = f.depth + (NEW.depth - OLD.depth)
        WHERE f.tenant_id = NEW.tenant_id
          AND f.path > OLD.path || '/'
          AND f.path < OLD.path || '0';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER folders_set_path BEFORE INSERT OR UPDATE ON dossier.folders
    FOR EACH ROW EXECUTE FUNCTION dossier.folders_set_path();
CREATE TRIGGER folders_repath_subtree AFTER UPDATE OF parent_id ON dossier.folders
    FOR EACH ROW EXECUTE FUNCTION dossier.folders_repath_subtree();
-- Named to run after folders_set_path (triggers fire in name order).
CREATE TRIGGER folders_touch BEFORE UPDATE ON dossier.folders
    FOR EACH ROW EXECUTE FUNCTION dossier.touch_row();

-- The subtree of p_root (itself included) in path order, in the current tenant; no rows if
-- p_root is not a visible folder. A single-SELECT SQL function, so the planner inlines it into
-- the caller's query (join documents to it for a subtree's documents).
CREATE FUNCTION dossier.folder_subtree(p_root uuid) RETURNS SETOF dossier.folders
    LANGUAGE sql STABLE
    AS $$
        SELECT f.*
        FROM dossier.folders f
        WHERE f.tenant_id = dossier.current_tenant()
          AND f.path >= (SELECT r.path FROM dossier.folders r
                         WHERE r.tenant_id = dossier.current_tenant() AND r.id = p_root)
          AND f.path < (SELECT r.path || '0' FROM dossier.folders r
                        WHERE r.tenant_id = dossier.current_tenant() AND r.id = p_root)
        ORDER BY f.path
    $$;

-- The ids on a path, root first: a folder's ancestors and itself, for grant inheritance
-- (grants WHERE folder_id = ANY(dossier.folder_path_ids(f.path))).
CREATE FUNCTION dossier.folder_path_ids(p_path text) RETURNS uuid[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT pg_catalog.string_to_array(pg_catalog.substr(p_path, 2), '/')::uuid[] $$;

REVOKE ALL ON FUNCTION dossier.folders_set_path() FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.folders_repath_subtree() FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.folder_subtree(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.folder_path_ids(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dossier.folder_subtree(uuid) TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.folder_path_ids(text) TO dossier_app;

-- Documents live in a folder; their content is in document_versions (blobs in the object store).
-- current_version_id is set after the first version is inserted, and must be one of the
-- document's own versions.
CREATE TABLE dossier.documents (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    folder_id uuid NOT NULL,
    name text NOT NULL CONSTRAINT documents_name_check
        CHECK (char_length(name) BETWEEN 1 AND 255 AND strpos(name, '/') = 0),
    content_type text NOT NULL DEFAULT 'application/octet-stream'
        CONSTRAINT documents_content_type_length CHECK (char_length(content_type) <= 255),
    current_version_id uuid,
    size_bytes bigint NOT NULL DEFAULT 0 CONSTRAINT documents_size_check CHECK (size_bytes >= 0),
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    row_version integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, folder_id) REFERENCES dossier.folders (tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES dossier.users (tenant_id, id)
        ON DELETE SET NULL (created_by)
);
CREATE INDEX documents_folder_idx ON dossier.documents (tenant_id, folder_id, name);
CREATE UNIQUE INDEX documents_name_key ON dossier.documents (tenant_id, folder_id, name)
    WHERE deleted_at IS NULL;
CREATE INDEX documents_created_by_idx ON dossier.documents (tenant_id, created_by);
CREATE TRIGGER documents_touch BEFORE UPDATE ON dossier.documents
    FOR EACH ROW EXECUTE FUNCTION dossier.touch_row();

CREATE TABLE dossier.document_versions (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    document_id uuid NOT NULL,
    version_no integer NOT NULL CONSTRAINT document_versions_no_check CHECK (version_no >= 1),
    -- The object store key (region/tenant/...), see transports/blob.
    blob_key text NOT NULL
        CONSTRAINT document_versions_blob_key_length
        CHECK (char_length(blob_key) BETWEEN 1 AND 1024),
    size_bytes bigint NOT NULL CONSTRAINT document_versions_size_check CHECK (size_bytes >= 0),
    -- SHA-256 of the plaintext.
    sha256 bytea NOT NULL
        CONSTRAINT document_versions_sha256_length CHECK (octet_length(sha256) = 32),
    content_type text NOT NULL DEFAULT 'application/octet-stream'
        CONSTRAINT document_versions_content_type_length CHECK (char_length(content_type) <= 255),
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT document_versions_no_key UNIQUE (tenant_id, document_id, version_no),
    -- Target of documents.current_version_id: a version of that very document.
    CONSTRAINT document_versions_document_key UNIQUE (tenant_id, document_id, id),
    CONSTRAINT document_versions_blob_key_key UNIQUE (tenant_id, blob_key),
    FOREIGN KEY (tenant_id, document_id) REFERENCES dossier.documents (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, created_by) REFERENCES dossier.users (tenant_id, id)
        ON DELETE SET NULL (created_by)
);
CREATE INDEX document_versions_created_by_idx ON dossier.document_versions (tenant_id, created_by);

ALTER TABLE dossier.documents ADD CONSTRAINT documents_current_version_fkey
    FOREIGN KEY (tenant_id, id, current_version_id)
    REFERENCES dossier.document_versions (tenant_id, document_id, id);

-- A role on one folder (inherited by its subtree) or one document, for one user, group or
-- service account. The effective role is the highest of the grants on the object and on its
-- folder's ancestors (folder_path_ids) to the principal or its groups.
CREATE TABLE dossier.grants (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    role text NOT NULL CONSTRAINT grants_role_check CHECK (role IN ('viewer', 'editor', 'admin')),
    folder_id uuid,
    document_id uuid,
    user_id uuid,
    group_id uuid,
    service_account_id uuid,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT grants_one_target CHECK (num_nonnulls(folder_id, document_id) = 1),
    CONSTRAINT grants_one_principal CHECK (num_nonnulls(user_id, group_id, service_account_id) = 1),
    FOREIGN KEY (tenant_id, folder_id) REFERENCES dossier.folders (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, document_id) REFERENCES dossier.documents (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES dossier.users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, group_id) REFERENCES dossier.groups (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, service_account_id)
        REFERENCES dossier.service_accounts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, created_by) REFERENCES dossier.users (tenant_id, id)
        ON DELETE SET NULL (created_by)
);
CREATE UNIQUE INDEX grants_unique_key ON dossier.grants
    (tenant_id, folder_id, document_id, user_id, group_id, service_account_id, role)
    NULLS NOT DISTINCT;
CREATE INDEX grants_folder_idx ON dossier.grants (tenant_id, folder_id)
    WHERE folder_id IS NOT NULL;
CREATE INDEX grants_document_idx ON dossier.grants (tenant_id, document_id)
    WHERE document_id IS NOT NULL;
CREATE INDEX grants_user_idx ON dossier.grants (tenant_id, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX grants_group_idx ON dossier.grants (tenant_id, group_id) WHERE group_id IS NOT NULL;
CREATE INDEX grants_service_account_idx ON dossier.grants (tenant_id, service_account_id)
    WHERE service_account_id IS NOT NULL;
CREATE INDEX grants_created_by_idx ON dossier.grants (tenant_id, created_by);

-- Share links: the URL carries an HMAC over (tenant, link id, expiry) signed by the server;
-- this row is what the HMAC names, so a link can be revoked or limited before it expires.
CREATE TABLE dossier.share_links (
    tenant_id uuid NOT NULL DEFAULT dossier.current_tenant() REFERENCES dossier.tenants (id),
    id uuid NOT NULL DEFAULT dossier.uuid_v7(),
    folder_id uuid,
    document_id uuid,
    -- A link never grants admin.
    role text NOT NULL DEFAULT 'viewer'
        CONSTRAINT share_links_role_check CHECK (role IN ('viewer', 'editor')),
    expires_at timestamptz NOT NULL,
    -- argon2id PHC string when the link is password protected.
    password_hash text
        CONSTRAINT share_links_password_hash_length CHECK (char_length(password_hash) <= 512),
    max_uses integer CONSTRAINT share_links_max_uses_check CHECK (max_uses IS NULL OR max_uses > 0),
    use_count integer NOT NULL DEFAULT 0
        CONSTRAINT share_links_use_count_check CHECK (use_count >= 0),
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT share_links_one_target CHECK (num_nonnulls(folder_id, document_id) = 1),
    FOREIGN KEY (tenant_id, folder_id) REFERENCES dossier.folders (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, document_id) REFERENCES dossier.documents (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, created_by) REFERENCES dossier.users (tenant_id, id)
        ON DELETE SET NULL (created_by)
);
CREATE INDEX share_links_folder_idx ON dossier.share_links (tenant_id, folder_id)
    WHERE folder_id IS NOT NULL;
CREATE INDEX share_links_document_idx ON dossier.share_links (tenant_id, document_id)
    WHERE document_id IS NOT NULL;
CREATE INDEX share_links_created_by_idx ON dossier.share_links (tenant_id, created_by);

ALTER TABLE dossier.folders ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.folders FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.folders
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.documents
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.document_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.document_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.document_versions
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.grants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.grants
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

ALTER TABLE dossier.share_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE dossier.share_links FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dossier.share_links
    USING (tenant_id = dossier.current_tenant()) WITH CHECK (tenant_id = dossier.current_tenant());

GRANT SELECT, INSERT, UPDATE, DELETE ON
    dossier.folders, dossier.documents, dossier.document_versions, dossier.grants,
    dossier.share_links
    TO dossier_app;
