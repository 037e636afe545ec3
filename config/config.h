/* config: the node's configuration — built-in defaults, a YAML file, environment overrides —
 * and the plans (quotas, rate limits, scheduler weights) tenants are served under.
 *
 * Layers, each overriding the one before, key by key:
 *   1. the built-in defaults: config/dossier.yaml, compiled into the binary (every key is there);
 *   2. a YAML file (--config FILE or DOSSIER_CONFIG): only the keys it names change, so a file
 *      holding just `region: eu` is a whole config;
 *   3. environment variables DOSSIER_<SECTION>__<KEY> (double underscore between levels; the
 *      prefix in capitals, the rest in any case): DOSSIER_REGION=eu,
 *      DOSSIER_DATABASE__POOL_SIZE=16, DOSSIER_PLANS__STANDARD__SCHEDULER_WEIGHT=2.
 * docs/config.md lists every key with its type, range and default.
 *
 * Strictness: an unknown key, a value of the wrong type or out of range, a duplicate key or
 * list entry, a YAML sequence where no list is expected, an alias or tag, or a DOSSIER_* variable
 * that names no key is an error, never ignored. The DOSSIER_* variables that are not config keys
 * are listed at DS_CONFIG_ENV_RESERVED. Errors say where (ds_config_error_t): file and 1-based line
 * for the file, the variable's name for the environment.
 *
 * Values: integers are plain decimal scalars (quoted numbers are strings, not integers); `_` may
 * group digits (100_000). Byte sizes (blob.chunk_size, plans.*.bytes_in_flight) also take a
 * KiB, MiB, GiB or TiB suffix (64KiB). Quota keys that allow it take `unlimited`, stored as
 * DS_PLAN_UNLIMITED. Strings are UTF-8 without control characters; an empty value means "derive
 * it" where the key says so. Lists (http.cors_origins, http.trusted_proxies) are YAML
 * sequences of strings ([] or a block of "- item" lines; a key with no value is the empty list)
 * or, in the environment, comma-separated (empty: the empty list).
 *
 * Ownership: ds_config_load*() return a ds_config_t the caller frees with ds_config_free(); its
 * strings (never NULL, "" when unset) and lists belong to it, and the DSNs are wiped when it is
 * freed.
 * Threads: nothing here touches global state (the environment comes in as a parameter), so any
 * thread may call any function; a loaded ds_config_t is read-only and may be shared. Loading
 * reads a file: not from an actor. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/log.h"

/* A quota or rate that has no limit (the YAML value `unlimited`). */
#define DS_PLAN_UNLIMITED UINT64_MAX

/* DOSSIER_* variables that are not config keys, so the environment pass skips them:
 * DOSSIER_CONFIG (selects the file), DOSSIER_LOG_LEVEL (the runtime's early log threshold,
 * runtime/log.h) and DOSSIER_BIN (the binary under test, set by the test scripts). */
#define DS_CONFIG_ENV_RESERVED "CONFIG", "LOG_LEVEL", "BIN"

enum {
    DS_CONFIG_FILE_MAX = 1 << 20,       /* bytes of a config file or buffer */
    DS_CONFIG_STR_MAX = 4095,           /* bytes of a string value */
    DS_CONFIG_CORS_ORIGINS_MAX = 64,    /* entries of http.cors_origins */
    DS_CONFIG_ORIGIN_MAX = 255,         /* bytes of one of them */
    DS_CONFIG_TRUSTED_PROXIES_MAX = 16, /* entries of http.trusted_proxies */
};

/* A list of strings (a YAML sequence; a comma-separated environment value): count entries,
 * each NUL-terminated, in items (NULL when count is 0). A source that sets a list replaces it
 * whole. Entries are unique. */
typedef struct ds_config_list {
    char **items;
    size_t count;
} ds_config_list_t;

typedef enum ds_plan_kind {
    DS_PLAN_STANDARD = 0,
    DS_PLAN_PROFESSIONAL = 1,
    DS_PLAN_ENTERPRISE = 2,
    DS_PLAN_COUNT = 3,
} ds_plan_kind_t;

