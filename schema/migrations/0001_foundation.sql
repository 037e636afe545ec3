-- 0001 foundation: the tenant context, ids, and the helpers every later migration uses.
--
-- Runs as dossier_owner inside one transaction, after the runner created schema `dossier` and
-- dossier.schema_migrations. Roles dossier_owner and dossier_app exist before any migration.
--
-- Privileges are explicit: nothing in schema dossier is granted to PUBLIC. dossier_app gets
-- USAGE on the schema, DML on tenant tables (INSERT and SELECT only on audit_log), and EXECUTE
-- on the functions it calls; never anything on the control-plane tables (0002).

GRANT USAGE ON SCHEMA dossier TO dossier_app;

-- The tenant of the current transaction. The server's first statement in every tenant
-- transaction is set_config('app.tenant_id', $1, true). current_setting(..., true) gives NULL
-- when the setting was never made in this session and '' after a transaction that set it
-- locally has ended (a pooled connection), so NULLIF turns both into NULL: no rows match
-- instead of the cast failing. LANGUAGE sql and STABLE so the planner inlines it into the
-- policies and uses `tenant_id = <this>` as an index condition.
CREATE FUNCTION dossier.current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(pg_catalog.current_setting('app.tenant_id', true), '')::uuid $$;

-- UUID version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then random bits. Ids made
-- close in time sit close in every btree, so inserts touch few pages (v4 ids scatter them).
-- Taken from gen_random_uuid() (version 4, variant already 10xx): the first 6 bytes become the
-- timestamp and bits 52 and 53 turn the version nibble 0100 into 0111.
CREATE FUNCTION dossier.uuid_v7() RETURNS uuid
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$
        SELECT encode(
                   set_bit(set_bit(
                       overlay(uuid_send(gen_random_uuid())
                               PLACING substring(int8send(
                                   (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                                   FROM 3)
                               FROM 1 FOR 6),
                       52, 1), 53, 1),
                   'hex')::uuid
    $$;

-- BEFORE UPDATE on tables with updated_at and row_version: the row's ETag (If-Match) is its
-- row_version, bumped on every change.
CREATE FUNCTION dossier.touch_row() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    NEW.updated_at := now();
    NEW.row_version := OLD.row_version + 1;
    RETURN NEW;
END
$$;

-- What the application may call (routing, readiness and folder functions are granted where
-- they are created).
REVOKE ALL ON FUNCTION dossier.current_tenant() FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.uuid_v7() FROM PUBLIC;
REVOKE ALL ON FUNCTION dossier.touch_row() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dossier.current_tenant() TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier.uuid_v7() TO dossier_app;

-- Migrations applied so far, for /readyz (the application cannot read schema_migrations).
CREATE FUNCTION dossier.schema_version() RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT coalesce(max(version), 0) FROM dossier.schema_migrations $$;
REVOKE ALL ON FUNCTION dossier.schema_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dossier.schema_version() TO dossier_app;
