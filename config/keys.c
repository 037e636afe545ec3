/* keys: the key tables and value parsing (keys.h). Adding a key means a member in config.h, an
 * entry here, the key in dossier.yaml and a line in docs/config.md; the unit tests check that
 * the defaults file sets every key of these tables. */
#include "config/keys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "runtime/log.h"
#include "runtime/mem.h"

#define CFG(path, type, member, min, max, flags)                                                  \
    {                                                                                             \
        (path), (type), offsetof(ds_config_t, member), sizeof(((ds_config_t *)0)->member), (min), \
            (max), (flags)                                                                        \
    }
#define SECTION(path)                        \
    {                                        \
        (path), DS__K_SECTION, 0, 0, 0, 0, 0 \
    }
#define PLAN(member, type, min, max, flags)                                                    \
    {                                                                                          \
#member, (type), offsetof(ds_plan_t, member), sizeof(((ds_plan_t *)0)->member), (min), \
            (max), (flags)                                                                     \
    }

#define HOUR_MS UINT64_C(3600000)
#define TERA    UINT64_C(1000000000000)
#define GIGA    UINT64_C(1000000000)
#define KIB     UINT64_C(1024)
#define MIB     (KIB * KIB)
#define GIB     (MIB * KIB)

const ds__field_t ds__cfg_fields[DS__NCFG] = {
    SECTION("node"),
    CFG("node.id", DS__K_UINT, node.id, 1, UINT16_MAX, 0),
    CFG("node.workers", DS__K_UINT, node.workers, 0, 1024, 0),
    CFG("data_dir", DS__K_PATH, data_dir, 0, 0, 0),
    CFG("region", DS__K_REGION, region, 0, 0, 0),
    SECTION("database"),
    CFG("database.dsn", DS__K_STR, database.dsn, 0, 0, DS__F_SECRET),
    CFG("database.owner_dsn", DS__K_STR, database.owner_dsn, 0, 0, DS__F_SECRET),
    CFG("database.pool_size", DS__K_UINT, database.pool_size, 1, 1024, 0),
    CFG("database.pipeline_depth", DS__K_UINT, database.pipeline_depth, 1, 64, 0),
    CFG("database.connect_timeout_ms", DS__K_UINT, database.connect_timeout_ms, 1, HOUR_MS, 0),
    CFG("database.reconnect_min_ms", DS__K_UINT, database.reconnect_min_ms, 1, HOUR_MS, 0),
    CFG("database.reconnect_max_ms", DS__K_UINT, database.reconnect_max_ms, 1, HOUR_MS, 0),
    SECTION("blob"),
    CFG("blob.dir", DS__K_PATH, blob.dir, 0, 0, 0),
    CFG("blob.chunk_size", DS__K_BYTES, blob.chunk_size, 4 * KIB, 4 * MIB, DS__F_POW2),
    CFG("blob.keys_dir", DS__K_PATH, blob.keys_dir, 0, 0, 0),
    CFG("blob.master_key_file", DS__K_PATH, blob.master_key_file, 0, 0, 0),
    SECTION("http"),
    CFG("http.listen", DS__K_STR, http.listen, 0, 0, 0),
    CFG("http.loops", DS__K_UINT, http.loops, 0, 64, 0),
    CFG("http.cors_origins", DS__K_ORIGINS, http.cors_origins, 0, DS_CONFIG_CORS_ORIGINS_MAX, 0),
    CFG("http.trusted_proxies", DS__K_ADDRS, http.trusted_proxies, 0, DS_CONFIG_TRUSTED_PROXIES_MAX,
        0),
    CFG("http.header_timeout_ms", DS__K_UINT, http.header_timeout_ms, 1, HOUR_MS, 0),
    CFG("http.idle_timeout_ms", DS__K_UINT, http.idle_timeout_ms, 1, HOUR_MS, 0),
    CFG("http.handler_timeout_ms", DS__K_UINT, http.handler_timeout_ms, 1, HOUR_MS, 0),
    CFG("http.max_connections", DS__K_UINT, http.max_connections, 1, 65536, 0),
    CFG("http.max_connections_ip", DS__K_UINT, http.max_connections_ip, 1, 65536, 0),
    CFG("http.max_pipeline", DS__K_UINT, http.max_pipeline, 1, 1024, 0),
    CFG("http.max_output_bytes", DS__K_BYTES, http.max_output_bytes, 4 * KIB, GIB, 0),
    CFG("http.retry_after_s", DS__K_UINT, http.retry_after_s, 1, 3600, 0),
    CFG("http.stream_window", DS__K_UINT, http.stream_window, 1, 1024, 0),
    /* The ceilings are transports/http/reader.h's (DS_HTTP_*_MAX); test_config checks them. */
    SECTION("http.limits"),
    CFG("http.limits.max_header_bytes", DS__K_BYTES, http.limits.max_header_bytes, KIB, 60000, 0),
    CFG("http.limits.max_headers", DS__K_UINT, http.limits.max_headers, 8, 1024, 0),
    CFG("http.limits.max_url", DS__K_UINT, http.limits.max_url, 256, 8192, 0),
    CFG("http.limits.max_body", DS__K_BYTES, http.limits.max_body, 1, INT32_MAX, 0),
    CFG("http.limits.stream_threshold", DS__K_BYTES, http.limits.stream_threshold, KIB, 16 * MIB,
        0),
    SECTION("log"),
    CFG("log.level", DS__K_LOGLEVEL, log.level, 0, 0, 0),
    SECTION("audit"),
    CFG("audit.checkpoint_interval_s", DS__K_UINT, audit.checkpoint_interval_s, 1, 86400, 0),
    SECTION("auth"),
    CFG("auth.password_memory_kib", DS__K_UINT, auth.password_memory_kib, 8192, 4194304, 0),
    CFG("auth.password_iterations", DS__K_UINT, auth.password_iterations, 1, 16, 0),
    CFG("auth.password_lanes", DS__K_UINT, auth.password_lanes, 1, 16, 0),
    CFG("auth.access_token_ttl_s", DS__K_UINT, auth.access_token_ttl_s, 60, 3600, 0),
    CFG("auth.refresh_token_ttl_s", DS__K_UINT, auth.refresh_token_ttl_s, 300, 31536000, 0),
    CFG("auth.session_ttl_s", DS__K_UINT, auth.session_ttl_s, 300, 31536000, 0),
    CFG("auth.anon_rate_per_ip", DS__K_UINT, auth.anon_rate_per_ip, 1, 1000000, 0),
    SECTION("plans"),
};

