/* load: ds_config_load() and friends (config.h). The built-in defaults, the file and the
 * environment go through the same key table and value checks (keys.h), in that order.
 *
 * YAML is read with libyaml's event parser rather than libcyaml's schema loader: a file may
 * set any subset of keys (so we must know which keys it has, not only their values), errors
 * must carry the line of the offending key, and the environment and per-tenant overrides must
 * be checked by the very same rules. One walk over the events does all three: it keeps a stack
 * of the mappings it is in (three deep at most: plans.standard.x), looks each key up by its
 * dotted path and stores each value as it comes, stopping at the first problem. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "config/config.h"
#include "config/keys.h"
#include "runtime/embed.h"
#include "runtime/err.h"
#include "runtime/mem.h"

DS_EMBED_DECLARE(ds_config_defaults);

/* Compared by address to tell the defaults from other sources. */
static const char defaults_name[] = "dossier.yaml (built in)";

#define ENV_NAME   "environment"
#define ENV_PREFIX "DOSSIER_"

/* Which source last set a key, to point at it when a check across keys fails. */
typedef struct origin {
    const char *src; /* a source name, NULL for none */
    unsigned line;
    const char *var; /* the environment entry, or NULL */
    size_t varlen;   /* bytes of its name */
} origin_t;

typedef struct loader {
    ds_config_t *cfg;
    ds_config_error_t *err;
    const char *src;  /* the source being applied */
    const char *text; /* its bytes (YAML sources), for a reader error's offset */
    size_t len;
    char msg[sizeof(((ds_config_error_t *)0)->message)]; /* FAIL()'s scratch */
    bool seen[DS__NKEYS];                                /* keys the current source set already */
    origin_t origin[DS__NKEYS];
} loader_t;

/* One mapping being read: the root (id -1) or a section; the key whose value comes next, and
 * whether that value is a list being read (its entries are the scalars until its end). */
typedef struct frame {
    int id;
    char path[DS__PATH_MAX];
    bool have_key;
    bool in_list;
    ds__key_t key;
    char key_path[DS__PATH_MAX];
} frame_t;

enum {
    MAX_FRAMES = 4, /* root, plans, plans.<kind>, and one spare: a leaf never pushes */
};

typedef struct walk {
    frame_t frames[MAX_FRAMES];
    int depth;
    int docs;
    bool done;
} walk_t;

/* Fills *ld->err (when there is one) with the message already in ld->msg; returns rc. */
static int fail_set(loader_t *ld, int rc, const char *src, unsigned line, const char *key)
{
    ds_config_error_t *e = ld->err;
    if (e != NULL) {
        *e = (ds_config_error_t){.line = line};
        ds__fmt(e->file, sizeof(e->file), "%s", src != NULL ? src : "");
        ds__fmt(e->key, sizeof(e->key), "%s", key != NULL ? key : "");
        ds__fmt(e->message, sizeof(e->message), "%s", ld->msg);
    }
    return rc;
}

/* Fails with a printf-formatted message: FAIL(ld, rc, src, line, key, fmt, ...) is rc. */
#define FAIL(ld, rc, src, line, key, ...) \
    (ds__fmt((ld)->msg, sizeof((ld)->msg), __VA_ARGS__), fail_set((ld), (rc), (src), (line), (key)))

static const char *type_desc(ds__ktype_t type)
{
    switch (type) {
    case DS__K_SECTION:
        return "a mapping of keys";
    case DS__K_UINT:
        return "an integer";
    case DS__K_BYTES:
        return "a size in bytes";
    case DS__K_LOGLEVEL:
        return "a log level";
    case DS__K_ORIGINS:
        return "a list of origins";
    case DS__K_ADDRS:
        return "a list of IP addresses";
    case DS__K_STR:
    case DS__K_PATH:
    case DS__K_REGION:
        break;
    }
    return "a string";
}

static unsigned mark_line(const yaml_mark_t *m)
{
    return m->line + 1 > UINT32_MAX ? UINT32_MAX : (unsigned)(m->line + 1);
}

/* The path of what the walk is at: the pending key's, else the innermost mapping's. */
static const char *walk_path(const walk_t *w)
{
    if (w->depth == 0) {
        return "";
    }
    const frame_t *top = &w->frames[w->depth - 1];
    return top->have_key ? top->key_path : top->path;
}

