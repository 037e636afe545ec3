/* cli_audit: `dossier audit verify|export` (docs/audit.md). Both connect as the owner role, as
 * the other operator commands do: verify must hold even against the role that can edit the
 * table, so it trusts nothing but the C walk (actors/audit/chain.h) and the checkpoint signed
 * with the key kept outside PostgreSQL (actors/audit/checkpoint.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/app.h"
#include "actors/audit/chain.h"
#include "actors/audit/checkpoint.h"
#include "actors/audit/verify.h"
#include "actors/cli.h"
#include "actors/db.h"
#include "config/config.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "transports/blob/blob.h"
#include "transports/blob/keystore.h"

static const char audit_help[] =
    "Usage: dossier audit <command> --tenant SLUG [options]\n"
    "\n"
    "Commands:\n"
    "  verify             check the tenant's audit chain: every entry's hash recomputed, every\n"
    "                     link, no gap, and the head against the latest signed checkpoint\n"
    "  export --json      the tenant's audit entries as JSON lines, oldest first, all columns\n"
    "                     (hashes in hex)\n"
    "\n"
    "Options:\n" DS_APP_OPTS_HELP "  --tenant SLUG      the tenant (required)\n"
    "  --json             machine-readable output (required by export)\n"
    "  --since TIME       export: entries created at or after TIME (RFC 3339)\n"
    "  --until TIME       export: entries created before TIME (RFC 3339)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 intact (verify) or done, 1 a broken chain or a failure, 2 usage error.\n";

enum {
    AUDIT_EXPORT_BATCH = 1000,
};

typedef struct audit_args {
    ds_app_opts_t app;
    const char *sub;
    const char *slug;
    const char *since;
    const char *until;
    bool json;
    bool help;
} audit_args_t;

/* ---- arguments ---- */

/* YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), RFC 3339 §5.6 (T and Z in either case). */
static bool audit_rfc3339(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i] != '\0'; i++) {
        char c = s[i];
        bool ok = shape[i] == 'd'   ? (c >= '0' && c <= '9')
                  : shape[i] == 'T' ? (c == 'T' || c == 't')
                                    : c == shape[i];
        if (!ok) {
            return false;
        }
    }
    if (s[i] == '.') {
        size_t digits = 0;
        while (s[++i] >= '0' && s[i] <= '9') {
            digits++;
        }
        if (digits == 0) {
            return false;
        }
    }
    if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0') {
        return true;
    }
    const char *z = s + i;
    return (z[0] == '+' || z[0] == '-') && z[1] >= '0' && z[1] <= '9' && z[2] >= '0' &&
           z[2] <= '9' && z[3] == ':' && z[4] >= '0' && z[4] <= '9' && z[5] >= '0' && z[5] <= '9' &&
           z[6] == '\0';
}

static int audit_parse(int argc, char **argv, audit_args_t *a)
{
    static const char *const valued[] = {"--tenant", "--since", "--until"};
    for (int i = 2; i < argc; i++) {
        int taken = ds_app_take_opt("audit", argc, argv, &i, &a->app);
        if (taken == 1) {
            continue;
        }
        if (taken != 0) {
            return taken;
        }
        const char *arg = argv[i];
        const char **slots[] = {&a->slug, &a->since, &a->until};
        bool done = false;
        for (size_t k = 0; k < 3 && !done; k++) {
            if (ds_cli_is_opt(arg, valued[k])) {
                if (ds_cli_opt_value("audit", argc, argv, &i, valued[k], slots[k]) != 0) {
                    return DS_CLI_USAGE;
                }
                done = true;
            }
        }
        if (done) {
            continue;
        }
        if (strcmp(arg, "--json") == 0) {
            a->json = true;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            a->help = true;
        } else {
            return ds_cli_usage_error("audit", "unknown argument", arg);
        }
    }
    return DS_CLI_OK;
}