const ds__field_t ds__plan_fields[DS__NPLAN_FIELDS] = {
    PLAN(api_requests_per_minute, DS__K_UINT, 1, TERA, DS__F_UNLIMITED),
    PLAN(searches_per_minute, DS__K_UINT, 1, TERA, DS__F_UNLIMITED),
    PLAN(storage_gb, DS__K_UINT, 1, GIGA, DS__F_UNLIMITED),
    PLAN(max_documents, DS__K_UINT, 1, TERA, DS__F_UNLIMITED),
    PLAN(max_users, DS__K_UINT, 1, GIGA, DS__F_UNLIMITED),
    PLAN(concurrent_uploads, DS__K_UINT, 1, 100000, 0),
    PLAN(max_file_size_mb, DS__K_UINT, 1, MIB, 0),
    PLAN(search_timeout_s, DS__K_UINT, 1, 3600, 0),
    PLAN(export_documents_per_hour, DS__K_UINT, 1, TERA, DS__F_UNLIMITED),
    PLAN(scheduler_weight, DS__K_UINT, 1, 65536, 0),
    PLAN(mailbox_limit, DS__K_UINT, 1, UINT64_C(1) << 24, 0),
    PLAN(bytes_in_flight, DS__K_BYTES, 4 * KIB, UINT64_C(1) << 40, 0),
    PLAN(statement_timeout_ms, DS__K_UINT, 1, HOUR_MS, 0),
    PLAN(pool_connections, DS__K_UINT, 1, 1024, 0),
};

static const char *const plan_names[DS_PLAN_COUNT] = {"standard", "professional", "enterprise"};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

_Static_assert(sizeof(level_names) / sizeof(level_names[0]) == DS_LOG_OFF + 1,
               "a name for every log level");
_Static_assert(DS_PLAN_STANDARD == 0 && DS_PLAN_ENTERPRISE == DS_PLAN_COUNT - 1,
               "plan kinds index plans[]");