/* ---- the YAML walk ------------------------------------------------------------------------ */

/* The 1-based line of byte end of text, counting line breaks as YAML does: LF, CR LF, a lone
 * CR, and NEL, LS, PS (U+0085, U+2028, U+2029). */
static unsigned line_at(const char *text, size_t end)
{
    const unsigned char *s = (const unsigned char *)text;
    unsigned line = 1;
    for (size_t i = 0; i < end; i++) {
        bool brk = s[i] == '\n' || (s[i] == '\r' && (i + 1 >= end || s[i + 1] != '\n')) ||
                   (s[i] == 0xc2 && i + 1 < end && s[i + 1] == 0x85) ||
                   (s[i] == 0xe2 && i + 2 < end && s[i + 1] == 0x80 &&
                    (s[i + 2] == 0xa8 || s[i + 2] == 0xa9));
        line += brk && line < UINT32_MAX;
    }
    return line;
}

static int syntax_error(loader_t *ld, const yaml_parser_t *p, const walk_t *w)
{
    if (p->error == YAML_MEMORY_ERROR) {
        return FAIL(ld, -ENOMEM, ld->src, 0, walk_path(w), "out of memory");
    }
    unsigned line = mark_line(&p->problem_mark);
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark: count the lines up to it. */
        size_t end = p->problem_offset < ld->len ? p->problem_offset : ld->len;
        line = line_at(ld->text, end);
    }
    const char *problem = p->problem != NULL ? p->problem : "malformed YAML";
    if (p->context != NULL) {
        return FAIL(ld, -EINVAL, ld->src, line, walk_path(w), "%s (%s at line %u)", problem,
                    p->context, mark_line(&p->context_mark));
    }
    return FAIL(ld, -EINVAL, ld->src, line, walk_path(w), "%s", problem);
}

static int on_mapping(loader_t *ld, walk_t *w, const yaml_event_t *ev)
{
    unsigned line = mark_line(&ev->start_mark);
    if (w->depth == 0) {
        w->frames[0] = (frame_t){.id = -1};
        w->depth = 1;
        return 0;
    }
    frame_t *top = &w->frames[w->depth - 1];
    if (!top->have_key) {
        return FAIL(ld, -EINVAL, ld->src, line, top->path, "a key must be a plain name");
    }
    if (top->in_list) {
        return FAIL(ld, -EINVAL, ld->src, line, top->key_path,
                    "expected a string entry, got a mapping");
    }
    if (top->key.type != DS__K_SECTION || w->depth == MAX_FRAMES) {
        return FAIL(ld, -EINVAL, ld->src, line, top->key_path, "expected %s, got a mapping",
                    type_desc(top->key.type));
    }
    frame_t *f = &w->frames[w->depth++];
    *f = (frame_t){.id = top->key.id};
    memcpy(f->path, top->key_path, sizeof(f->path));
    return 0;
}

/* A scalar in key position: finds the key under the current mapping. */
static int on_key(loader_t *ld, frame_t *top, const char *name, size_t len, unsigned line)
{
    char shown[64];
    ds__fmt(shown, sizeof(shown), "%.*s", len < 48 ? (int)len : 48, name);
    char path[DS__PATH_MAX];
    ds__fmt(path, sizeof(path), "%s%s%s", top->path, top->path[0] != '\0' ? "." : "", shown);
    size_t plen = strlen(top->path);
    size_t full = plen + (plen > 0) + len;
    /* A '.' or NUL inside a key would reach another key's path: such a key is unknown. */
    bool plain_name = memchr(name, '.', len) == NULL && memchr(name, '\0', len) == NULL;
    char lookup[DS__PATH_MAX];
    ds__key_t key;
    if (!plain_name || len == 0 || full >= sizeof(lookup)) {
        return FAIL(ld, -EINVAL, ld->src, line, path, "unknown key");
    }
    memcpy(lookup, top->path, plen);
    if (plen > 0) {
        lookup[plen] = '.';
    }
    memcpy(lookup + plen + (plen > 0), name, len);
    lookup[full] = '\0';
    if (ds__key_lookup(lookup, full, &key) < 0) {
        return FAIL(ld, -EINVAL, ld->src, line, path, "unknown key");
    }
    if (ld->seen[key.id]) {
        return FAIL(ld, -EINVAL, ld->src, line, lookup, "duplicate key");
    }
    ld->seen[key.id] = true;
    top->have_key = true;
    top->key = key;
    memcpy(top->key_path, lookup, full + 1);
    return 0;
}

