/* serve: `dossier serve`, one node in the foreground.
 *
 * Signals: SIGTERM and SIGINT are blocked before any thread starts, so every thread inherits
 * the mask and only the main thread, in sigwait(), ever takes them; no handler runs in a
 * worker. SIGPIPE is blocked too: a write to a closed socket fails with EPIPE instead of
 * killing the node. On a signal the node drains (DS_CLI_SERVE_DRAIN_NS) and exits 0, or 1 if
 * some actor had to be stopped with its queue undelivered. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/api/api_msgs.h"
#include "actors/app.h"
#include "actors/audit/checkpointer.h"
#include "actors/cli.h"
#include "actors/dbprobe.h"
#include "actors/gateway.h"
#include "actors/heartbeat.h"
#include "actors/identity/signing.h"
#include "actors/password.h"
#include "actors/storage.h"
#include "config/config.h"
#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/rt.h"
#include "transports/http/http_msgs.h"
#include "transports/http/server.h"
#include "transports/nng/cluster.h"
#include "transports/pg/migrate.h"
#include "transports/pg/pg_msgs.h"
#include "transports/pg/pool.h"

enum {
    DS_CLI_NODE_MAX = 65535,
    DS_CLI_WORKERS_MAX = 1024,
    DS_CLI_HEARTBEAT_MS_DEFAULT = 10000,
    DS_CLI_HEARTBEAT_MS_MAX = 86400000, /* a day */
    DS_CLI_PEERS_MAX = 64,
    DS_CLI_HTTP_LOOPS_MAX = 64, /* http.loops' ceiling (config/keys.c) */
};

#define DS_CLI_SERVE_DRAIN_NS (INT64_C(10) * 1000000000)

typedef struct serve_opts {
    ds_app_opts_t app;
    uint64_t node;    /* 0: node.id of the config */
    uint64_t workers; /* 0: node.workers of the config (0 there: one per online core) */
    uint64_t heartbeat_ms;
    const char *listen;      /* --cluster-listen, or NULL */
    const char *http_listen; /* --listen HOST:PORT, or NULL for http.listen */
    ds_cluster_peer_t peers[DS_CLI_PEERS_MAX];
    size_t npeers;
    bool help;
} serve_opts_t;

static const char serve_help[] =
    "Usage: dossier serve [options]\n"
    "\n"
    "Runs a Dossier node in the foreground until SIGTERM or SIGINT, then drains and exits.\n"
    "Logs are JSON lines on stderr; DOSSIER_LOG_LEVEL=debug|info|warn|error|off sets the level.\n"
    "\n"
    "With no database configured it runs a private PostgreSQL cluster under the data\n"
    "directory (created, migrated and given a demo tenant on first start; the demo admin's\n"
    "password is printed once on standard output) and stops it when the node stops.\n"
    "\n"
    "Options:\n" DS_APP_OPTS_HELP
    "  --listen HOST:PORT serve the HTTP API there (default: http.listen, 127.0.0.1:8080;\n"
    "                     [::1]:PORT for IPv6, port 0 picks one)\n"
    "  --node N           this node's id, 1 to 65535 (default: node.id of the config, 1)\n"
    "  --workers N        worker threads, 1 to 1024 (default: node.workers, else one per\n"
    "                     online core)\n"
    "  --heartbeat-ms N   period of the heartbeat log line in ms (default 10000)\n"
    "  --cluster-listen URL\n"
    "                     link with other dossier processes: listen on URL (nng: ipc:///path\n"
    "                     or tcp://127.0.0.1:PORT)\n"
    "  --peer NODE=URL    a peer node and the URL it listens on (repeatable; needs\n"
    "                     --cluster-listen)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit status: 0 stopped cleanly, 1 failure or an incomplete drain, 2 usage error.\n";