void ds__fmt(char *buf, size_t size, const char *fmt, ...)
{
    if (size == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    /* clang-tidy 14 carries va_list state across files (see runtime/mem.c). */
    int n = vsnprintf(buf, size, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    if (n < 0) {
        buf[0] = '\0';
    }
}

bool ds__is_null(const char *text, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        if (strlen(nulls[i]) == len && memcmp(nulls[i], text, len) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- lookup ------------------------------------------------------------------------------ */

static int plan_kind_find(const char *s, size_t len)
{
    for (int k = 0; k < DS_PLAN_COUNT; k++) {
        if (strlen(plan_names[k]) == len && memcmp(plan_names[k], s, len) == 0) {
            return k;
        }
    }
    return -1;
}

static int plan_field_find(const char *s, size_t len)
{
    for (int f = 0; f < DS__NPLAN_FIELDS; f++) {
        if (strlen(ds__plan_fields[f].name) == len &&
            memcmp(ds__plan_fields[f].name, s, len) == 0) {
            return f;
        }
    }
    return -1;
}

void ds__key_by_id(int id, ds__key_t *out)
{
    *out = (ds__key_t){.id = id};
    if (id < DS__NCFG) {
        out->field = &ds__cfg_fields[id];
        out->type = out->field->type;
    } else if (id < DS__NCFG + DS_PLAN_COUNT) {
        out->type = DS__K_SECTION;
    } else {
        int rel = id - DS__NCFG - DS_PLAN_COUNT;
        int kind = rel / DS__NPLAN_FIELDS;
        out->field = &ds__plan_fields[rel % DS__NPLAN_FIELDS];
        out->type = out->field->type;
        out->base = offsetof(ds_config_t, plans) + (size_t)kind * sizeof(ds_plan_t);
    }
}

int ds__key_lookup(const char *path, size_t len, ds__key_t *out)
{
    for (int i = 0; i < DS__NCFG; i++) {
        const char *name = ds__cfg_fields[i].name;
        if (strlen(name) == len && memcmp(name, path, len) == 0) {
            ds__key_by_id(i, out);
            return 0;
        }
    }
    static const char prefix[] = "plans.";
    size_t plen = sizeof(prefix) - 1;
    if (len <= plen || memcmp(path, prefix, plen) != 0) {
        return -ENOENT;
    }
    const char *rest = path + plen;
    size_t rlen = len - plen;
    const char *dot = memchr(rest, '.', rlen);
    int kind = plan_kind_find(rest, dot != NULL ? (size_t)(dot - rest) : rlen);
    if (kind < 0) {
        return -ENOENT;
    }
    if (dot == NULL) {
        ds__key_by_id(DS__NCFG + kind, out);
        return 0;
    }
    int f = plan_field_find(dot + 1, rlen - (size_t)(dot + 1 - rest));
    if (f < 0) {
        return -ENOENT;
    }
    ds__key_by_id(DS__NCFG + DS_PLAN_COUNT + kind * DS__NPLAN_FIELDS + f, out);
    return 0;
}

const char *ds__key_path(int id, char *buf, size_t size)
{
    if (id < DS__NCFG) {
        ds__fmt(buf, size, "%s", ds__cfg_fields[id].name);
    } else if (id < DS__NCFG + DS_PLAN_COUNT) {
        ds__fmt(buf, size, "plans.%s", plan_names[id - DS__NCFG]);
    } else {
        int rel = id - DS__NCFG - DS_PLAN_COUNT;
        ds__fmt(buf, size, "plans.%s.%s", plan_names[rel / DS__NPLAN_FIELDS],
                ds__plan_fields[rel % DS__NPLAN_FIELDS].name);
    }
    return buf;
}

/* ---- values ------------------------------------------------------------------------------ */

/* A short, printable excerpt of text for a message: at most 40 bytes, control bytes as '?'. */
static const char *excerpt(const char *text, size_t len, char *buf, size_t size)
{
    size_t max = size - 4 < 40 ? size - 4 : 40;
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* Digits with single '_' between them, then (if bytes) an optional KiB/MiB/GiB/TiB suffix,
 * maybe after one space. 0 and *out; -EINVAL if it is not such a number; -ERANGE past 2^64. */
static int parse_uint(const char *s, size_t len, bool bytes, uint64_t *out)
{
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    size_t i = 0;
    uint64_t v = 0;
    bool overflow = false;
    while (i < len && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_')) {
        if (s[i] == '_') {
            if (i == 0 || i + 1 >= len || s[i - 1] == '_' || s[i + 1] < '0' || s[i + 1] > '9') {
                return -EINVAL;
            }
        } else if (__builtin_mul_overflow(v, 10, &v) ||
                   __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v)) {
            overflow = true;
        }
        i++;
    }
    if (i == 0) {
        return -EINVAL;
    }
    if (i < len && bytes) {
        size_t j = s[i] == ' ' ? i + 1 : i;
        for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
            if (len - j == 3 && memcmp(s + j, units[u].suffix, 3) == 0) {
                overflow = overflow || v > (UINT64_MAX >> units[u].shift);
                v <<= units[u].shift;
                i = len;
                break;
            }
        }
    }
    if (i != len) {
        return -EINVAL;
    }
    if (overflow) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

static void store_uint(void *member, size_t size, uint64_t v)
{
    if (size == sizeof(uint16_t)) {
        uint16_t x = (uint16_t)v;
        memcpy(member, &x, sizeof(x));
    } else if (size == sizeof(uint32_t)) {
        uint32_t x = (uint32_t)v;
        memcpy(member, &x, sizeof(x));
    } else {
        memcpy(member, &v, sizeof(v));
    }
}

static uint64_t load_uint(const void *member, size_t size)
{
    if (size == sizeof(uint16_t)) {
        uint16_t x;
        memcpy(&x, member, sizeof(x));
        return x;
    }
    if (size == sizeof(uint32_t)) {
        uint32_t x;
        memcpy(&x, member, sizeof(x));
        return x;
    }
    uint64_t x;
    memcpy(&x, member, sizeof(x));
    return x;
}

static int set_uint(void *member, const ds__field_t *f, const char *text, size_t len, bool plain,
                    char *msg, size_t msgsize)
{
    const char *what = f->type == DS__K_BYTES         ? "a size in bytes (65536 or 64KiB)"
                       : (f->flags & DS__F_UNLIMITED) ? "an integer or unlimited"
                                                      : "an integer";
    char ex[48];
    if (!plain) {
        ds__fmt(msg, msgsize, "expected %s, got a quoted string", what);
        return -EINVAL;
    }
    if (ds__is_null(text, len)) {
        ds__fmt(msg, msgsize, "expected %s, got no value", what);
        return -EINVAL;
    }
    if ((f->flags & DS__F_UNLIMITED) && len == 9 && memcmp(text, "unlimited", 9) == 0) {
        store_uint(member, f->size, DS_PLAN_UNLIMITED);
        return 0;
    }
    uint64_t v = 0;
    int rc = parse_uint(text, len, f->type == DS__K_BYTES, &v);
    if (rc == -EINVAL) {
        ds__fmt(msg, msgsize, "expected %s, got \"%s\"", what, excerpt(text, len, ex, sizeof(ex)));
        return -EINVAL;
    }
    if (rc < 0 || v < f->min || v > f->max) {
        ds__fmt(msg, msgsize, "must be between %" PRIu64 " and %" PRIu64 "%s", f->min, f->max,
                (f->flags & DS__F_UNLIMITED) ? " or unlimited" : "");
        return -ERANGE;
    }
    if ((f->flags & DS__F_POW2) && (v & (v - 1)) != 0) {
        ds__fmt(msg, msgsize, "must be a power of two between %" PRIu64 " and %" PRIu64, f->min,
                f->max);
        return -ERANGE;
    }
    store_uint(member, f->size, v);
    return 0;
}

/* Length of the UTF-8 sequence at s (n bytes left), or 0 if it is not a valid one (overlong
 * forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80                 ? 1
                 : c >= 0xc2 && c <= 0xdf ? 2
                 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4
                                          : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f)) {
        return 0;
    }
    return len;
}

/* Checks a string value: its length, no control characters, valid UTF-8. */
static int check_text(const char *text, size_t len, char *msg, size_t msgsize)
{
    if (len > DS_CONFIG_STR_MAX) {
        ds__fmt(msg, msgsize, "is longer than %d bytes", DS_CONFIG_STR_MAX);
        return -ERANGE;
    }
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            ds__fmt(msg, msgsize, "must not contain control characters");
            return -EINVAL;
        }
        size_t n = utf8_len(s + i, len - i);
        if (n == 0) {
            ds__fmt(msg, msgsize, "is not valid UTF-8");
            return -EINVAL;
        }
        /* C1 controls (U+0080..U+009F, NEL among them), the line and paragraph separators,
         * the BOM and U+FFFE/U+FFFF: YAML cannot carry them in a plain or quoted scalar
         * unchanged, so `config show` could not write the value back. */
        bool c1 = n == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0;
        bool sep = n == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] & 0xfe) == 0xa8;
        bool bom = n == 3 && s[i] == 0xef && s[i + 1] == 0xbb && s[i + 2] == 0xbf;
        bool nonchar = n == 3 && s[i] == 0xef && s[i + 1] == 0xbf && s[i + 2] >= 0xbe;
        if (c1 || sep || bom || nonchar) {
            ds__fmt(msg, msgsize, "must not contain control characters");
            return -EINVAL;
        }
        i += n;
    }
    return 0;
}

