/* instance: the private PostgreSQL cluster that lives under a Dossier data directory, for a node
 * that has no database configured (DESIGN.md §7).
 *
 * Layout under DATA_DIR (docs/storage.md):
 *     pg/                    the cluster (initdb), owned by the user the server runs as
 *     run/                   its Unix socket directory; a short /tmp/dossier-pg-<hash>/ instead
 *                            when DATA_DIR/run/.s.PGSQL.5432 would pass the 107-byte limit
 *     secrets/pg.passwords   0600: `super=`, `owner=`, `app=` lines, generated at first start
 *     dossier.lock           flock()ed while a process starts or stops the cluster
 *     pg.users               flock(LOCK_SH)ed by every process that uses the cluster
 *
 * The server listens on its Unix socket only (listen_addresses = '') and authenticates every
 * role with scram-sha-256. PostgreSQL refuses to run as root: when the caller is root, the
 * cluster's files belong to, and its processes run as, the `postgres` user (created by Debian's
 * postgresql-common), so DATA_DIR must be reachable by that user (not under /root).
 *
 * Sharing. Any number of processes (a `dossier serve`, CLI commands) may use one cluster.
 * ds_pg_instance_start() starts it unless it runs already, and takes a shared lock on pg.users
 * for as long as the instance is open; ds_pg_instance_release() stops the cluster only when no
 * other process holds pg.users (the last user out stops it) and leaves it running otherwise.
 * `dossier db start` pins the cluster (DATA_DIR/pg.pinned): then it runs until `db stop`.
 * Starting and stopping happen under dossier.lock, so two starters never race. A cluster left
 * running by a process that died is used, and later stopped, by the next one.
 *
 * Everything here blocks (fork/exec of initdb and pg_ctl, synchronous libpq): call it from the
 * main thread of a command or before a node's runtime starts, never from an actor. */
#pragma once

#include <stdbool.h>

typedef struct ds_pg_instance ds_pg_instance_t;

/* The roles of the cluster. */
typedef enum ds_pg_role {
    DS_PG_ROLE_SUPER, /* the bootstrap superuser `postgres`: roles and databases only */
    DS_PG_ROLE_OWNER, /* `dossier_owner`: owns the schema, runs migrations and the CLI */
    DS_PG_ROLE_APP,   /* `dossier_app`: DML only, NOBYPASSRLS: all tenant work */
} ds_pg_role_t;

/* Opens the instance of data_dir (created 0711 if missing) without starting anything: finds the
 * PostgreSQL binaries (bindir, or NULL for the newest /usr/lib/postgresql/N/bin with initdb),
 * and decides the socket directory. 0 and *out; -ENOENT when no PostgreSQL server binaries are
 * installed; -errno when data_dir cannot be created. Free with ds_pg_instance_free(). */
int ds_pg_instance_open(const char *data_dir, const char *bindir, ds_pg_instance_t **out);

/* Initializes the cluster on first use (initdb, passwords, roles `dossier_owner` and
 * `dossier_app`, database `dossier`), starts it unless it already runs, and takes this
 * process's share of pg.users. Safe to call again (it does nothing the second time).
 * *started (may be NULL) tells whether this call started the server.
 * Errors: -EACCES when the data directory is not reachable by the user the cluster runs as;
 * -EIO when initdb, pg_ctl or the bootstrap SQL failed (the details are logged, and the
 * server's own log is DATA_DIR/pg/server.log); -errno from the file system. */
int ds_pg_instance_start(ds_pg_instance_t *inst, bool *started);

/* Drops this process's share; stops the cluster (fast shutdown) if no other process uses it.
 * *stopped (may be NULL) tells whether it did. Does nothing if start was never called. */
int ds_pg_instance_release(ds_pg_instance_t *inst, bool *stopped);

/* Pins the running cluster (`dossier db start`): releases never stop a pinned cluster; only
 * ds_pg_instance_stop() does, and unpins it. Drops this process's share. 0 or -errno. */
int ds_pg_instance_pin(ds_pg_instance_t *inst);

/* Stops the cluster whoever uses it (`dossier db stop`). 0 also when it was not running. */
int ds_pg_instance_stop(ds_pg_instance_t *inst);

/* True if a postmaster answers for this data directory (pg_ctl status). */
bool ds_pg_instance_running(ds_pg_instance_t *inst);

/* A libpq conninfo string for role, database `dossier` (or `postgres` for DS_PG_ROLE_SUPER),
 * with the role's password: 0 and *out (free() it after wiping it with OPENSSL_cleanse()), or
 * -ENOENT before the cluster was ever initialized. */
int ds_pg_instance_conninfo(const ds_pg_instance_t *inst, ds_pg_role_t role, char **out);

/* The socket directory and the binaries' directory (owned by the instance). */
const char *ds_pg_instance_socket_dir(const ds_pg_instance_t *inst);
const char *ds_pg_instance_bindir(const ds_pg_instance_t *inst);

/* Releases (as ds_pg_instance_release()) and frees; NULL is fine. */
void ds_pg_instance_free(ds_pg_instance_t **inst);