/* One plan: what a tenant may use. Counts and rates that allow `unlimited` are uint64_t and
 * DS_PLAN_UNLIMITED means no limit; the others are always finite. Ranges in brackets. */
typedef struct ds_plan {
    uint64_t api_requests_per_minute;   /* per tenant [1, 10^12] or unlimited */
    uint64_t searches_per_minute;       /* per tenant [1, 10^12] or unlimited */
    uint64_t storage_gb;                /* GiB of stored blobs [1, 10^9] or unlimited */
    uint64_t max_documents;             /* documents [1, 10^12] or unlimited */
    uint64_t max_users;                 /* users [1, 10^9] or unlimited */
    uint32_t concurrent_uploads;        /* uploads in progress at once [1, 100000] */
    uint32_t max_file_size_mb;          /* MiB per uploaded file [1, 1048576] */
    uint32_t search_timeout_s;          /* seconds a search may run [1, 3600] */
    uint64_t export_documents_per_hour; /* [1, 10^12] or unlimited */
    uint32_t scheduler_weight;          /* CPU share, ds_group_cfg_t.weight [1, 65536] */
    uint32_t mailbox_limit;             /* messages per actor, ds_group_cfg_t [1, 2^24] */
    uint64_t bytes_in_flight;           /* per tenant group, ds_group_cfg_t.bytes_cap
                                           [4 KiB, 1 TiB] */
    uint32_t statement_timeout_ms;      /* PostgreSQL statement_timeout [1, 3600000] */
    uint32_t pool_connections;          /* the tenant's cap on pool connections [1, 1024] */
} ds_plan_t;

/* The effective configuration. Read it directly; change it only through this module. */
typedef struct ds_config {
    struct {
        uint16_t id;      /* this node's id in actor ids [1, 65535] */
        uint32_t workers; /* scheduler threads, 0 = one per online core [0, 1024] */
    } node;
    char *data_dir; /* absolute, or "" = ds_config_resolve_data_dir()'s default */
    char *region;   /* [a-z0-9-], 1..32 bytes, no '-' at either end */
    struct {
        char *dsn;          /* the application role's libpq conninfo; "" = the private cluster */
        char *owner_dsn;    /* the owner role's (migrations, CLI); required with dsn */
        uint32_t pool_size; /* connections of the pool [1, 1024] */
        uint32_t pipeline_depth;     /* a tenant's transactions in flight per connection [1, 64] */
        uint32_t connect_timeout_ms; /* [1, 3600000] */
        uint32_t reconnect_min_ms;   /* first reconnect delay [1, 3600000], <= reconnect_max_ms */
        uint32_t reconnect_max_ms;   /* backoff ceiling [1, 3600000] */
    } database;
    struct {
        char *dir;             /* absolute, or "" = DATA_DIR/blobs */
        uint32_t chunk_size;   /* encryption chunk, a power of two in [4 KiB, 4 MiB] */
        char *keys_dir;        /* absolute, or "" = DATA_DIR/keys */
        char *master_key_file; /* absolute, or "" = KEYS_DIR/master.key */
    } blob;
    struct {
        char *listen; /* HOST:PORT of the HTTP API (IPv6 as [::1]:8080); port 0 picks one */
        ds_config_list_t cors_origins;    /* exact origins, scheme://host[:port] in lower case,
                                             no default port, no path, no wildcard; at most
                                             DS_CONFIG_CORS_ORIGINS_MAX; none by default */
        ds_config_list_t trusted_proxies; /* IP literals in canonical form (inet_ntop), whose
                                             X-Forwarded-For is believed; at most
                                             DS_CONFIG_TRUSTED_PROXIES_MAX */
        uint32_t header_timeout_ms;       /* first byte to end of a request head [1, 3600000] */
        uint32_t idle_timeout_ms;         /* idle keep-alive connection [1, 3600000] */
        uint32_t handler_timeout_ms;      /* the handler must answer within [1, 3600000] */
        uint32_t max_connections;         /* open connections in total [1, 65536] */
        uint32_t max_connections_ip;      /* open connections per client IP [1, 65536] */
        uint32_t max_pipeline;            /* unanswered requests per connection [1, 1024] */
        uint32_t max_output_bytes;        /* unsent bytes per connection [4 KiB, 1 GiB] */
        uint32_t retry_after_s;           /* Retry-After of the gateway's 503 [1, 3600] */
        uint32_t stream_window;           /* unacknowledged streamed pieces [1, 1024] */
        struct {
            uint32_t max_header_bytes; /* request head [1 KiB, 60000] -> 431 */
            uint32_t max_headers;      /* header lines [8, 1024] -> 431 */
            uint32_t max_url;          /* request target [256, 8192] -> 414 */
            uint32_t max_body;         /* decoded body [1, 2^31 - 1] -> 413 */
            uint32_t stream_threshold; /* longer bodies stream [1 KiB, 16 MiB]; not less than
                                          max_body (the API reads bodies whole) */
        } limits;
        uint32_t loops; /* HTTP loop threads sharing the port, 0 = one per online core [0, 64] */
    } http;
    struct {
        ds_log_level_t level; /* debug, info, warn, error or off */
    } log;
    struct {
        uint32_t checkpoint_interval_s; /* between signed audit checkpoints [1, 86400] */
    } audit;
    struct {
        uint32_t password_memory_kib; /* argon2id memory cost, KiB [8192, 4194304] */
        uint32_t password_iterations; /* argon2id passes [1, 16] */
        uint32_t password_lanes;      /* argon2id parallelism [1, 16] */
        uint32_t access_token_ttl_s;  /* lifetime of an access token [60, 3600] */
        uint32_t refresh_token_ttl_s; /* of a refresh token, renewed by each refresh */
        uint32_t session_ttl_s;       /* of a login session, whatever the refreshes */
        uint32_t anon_rate_per_ip;    /* logins and refreshes per second per client address */
    } auth;
    ds_plan_t plans[DS_PLAN_COUNT]; /* indexed by ds_plan_kind_t */
} ds_config_t;