static bool region_ok(const char *s, size_t len)
{
    if (len == 0 || len > 32 || s[0] == '-' || s[len - 1] == '-') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

static int set_level(void *member, const char *text, size_t len, char *msg, size_t msgsize)
{
    char name[16];
    ds_log_level_t level = DS_LOG_INFO;
    if (len >= sizeof(name) || memchr(text, '\0', len) != NULL) {
        len = sizeof(name); /* too long for any name: refused below */
    } else {
        memcpy(name, text, len);
        name[len] = '\0';
    }
    if (len >= sizeof(name) || ds_log_level_parse(name, &level) < 0) {
        char ex[48];
        ds__fmt(msg, msgsize, "expected debug, info, warn, error or off, got \"%s\"",
                excerpt(text, len < sizeof(name) ? len : sizeof(name) - 1, ex, sizeof(ex)));
        return -EINVAL;
    }
    memcpy(member, &level, sizeof(level));
    return 0;
}

static int set_string(void *member, const ds__field_t *f, const char *text, size_t len, bool plain,
                      char *msg, size_t msgsize)
{
    if (plain && ds__is_null(text, len)) {
        len = 0;
    }
    int rc = check_text(text, len, msg, msgsize);
    if (rc < 0) {
        return rc;
    }
    if (f->type == DS__K_PATH && len > 0 && text[0] != '/') {
        ds__fmt(msg, msgsize, "must be an absolute path, or empty for the default");
        return -EINVAL;
    }
    if (f->type == DS__K_REGION && !region_ok(text, len)) {
        ds__fmt(msg, msgsize,
                "must be 1 to 32 characters of a-z, 0-9 and '-', not starting or ending with '-'");
        return -EINVAL;
    }
    char *copy = ds_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    char *old = NULL;
    memcpy(&old, member, sizeof(old));
    if (old != NULL) {
        if (f->flags & DS__F_SECRET) {
            explicit_bzero(old, strlen(old));
        }
        free(old);
    }
    memcpy(member, &copy, sizeof(copy));
    return 0;
}

/* ---- lists ------------------------------------------------------------------------------- */

bool ds__is_list(ds__ktype_t type)
{
    return type == DS__K_ORIGINS || type == DS__K_ADDRS;
}

static ds_config_list_t *list_at(void *base, const ds__field_t *f)
{
    return (ds_config_list_t *)(void *)((char *)base + f->offset);
}

void ds__list_free(ds_config_list_t *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i]);
    }
    free(list->items);
    *list = (ds_config_list_t){.items = NULL};
}

