/* cli_user: `dossier user create|list|deactivate|reactivate|reset-password`, the operator's
 * handle on a tenant's users, against the configured database as the owner role.
 *
 * Every statement runs in a transaction that sets the tenant (set_config('app.tenant_id', id,
 * true)): the owner is subject to row-level security like the application. Every change goes
 * through the same SQL functions the HTTP API calls (schema/migrations/0007_access.sql: the
 * plan's user limit, session revocation) and is recorded in the tenant's audit chain
 * (dossier.audit_append, actor_type 'operator', actor_label "<os user>: dossier user <cmd>")
 * in the same transaction. Passwords come from standard input only (never argv, where ps shows
 * them), must meet the policy of actors/password.h, are hashed with argon2id before the
 * transaction starts and wiped after; no password material reaches the audit log. */
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "actors/app.h"
#include "actors/cli.h"
#include "actors/db.h"
#include "actors/password.h"
#include "actors/tenants.h"
#include "config/config.h"
#include "runtime/mem.h"

static const char user_help[] =
    "Usage: dossier user <command> --tenant SLUG [options]\n"
    "\n"
    "Commands:\n"
    "  create --email EMAIL --password-stdin [--role ROLE]... [--display-name NAME]\n"
    "                     create an active user (roles: viewer (default), editor, admin),\n"
    "                     within the tenant's max_users plan limit\n"
    "  list               list the tenant's users\n"
    "  deactivate --email EMAIL\n"
    "                     deactivate a user and revoke its sessions\n"
    "  reactivate --email EMAIL\n"
    "                     make a deactivated user active again (within max_users)\n"
    "  reset-password --email EMAIL --password-stdin\n"
    "                     set a new password and revoke the user's sessions\n"
    "\n"
    "Options:\n"
    "  --tenant SLUG      the tenant (required)\n"
    "  --password-stdin   read the password from standard input (one trailing newline is\n"
    "                     dropped): 12 to 256 characters of at least two kinds (lower-case,\n"
    "                     upper-case, digits, others), no control characters\n" DS_APP_OPTS_HELP
    "  --json             machine-readable output\n"
    "  -h, --help         show this help\n"
    "\n"
    "Every change is recorded in the tenant's audit log.\n"
    "Exit status: 0 ok, 1 failure (e.g. no such user, email taken, plan limit reached,\n"
    "password refused), 2 usage error.\n";

enum {
    USER_MAX_ROLES = 3,
};

typedef struct user_args {
    ds_app_opts_t app;
    const char *sub;
    const char *tenant;
    const char *email;
    const char *display_name;
    const char *roles[USER_MAX_ROLES];
    int nroles;
    bool password_stdin;
    bool json;
    bool help;
} user_args_t;

/* What a command works with once the database is reached. */
typedef struct user_ctx {
    PGconn *conn;
    const user_args_t *args;
    const ds_tenant_entry_t *tenant;
    char label[160];      /* the audit actor_label */
    const char *password; /* argon2id hash (PHC string): create, reset-password; or NULL */
} user_ctx_t;

/* --role ROLE: one of the three, each once (a repeat is ignored). */
static int user_add_role(user_args_t *a, const char *role)
{
    if (strcmp(role, "viewer") != 0 && strcmp(role, "editor") != 0 && strcmp(role, "admin") != 0) {
        return ds_cli_usage_error("user", "unknown role (viewer, editor or admin)", role);
    }
    for (int i = 0; i < a->nroles; i++) {
        if (strcmp(a->roles[i], role) == 0) {
            return DS_CLI_OK;
        }
    }
    a->roles[a->nroles++] = role;
    return DS_CLI_OK;
}

static int user_parse(int argc, char **argv, user_args_t *a)
{
    static const char *const valued[] = {"--tenant", "--email", "--display-name", "--role"};
    for (int i = 2; i < argc; i++) {
        int taken = ds_app_take_opt("user", argc, argv, &i, &a->app);
        if (taken == 1) {
            continue;
        }
        if (taken != 0) {
            return taken;
        }
        const char *arg = argv[i];
        const char **slots[] = {&a->tenant, &a->email, &a->display_name, NULL};
        int k = 0;
        while (k < 4 && !ds_cli_is_opt(arg, valued[k])) {
            k++;
        }
        const char *value = NULL;
        if (k < 4 && ds_cli_opt_value("user", argc, argv, &i, valued[k], &value) != 0) {
            return DS_CLI_USAGE;
        }
        int rc = DS_CLI_OK;
        if (k < 3) {
            *slots[k] = value;
        } else if (k == 3) {
            rc = user_add_role(a, value);
        } else if (strcmp(arg, "--password-stdin") == 0) {
            a->password_stdin = true;
        } else if (strcmp(arg, "--json") == 0) {
            a->json = true;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            a->help = true;
        } else {
            rc = ds_cli_usage_error("user", "unknown argument", arg);
        }
        if (rc != DS_CLI_OK) {
            return rc;
        }
    }
    return DS_CLI_OK;
}