/* Reads the number of option `name` at argv[*i], as "--name=N" or "--name N". */
static int serve_number(int argc, char **argv, int *i, const char *name, uint64_t min, uint64_t max,
                        uint64_t *out)
{
    const char *arg = argv[*i];
    const char *value;
    size_t n = strlen(name);
    if (arg[n] == '=') {
        value = arg + n + 1;
    } else if (*i + 1 < argc) {
        *i += 1;
        value = argv[*i];
    } else {
        return ds_cli_usage_error("serve", "missing value for option", name);
    }
    if (ds_cli_parse_uint(value, min, max, out) < 0) {
        (void)fprintf(stderr, "dossier: %s takes a whole number from %llu to %llu\n", name,
                      (unsigned long long)min, (unsigned long long)max);
        return ds_cli_usage_error("serve", "invalid value", value);
    }
    return 0;
}

/* The value of option `name` at argv[*i], as "--name=V" or "--name V"; NULL after a usage
 * error was reported. */
static const char *serve_value(int argc, char **argv, int *i, const char *name)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (arg[n] == '=') {
        return arg + n + 1;
    }
    if (*i + 1 < argc) {
        *i += 1;
        return argv[*i];
    }
    (void)ds_cli_usage_error("serve", "missing value for option", name);
    return NULL;
}

/* --peer NODE=URL */
static int serve_peer(int argc, char **argv, int *i, serve_opts_t *o)
{
    const char *v = serve_value(argc, argv, i, "--peer");
    if (v == NULL) {
        return DS_CLI_USAGE;
    }
    const char *eq = strchr(v, '=');
    char num[8] = {0};
    uint64_t node = 0;
    if (eq == NULL || eq == v || (size_t)(eq - v) >= sizeof(num) || eq[1] == '\0') {
        return ds_cli_usage_error("serve", "--peer takes NODE=URL", v);
    }
    memcpy(num, v, (size_t)(eq - v));
    if (ds_cli_parse_uint(num, 1, DS_CLI_NODE_MAX, &node) < 0) {
        return ds_cli_usage_error("serve", "invalid peer node", v);
    }
    if (o->npeers == DS_CLI_PEERS_MAX) {
        return ds_cli_usage_error("serve", "too many peers", v);
    }
    o->peers[o->npeers++] = (ds_cluster_peer_t){.node = (uint16_t)node, .url = eq + 1};
    return 0;
}

static int serve_parse_cluster(int argc, char **argv, int *i, serve_opts_t *o)
{
    if (ds_cli_is_opt(argv[*i], "--peer")) {
        return serve_peer(argc, argv, i, o);
    }
    o->listen = serve_value(argc, argv, i, "--cluster-listen");
    return o->listen != NULL ? 0 : DS_CLI_USAGE;
}

static int serve_parse(int argc, char **argv, serve_opts_t *o)
{
    *o = (serve_opts_t){.node = 0, .workers = 0, .heartbeat_ms = DS_CLI_HEARTBEAT_MS_DEFAULT};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int rc = ds_app_take_opt("serve", argc, argv, &i, &o->app);
        if (rc == 1) {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            o->help = true;
        } else if (ds_cli_is_opt(arg, "--node")) {
            rc = serve_number(argc, argv, &i, "--node", 1, DS_CLI_NODE_MAX, &o->node);
        } else if (ds_cli_is_opt(arg, "--workers")) {
            rc = serve_number(argc, argv, &i, "--workers", 1, DS_CLI_WORKERS_MAX, &o->workers);
        } else if (ds_cli_is_opt(arg, "--heartbeat-ms")) {
            rc = serve_number(argc, argv, &i, "--heartbeat-ms", 1, DS_CLI_HEARTBEAT_MS_MAX,
                              &o->heartbeat_ms);
        } else if (ds_cli_is_opt(arg, "--listen")) {
            rc = ds_cli_opt_value("serve", argc, argv, &i, "--listen", &o->http_listen);
        } else if (ds_cli_is_opt(arg, "--cluster-listen") || ds_cli_is_opt(arg, "--peer")) {
            rc = serve_parse_cluster(argc, argv, &i, o);
        } else if (arg[0] == '-') {
            rc = ds_cli_usage_error("serve", "unknown option", arg);
        } else {
            rc = ds_cli_usage_error("serve", "unexpected argument", arg);
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (o->npeers > 0 && o->listen == NULL) {
        return ds_cli_usage_error("serve", "--peer needs", "--cluster-listen");
    }
    return 0;
}

static const char *serve_signal_name(int sig)
{
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    default:
        return "unknown";
    }
}