void ds__list_clear(void *base, const ds__field_t *f)
{
    ds__list_free(list_at(base, f));
}

static bool in_set(char c, const char *set)
{
    return c != '\0' && strchr(set, c) != NULL;
}

/* Every byte of s[0..n) is in set (n > 0). */
static bool all_in(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++) {
        if (!in_set(s[i], set)) {
            return false;
        }
    }
    return n > 0;
}

#define LOWER_DIGITS "abcdefghijklmnopqrstuvwxyz0123456789"

/* A host of an origin as browsers serialise it: a lower-case DNS name (IDNs in punycode) or
 * an IPv6 literal in brackets. IPv4 literals pass as names. */
static bool origin_host_ok(const char *s, size_t n)
{
    if (n < 2 || s[0] != '[') {
        return all_in(s, n, LOWER_DIGITS ".-") && s[0] != '.' && s[0] != '-';
    }
    char ip[INET6_ADDRSTRLEN];
    unsigned char bin[16];
    if (s[n - 1] != ']' || n - 2 >= sizeof(ip) || !all_in(s + 1, n - 2, "0123456789abcdef:.")) {
        return false;
    }
    memcpy(ip, s + 1, n - 2);
    ip[n - 2] = '\0';
    return inet_pton(AF_INET6, ip, bin) == 1;
}