static int audit_check(const audit_args_t *a)
{
    bool export = strcmp(a->sub, "export") == 0;
    if (a->slug == NULL) {
        return ds_cli_usage_error("audit", "needs --tenant SLUG", NULL);
    }
    if (export && !a->json) {
        return ds_cli_usage_error("audit", "export writes JSON lines: pass", "--json");
    }
    if (!export && (a->since != NULL || a->until != NULL)) {
        return ds_cli_usage_error("audit", "--since and --until are options of", "export");
    }
    if (a->since != NULL && !audit_rfc3339(a->since)) {
        return ds_cli_usage_error("audit", "--since takes an RFC 3339 time", a->since);
    }
    if (a->until != NULL && !audit_rfc3339(a->until)) {
        return ds_cli_usage_error("audit", "--until takes an RFC 3339 time", a->until);
    }
    return DS_CLI_OK;
}

/* ---- output ---- */

/* A JSON string (or null) of p[0..len). */
static void audit_json_str(FILE *f, const char *p, size_t len, bool null)
{
    if (null) {
        (void)fputs("null", f);
        return;
    }
    (void)fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            (void)fputc('\\', f);
            (void)fputc(c, f);
        } else if (c < 0x20 || c == 0x7f) {
            (void)fprintf(f, "\\u%04x", c);
        } else {
            (void)fputc(c, f);
        }
    }
    (void)fputc('"', f);
}

/* ---- the tenant, the stores, the checkpoint ---- */

static int audit_tenant_id(PGconn *conn, const char *slug, char id[DS_AUDIT_UUID_LEN + 1],
                           char **why)
{
    const char *p[] = {slug};
    PGresult *r = PQexecParams(conn, "SELECT id::text FROM dossier.tenants WHERE slug = $1", 1,
                               NULL, p, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        *why = ds_xasprintf("%s", PQresultErrorMessage(r));
        rc = -EIO;
    } else if (PQntuples(r) != 1 || PQgetlength(r, 0, 0) != DS_AUDIT_UUID_LEN) {
        *why = ds_xasprintf("no tenant '%s'", slug);
        rc = -ENOENT;
    } else {
        memcpy(id, PQgetvalue(r, 0, 0), DS_AUDIT_UUID_LEN + 1);
    }
    PQclear(r);
    return rc;
}

typedef struct audit_stores {
    ds_config_paths_t paths;
    ds_keystore_t *keys;
    ds_blob_store_t *blobs;
    ds_audit_signer_t *signer;
} audit_stores_t;

static void audit_stores_close(audit_stores_t *st)
{
    ds_audit_signer_free(&st->signer);
    ds_blob_free(&st->blobs);
    ds_keystore_free(&st->keys);
    ds_config_paths_fini(&st->paths);
}

/* Opens the key store, blob store and signing key, creating none of them. 0; -ENOENT when the
 * master key or the signing key is missing (what is open stays open); other errors. */
static int audit_stores_open(const ds_app_t *app, audit_stores_t *st)
{
    *st = (audit_stores_t){0};
    int rc = ds_config_resolve_paths(app->cfg, app->data_dir, &st->paths);
    if (rc < 0) {
        return rc;
    }
    char *tenant_dir = ds_xasprintf("%s/tenants", st->paths.keys_dir);
    ds_keystore_cfg_t kc = {
        .master_path = st->paths.master_key_file,
        .tenant_dir = tenant_dir,
        .create_master = false,
    };
    rc = ds_keystore_open(&kc, &st->keys);
    free(tenant_dir);
    if (rc == 0) {
        ds_blob_cfg_t bc = {
            .root = st->paths.blob_dir,
            .region = app->cfg->region,
            .keys = st->keys,
            .chunk_size = app->cfg->blob.chunk_size,
        };
        rc = ds_blob_open(&bc, &st->blobs);
    }
    if (rc == 0) {
        rc = ds_audit_signer_open(st->paths.keys_dir, false, &st->signer);
    }
    return rc;
}

/* The checkpoint verify checks: 0 and *cp; -ENOENT for none; 1 for a forged one (*why says
 * how); another error (*why). */
