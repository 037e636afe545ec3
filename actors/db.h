/* db: how a command or a node reaches its PostgreSQL. With no DSN configured it is the private
 * cluster of the data directory (transports/pg/instance.h), started if needed and stopped by its
 * last user; with DSNs in the config it is that server, and nothing is managed.
 *
 * Blocking (process management, synchronous libpq): commands and node start-up only. */
#pragma once

#include <stdbool.h>

#include <libpq-fe.h>

#include "transports/pg/instance.h"

typedef struct ds_db ds_db_t;

typedef struct ds_db_opts {
    const char *data_dir;  /* absolute; the private cluster lives under it */
    const char *dsn;       /* the application role's conninfo, or NULL/"" for the private one */
    const char *owner_dsn; /* the owner role's conninfo (migrations, CLI); required with dsn */
} ds_db_opts_t;

/* Opens the database: 0 and *out; errors from ds_pg_instance_open/start (logged), or -EINVAL
 * when dsn is set without owner_dsn. Free with ds_db_close(). */
int ds_db_open(const ds_db_opts_t *opts, ds_db_t **out);

/* Connects as role (synchronous): 0 and *out (PQfinish() it), or -EIO (reason logged). */
int ds_db_connect(ds_db_t *db, ds_pg_role_t role, PGconn **out);

/* The conninfo of role: 0 and *out (wipe with OPENSSL_cleanse, then free()), or -ENOENT
 * (DS_PG_ROLE_SUPER with a configured DSN). */
int ds_db_conninfo(ds_db_t *db, ds_pg_role_t role, char **out);

/* The private instance, or NULL when a DSN is configured. */
ds_pg_instance_t *ds_db_instance(ds_db_t *db);

/* Releases the cluster (stopped if this was its last user) and frees; NULL is fine. */
void ds_db_close(ds_db_t **db);