static int on_scalar(loader_t *ld, walk_t *w, const yaml_event_t *ev)
{
    unsigned line = mark_line(&ev->start_mark);
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (w->depth == 0) {
        /* A document holding only a null ("---" alone, "~") sets nothing. */
        if (plain && ds__is_null(text, len)) {
            return 0;
        }
        return FAIL(ld, -EINVAL, ld->src, line, "", "expected a mapping of keys at the top level");
    }
    frame_t *top = &w->frames[w->depth - 1];
    if (!top->have_key) {
        return on_key(ld, top, text, len, line);
    }
    char msg[sizeof(ld->err->message)];
    void *base = (char *)ld->cfg + top->key.base;
    if (top->in_list) {
        if (ds__list_add(base, top->key.field, text, len, plain, msg, sizeof(msg)) < 0) {
            return FAIL(ld, -EINVAL, ld->src, line, top->key_path, "%s", msg);
        }
        return 0;
    }
    top->have_key = false;
    if (ds__is_list(top->key.type)) {
        if (!plain || !ds__is_null(text, len)) {
            return FAIL(ld, -EINVAL, ld->src, line, top->key_path,
                        "expected %s, got a single value (write [\"...\"])",
                        type_desc(top->key.type));
        }
        ds__list_clear(base, top->key.field); /* "cors_origins:" with nothing: none */
        ld->origin[top->key.id] = (origin_t){.src = ld->src, .line = line};
        return 0;
    }
    if (top->key.type == DS__K_SECTION) {
        if (plain && ds__is_null(text, len)) {
            return 0; /* "database:" with nothing under it */
        }
        return FAIL(ld, -EINVAL, ld->src, line, top->key_path, "expected a mapping of keys");
    }
    int rc = ds__field_set(base, top->key.field, text, len, plain, msg, sizeof(msg));
    if (rc < 0) {
        return FAIL(ld, -EINVAL, ld->src, line, top->key_path, "%s", msg);
    }
    ld->origin[top->key.id] = (origin_t){.src = ld->src, .line = line};
    return 0;
}

/* A sequence: the value of a list key (read entry by entry), else an error. */
static int on_sequence(loader_t *ld, walk_t *w, unsigned line)
{
    frame_t *top = w->depth > 0 ? &w->frames[w->depth - 1] : NULL;
    if (top == NULL || !top->have_key) {
        return FAIL(ld, -EINVAL, ld->src, line, walk_path(w),
                    "expected a mapping of keys, got a sequence");
    }
    if (top->in_list) {
        return FAIL(ld, -EINVAL, ld->src, line, top->key_path,
                    "expected a string entry, got a sequence");
    }
    if (!ds__is_list(top->key.type)) {
        return FAIL(ld, -EINVAL, ld->src, line, top->key_path, "expected %s, got a sequence",
                    type_desc(top->key.type));
    }
    /* The source's list replaces the one before it, whole. */
    ds__list_clear((char *)ld->cfg + top->key.base, top->key.field);
    ld->origin[top->key.id] = (origin_t){.src = ld->src, .line = line};
    top->in_list = true;
    return 0;
}

static bool has_tag(const yaml_event_t *ev)
{
    if (ev->type == YAML_SCALAR_EVENT) {
        return ev->data.scalar.tag != NULL;
    }
    if (ev->type == YAML_MAPPING_START_EVENT) {
        return ev->data.mapping_start.tag != NULL;
    }
    return ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.tag != NULL;
}

