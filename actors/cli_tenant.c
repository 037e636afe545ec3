/* cli_tenant: `dossier tenant create|list|show|suspend|resume|limit` against the configured
 * database (the private cluster of the data directory by default). Every change is written to
 * the control plane's audit table in the same transaction (actors/control.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/app.h"
#include "actors/cli.h"
#include "actors/control.h"
#include "actors/db.h"
#include "config/config.h"
#include "runtime/mem.h"

static const char tenant_help[] =
    "Usage: dossier tenant <command> [options]\n"
    "\n"
    "Commands:\n"
    "  create --slug SLUG --name NAME [--plan PLAN] [--region REGION]\n"
    "                     create a tenant (plan: standard (default), professional,\n"
    "                     enterprise; region: the config's region by default)\n"
    "  list               list the tenants\n"
    "  show SLUG          one tenant, with its plan overrides\n"
    "  suspend SLUG       refuse the tenant's logins, tokens and API keys\n"
    "  resume SLUG        make a suspended tenant active again\n"
    "  limit SLUG KEY=VALUE | KEY=\n"
    "                     override one plan limit for the tenant (KEY= removes it); keys are\n"
    "                     the plan fields of docs/config.md\n"
    "\n"
    "Options:\n" DS_APP_OPTS_HELP "  --json             machine-readable output\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 ok, 1 failure (e.g. no such tenant), 2 usage error.\n";

typedef struct tenant_args {
    ds_app_opts_t app;
    const char *sub;
    const char *slug;
    const char *name;
    const char *plan;
    const char *region;
    const char *positional[2];
    int npositional;
    bool json;
    bool help;
} tenant_args_t;

static int tenant_parse(int argc, char **argv, tenant_args_t *a)
{
    static const char *const valued[] = {"--slug", "--name", "--plan", "--region"};
    for (int i = 2; i < argc; i++) {
        int taken = ds_app_take_opt("tenant", argc, argv, &i, &a->app);
        if (taken == 1) {
            continue;
        }
        if (taken != 0) {
            return taken;
        }
        const char *arg = argv[i];
        const char **slots[] = {&a->slug, &a->name, &a->plan, &a->region};
        bool done = false;
        for (size_t k = 0; k < 4 && !done; k++) {
            if (ds_cli_is_opt(arg, valued[k]) && strcmp(a->sub, "create") == 0) {
                if (ds_cli_opt_value("tenant", argc, argv, &i, valued[k], slots[k]) != 0) {
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
        } else if (arg[0] != '-' && a->npositional < 2) {
            a->positional[a->npositional++] = arg;
        } else {
            return ds_cli_usage_error("tenant", "unknown argument", arg);
        }
    }
    return DS_CLI_OK;
}

/* Checks that the command got the positional arguments it needs. */
static int tenant_check(const tenant_args_t *a)
{
    const char *s = a->sub;
    int want = strcmp(s, "create") == 0 || strcmp(s, "list") == 0 ? 0
               : strcmp(s, "limit") == 0                          ? 2
                                                                  : 1;
    if (a->npositional != want) {
        return ds_cli_usage_error("tenant",
                                  want == 0   ? "unexpected argument"
                                  : want == 1 ? "needs a tenant slug"
                                              : "needs a slug and KEY=VALUE",
                                  a->npositional > want ? a->positional[want] : s);
    }
    if (strcmp(s, "create") == 0 && (a->slug == NULL || a->name == NULL)) {
        return ds_cli_usage_error("tenant", "create needs --slug and --name", NULL);
    }
    return DS_CLI_OK;
}