static int audit_checkpoint(const ds_app_t *app, const char *tenant, ds_audit_checkpoint_t *cp,
                            char **why)
{
    audit_stores_t st;
    int rc = audit_stores_open(app, &st);
    if (rc == -ENOENT && st.blobs != NULL) {
        ds_blob_info_t info;
        int stat = ds_blob_stat(st.blobs, tenant, DS_AUDIT_CP_LATEST, &info);
        if (stat == 0 || stat == -EBADMSG) {
            *why = ds_xasprintf("a checkpoint exists but the signing key %s/%s is missing",
                                st.paths.keys_dir, DS_AUDIT_KEY_FILE);
            rc = 1;
        }
    } else if (rc == 0) {
        rc = ds_audit_checkpoint_load(st.blobs, st.signer, tenant, cp);
        if (rc == -EKEYREJECTED || rc == DS_EDECODE || rc == -EBADMSG) {
            *why = ds_xasprintf("the latest checkpoint is %s",
                                rc == -EBADMSG     ? "damaged (it fails the blob store's "
                                                     "authentication)"
                                : rc == DS_EDECODE ? "not in the checkpoint format"
                                                   : "not signed by this region's audit key");
            rc = 1;
        }
    }
    if (rc < 0 && rc != -ENOENT) {
        *why = ds_xasprintf("cannot read the checkpoint: %s", ds_strerror(rc));
    }
    audit_stores_close(&st);
    return rc;
}

/* ---- verify ---- */

static void audit_print_text(const char *slug, const ds_audit_walk_t *w,
                             const ds_audit_checkpoint_t *cp, const char *forged)
{
    char text[200];
    ds_audit_problem_str(&w->problem, text, sizeof(text));
    bool intact = w->problem.kind == DS_AUDIT_INTACT;
    (void)printf("tenant %s (%s): %s%s%s\n", slug, w->tenant,
                 intact ? "intact" : "BROKEN: ", intact ? "" : text, forged != NULL ? forged : "");
    (void)printf("entries checked: %llu\n", (unsigned long long)w->checked);
    if (w->started) {
        char hex[DS_AUDIT_HEX_LEN + 1];
        ds_audit_hex(w->last_hash, DS_AUDIT_HASH_LEN, hex);
        (void)printf("head: seq %llu, hash %s\n", (unsigned long long)w->last_seq, hex);
    }
    if (cp != NULL) {
        (void)printf("checkpoint: seq %llu, signed at %s, key %s\n", (unsigned long long)cp->seq,
                     cp->signed_at, cp->key_id);
    } else if (forged == NULL) {
        (void)printf("checkpoint: none (a cut tail cannot be detected)\n");
    }
}

static void audit_print_json(const char *slug, const ds_audit_walk_t *w,
                             const ds_audit_checkpoint_t *cp, const char *forged)
{
    char text[200];
    ds_audit_problem_str(&w->problem, text, sizeof(text));
    if (forged != NULL) {
        (void)snprintf(text, sizeof(text), "forged checkpoint: %s", forged);
    }
    bool intact = w->problem.kind == DS_AUDIT_INTACT;
    (void)printf("{\"tenant\":\"%s\",\"tenant_id\":\"%s\",\"intact\":%s,\"problem\":", slug,
                 w->tenant, intact ? "true" : "false");
    if (intact) {
        (void)fputs("null", stdout);
    } else {
        (void)printf("{\"kind\":\"%s\",\"seq\":%llu,", ds_audit_kind_name(w->problem.kind),
                     (unsigned long long)w->problem.seq);
        if (w->problem.kind == DS_AUDIT_MISSING) {
            (void)printf("\"next_seq\":%llu,", (unsigned long long)w->problem.seq2);
        } else if (w->problem.kind == DS_AUDIT_TRUNCATED) {
            (void)printf("\"checkpoint_seq\":%llu,", (unsigned long long)w->problem.seq2);
        }
        (void)fputs("\"detail\":", stdout);
        audit_json_str(stdout, text, strlen(text), false);
        (void)fputc('}', stdout);
    }
    char hex[DS_AUDIT_HEX_LEN + 1];
    ds_audit_hex(w->last_hash, DS_AUDIT_HASH_LEN, hex);
    (void)printf(",\"entries_checked\":%llu,\"head_seq\":%llu,\"head_hash\":",
                 (unsigned long long)w->checked,
                 (unsigned long long)(w->started ? w->last_seq : 0));
    audit_json_str(stdout, hex, strlen(hex), !w->started);
    (void)fputs(",\"checkpoint\":", stdout);
    if (cp == NULL) {
        (void)fputs("null}\n", stdout);
        return;
    }
    ds_audit_hex(cp->hash, DS_AUDIT_HASH_LEN, hex);
    (void)printf("{\"seq\":%llu,\"hash\":\"%s\",\"signed_at\":\"%s\",\"key_id\":\"%s\"}}\n",
                 (unsigned long long)cp->seq, hex, cp->signed_at, cp->key_id);
}