/* Where and why a load failed. Every string is NUL-terminated (possibly cut short). */
typedef struct ds_config_error {
    char file[256];    /* the file's path, the buffer's name, "environment" or "" */
    unsigned line;     /* 1-based line in file, 0 when there is none (environment, a check
                          across keys without a line) */
    char key[160];     /* the key's path (plans.standard.scheduler_weight), the variable's
                          name for the environment, or "" (a YAML syntax error outside keys) */
    char message[256]; /* lower case, no final period: "expected an integer, got \"ten\"" */
} ds_config_error_t;

/* Loads the config: the defaults, then the file at path (NULL: none), then the DOSSIER_*
 * entries of envp (a NULL-terminated "NAME=VALUE" array such as environ; NULL: none).
 * 0 and *out (free with ds_config_free()); -EINVAL for bad content (a syntax error, an unknown
 * key or variable, a bad value); -EFBIG for a file over DS_CONFIG_FILE_MAX; -errno when the file
 * cannot be read (-ENOENT, -EACCES, -EISDIR...). On error *err (if not NULL) says where. */
int ds_config_load(const char *path, char *const *envp, ds_config_t **out, ds_config_error_t *err);

/* The same with the file's text in memory: len bytes of buf (no NUL needed); name is what
 * errors call it (NULL: "<buffer>"). buf NULL with len 0 = no file. */
int ds_config_load_buffer(const char *buf, size_t len, const char *name, char *const *envp,
                          ds_config_t **out, ds_config_error_t *err);

/* For `dossier config check FILE`: loads path over the defaults (and envp if not NULL) and
 * frees the result. 0 if it is valid; otherwise the codes and *err of ds_config_load(). */
int ds_config_check_file(const char *path, char *const *envp, ds_config_error_t *err);