/* The port of an origin (the digits after ':'), 1..65535 without leading zeros: the value, or
 * 0 if it is not one. */
static unsigned origin_port(const char *s, size_t n)
{
    if (n == 0 || n > 5 || s[0] == '0' || !all_in(s, n, "0123456789")) {
        return 0;
    }
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535 ? v : 0;
}

/* An origin as a browser sends it in Origin (RFC 6454 section 6.1): scheme "://" host
 * [":" port], lower case, no path, and no port when it is the scheme's default, since a
 * browser would leave it out and the entry would never match. */
static int origin_check(const char *s, size_t len, char *msg, size_t msgsize)
{
    char ex[48];
    const char *end = s + len;
    const char *colon = memchr(s, ':', len);
    if (memchr(s, '*', len) != NULL) {
        ds__fmt(msg, msgsize, "wildcards are not supported, list each origin (got \"%s\")",
                excerpt(s, len, ex, sizeof(ex)));
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z') {
            ds__fmt(msg, msgsize, "must be lower case, as browsers send it (got \"%s\")",
                    excerpt(s, len, ex, sizeof(ex)));
            return -EINVAL;
        }
    }
    bool ok = colon != NULL && end - colon >= 3 && memcmp(colon, "://", 3) == 0 &&
              all_in(s, (size_t)(colon - s), LOWER_DIGITS "+.-") && s[0] >= 'a' && s[0] <= 'z';
    const char *host = ok ? colon + 3 : end;
    const char *hend = host;
    if (ok && host < end && host[0] == '[') {
        const char *rb = memchr(host, ']', (size_t)(end - host));
        hend = rb != NULL ? rb + 1 : end;
    }
    while (hend < end && *hend != ':') {
        hend++;
    }
    ok = ok && origin_host_ok(host, (size_t)(hend - host));
    unsigned port = 0;
    if (ok && hend < end) {
        port = origin_port(hend + 1, (size_t)(end - hend - 1));
        ok = port != 0;
    }
    if (!ok) {
        ds__fmt(msg, msgsize,
                "expected an origin, scheme://host[:port] without a path "
                "(https://app.example.com), got \"%s\"",
                excerpt(s, len, ex, sizeof(ex)));
        return -EINVAL;
    }
    size_t slen = (size_t)(colon - s);
    if ((port == 443 && slen == 5 && memcmp(s, "https", 5) == 0) ||
        (port == 80 && slen == 4 && memcmp(s, "http", 4) == 0)) {
        ds__fmt(msg, msgsize, "must leave out the default port %u, as browsers do", port);
        return -EINVAL;
    }
    return 0;
}

/* An IP literal, canonicalised as the gateway prints a socket peer (inet_ntop), into out. */
static int addr_canon(const char *s, size_t len, char out[INET6_ADDRSTRLEN], char *msg,
                      size_t msgsize)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned char bin[16];
    if (len < sizeof(ip)) {
        memcpy(ip, s, len);
        ip[len] = '\0';
        if (inet_pton(AF_INET, ip, bin) == 1 &&
            inet_ntop(AF_INET, bin, out, INET6_ADDRSTRLEN) != NULL) {
            return 0;
        }
        if (inet_pton(AF_INET6, ip, bin) == 1 &&
            inet_ntop(AF_INET6, bin, out, INET6_ADDRSTRLEN) != NULL) {
            return 0;
        }
    }
    char ex[48];
    if (memchr(s, '/', len) != NULL) {
        ds__fmt(msg, msgsize, "address ranges are not supported, list each proxy (got \"%s\")",
                excerpt(s, len, ex, sizeof(ex)));
    } else {
        ds__fmt(msg, msgsize, "expected an IP address (192.0.2.1, 2001:db8::1), got \"%s\"",
                excerpt(s, len, ex, sizeof(ex)));
    }
    return -EINVAL;
}