static int audit_verify(PGconn *conn, const ds_app_t *app, const audit_args_t *a,
                        const char *tenant)
{
    ds_audit_checkpoint_t cp;
    char *why = NULL;
    /* The checkpoint before the chain's snapshot (actors/audit/verify.h). */
    int crc = audit_checkpoint(app, tenant, &cp, &why);
    if (crc < 0 && crc != -ENOENT) {
        (void)fprintf(stderr, "dossier: %s\n", why);
        free(why);
        return DS_CLI_FAIL;
    }
    ds_audit_walk_t w;
    ds_audit_walk_init(&w, tenant);
    if (crc == 1) {
        w.problem = (ds_audit_problem_t){.kind = DS_AUDIT_FORGED};
    } else {
        ds_audit_verify_opts_t o = {.checkpoint = crc == 0 ? &cp : NULL};
        int rc = ds_audit_verify_conn(conn, tenant, &o, &w, &why);
        if (rc < 0) {
            (void)fprintf(stderr, "dossier: could not read the audit chain: %s\n",
                          why != NULL ? why : ds_strerror(rc));
            free(why);
            return DS_CLI_FAIL;
        }
    }
    const ds_audit_checkpoint_t *used = crc == 0 ? &cp : NULL;
    const char *forged = crc == 1 ? why : NULL;
    if (a->json) {
        audit_print_json(a->slug, &w, used, forged);
    } else {
        audit_print_text(a->slug, &w, used, forged);
    }
    free(why);
    return w.problem.kind == DS_AUDIT_INTACT ? DS_CLI_OK : DS_CLI_FAIL;
}

/* ---- export ---- */

#define AUDIT_EXPORT_SQL                                                                         \
    "SELECT seq::text, id::text, tenant_id::text,"                                               \
    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor_type,"  \
    " actor_id::text, actor_label, action, object_type, object_id::text, ip::text, request_id,"  \
    " outcome, details::text, encode(prev_hash, 'hex'), encode(hash, 'hex')"                     \
    " FROM dossier.audit_log a WHERE a.tenant_id = $1::uuid AND a.seq >= $2::bigint"             \
    " AND (a.seq > $2::bigint OR a.id > $3::uuid) AND ($5::timestamptz IS NULL OR a.created_at " \
    ">= $5)"                                                                                     \
    " AND ($6::timestamptz IS NULL OR a.created_at < $6) ORDER BY a.seq, a.id LIMIT $4::int"

/* The JSON keys of AUDIT_EXPORT_SQL's columns; seq is a number, details raw JSON. */
static const char *const audit_export_keys[] = {
    "seq",         "id",      "tenant_id",   "created_at", "actor_type", "actor_id",
    "actor_label", "action",  "object_type", "object_id",  "ip",         "request_id",
    "outcome",     "details", "prev_hash",   "hash",
};

enum {
    AUDIT_EXPORT_NCOLS = sizeof(audit_export_keys) / sizeof(audit_export_keys[0]),
    AUDIT_EXPORT_DETAILS = 13,
};

static void audit_export_row(PGresult *r, int i)
{
    (void)fputc('{', stdout);
    for (int c = 0; c < AUDIT_EXPORT_NCOLS; c++) {
        const char *v = PQgetvalue(r, i, c);
        size_t len = (size_t)PQgetlength(r, i, c);
        bool null = PQgetisnull(r, i, c) != 0;
        (void)printf("%s\"%s\":", c > 0 ? "," : "", audit_export_keys[c]);
        if ((c == 0 || c == AUDIT_EXPORT_DETAILS) && !null) {
            (void)fwrite(v, 1, len, stdout); /* a bigint, and jsonb's JSON text */
        } else {
            audit_json_str(stdout, v, len, null);
        }
    }
    (void)fputs("}\n", stdout);
}