/* Starts the runtime and the system actors. 0, or an error already logged. */
static int serve_start(ds_rt_t *rt, const serve_opts_t *o)
{
    int rc = ds_rt_start(rt);
    if (rc < 0) {
        ds_log_error("could not start runtime", DS_LOG_STR("error", ds_strerror(rc)), DS_LOG_END);
        return rc;
    }
    ds_heartbeat_cfg_t hb = {.period_ns = (int64_t)o->heartbeat_ms * 1000000};
    ds_actor_id_t id;
    rc = ds_spawn(rt, &ds_heartbeat_behaviour, &hb, NULL, &id);
    if (rc < 0) {
        ds_log_error("could not spawn actor", DS_LOG_STR("actor", "heartbeat"),
                     DS_LOG_STR("error", ds_strerror(rc)), DS_LOG_END);
        return rc;
    }
    return 0;
}

/* The database pool on a loop thread of its own, each tenant's limits from its plan, and a
 * probe that proves the path works. 0, or an error already logged. */
static int serve_start_pool(ds_rt_t *rt, const ds_app_t *app, const ds_storage_t *st,
                            ds_loop_t **loopp, ds_actor_id_t *poolp)
{
    int rc = ds_loop_new(rt, "pg", loopp);
    if (rc == 0) {
        rc = ds_loop_start(*loopp);
    }
    const ds_plan_t *std = ds_config_plan(app->cfg, DS_PLAN_STANDARD);
    ds_pg_pool_config_t pc = {
        .conninfo = st->app_conninfo,
        .size = app->cfg->database.pool_size,
        .pipeline_depth = app->cfg->database.pipeline_depth,
        .connect_timeout_ms = app->cfg->database.connect_timeout_ms,
        .backoff_min_ms = app->cfg->database.reconnect_min_ms,
        .backoff_max_ms = app->cfg->database.reconnect_max_ms,
        .tenant = {.weight = std->scheduler_weight,
                   .max_conns = std->pool_connections,
                   .statement_timeout_ms = std->statement_timeout_ms},
    };
    ds_actor_id_t pool = {0};
    if (rc == 0) {
        rc = ds_pg_pool_start(*loopp, &pc, &pool);
    }
    *poolp = pool;
    for (size_t i = 0; rc == 0 && i < st->tenants->count; i++) {
        const ds_tenant_entry_t *e = &st->tenants->items[i];
        ds_pg_tenant_t lim = {
            .tenant = {.ptr = e->id, .len = (uint32_t)strlen(e->id)},
            .weight = e->plan.scheduler_weight,
            .max_conns = e->plan.pool_connections,
            .timeout_ms = e->plan.statement_timeout_ms,
        };
        ds_msg_t *m = NULL;
        rc = ds_pg_tenant_new(&lim, &m);
        if (rc == 0) {
            rc = ds_send_from(rt, pool, &m);
        }
        ds_msg_free(&m);
    }
    ds_actor_id_t probe;
    ds_msg_t *go = NULL;
    if (rc == 0) {
        rc = ds_spawn(rt, &ds_dbprobe_behaviour, &pool, NULL, &probe);
    }
    if (rc == 0) {
        rc = ds_pg_go_new(NULL, &go);
    }
    if (rc == 0) {
        rc = ds_send_from(rt, probe, &go);
    }
    ds_msg_free(&go);
    if (rc < 0) {
        ds_log_error("could not start the database pool", DS_LOG_STR("error", ds_strerror(rc)),
                     DS_LOG_END);
    }
    return rc;
}