static int on_event(loader_t *ld, walk_t *w, const yaml_event_t *ev)
{
    unsigned line = mark_line(&ev->start_mark);
    if (has_tag(ev)) {
        return FAIL(ld, -EINVAL, ld->src, line, walk_path(w), "YAML tags are not supported");
    }
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        w->done = true;
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++w->docs > 1) {
            return FAIL(ld, -EINVAL, ld->src, line, "", "only one YAML document is allowed");
        }
        return 0;
    case YAML_ALIAS_EVENT:
        return FAIL(ld, -EINVAL, ld->src, line, walk_path(w), "YAML aliases are not supported");
    case YAML_SEQUENCE_START_EVENT:
        return on_sequence(ld, w, line);
    case YAML_SEQUENCE_END_EVENT:
        /* Only a list's sequence gets this far (on_sequence() refuses the others). */
        if (w->depth > 0) {
            w->frames[w->depth - 1].in_list = false;
            w->frames[w->depth - 1].have_key = false;
        }
        return 0;
    case YAML_MAPPING_START_EVENT:
        return on_mapping(ld, w, ev);
    case YAML_MAPPING_END_EVENT:
        w->depth--;
        if (w->depth > 0) {
            w->frames[w->depth - 1].have_key = false;
        }
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(ld, w, ev);
    case YAML_NO_EVENT:
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
        break;
    }
    return 0;
}

/* Applies the YAML text of one source over ld->cfg. */
static int apply_yaml(loader_t *ld, const char *text, size_t len, const char *src)
{
    ld->src = src;
    ld->text = text;
    ld->len = len;
    memset(ld->seen, 0, sizeof(ld->seen));
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        return FAIL(ld, -ENOMEM, src, 0, "", "out of memory");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    walk_t w = {.depth = 0};
    int rc = 0;
    while (rc == 0 && !w.done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = syntax_error(ld, &parser, &w);
            break;
        }
        rc = on_event(ld, &w, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- the environment ---------------------------------------------------------------------- */

static bool env_reserved(const char *name, size_t len)
{
    static const char *const reserved[] = {DS_CONFIG_ENV_RESERVED};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strlen(reserved[i]) == len && strncasecmp(reserved[i], name, len) == 0) {
            return true;
        }
    }
    return false;
}

/* DATABASE__POOL_SIZE -> database.pool_size (len bytes of name): the length, or 0 if the name
 * cannot be a key's (a '.', too long). */
static size_t env_to_path(const char *name, size_t len, char *path, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.' || n + 1 >= size) {
            return 0;
        }
        if (c == '_' && i + 1 < len && name[i + 1] == '_') {
            c = '.';
            i++;
        } else if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        path[n++] = c;
    }
    path[n] = '\0';
    return n;
}

static int apply_env_entry(loader_t *ld, const char *entry)
{
    const char *name = entry + sizeof(ENV_PREFIX) - 1;
    const char *eq = strchr(name, '=');
    if (eq == NULL) {
        return 0; /* not an assignment: nothing to apply */
    }
    size_t nlen = (size_t)(eq - name);
    if (env_reserved(name, nlen)) {
        return 0;
    }
    char var[DS__PATH_MAX];
    size_t vlen = (size_t)(eq - entry);
    ds__fmt(var, sizeof(var), "%.*s", vlen < 120 ? (int)vlen : 120, entry);
    char path[DS__PATH_MAX];
    size_t plen = env_to_path(name, nlen, path, sizeof(path));
    ds__key_t key;
    if (plen == 0 || ds__key_lookup(path, plen, &key) < 0) {
        return FAIL(ld, -EINVAL, ENV_NAME, 0, var,
                    "names no config key (levels are separated by a double underscore: "
                    "DOSSIER_DATABASE__POOL_SIZE)");
    }
    if (key.type == DS__K_SECTION) {
        return FAIL(ld, -EINVAL, ENV_NAME, 0, var, "names the section %s, not a key", path);
    }
    if (ld->seen[key.id]) {
        const origin_t *o = &ld->origin[key.id];
        return FAIL(ld, -EINVAL, ENV_NAME, 0, var, "sets %s, which %.*s sets too", path,
                    (int)(o->varlen < 120 ? o->varlen : 120), o->var);
    }
    char msg[sizeof(ld->err->message)];
    int rc = ds__field_set((char *)ld->cfg + key.base, key.field, eq + 1, strlen(eq + 1), true, msg,
                           sizeof(msg));
    if (rc < 0) {
        return FAIL(ld, -EINVAL, ENV_NAME, 0, var, "%s", msg);
    }
    ld->seen[key.id] = true;
    ld->origin[key.id] = (origin_t){.src = ENV_NAME, .var = entry, .varlen = vlen};
    return 0;
}

