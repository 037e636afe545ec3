/* router: the HTTP API's route table (actors/api/routes.def) and the matcher that maps a
 * method and path onto a route and its path parameters.
 *
 * Matching is exact: literal segments compare byte for byte, a {param} segment matches a
 * canonical lower-case uuid (8-4-4-4-12) and nothing else, a trailing slash or an empty segment
 * matches nothing. A path that matches no pattern is 404; one that matches a pattern under
 * another method is 405 with the allowed methods. No allocation; threads: any. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    DS_API_PARAMS_MAX = 2, /* {param} segments in a pattern */
    DS_API_UUID_LEN = 36,
};

/* Route flags. Exactly one of the first four says how the caller is known. */
enum ds_api_flags {
    DS_API_PUBLIC = 1u << 0,     /* no credentials (none yet) */
    DS_API_LOGIN = 1u << 1,      /* tenant from the Host subdomain; credentials in the body */
    DS_API_REFRESH = 1u << 2,    /* tenant from the refresh token in the body */
    DS_API_BEARER = 1u << 3,     /* Authorization: Bearer access token or API key */
    DS_API_ADMIN = 1u << 4,      /* the tenant role admin is required */
    DS_API_MUTATES = 1u << 5,    /* changes state: audited, even when refused */
    DS_API_IDEMPOTENT = 1u << 6, /* honours Idempotency-Key */
    DS_API_CREATE = DS_API_IDEMPOTENT | DS_API_MUTATES, /* a create */
};

typedef struct ds_api_route {
    const char *method;
    const char *pattern;
    const char *name;        /* handler and operationId stem: users_get */
    unsigned flags;          /* DS_API_* */
    const char *param_kinds; /* "group,user", or "" */
    const char *attack_body; /* JSON template with {kind} placeholders, or NULL */
} ds_api_route_t;

typedef enum ds_api_route_id {
#define DS_ROUTE(method, pattern, name, flags, kinds, body) DS_API_ROUTE_##name,
#include "actors/api/routes.def"
#undef DS_ROUTE
    DS_API_ROUTE_COUNT
} ds_api_route_id_t;

/* The table, indexed by ds_api_route_id_t. */
extern const ds_api_route_t ds_api_routes[DS_API_ROUTE_COUNT];

typedef struct ds_api_match {
    ds_api_route_id_t route;
    size_t nparams;
    char params[DS_API_PARAMS_MAX][DS_API_UUID_LEN + 1]; /* in pattern order */
} ds_api_match_t;

/* Matches method and path (lengths given, no NUL needed). 0 and *out; -ENOENT when no pattern
 * matches the path (404); -EPERM when a pattern matches under other methods only (405):
 * *allowed (if not NULL) then holds them as "GET, POST" (cap bytes). */
int ds_api_route_match(const char *method, size_t method_len, const char *path, size_t path_len,
                       ds_api_match_t *out, char *allowed, size_t cap);

/* Writes the table as JSON (for `dossier routes --json`, the OpenAPI parity test and the
 * attack suite) to out; 0 or -EIO. */
int ds_api_routes_dump_json(FILE *out);