/* HOST:PORT, [V6]:PORT: the host into host (size n) and the port. 0, or -EINVAL. */
static int serve_split_listen(const char *listen, char *host, size_t n, uint16_t *port)
{
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t hlen = colon != NULL ? (size_t)(colon - listen) : 0;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    uint64_t p = 0;
    if (colon == NULL || hlen == 0 || hlen >= n ||
        ds_cli_parse_uint(colon + 1, 0, UINT16_MAX, &p) < 0) {
        return -EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* The highest migration version compiled in: what /readyz expects of the database. */
static int64_t serve_schema_version(void)
{
    ds_migration_set_t *set = NULL;
    int64_t v = -1;
    if (ds_migrate_set_embedded(&set) == 0 && set->count > 0) {
        v = set->items[set->count - 1].version;
    }
    ds_migrate_set_free(&set);
    return v;
}

/* The HTTP API on a loop thread of its own, answered by the gateway actor, which hands /v1
 * requests to the tenants' session actors (env: their shared environment, filled here and
 * kept by the caller until the loop is freed). 0, or an error already logged. */
_Static_assert(DS_CONFIG_CORS_ORIGINS_MAX == DS_HTTP_CORS_ORIGINS_MAX &&
                   DS_CONFIG_ORIGIN_MAX == DS_HTTP_ORIGIN_MAX &&
                   DS_CONFIG_TRUSTED_PROXIES_MAX == DS_HTTP_TRUSTED_PROXIES_MAX,
               "the config's list bounds are the gateway's");

/* The gateway's settings from the config's http section (config/dossier.yaml; the loader
 * checked every range). The lists point into cfg; the server copies them. */
static void serve_http_settings(const ds_config_t *cfg, ds_http_config_t *hc)
{
    hc->limits = (ds_http_limits_t){
        .max_header_bytes = cfg->http.limits.max_header_bytes,
        .max_headers = cfg->http.limits.max_headers,
        .max_url = cfg->http.limits.max_url,
        .max_body = cfg->http.limits.max_body,
        .stream_threshold = cfg->http.limits.stream_threshold,
    };
    hc->header_timeout_ms = cfg->http.header_timeout_ms;
    hc->idle_timeout_ms = cfg->http.idle_timeout_ms;
    hc->handler_timeout_ms = cfg->http.handler_timeout_ms;
    hc->max_connections = cfg->http.max_connections;
    hc->max_connections_ip = cfg->http.max_connections_ip;
    hc->max_pipeline = cfg->http.max_pipeline;
    hc->max_output_bytes = cfg->http.max_output_bytes;
    hc->retry_after_s = cfg->http.retry_after_s;
    hc->stream_window = cfg->http.stream_window;
    hc->trusted_proxies = (const char *const *)cfg->http.trusted_proxies.items;
    hc->ntrusted_proxies = cfg->http.trusted_proxies.count;
    hc->cors_origins = (const char *const *)cfg->http.cors_origins.items;
    hc->ncors_origins = cfg->http.cors_origins.count;
}

/* How many HTTP loops: http.loops, or one per online core (at most DS_CLI_HTTP_LOOPS_MAX). */
static size_t serve_http_loops(const ds_app_t *app)
{
    size_t n = app->cfg->http.loops;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (size_t)cores : 1;
    }
    return n > DS_CLI_HTTP_LOOPS_MAX ? DS_CLI_HTTP_LOOPS_MAX : n;
}

/* The HTTP API on loop threads of its own (loops[0..n), kept by the caller until freed; NULL
 * past the last made), answered by the gateway actor, which hands /v1 requests to the tenants'
 * session actors (env: their shared environment, filled here). /healthz is answered on the
 * loops (transports/http/server.h, "Health"). Each loop has its own SO_REUSEPORT listener on
 * the port; connection limits count across them. 0, or an error already logged. */
static int serve_start_http(ds_rt_t *rt, const ds_app_t *app, const serve_opts_t *o,
                            const ds_storage_t *st, ds_api_env_t *env, ds_loop_t **loops)
{
    const char *listen = o->http_listen != NULL ? o->http_listen : app->cfg->http.listen;
    char host[64];
    uint16_t port = 0;
    if (serve_split_listen(listen, host, sizeof(host), &port) < 0) {
        ds_log_error("cannot listen: expected HOST:PORT", DS_LOG_STR("listen", listen), DS_LOG_END);
        return -EINVAL;
    }
    size_t n = serve_http_loops(app);
    ds_gateway_cfg_t gc = {.pool = env->pool,
                           .schema_version = serve_schema_version(),
                           .api = env,
                           .tenants = st->tenants};
    ds_actor_id_t gateway;
    int rc = ds_spawn(rt, &ds_gateway_behaviour, &gc, NULL, &gateway);
    ds_http_server_t *first = NULL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char name[DS_LOOP_NAME_MAX + 1];
        (void)snprintf(name, sizeof(name), "http-%zu", i);
        rc = ds_loop_new(rt, name, &loops[i]);
        ds_http_server_t *srv = NULL;
        if (rc == 0 && i == 0) {
            ds_http_config_t hc = {.host = host,
                                   .port = port,
                                   .handler = gateway,
                                   .health_path = "/healthz",
                                   .reuseport = n > 1};
            serve_http_settings(app->cfg, &hc);
            rc = ds_http_server_new(loops[i], &hc, &first);
            env->work_loop = loops[i];
        } else if (rc == 0) {
            rc = ds_http_server_add(first, loops[i], &srv);
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = ds_loop_start(loops[i]);
    }
    if (rc < 0) {
        ds_log_error("could not start the HTTP API", DS_LOG_STR("listen", listen),
                     DS_LOG_STR("error", ds_strerror(rc)), DS_LOG_END);
        return rc;
    }
    ds_log_info("http listening", DS_LOG_STR("host", host),
                DS_LOG_U64("port", ds_http_server_port(first)), DS_LOG_U64("loops", n), DS_LOG_END);
    return 0;
}

/* Frees the HTTP loops serve_start_http() made (their servers with them). */
static void serve_free_loops(ds_loop_t **loops)
{
    for (size_t i = 0; i < DS_CLI_HTTP_LOOPS_MAX; i++) {
        ds_loop_free(&loops[i]);
    }
}

/* The access-token key ring, from the key store (made on first start). */
static int serve_ring(const ds_app_t *app, ds_token_ring_t **ring)
{
    ds_config_paths_t paths = {0};
    char *why = NULL;
    int rc = ds_config_resolve_paths(app->cfg, app->data_dir, &paths);
    if (rc == 0) {
        rc = ds_signing_load(paths.keys_dir, "dossier", app->cfg->auth.access_token_ttl_s, ring,
                             &why);
    }
    if (rc < 0) {
        ds_log_error("could not load the token signing keys",
                     DS_LOG_STR("error", why != NULL ? why : ds_strerror(rc)), DS_LOG_END);
    }
    free(why);
    ds_config_paths_fini(&paths);
    return rc;
}

/* The audit checkpointer (actors/audit/checkpointer.h), its writes on the pool's loop. With
 * final set instead: the shutdown checkpoint, once every actor stopped. 0, or logged. */
static int serve_audit(ds_rt_t *rt, const ds_app_t *app, const ds_storage_t *st, ds_loop_t *loop,
                       ds_actor_id_t pool, bool final)
{
    ds_config_paths_t paths = {0};
    int rc = ds_config_resolve_paths(app->cfg, app->data_dir, &paths);
    if (rc == 0 && final) {
        rc = ds_audit_checkpoint_final(st->app_conninfo, st->blobs, st->tenants, paths.keys_dir);
    } else if (rc == 0) {
        ds_audit_checkpointer_cfg_t ac = {
            .rt = rt,
            .loop = loop,
            .pool = pool,
            .blobs = st->blobs,
            .tenants = st->tenants,
            .keys_dir = paths.keys_dir,
            .interval_s = app->cfg->audit.checkpoint_interval_s,
        };
        rc = ds_audit_checkpointer_start(&ac, NULL);
    }
    ds_config_paths_fini(&paths);
    return rc;
}

/* Waits for SIGTERM or SIGINT, drains, stops. The exit status. */
static int serve_wait_and_drain(ds_rt_t *rt, const sigset_t *stop)
{
    int sig = 0;
    while (sigwait(stop, &sig) != 0) {
        /* sigwait fails only for a bad set: it is built above, so this does not loop. */
    }
    ds_log_info("draining", DS_LOG_STR("signal", serve_signal_name(sig)),
                DS_LOG_I64("timeout_ms", DS_CLI_SERVE_DRAIN_NS / 1000000), DS_LOG_END);
    int64_t t0 = ds_clock_now();
    int rc = ds_rt_drain(rt, DS_CLI_SERVE_DRAIN_NS);
    int64_t ms = (ds_clock_now() - t0) / 1000000;
    ds_log(rc == 0 ? DS_LOG_INFO : DS_LOG_WARN, "node stopped",
           DS_LOG_STR("drain", rc == 0 ? "complete" : ds_errname(rc)), DS_LOG_I64("drain_ms", ms),
           DS_LOG_END);
    return rc == 0 ? DS_CLI_OK : DS_CLI_FAIL;
}

static int serve_node(const serve_opts_t *o, const ds_app_t *app, ds_storage_t *st,
                      const sigset_t *stop);

static int serve_run(const serve_opts_t *o, const ds_app_t *app)
{
    /* Blocked before the slow start-up (initdb, migrations), so a SIGTERM during it stops the
     * node cleanly, cluster included, instead of killing it half way. The children started
     * meanwhile reset their mask before exec (transports/pg/instance.c). */
    sigset_t stop;
    sigset_t blocked;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    blocked = stop;
    sigaddset(&blocked, SIGPIPE);
    int rc = pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    if (rc != 0) {
        ds_log_error("could not block signals", DS_LOG_STR("error", ds_strerror(-rc)), DS_LOG_END);
        return DS_CLI_FAIL;
    }
    ds_storage_t st;
    if (ds_storage_open(app, stdout, &st) != DS_CLI_OK) {
        return DS_CLI_FAIL;
    }
    int status = DS_CLI_OK;
    sigset_t pending;
    if (sigpending(&pending) == 0 &&
        (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1)) {
        ds_log_info("stopping before the node started: a signal came during start-up", DS_LOG_END);
    } else {
        status = serve_node(o, app, &st, &stop);
    }
    ds_storage_close(&st);
    return status;
}

static int serve_node(const serve_opts_t *o, const ds_app_t *app, ds_storage_t *st,
                      const sigset_t *stop)
{
    int rc;
    uint64_t workers = o->workers != 0 ? o->workers : app->cfg->node.workers;
    uint64_t node = o->node != 0 ? o->node : app->cfg->node.id;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? (uint64_t)n : 1;
    }
    ds_rt_cfg_t cfg = {.node = (uint16_t)node, .workers = (unsigned)workers};
    ds_rt_t *rt = NULL;
    rc = ds_rt_new(&cfg, &rt);
    if (rc < 0) {
        ds_log_error("could not create runtime", DS_LOG_STR("error", ds_strerror(rc)), DS_LOG_END);
        return DS_CLI_FAIL;
    }
    rc = ds_pg_msgs_register();
    if (rc == 0) {
        rc = ds_http_msgs_register();
    }
    if (rc == 0) {
        rc = ds_api_msgs_register();
    }
    if (rc == 0) {
        rc = ds_tenants_make_groups(st->tenants, rt);
    }
    if (rc < 0) {
        ds_log_error("could not create tenant groups", DS_LOG_STR("error", ds_strerror(rc)),
                     DS_LOG_END);
        ds_rt_free(&rt);
        return DS_CLI_FAIL;
    }
    ds_cluster_t *cluster = NULL;
    if (o->listen != NULL) {
        ds_cluster_cfg_t cc = {.listen_url = o->listen, .peers = o->peers, .npeers = o->npeers};
        rc = ds_cluster_new(rt, &cc, &cluster);
        if (rc < 0) {
            ds_log_error("could not set up cluster", DS_LOG_STR("error", ds_strerror(rc)),
                         DS_LOG_END);
            ds_rt_free(&rt);
            return DS_CLI_FAIL;
        }
    }
    ds_loop_t *pg_loop = NULL;
    ds_loop_t *http_loops[DS_CLI_HTTP_LOOPS_MAX] = {0};
    ds_token_ring_t *ring = NULL;
    ds_api_env_t env = {.cfg = app->cfg,
                        .refresh_ttl_s = app->cfg->auth.refresh_token_ttl_s,
                        .session_ttl_s = app->cfg->auth.session_ttl_s};
    int started = serve_ring(app, &ring);
    env.ring = ring;
    /* Failed logins of unknown emails verify against this, at the configured cost, so they
     * take as long as those of real accounts. */
    char dummy[DS_PASSWORD_ENCODED_MAX];
    char random_pw[DS_PASSWORD_GEN_LEN + 1];
    ds_password_cost_t cost = {app->cfg->auth.password_memory_kib,
                               app->cfg->auth.password_iterations, app->cfg->auth.password_lanes};
    if (started == 0 && (ds_password_generate(random_pw) < 0 ||
                         ds_password_hash_cost(&cost, random_pw, strlen(random_pw), dummy) < 0)) {
        ds_log_error("could not hash at the configured argon2id cost (auth.password_*)",
                     DS_LOG_END);
        started = -EIO;
    }
    env.dummy_hash = dummy;
    if (started < 0 || serve_start(rt, o) < 0 ||
        serve_start_pool(rt, app, st, &pg_loop, &env.pool) < 0 ||
        serve_audit(rt, app, st, pg_loop, env.pool, false) < 0 ||
        serve_start_http(rt, app, o, st, &env, http_loops) < 0 ||
        (cluster != NULL && ds_cluster_start(cluster) < 0)) {
        serve_free_loops(http_loops);
        ds_loop_free(&pg_loop);
        ds_cluster_free(&cluster); /* before the runtime; nothing routes remotely yet */
        ds_rt_free(&rt);
        ds_token_ring_free(&ring);
        return DS_CLI_FAIL;
    }
    ds_log_info("node started", DS_LOG_U64("node", node), DS_LOG_U64("workers", workers),
                DS_LOG_U64("tenants", st->tenants->count),
                DS_LOG_U64("heartbeat_ms", o->heartbeat_ms), DS_LOG_I64("pid", getpid()),
                DS_LOG_END);
    int status = serve_wait_and_drain(rt, stop);
    serve_free_loops(http_loops); /* no new requests; open connections are closed */
    ds_loop_free(&pg_loop);       /* the pool answers what it holds and closes its connections */
    ds_cluster_free(&cluster);    /* after the drain: no actor sends any more */
    ds_rt_free(&rt);
    ds_token_ring_free(&ring);                              /* after every actor that reads it */
    (void)serve_audit(NULL, app, st, NULL, env.pool, true); /* a failure is logged, not fatal */
    return status;
}

int ds_cli_serve(int argc, char **argv)
{
    serve_opts_t o;
    int rc = serve_parse(argc, argv, &o);
    if (rc != 0) {
        return rc;
    }
    if (o.help) {
        (void)fputs(serve_help, stdout);
        return DS_CLI_OK;
    }
    ds_app_t app;
    rc = ds_app_init(&o.app, &app);
    if (rc != DS_CLI_OK) {
        return rc;
    }
    ds_log_init();
    // NOLINTNEXTLINE(concurrency-mt-unsafe): no thread runs yet
    if (getenv("DOSSIER_LOG_LEVEL") == NULL) {
        ds_log_set_level(app.cfg->log.level);
    }
    rc = serve_run(&o, &app);
    ds_app_fini(&app);
    return rc;
}
