/* router: the route table and its matcher. See actors/api/router.h. */
#include "actors/api/router.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const ds_api_route_t ds_api_routes[DS_API_ROUTE_COUNT] = {
#define DS_ROUTE(m, p, n, f, k, b) [DS_API_ROUTE_##n] = {#m, p, #n, (f), k, b},
#include "actors/api/routes.def"
#undef DS_ROUTE
};

static bool router_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* A canonical lower-case uuid of exactly len bytes. */
static bool router_uuid(const char *s, size_t len)
{
    if (len != DS_API_UUID_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !router_hex(s[i])) {
            return false;
        }
    }
    return true;
}

/* Matches path against pattern; fills params. */
static bool router_path(const char *pattern, const char *path, size_t len, ds_api_match_t *m)
{
    const char *p = pattern;
    size_t i = 0;
    m->nparams = 0;
    while (*p != '\0') {
        if (i >= len || path[i] != '/' || *p != '/') {
            return false;
        }
        p++;
        i++;
        const char *pend = strchr(p, '/');
        size_t plen = pend != NULL ? (size_t)(pend - p) : strlen(p);
        size_t j = i;
        while (j < len && path[j] != '/') {
            j++;
        }
        size_t slen = j - i;
        if (plen > 0 && p[0] == '{') {
            if (m->nparams == DS_API_PARAMS_MAX || !router_uuid(path + i, slen)) {
                return false;
            }
            memcpy(m->params[m->nparams], path + i, slen);
            m->params[m->nparams++][slen] = '\0';
        } else if (slen != plen || memcmp(p, path + i, slen) != 0) {
            return false;
        }
        p += plen;
        i = j;
    }
    return i == len;
}

static void router_allow(char *allowed, size_t cap, const char *method)
{
    if (allowed == NULL || cap == 0) {
        return;
    }
    size_t used = strlen(allowed);
    int n = snprintf(allowed + used, cap - used, "%s%s", used > 0 ? ", " : "", method);
    if (n < 0 || (size_t)n >= cap - used) {
        allowed[used] = '\0';
    }
}

int ds_api_route_match(const char *method, size_t method_len, const char *path, size_t path_len,
                       ds_api_match_t *out, char *allowed, size_t cap)
{
    bool path_known = false;
    if (allowed != NULL && cap > 0) {
        allowed[0] = '\0';
    }
    for (size_t r = 0; r < DS_API_ROUTE_COUNT; r++) {
        const ds_api_route_t *rt = &ds_api_routes[r];
        ds_api_match_t m;
        if (!router_path(rt->pattern, path, path_len, &m)) {
            continue;
        }
        if (strlen(rt->method) == method_len && memcmp(rt->method, method, method_len) == 0) {
            m.route = (ds_api_route_id_t)r;
            *out = m;
            return 0;
        }
        path_known = true;
        router_allow(allowed, cap, rt->method);
    }
    return path_known ? -EPERM : -ENOENT;
}

/* A JSON string of ours (no characters that need escaping but " and \). */
static void router_json_str(FILE *out, const char *s)
{
    if (s == NULL) {
        (void)fputs("null", out);
        return;
    }
    (void)fputc('"', out);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            (void)fputc('\\', out);
        }
        (void)fputc(*s, out);
    }
    (void)fputc('"', out);
}

int ds_api_routes_dump_json(FILE *out)
{
    static const struct {
        unsigned flag;
        const char *name;
    } flags[] = {
        {DS_API_PUBLIC, "public"},     {DS_API_LOGIN, "login"}, {DS_API_REFRESH, "refresh"},
        {DS_API_BEARER, "bearer"},     {DS_API_ADMIN, "admin"}, {DS_API_MUTATES, "mutates"},
        {DS_API_IDEMPOTENT, "create"},
    };
    (void)fputs("[", out);
    for (size_t r = 0; r < DS_API_ROUTE_COUNT; r++) {
        const ds_api_route_t *rt = &ds_api_routes[r];
        (void)fprintf(out, "%s\n  {\"method\":\"%s\",\"path\":", r > 0 ? "," : "", rt->method);
        router_json_str(out, rt->pattern);
        (void)fprintf(out, ",\"name\":\"%s\",\"flags\":[", rt->name);
        bool first = true;
        for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
            if ((rt->flags & flags[f].flag) == flags[f].flag) {
                (void)fprintf(out, "%s\"%s\"", first ? "" : ",", flags[f].name);
                first = false;
            }
        }
        (void)fputs("],\"param_kinds\":", out);
        router_json_str(out, rt->param_kinds);
        (void)fputs(",\"attack_body\":", out);
        router_json_str(out, rt->attack_body);
        (void)fputs("}", out);
    }
    (void)fputs("\n]\n", out);
    return ferror(out) ? -EIO : 0;
}