/* Writes every batch; *seq and *id carry the keyset. 0 or -EIO (*why). */
static int audit_export_batches(PGconn *conn, const audit_args_t *a, const char *tenant, char **why)
{
    char seq[24] = "0";
    char id[DS_AUDIT_UUID_LEN + 1] = "00000000-0000-0000-0000-000000000000";
    char limit[16];
    (void)snprintf(limit, sizeof(limit), "%d", AUDIT_EXPORT_BATCH);
    for (;;) {
        const char *p[] = {tenant, seq, id, limit, a->since, a->until};
        PGresult *r = PQexecParams(conn, AUDIT_EXPORT_SQL, 6, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != AUDIT_EXPORT_NCOLS) {
            *why = ds_xasprintf("%s", PQresultErrorMessage(r));
            PQclear(r);
            return -EIO;
        }
        int rows = PQntuples(r);
        for (int i = 0; i < rows; i++) {
            audit_export_row(r, i);
        }
        if (rows > 0) {
            (void)snprintf(seq, sizeof(seq), "%s", PQgetvalue(r, rows - 1, 0));
            (void)snprintf(id, sizeof(id), "%s", PQgetvalue(r, rows - 1, 1));
        }
        PQclear(r);
        if (rows < AUDIT_EXPORT_BATCH) {
            return 0;
        }
    }
}

static int audit_export(PGconn *conn, const audit_args_t *a, const char *tenant)
{
    char *why = NULL;
    const char *p[] = {tenant};
    PGresult *r = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -EIO;
    PQclear(r);
    if (rc == 0) {
        r = PQexecParams(conn, "SELECT set_config('app.tenant_id', $1, true)", 1, NULL, p, NULL,
                         NULL, 0);
        rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -EIO;
        PQclear(r);
    }
    if (rc == 0) {
        rc = audit_export_batches(conn, a, tenant, &why);
    }
    PQclear(PQexec(conn, rc == 0 ? "COMMIT" : "ROLLBACK"));
    if (rc < 0) {
        (void)fprintf(stderr, "dossier: could not export the audit log: %s\n",
                      why != NULL ? why : PQerrorMessage(conn));
    }
    free(why);
    return rc < 0 ? DS_CLI_FAIL : DS_CLI_OK;
}

/* ---- the command ---- */

int ds_cli_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        (void)fputs(audit_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? DS_CLI_USAGE : DS_CLI_OK;
    }
    audit_args_t a = {.sub = argv[1]};
    if (strcmp(a.sub, "verify") != 0 && strcmp(a.sub, "export") != 0) {
        return ds_cli_usage_error("audit", "unknown command", a.sub);
    }
    int rc = audit_parse(argc, argv, &a);
    if (rc == DS_CLI_OK && a.help) {
        (void)fputs(audit_help, stdout);
        return DS_CLI_OK;
    }
    if (rc == DS_CLI_OK) {
        rc = audit_check(&a);
    }
    if (rc != DS_CLI_OK) {
        return rc;
    }
    ds_app_t app = {0};
    ds_db_t *db = NULL;
    PGconn *conn = NULL;
    rc = ds_app_init(&a.app, &app);
    if (rc == DS_CLI_OK &&
        (ds_app_open_db(&app, &db) < 0 || ds_db_connect(db, DS_PG_ROLE_OWNER, &conn) < 0)) {
        (void)fprintf(stderr, "dossier: cannot reach the database (see the log above)\n");
        rc = DS_CLI_FAIL;
    }
    char tenant[DS_AUDIT_UUID_LEN + 1];
    char *why = NULL;
    if (rc == DS_CLI_OK && audit_tenant_id(conn, a.slug, tenant, &why) < 0) {
        (void)fprintf(stderr, "dossier: %s\n", why);
        rc = DS_CLI_FAIL;
    }
    free(why);
    if (rc == DS_CLI_OK) {
        rc = strcmp(a.sub, "verify") == 0 ? audit_verify(conn, &app, &a, tenant)
                                          : audit_export(conn, &a, tenant);
    }
    PQfinish(conn);
    ds_db_close(&db);
    ds_app_fini(&app);
    return rc;
}