/* `limit SLUG KEY=VALUE`: the key and value are checked against the plan table first. */
static int tenant_limit(PGconn *conn, const ds_app_t *app, const tenant_args_t *a,
                        const ds_control_actor_t *actor, char **why)
{
    char *kv = ds_xstrdup(a->positional[1]);
    char *eq = strchr(kv, '=');
    int rc = -EINVAL;
    if (eq == NULL) {
        *why = ds_xasprintf("expected KEY=VALUE or KEY=, got '%s'", a->positional[1]);
        free(kv);
        return rc;
    }
    *eq = '\0';
    const char *value = eq + 1;
    ds_plan_t probe = *ds_config_plan(app->cfg, DS_PLAN_STANDARD);
    ds_config_error_t err = {0};
    uint64_t v = 0;
    if (ds_plan_get(&probe, kv, &v) < 0) {
        *why = ds_xasprintf("%s: not a plan limit (see docs/config.md)", kv);
    } else if (value[0] != '\0' &&
               (ds_plan_override(&probe, kv, value, &err) < 0 || ds_plan_get(&probe, kv, &v) < 0)) {
        *why = ds_xasprintf("%s: %s", kv, err.message);
    } else {
        ds_override_op_t op = value[0] == '\0'         ? DS_OVERRIDE_REMOVE
                              : v == DS_PLAN_UNLIMITED ? DS_OVERRIDE_UNLIMITED
                                                       : DS_OVERRIDE_SET;
        rc = ds_control_tenant_override(conn, actor, a->positional[0], kv, op, v, why);
    }
    free(kv);
    return rc;
}

static int tenant_run(PGconn *conn, const ds_app_t *app, const tenant_args_t *a, char **why)
{
    ds_control_actor_t actor = {.who = ds_control_cli_actor()};
    const char *s = a->sub;
    int rc = 0;
    if (strcmp(s, "create") == 0) {
        ds_tenant_spec_t spec = {
            .slug = a->slug,
            .name = a->name,
            .plan = a->plan != NULL ? a->plan : "standard",
            .region = a->region != NULL ? a->region : app->cfg->region,
        };
        char id[37];
        rc = ds_control_tenant_create(conn, &actor, &spec, id, why);
        if (rc == 0) {
            rc = ds_control_tenant_print(conn, a->slug, a->json, why);
        }
    } else if (strcmp(s, "list") == 0 || strcmp(s, "show") == 0) {
        rc = ds_control_tenant_print(conn, a->npositional > 0 ? a->positional[0] : NULL, a->json,
                                     why);
    } else if (strcmp(s, "suspend") == 0 || strcmp(s, "resume") == 0) {
        rc = ds_control_tenant_set_status(conn, &actor, a->positional[0],
                                          strcmp(s, "suspend") == 0 ? "suspended" : "active", why);
        if (rc == 0) {
            rc = ds_control_tenant_print(conn, a->positional[0], a->json, why);
        }
    } else {
        rc = tenant_limit(conn, app, a, &actor, why);
        if (rc == 0) {
            rc = ds_control_tenant_print(conn, a->positional[0], a->json, why);
        }
    }
    return rc;
}

int ds_cli_tenant(int argc, char **argv)
{
    static const char *const subs[] = {"create", "list", "show", "suspend", "resume", "limit"};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        (void)fputs(tenant_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? DS_CLI_USAGE : DS_CLI_OK;
    }
    tenant_args_t a = {.sub = argv[1]};
    bool known = false;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        known = known || strcmp(a.sub, subs[i]) == 0;
    }
    if (!known) {
        return ds_cli_usage_error("tenant", "unknown command", a.sub);
    }
    int rc = tenant_parse(argc, argv, &a);
    if (rc == DS_CLI_OK && a.help) {
        (void)fputs(tenant_help, stdout);
        return DS_CLI_OK;
    }
    if (rc == DS_CLI_OK) {
        rc = tenant_check(&a);
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
    char *why = NULL;
    if (rc == DS_CLI_OK && tenant_run(conn, &app, &a, &why) < 0) {
        (void)fprintf(stderr, "dossier: %s\n", why != NULL ? why : "tenant command failed");
        rc = DS_CLI_FAIL;
    }
    free(why);
    PQfinish(conn);
    ds_db_close(&db);
    ds_app_fini(&app);
    return rc;
}