/* Checks that the command got the options it needs, and no option it would ignore. */
static int user_check(const user_args_t *a)
{
    const char *s = a->sub;
    bool create = strcmp(s, "create") == 0;
    bool list = strcmp(s, "list") == 0;
    bool wants_password = create || strcmp(s, "reset-password") == 0;
    if (a->tenant == NULL) {
        return ds_cli_usage_error("user", "needs --tenant SLUG for", s);
    }
    if (!list && a->email == NULL) {
        return ds_cli_usage_error("user", "needs --email EMAIL for", s);
    }
    if (list && a->email != NULL) {
        return ds_cli_usage_error("user", "--email does not apply to", s);
    }
    if (wants_password != a->password_stdin) {
        return ds_cli_usage_error(
            "user", wants_password ? "needs --password-stdin for" : "--password-stdin is not for",
            s);
    }
    if (!create && (a->nroles > 0 || a->display_name != NULL)) {
        return ds_cli_usage_error("user", "--role and --display-name are only for create", s);
    }
    return DS_CLI_OK;
}

/* Reads the password from standard input, drops one trailing newline (\n or \r\n), checks
 * the policy and hashes it into *hash (malloc'ed). 0, or DS_CLI_FAIL (printed). */
static int user_read_password(const ds_password_cost_t *cost, char **hash)
{
    char buf[DS_PASSWORD_MAX_BYTES + 3];
    size_t n = fread(buf, 1, sizeof(buf), stdin);
    int rc = DS_CLI_OK;
    if (ferror(stdin)) {
        (void)fprintf(stderr, "dossier: cannot read the password from standard input\n");
        rc = DS_CLI_FAIL;
    }
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        n -= n > 0 && buf[n - 1] == '\r' ? 1 : 0;
    }
    const char *why = NULL;
    if (rc == DS_CLI_OK && ds_password_policy_check(buf, n, &why) < 0) {
        (void)fprintf(stderr, "dossier: password refused: it %s\n", why);
        rc = DS_CLI_FAIL;
    }
    char out[DS_PASSWORD_ENCODED_MAX];
    if (rc == DS_CLI_OK && ds_password_hash_cost(cost, buf, n, out) < 0) {
        (void)fprintf(stderr, "dossier: could not hash the password\n");
        rc = DS_CLI_FAIL;
    }
    if (rc == DS_CLI_OK) {
        *hash = ds_xstrdup(out);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    OPENSSL_cleanse(out, sizeof(out));
    return rc;
}

/* ---- the database --------------------------------------------------------------------------- */

static int user_fail(char **why, int rc, char *msg)
{
    if (*why == NULL) {
        *why = msg;
    } else {
        free(msg);
    }
    return rc;
}

/* Maps a failed statement to a code and a reason: -EEXIST (email taken), -EDQUOT (plan limit),
 * -ENOENT (no such user), -EINVAL (a constraint), -EIO (anything else). */
static int user_sql_error(const user_ctx_t *u, PGresult *res, char **why)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *email = u->args->email != NULL ? u->args->email : "";
    state = state != NULL ? state : "";
    constraint = constraint != NULL ? constraint : "";
    if (strcmp(state, "23505") == 0) {
        return user_fail(
            why, -EEXIST,
            ds_xasprintf("a user with email '%s' exists in tenant '%s'", email, u->tenant->slug));
    }
    if (strcmp(state, "DS001") == 0) {
        uint64_t max = u->tenant->plan.max_users;
        return user_fail(why, -EDQUOT,
                         ds_xasprintf("plan limit reached: tenant '%s' may have %llu active users"
                                      " (dossier tenant limit %s max_users=N raises it)",
                                      u->tenant->slug, (unsigned long long)max, u->tenant->slug));
    }
    if (strcmp(constraint, "users_email_format") == 0) {
        return user_fail(why, -EINVAL,
                         ds_xasprintf("bad email '%s': 3 to 254 characters with an '@'", email));
    }
    if (strcmp(constraint, "users_display_name_length") == 0) {
        return user_fail(why, -EINVAL, ds_xstrdup("a display name has at most 200 characters"));
    }
    return user_fail(why, strncmp(state, "23", 2) == 0 ? -EINVAL : -EIO,
                     ds_xstrdup(msg != NULL ? msg : PQerrorMessage(u->conn)));
}