static int apply_env(loader_t *ld, char *const *envp)
{
    memset(ld->seen, 0, sizeof(ld->seen));
    ld->src = ENV_NAME;
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        if (strncmp(envp[i], ENV_PREFIX, sizeof(ENV_PREFIX) - 1) != 0) {
            continue;
        }
        int rc = apply_env_entry(ld, envp[i]);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- checks ------------------------------------------------------------------------------ */

/* The built-in defaults must set every key: what they leave out would silently be zero. */
static int check_complete(loader_t *ld)
{
    for (int id = 0; id < DS__NKEYS; id++) {
        ds__key_t key;
        ds__key_by_id(id, &key);
        if (key.type != DS__K_SECTION && !ld->seen[id]) {
            char path[DS__PATH_MAX];
            return FAIL(ld, -EINVAL, defaults_name, 0, ds__key_path(id, path, sizeof(path)),
                        "missing from the built-in defaults");
        }
    }
    return 0;
}

/* Blames key id for a check across keys, at the place that last set it, with the message
 * in ld->msg. */
static int blame_set(loader_t *ld, int id)
{
    const origin_t *o = &ld->origin[id];
    char key[DS__PATH_MAX];
    if (o->var != NULL) {
        ds__fmt(key, sizeof(key), "%.*s", (int)(o->varlen < 120 ? o->varlen : 120), o->var);
    } else {
        (void)ds__key_path(id, key, sizeof(key));
    }
    return fail_set(ld, -EINVAL, o->src, o->line, key);
}

#define BLAME(ld, id, ...) \
    (ds__fmt((ld)->msg, sizeof((ld)->msg), __VA_ARGS__), blame_set((ld), (id)))

static int key_id(const char *path)
{
    ds__key_t key;
    int rc = ds__key_lookup(path, strlen(path), &key);
    return rc == 0 ? key.id : 0;
}

static int check_across(loader_t *ld)
{
    const ds_config_t *cfg = ld->cfg;
    int min_id = key_id("database.reconnect_min_ms");
    int max_id = key_id("database.reconnect_max_ms");
    if (cfg->database.reconnect_min_ms > cfg->database.reconnect_max_ms) {
        /* Blame the one a user set last: the defaults themselves are consistent. */
        if (ld->origin[min_id].src == defaults_name) {
            return BLAME(ld, max_id, "must not be less than database.reconnect_min_ms (%u)",
                         cfg->database.reconnect_min_ms);
        }
        return BLAME(ld, min_id, "must not exceed database.reconnect_max_ms (%u)",
                     cfg->database.reconnect_max_ms);
    }
    if (cfg->http.limits.stream_threshold < cfg->http.limits.max_body) {
        /* The API reads request bodies whole (actors/gateway.c takes no streamed request). */
        int body_id = key_id("http.limits.max_body");
        int stream_id = key_id("http.limits.stream_threshold");
        if (ld->origin[stream_id].src == defaults_name) {
            return BLAME(ld, body_id,
                         "must not exceed http.limits.stream_threshold (%u): the API reads "
                         "request bodies whole",
                         cfg->http.limits.stream_threshold);
        }
        return BLAME(ld, stream_id, "must not be less than http.limits.max_body (%u)",
                     cfg->http.limits.max_body);
    }
    bool dsn = cfg->database.dsn[0] != '\0';
    bool owner = cfg->database.owner_dsn[0] != '\0';
    if (dsn && !owner) {
        return BLAME(ld, key_id("database.dsn"),
                     "needs database.owner_dsn too (the owner role runs migrations)");
    }
    if (owner && !dsn) {
        return BLAME(ld, key_id("database.owner_dsn"), "needs database.dsn too");
    }
    return 0;
}

/* ---- entry points ------------------------------------------------------------------------- */

static int load(const char *buf, size_t len, const char *name, char *const *envp, ds_config_t **out,
                ds_config_error_t *err)
{
    loader_t *ld = ds_xcalloc(1, sizeof(*ld));
    ld->err = err;
    ld->cfg = ds_xcalloc(1, sizeof(*ld->cfg));
    int rc = apply_yaml(ld, ds_config_defaults[0].data, ds_config_defaults[0].size, defaults_name);
    if (rc == 0) {
        rc = check_complete(ld);
    }
    if (rc == 0 && buf != NULL) {
        rc = apply_yaml(ld, buf, len, name != NULL ? name : "<buffer>");
    }
    if (rc == 0) {
        rc = apply_env(ld, envp);
    }
    if (rc == 0) {
        rc = check_across(ld);
    }
    if (rc == 0) {
        *out = ld->cfg;
    } else {
        ds_config_free(&ld->cfg);
    }
    free(ld);
    return rc;
}

int ds_config_load_buffer(const char *buf, size_t len, const char *name, char *const *envp,
                          ds_config_t **out, ds_config_error_t *err)
{
    const char *shown = name != NULL ? name : "<buffer>";
    if (out == NULL || (buf == NULL && len > 0)) {
        return -EINVAL;
    }
    if (len > DS_CONFIG_FILE_MAX) {
        loader_t ld = {.err = err};
        return FAIL(&ld, -EFBIG, shown, 0, "", "is larger than %d bytes", DS_CONFIG_FILE_MAX);
    }
    return load(buf, len, shown, envp, out, err);
}

/* Reads the whole file at path, at most DS_CONFIG_FILE_MAX bytes: 0 and *out (free() it) with
 * its length in *len, or -errno / -EFBIG. Not just regular files: /dev/stdin works too. */
static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    size_t cap = (size_t)64 * 1024;
    size_t n = 0;
    char *buf = ds_xmalloc(cap);
    int rc = 0;
    for (;;) {
        if (n == cap) {
            if (cap > DS_CONFIG_FILE_MAX) {
                rc = -EFBIG;
                break;
            }
            cap *= 2;
            buf = ds_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            rc = r < 0 ? -errno : 0;
            break;
        }
        n += (size_t)r;
    }
    (void)close(fd);
    if (rc == 0 && n > DS_CONFIG_FILE_MAX) {
        rc = -EFBIG;
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

int ds_config_load(const char *path, char *const *envp, ds_config_t **out, ds_config_error_t *err)
{
    if (out == NULL) {
        return -EINVAL;
    }
    if (path == NULL) {
        return load(NULL, 0, NULL, envp, out, err);
    }
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len);
    if (rc < 0) {
        loader_t ld = {.err = err};
        if (rc == -EFBIG) {
            return FAIL(&ld, rc, path, 0, "", "is larger than %d bytes", DS_CONFIG_FILE_MAX);
        }
        return FAIL(&ld, rc, path, 0, "", "cannot read the file: %s", ds_strerror(rc));
    }
    rc = load(buf, len, path, envp, out, err);
    free(buf);
    return rc;
}

int ds_config_check_file(const char *path, char *const *envp, ds_config_error_t *err)
{
    ds_config_t *cfg = NULL;
    int rc = ds_config_load(path, envp, &cfg, err);
    ds_config_free(&cfg);
    return rc;
}

void ds_config_free(ds_config_t **cfgp)
{
    if (cfgp == NULL || *cfgp == NULL) {
        return;
    }
    ds_config_t *cfg = *cfgp;
    for (int i = 0; i < DS__NCFG; i++) {
        const ds__field_t *f = &ds__cfg_fields[i];
        if (ds__is_list(f->type)) {
            ds__list_clear(cfg, f);
            continue;
        }
        if (f->type != DS__K_STR && f->type != DS__K_PATH && f->type != DS__K_REGION) {
            continue;
        }
        char *s = NULL;
        memcpy(&s, (char *)cfg + f->offset, sizeof(s));
        if (s != NULL && (f->flags & DS__F_SECRET)) {
            explicit_bzero(s, strlen(s));
        }
        free(s);
    }
    free(cfg);
    *cfgp = NULL;
}

const char *ds_config_error_str(const ds_config_error_t *err, char *buf, size_t size)
{
    if (size == 0) {
        return buf;
    }
    char where[300] = "";
    if (err->file[0] != '\0' && err->line > 0) {
        ds__fmt(where, sizeof(where), "%s:%u: ", err->file, err->line);
    } else if (err->file[0] != '\0') {
        ds__fmt(where, sizeof(where), "%s: ", err->file);
    }
    ds__fmt(buf, size, "%s%s%s%s", where, err->key, err->key[0] != '\0' ? ": " : "", err->message);
    return buf;
}