/* Frees *cfgp (wiping the DSNs) and sets it to NULL. Accepts NULL and *cfgp == NULL. */
void ds_config_free(ds_config_t **cfgp);

/* Formats err as "FILE:LINE: KEY: MESSAGE" into buf (cut to size) and returns buf; parts
 * without a value are left out: "environment: DOSSIER_NODE__ID: must be between 1 and 65535". */
const char *ds_config_error_str(const ds_config_error_t *err, char *buf, size_t size);

enum {
    DS_CONFIG_DUMP_SECRETS = 1 << 0, /* print the DSNs; without it they are left out */
};

/* Writes the effective config to f as YAML that ds_config_load() reads back (with
 * DS_CONFIG_DUMP_SECRETS; without it a set DSN becomes a comment saying it is hidden).
 * 0, or -EIO if writing failed. */
int ds_config_dump(const ds_config_t *cfg, unsigned flags, FILE *out);

/* The data directory: cfg->data_dir when set; else /var/lib/dossier when euid is 0; else
 * xdg_data_home/dossier when xdg_data_home is absolute (the XDG spec ignores a relative one);
 * else home/.local/share/dossier when home is absolute. Pass getenv("XDG_DATA_HOME") and
 * getenv("HOME") (or the passwd entry's directory), NULL when unset. 0 and *out (free() it), or
 * -ENOENT when no rule applies (not root, neither variable usable). */
int ds_config_resolve_data_dir(const ds_config_t *cfg, unsigned euid, const char *xdg_data_home,
                               const char *home, char **out);

/* The blob store's directories under data_dir (absolute, from ds_config_resolve_data_dir() or
 * --data-dir): blob.dir or DATA_DIR/blobs, blob.keys_dir or DATA_DIR/keys, blob.master_key_file
 * or KEYS_DIR/master.key. Free with ds_config_paths_fini(). */
typedef struct ds_config_paths {
    char *blob_dir;
    char *keys_dir;
    char *master_key_file;
} ds_config_paths_t;

/* 0 and *out, or -EINVAL if data_dir is NULL or not absolute. */
int ds_config_resolve_paths(const ds_config_t *cfg, const char *data_dir, ds_config_paths_t *out);
/* Frees the strings of p and zeroes it; fine on a zeroed struct. */
void ds_config_paths_fini(ds_config_paths_t *p);

/* ---- plans ---------------------------------------------------------------------------- */

/* cfg's plan of that kind, or NULL for a kind out of range. Valid while cfg lives. */
const ds_plan_t *ds_config_plan(const ds_config_t *cfg, ds_plan_kind_t kind);

/* "standard", "professional", "enterprise" (any case) into *out: 0, or -EINVAL. */
int ds_plan_parse_kind(const char *name, ds_plan_kind_t *out);

/* The kind's name ("standard"...), or "unknown" out of range. Static, never freed. */
const char *ds_plan_kind_name(ds_plan_kind_t kind);

/* Applies one per-tenant override, as the control plane stores them: key is a field name of
 * ds_plan_t ("max_users"), value its text ("5000", "unlimited", "64MiB" for bytes_in_flight),
 * checked exactly as in the config file. 0 and the field set; -ENOENT for an unknown key;
 * -EINVAL for a value that is not of the field's type; -ERANGE for one out of its range. The
 * plan is unchanged on error and *err (if not NULL) says why (key = the field name, line 0).
 * To apply a set of overrides all or nothing, apply them to a copy. */
int ds_plan_override(ds_plan_t *plan, const char *key, const char *value, ds_config_error_t *err);

/* The name of the i-th field of ds_plan_t, in declaration order, or NULL when i is past the
 * last: for listing a plan (`dossier tenant show`) with ds_plan_get(). Static strings. */
const char *ds_plan_field_name(size_t i);

/* The value of field key of plan, widened to uint64_t (DS_PLAN_UNLIMITED for unlimited):
 * 0 and *out, or -ENOENT for an unknown key. */
int ds_plan_get(const ds_plan_t *plan, const char *key, uint64_t *out);