static int list_push(ds_config_list_t *list, const ds__field_t *f, const char *text, size_t len,
                     bool plain, char *msg, size_t msgsize)
{
    if (plain && ds__is_null(text, len)) {
        len = 0;
    }
    if (len == 0) {
        ds__fmt(msg, msgsize, "has an empty entry");
        return -EINVAL;
    }
    int rc = check_text(text, len, msg, msgsize);
    char canon[INET6_ADDRSTRLEN];
    if (rc == 0 && f->type == DS__K_ADDRS) {
        rc = addr_canon(text, len, canon, msg, msgsize);
        text = canon;
        len = strlen(canon);
    } else if (rc == 0) {
        if (len > DS_CONFIG_ORIGIN_MAX) {
            ds__fmt(msg, msgsize, "has an origin longer than %d bytes", DS_CONFIG_ORIGIN_MAX);
            return -ERANGE;
        }
        rc = origin_check(text, len, msg, msgsize);
    }
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < list->count; i++) {
        if (strlen(list->items[i]) == len && memcmp(list->items[i], text, len) == 0) {
            ds__fmt(msg, msgsize, "lists \"%s\" twice", list->items[i]);
            return -EINVAL;
        }
    }
    if (list->count >= f->max) {
        ds__fmt(msg, msgsize, "must have at most %" PRIu64 " entries", f->max);
        return -ERANGE;
    }
    list->items = ds_xrealloc(list->items, (list->count + 1) * sizeof(char *));
    char *copy = ds_xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    list->items[list->count++] = copy;
    return 0;
}

