/* db: the database of a command or node. See actors/db.h. */
#include "actors/db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "runtime/log.h"
#include "runtime/mem.h"

struct ds_db {
    ds_pg_instance_t *inst; /* NULL with configured DSNs */
    char *dsn;
    char *owner_dsn;
};

int ds_db_open(const ds_db_opts_t *opts, ds_db_t **out)
{
    ds_db_t *db = ds_xcalloc(1, sizeof(*db));
    int rc = 0;
    if (opts->dsn != NULL && opts->dsn[0] != '\0') {
        if (opts->owner_dsn == NULL || opts->owner_dsn[0] == '\0') {
            ds_log_error("database.dsn is set but database.owner_dsn is not", DS_LOG_END);
            rc = -EINVAL;
        } else {
            db->dsn = ds_xstrdup(opts->dsn);
            db->owner_dsn = ds_xstrdup(opts->owner_dsn);
        }
    } else {
        rc = ds_pg_instance_open(opts->data_dir, NULL, &db->inst);
        if (rc == 0) {
            rc = ds_pg_instance_start(db->inst, NULL);
        }
    }
    if (rc < 0) {
        ds_db_close(&db);
        return rc;
    }
    *out = db;
    return 0;
}

int ds_db_conninfo(ds_db_t *db, ds_pg_role_t role, char **out)
{
    if (db->inst != NULL) {
        return ds_pg_instance_conninfo(db->inst, role, out);
    }
    if (role == DS_PG_ROLE_SUPER) {
        return -ENOENT;
    }
    *out = ds_xstrdup(role == DS_PG_ROLE_OWNER ? db->owner_dsn : db->dsn);
    return 0;
}

/* Server notices ("schema already exists, skipping") go to the debug log, not the console. */
static void db_notice(void *arg, const char *message)
{
    (void)arg;
    size_t n = strcspn(message, "\n");
    char line[512];
    (void)snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1),
                   message);
    ds_log_debug("postgres notice", DS_LOG_STR("notice", line), DS_LOG_END);
}

int ds_db_connect(ds_db_t *db, ds_pg_role_t role, PGconn **out)
{
    char *conninfo = NULL;
    int rc = ds_db_conninfo(db, role, &conninfo);
    if (rc < 0) {
        return rc;
    }
    PGconn *conn = PQconnectdb(conninfo);
    OPENSSL_cleanse(conninfo, strlen(conninfo));
    free(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        ds_log_error("could not connect to PostgreSQL", DS_LOG_STR("error", PQerrorMessage(conn)),
                     DS_LOG_END);
        PQfinish(conn);
        return -EIO;
    }
    PQsetNoticeProcessor(conn, db_notice, NULL);
    *out = conn;
    return 0;
}

ds_pg_instance_t *ds_db_instance(ds_db_t *db)
{
    return db->inst;
}

void ds_db_close(ds_db_t **dbp)
{
    ds_db_t *db = *dbp;
    if (db == NULL) {
        return;
    }
    ds_pg_instance_free(&db->inst);
    if (db->dsn != NULL) {
        OPENSSL_cleanse(db->dsn, strlen(db->dsn));
        free(db->dsn);
    }
    if (db->owner_dsn != NULL) {
        OPENSSL_cleanse(db->owner_dsn, strlen(db->owner_dsn));
        free(db->owner_dsn);
    }
    free(db);
    *dbp = NULL;
}