/* Runs one statement with text parameters; *out (when not NULL) gets the result. */
static int user_exec(const user_ctx_t *u, const char *sql, int n, const char *const *params,
                     PGresult **out, char **why)
{
    PGresult *res = PQexecParams(u->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = user_sql_error(u, res, why);
        PQclear(res);
        return rc;
    }
    if (out != NULL) {
        *out = res;
    } else {
        PQclear(res);
    }
    return 0;
}

/* BEGIN and the tenant for this transaction. */
static int user_begin(const user_ctx_t *u, char **why)
{
    const char *p[] = {u->tenant->id};
    int rc = user_exec(u, "BEGIN", 0, NULL, NULL, why);
    if (rc == 0) {
        rc = user_exec(u, "SELECT pg_catalog.set_config('app.tenant_id', $1, true)", 1, p, NULL,
                       why);
    }
    return rc;
}

/* COMMIT if rc is 0, else ROLLBACK; returns rc or COMMIT's error. */
static int user_end(const user_ctx_t *u, int rc, char **why)
{
    if (rc == 0) {
        return user_exec(u, "COMMIT", 0, NULL, NULL, why);
    }
    PGresult *res = PQexec(u->conn, "ROLLBACK");
    PQclear(res);
    return rc;
}

/* The id of the user with the args' email (case-insensitive), into id. */
static int user_find(const user_ctx_t *u, char id[37], char **why)
{
    const char *p[] = {u->args->email};
    PGresult *res = NULL;
    int rc =
        user_exec(u,
                  "SELECT u.id FROM dossier.users u"
                  " WHERE u.tenant_id = dossier.current_tenant() AND lower(u.email) = lower($1)",
                  1, p, &res, why);
    if (rc == 0 && PQntuples(res) != 1) {
        rc =
            user_fail(why, -ENOENT,
                      ds_xasprintf("no user '%s' in tenant '%s'", u->args->email, u->tenant->slug));
    }
    if (rc == 0) {
        (void)snprintf(id, 37, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return rc;
}

/* Appends the operator's action on user id to the tenant's audit chain; details is a
 * jsonb_build_object() argument list over $3 (the email) and $4 (an extra text value). */
static int user_audit(const user_ctx_t *u, const char *action, const char *id, const char *details,
                      const char *extra, char **why)
{
    char *sql = ds_xasprintf("SELECT dossier.audit_append('operator', NULL, $1, '%s', 'user',"
                             " $2::uuid, NULL, NULL, 'success', jsonb_build_object(%s))",
                             action, details);
    const char *p[] = {u->label, id, u->args->email, extra};
    int rc = user_exec(u, sql, extra != NULL ? 4 : 3, p, NULL, why);
    free(sql);
    return rc;
}

#define USER_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
/* The user object of the HTTP API (contract "User"), as json. */
#define USER_JSON                                                                                  \
    "json_build_object('id', u.id, 'email', u.email, 'display_name', u.display_name, 'roles',"     \
    " u.roles, 'status', u.status, 'created_at', " USER_TIME(                                      \
        "u.created_at") ", 'updated_at', " USER_TIME("u.updated_at") ", "                          \
                                                                     "'last_login_at',"            \
                                                                     " " USER_TIME("u.last_login_" \
                                                                                   "at") ")"

/* Prints one user (JSON, or a line with note), or all of the tenant's (id NULL). */
static int user_print(const user_ctx_t *u, const char *id, const char *note, char **why)
{
    const char *p[] = {id};
    PGresult *res = NULL;
    int rc;
    if (id != NULL) {
        rc = user_exec(u,
                       "SELECT " USER_JSON "::text, u.email, u.id, array_to_string(u.roles, ',')"
                       " FROM dossier.users u WHERE u.tenant_id = dossier.current_tenant()"
                       " AND u.id = $1",
                       1, p, &res, why);
    } else {
        rc = user_exec(u,
                       "SELECT json_build_object('items', coalesce(json_agg(" USER_JSON
                       " ORDER BY lower(u.email)), '[]'))::text FROM dossier.users u"
                       " WHERE u.tenant_id = dossier.current_tenant()",
                       0, NULL, &res, why);
    }
    if (rc == 0 && PQntuples(res) != 1) {
        rc = user_fail(why, -ENOENT, ds_xstrdup("the user vanished"));
    }
    if (rc == 0 && u->args->json) {
        (void)printf("%s\n", PQgetvalue(res, 0, 0));
    } else if (rc == 0 && id != NULL) {
        (void)printf("%s %s (%s, roles %s) in tenant %s\n", note, PQgetvalue(res, 0, 1),
                     PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), u->tenant->slug);
    }
    PQclear(res);
    return rc;
}

static int user_print_table(const user_ctx_t *u, char **why)
{
    PGresult *res = NULL;
    int rc = user_exec(u,
                       "SELECT u.id, u.email, u.status, array_to_string(u.roles, ','),"
                       " u.display_name FROM dossier.users u"
                       " WHERE u.tenant_id = dossier.current_tenant() ORDER BY lower(u.email)",
                       0, NULL, &res, why);
    if (rc == 0) {
        (void)printf("%-36s  %-32s  %-11s  %-19s  %s\n", "ID", "EMAIL", "STATUS", "ROLES", "NAME");
        for (int r = 0; r < PQntuples(res); r++) {
            (void)printf("%-36s  %-32s  %-11s  %-19s  %s\n", PQgetvalue(res, r, 0),
                         PQgetvalue(res, r, 1), PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
                         PQgetvalue(res, r, 4));
        }
    }
    PQclear(res);
    return rc;
}

/* The plan's user limit as a bigint parameter: NULL when unlimited. */
static const char *user_max_param(const user_ctx_t *u, char buf[24])
{
    uint64_t max = u->tenant->plan.max_users;
    if (max == DS_PLAN_UNLIMITED) {
        return NULL;
    }
    (void)snprintf(buf, 24, "%llu", (unsigned long long)max);
    return buf;
}

static int user_create(const user_ctx_t *u, char **why)
{
    const user_args_t *a = u->args;
    char roles[40] = "{";
    size_t off = 1;
    for (int i = 0; i < a->nroles; i++) { /* at most 3 names of the 3 roles: it fits */
        off += (size_t)snprintf(roles + off, sizeof(roles) - off, "%s%s", i > 0 ? "," : "",
                                a->roles[i]);
    }
    (void)snprintf(roles + off, sizeof(roles) - off, "}");
    char max[24];
    const char *p[] = {a->email, a->display_name, u->password, a->nroles > 0 ? roles : NULL,
                       user_max_param(u, max)};
    PGresult *res = NULL;
    int rc = user_begin(u, why);
    if (rc == 0) {
        rc = user_exec(u, "SELECT dossier.user_create($1, $2, $3, $4::text[], $5::bigint)", 5, p,
                       &res, why);
    }
    char id[37] = "";
    if (rc == 0) {
        (void)snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
        rc = user_audit(u, "user.create", id,
                        "'email', $3::text, 'roles', (SELECT u.roles FROM dossier.users u"
                        " WHERE u.tenant_id = dossier.current_tenant() AND u.id = $2::uuid)",
                        NULL, why);
    }
    PQclear(res);
    if (rc == 0) {
        rc = user_print(u, id, "created user", why);
    }
    return user_end(u, rc, why);
}

/* deactivate, reactivate, reset-password: find the user, change it, audit the change (none
 * when there was nothing to change), print it. */
static int user_change(const user_ctx_t *u, char **why)
{
    const char *s = u->args->sub;
    bool reset = strcmp(s, "reset-password") == 0;
    bool deactivate = strcmp(s, "deactivate") == 0;
    char id[37] = "";
    char max[24];
    int rc = user_begin(u, why);
    if (rc == 0) {
        rc = user_find(u, id, why);
    }
    const char *p[] = {id, reset ? u->password : user_max_param(u, max)};
    PGresult *res = NULL;
    if (rc == 0) {
        rc = user_exec(u,
                       reset        ? "SELECT true, dossier.user_set_password($1, $2)"
                       : deactivate ? "SELECT changed, sessions_revoked FROM"
                                      " dossier.user_deactivate($1)"
                                    : "SELECT dossier.user_reactivate($1, $2::bigint), 0",
                       deactivate ? 1 : 2, p, &res, why);
    }
    bool changed = rc == 0 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    if (changed) {
        rc = user_audit(u,
                        reset        ? "user.password_reset"
                        : deactivate ? "user.deactivate"
                                     : "user.reactivate",
                        id, "'email', $3::text, 'sessions_revoked', $4::bigint",
                        PQgetvalue(res, 0, 1), why);
    }
    if (rc == 0) {
        rc = user_print(u, id,
                        !changed     ? "unchanged, already so:"
                        : reset      ? "new password for"
                        : deactivate ? "deactivated"
                                     : "reactivated",
                        why);
    }
    if (rc == 0 && changed && !u->args->json && strcmp(s, "reactivate") != 0) {
        (void)printf("sessions revoked: %s\n", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return user_end(u, rc, why);
}

static int user_run(user_ctx_t *u, char **why)
{
    const char *s = u->args->sub;
    if (strcmp(s, "list") != 0) {
        const struct passwd *pw = getpwuid(geteuid()); // NOLINT(concurrency-mt-unsafe): main thread
        (void)snprintf(u->label, sizeof(u->label), "%s: dossier user %s",
                       pw != NULL ? pw->pw_name : "unknown", s);
    }
    if (strcmp(s, "create") == 0) {
        return user_create(u, why);
    }
    if (strcmp(s, "list") != 0) {
        return user_change(u, why);
    }
    int rc = user_begin(u, why);
    if (rc == 0) {
        rc = u->args->json ? user_print(u, NULL, NULL, why) : user_print_table(u, why);
    }
    return user_end(u, rc, why);
}

/* Connects, loads the tenant's effective plan and runs the command. */
static int user_connect_run(const user_args_t *a, const char *password)
{
    ds_app_t app = {0};
    ds_db_t *db = NULL;
    PGconn *conn = NULL;
    ds_tenants_t *tenants = NULL;
    char *why = NULL;
    int rc = ds_app_init(&a->app, &app);
    if (rc == DS_CLI_OK &&
        (ds_app_open_db(&app, &db) < 0 || ds_db_connect(db, DS_PG_ROLE_OWNER, &conn) < 0)) {
        (void)fprintf(stderr, "dossier: cannot reach the database (see the log above)\n");
        rc = DS_CLI_FAIL;
    }
    if (rc == DS_CLI_OK && ds_tenants_load(conn, app.cfg, &tenants, &why) < 0) {
        rc = DS_CLI_FAIL;
    }
    user_ctx_t u = {.conn = conn, .args = a, .password = password};
    if (rc == DS_CLI_OK) {
        u.tenant = ds_tenants_find(tenants, a->tenant);
        if (u.tenant == NULL) {
            why = ds_xasprintf("no tenant '%s'", a->tenant);
            rc = DS_CLI_FAIL;
        }
    }
    if (rc == DS_CLI_OK && user_run(&u, &why) < 0) {
        rc = DS_CLI_FAIL;
    }
    if (why != NULL) {
        (void)fprintf(stderr, "dossier: %s\n", why);
    }
    free(why);
    ds_tenants_free(&tenants);
    PQfinish(conn);
    ds_db_close(&db);
    ds_app_fini(&app);
    return rc;
}

int ds_cli_user(int argc, char **argv)
{
    static const char *const subs[] = {"create", "list", "deactivate", "reactivate",
                                       "reset-password"};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        (void)fputs(user_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? DS_CLI_USAGE : DS_CLI_OK;
    }
    user_args_t a = {.sub = argv[1]};
    bool known = false;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        known = known || strcmp(a.sub, subs[i]) == 0;
    }
    if (!known) {
        return ds_cli_usage_error("user", "unknown command", a.sub);
    }
    int rc = user_parse(argc, argv, &a);
    if (rc == DS_CLI_OK && a.help) {
        (void)fputs(user_help, stdout);
        return DS_CLI_OK;
    }
    if (rc == DS_CLI_OK) {
        rc = user_check(&a);
    }
    char *password = NULL;
    if (rc == DS_CLI_OK && a.password_stdin) {
        /* The config says what a hash costs (auth.password_*). */
        ds_app_t app = {0};
        rc = ds_app_init(&a.app, &app);
        if (rc == DS_CLI_OK) {
            ds_password_cost_t cost = {app.cfg->auth.password_memory_kib,
                                       app.cfg->auth.password_iterations,
                                       app.cfg->auth.password_lanes};
            rc = user_read_password(&cost, &password);
        }
        ds_app_fini(&app);
    }
    if (rc == DS_CLI_OK) {
        rc = user_connect_run(&a, password);
    }
    free(password);
    return rc;
}
