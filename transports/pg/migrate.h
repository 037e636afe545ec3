/* migrate: versioned SQL migrations (schema/migrations/NNNN_name.sql), applied in order.
 *
 * Each migration runs in a transaction of its own, as the owner role, under a transaction-level
 * advisory lock (DS_MIGRATE_LOCK_KEY), so two nodes or commands migrating at once apply each
 * file exactly once. The table dossier.schema_migrations records every applied file with the
 * SHA-256 of its bytes; a file whose bytes changed after it was applied, or an applied version
 * this binary does not know (a newer schema), is refused with DS_EPRECOND before anything runs.
 *
 * The migrations ship inside the binary (CMake embeds schema/migrations/NNNN_name.sql files); a
 * directory can be given instead (`dossier migrate --dir DIR`), which is how the tests tamper with
 * a file.
 *
 * Blocking (synchronous libpq): for commands and node start-up only, never from an actor. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

enum {
    DS_MIGRATE_LOCK_KEY = 0x646f7373, /* "doss": pg_advisory_xact_lock's key */
};

typedef struct ds_migration {
    int version;       /* NNNN of the file name */
    char *name;        /* the file name, e.g. "0001_control_plane.sql" */
    char *sql;         /* the file's bytes, NUL-terminated */
    size_t len;        /* bytes of sql */
    char checksum[65]; /* SHA-256 of the bytes, lower-case hex */
} ds_migration_t;

/* An ordered set of migrations (ascending version, no duplicates). */
typedef struct ds_migration_set {
    ds_migration_t *items;
    size_t count;
} ds_migration_set_t;

typedef enum ds_migration_state {
    DS_MIGRATION_PENDING, /* known here, not applied */
    DS_MIGRATION_APPLIED, /* applied with the same checksum */
    DS_MIGRATION_CHANGED, /* applied, but the file's checksum differs now */
    DS_MIGRATION_UNKNOWN, /* applied in the database, unknown to this binary */
} ds_migration_state_t;

typedef struct ds_migration_status {
    int version;
    char name[128];
    ds_migration_state_t state;
    char applied_at[40]; /* "" when pending */
} ds_migration_status_t;

/* The migrations compiled into the binary. 0 and *out, or -EINVAL if a name is malformed or a
 * version repeats. Free with ds_migrate_set_free(). */
int ds_migrate_set_embedded(ds_migration_set_t **out);

/* The *.sql files of dir. 0 and *out; -errno if dir cannot be read; -EINVAL as above. */
int ds_migrate_set_from_dir(const char *dir, ds_migration_set_t **out);

void ds_migrate_set_free(ds_migration_set_t **set);

/* Compares the set with the database (conn: the owner role). 0, *out (an array of *n entries,
 * free() it) in version order, the database's unknown versions included; -EIO if the query
 * failed. A database never migrated has every file pending. */
int ds_migrate_status(PGconn *conn, const ds_migration_set_t *set, ds_migration_status_t **out,
                      size_t *n);

/* Applies every pending migration in order. 0 and *applied (how many ran now, may be NULL);
 * DS_EPRECOND if an applied file changed or the database has a version unknown here; -EIO if a
 * statement failed (that migration is rolled back, the earlier ones stay). On error, *errmsg
 * (may be NULL) gets a malloc'ed one-line reason naming the file, for the operator. */
int ds_migrate_apply(PGconn *conn, const ds_migration_set_t *set, size_t *applied, char **errmsg);

/* True when every migration of the set is applied, none changed, none unknown (/readyz). */
bool ds_migrate_current(PGconn *conn, const ds_migration_set_t *set);