int ds__list_add(void *base, const ds__field_t *f, const char *text, size_t len, bool plain,
                 char *msg, size_t msgsize)
{
    return list_push(list_at(base, f), f, text, len, plain, msg, msgsize);
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The comma-separated entries of text replace the list (an environment value). */
static int set_list(void *base, const ds__field_t *f, const char *text, size_t len, char *msg,
                    size_t msgsize)
{
    ds_config_list_t tmp = {.items = NULL};
    size_t a = 0;
    size_t z = len;
    while (a < z && blank(text[a])) {
        a++;
    }
    while (z > a && blank(text[z - 1])) {
        z--;
    }
    int rc = 0;
    size_t start = a;
    for (size_t i = a; a < z && i <= z && rc == 0; i++) {
        if (i < z && text[i] != ',') {
            continue;
        }
        size_t b = start;
        size_t e = i;
        while (b < e && blank(text[b])) {
            b++;
        }
        while (e > b && blank(text[e - 1])) {
            e--;
        }
        rc = list_push(&tmp, f, text + b, e - b, false, msg, msgsize);
        start = i + 1;
    }
    if (rc < 0) {
        ds__list_free(&tmp);
        return rc;
    }
    ds__list_free(list_at(base, f));
    *list_at(base, f) = tmp;
    return 0;
}

int ds__field_set(void *base, const ds__field_t *f, const char *text, size_t len, bool plain,
                  char *msg, size_t msgsize)
{
    void *member = (char *)base + f->offset;
    switch (f->type) {
    case DS__K_UINT:
    case DS__K_BYTES:
        return set_uint(member, f, text, len, plain, msg, msgsize);
    case DS__K_STR:
    case DS__K_PATH:
    case DS__K_REGION:
        return set_string(member, f, text, len, plain, msg, msgsize);
    case DS__K_LOGLEVEL:
        return set_level(member, text, len, msg, msgsize);
    case DS__K_ORIGINS:
    case DS__K_ADDRS:
        return set_list(base, f, text, len, msg, msgsize);
    case DS__K_SECTION:
        break;
    }
    ds__fmt(msg, msgsize, "is a section, not a value");
    return -EINVAL;
}

static int put_quoted(const char *s, FILE *out)
{
    if (fputc('"', out) == EOF) {
        return -EIO;
    }
    for (; *s != '\0'; s++) {
        if ((*s == '"' || *s == '\\') && fputc('\\', out) == EOF) {
            return -EIO;
        }
        if (fputc(*s, out) == EOF) {
            return -EIO;
        }
    }
    return fputc('"', out) == EOF ? -EIO : 0;
}

/* A flow sequence of double-quoted strings: [] or ["a", "b"]. */
static int write_list(const void *member, FILE *out)
{
    const ds_config_list_t *list = member;
    if (fputc('[', out) == EOF) {
        return -EIO;
    }
    for (size_t i = 0; i < list->count; i++) {
        if ((i > 0 && fputs(", ", out) == EOF) || put_quoted(list->items[i], out) < 0) {
            return -EIO;
        }
    }
    return fputc(']', out) == EOF ? -EIO : 0;
}

int ds__field_write(const void *base, const ds__field_t *f, FILE *out)
{
    const void *member = (const char *)base + f->offset;
    switch (f->type) {
    case DS__K_UINT:
    case DS__K_BYTES: {
        uint64_t v = load_uint(member, f->size);
        int n = (f->flags & DS__F_UNLIMITED) && v == DS_PLAN_UNLIMITED
                    ? fprintf(out, "unlimited")
                    : fprintf(out, "%" PRIu64, v);
        return n < 0 ? -EIO : 0;
    }
    case DS__K_STR:
    case DS__K_PATH:
    case DS__K_REGION: {
        const char *s = NULL;
        memcpy(&s, member, sizeof(s));
        return put_quoted(s != NULL ? s : "", out);
    }
    case DS__K_LOGLEVEL: {
        ds_log_level_t level;
        memcpy(&level, member, sizeof(level));
        const char *name = (unsigned)level <= DS_LOG_OFF ? level_names[level] : "info";
        return fprintf(out, "%s", name) < 0 ? -EIO : 0;
    }
    case DS__K_ORIGINS:
    case DS__K_ADDRS:
        return write_list(member, out);
    case DS__K_SECTION:
        break;
    }
    return 0;
}

/* ---- plans (config.h) ------------------------------------------------------------------- */

int ds_plan_parse_kind(const char *name, ds_plan_kind_t *out)
{
    if (name == NULL) {
        return -EINVAL;
    }
    for (int k = 0; k < DS_PLAN_COUNT; k++) {
        if (strcasecmp(name, plan_names[k]) == 0) {
            *out = (ds_plan_kind_t)k;
            return 0;
        }
    }
    return -EINVAL;
}

const char *ds_plan_kind_name(ds_plan_kind_t kind)
{
    return (unsigned)kind < DS_PLAN_COUNT ? plan_names[kind] : "unknown";
}

const char *ds_plan_field_name(size_t i)
{
    return i < DS__NPLAN_FIELDS ? ds__plan_fields[i].name : NULL;
}

int ds_plan_get(const ds_plan_t *plan, const char *key, uint64_t *out)
{
    int f = key != NULL ? plan_field_find(key, strlen(key)) : -1;
    if (plan == NULL || f < 0) {
        return -ENOENT;
    }
    const ds__field_t *fd = &ds__plan_fields[f];
    *out = load_uint((const char *)plan + fd->offset, fd->size);
    return 0;
}

int ds_plan_override(ds_plan_t *plan, const char *key, const char *value, ds_config_error_t *err)
{
    char msg[sizeof(err->message)];
    int f = key != NULL ? plan_field_find(key, strlen(key)) : -1;
    int rc;
    if (plan == NULL || f < 0) {
        ds__fmt(msg, sizeof(msg), "no such plan field");
        rc = -ENOENT;
    } else if (value == NULL) {
        ds__fmt(msg, sizeof(msg), "no value");
        rc = -EINVAL;
    } else {
        /* Plan fields are all integers: the value is text from the control plane, as
         * unquoted as an environment variable's. */
        rc = ds__field_set(plan, &ds__plan_fields[f], value, strlen(value), true, msg, sizeof(msg));
    }
    if (rc < 0 && err != NULL) {
        *err = (ds_config_error_t){.line = 0};
        ds__fmt(err->key, sizeof(err->key), "%s", key != NULL ? key : "");
        ds__fmt(err->message, sizeof(err->message), "%s", msg);
    }
    return rc;
}
