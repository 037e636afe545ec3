/* audit_route: GET /v1/audit, the tenant's audit trail for its admins, newest first, filtered
 * by actor, object, action and time range, paginated by seq (the cursor is the last seq seen).
 * Times are RFC 3339; a malformed one is a 400. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/api/session_int.h"

static const char audit_list_sql[] =
    "SELECT json_build_object('items', COALESCE(json_agg(dossier.api_audit_entry(s.a)"
    " ORDER BY (s.a).seq DESC), '[]'::json), 'next_cursor', CASE WHEN count(*) = $2::integer"
    " THEN min((s.a).seq)::text END)"
    " FROM (SELECT a FROM dossier.audit_log a WHERE ($1::bigint IS NULL OR a.seq < $1::bigint)"
    " AND ($3::uuid IS NULL OR a.actor_id = $3::uuid)"
    " AND ($4::uuid IS NULL OR a.object_id = $4::uuid)"
    " AND ($5::text IS NULL OR a.action = $5)"
    " AND ($6::timestamptz IS NULL OR a.created_at >= $6::timestamptz)"
    " AND ($7::timestamptz IS NULL OR a.created_at < $7::timestamptz)"
    " ORDER BY a.seq DESC LIMIT $2::integer) s";

static bool audit_digits(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 18) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

/* A time of the form 2026-11-23T14:00:00Z / +01:00, with optional fraction. */
static bool audit_time(const char *s)
{
    size_t n = strlen(s);
    if (n < 20 || n > 35 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= '0' && ch <= '9') || ch == '-' || ch == ':' || ch == 'T' || ch == 't' ||
                  ch == 'Z' || ch == 'z' || ch == '+' || ch == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool audit_action(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100 || s[0] < 'a' || s[0] > 'z') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.')) {
            return false;
        }
    }
    return true;
}

typedef struct audit_filter {
    const char *name;
    bool (*valid)(const char *s);
} audit_filter_t;

static bool audit_uuid(const char *s)
{
    return ds_token_uuid_valid(s, strlen(s));
}

int api_h_audit_list(ds_api_call_t *c)
{
    static const audit_filter_t filters[] = {
        {"cursor", audit_digits},  {"limit", audit_digits},  {"actor_id", audit_uuid},
        {"object_id", audit_uuid}, {"action", audit_action}, {"since", audit_time},
        {"until", audit_time},
    };
    char vals[7][48];
    const char *p[7];
    for (size_t i = 0; i < 7; i++) {
        int rc = ds_api_query(c, filters[i].name, vals[i], sizeof(vals[i]));
        if (rc < 0 || (rc == 1 && !filters[i].valid(vals[i]))) {
            char detail[96];
            (void)snprintf(detail, sizeof(detail), "%s is malformed", filters[i].name);
            return ds_api_problem(c, 400, "bad-request", detail);
        }
        p[i] = rc == 1 ? vals[i] : NULL;
    }
    long limit = p[1] != NULL ? strtol(p[1], NULL, 10) : DS_API_LIST_DEFAULT;
    if (limit < 1 || limit > DS_API_LIST_MAX) {
        return ds_api_problem(c, 400, "bad-request", "limit must be an integer from 1 to 200");
    }
    (void)snprintf(vals[1], sizeof(vals[1]), "%ld", limit);
    p[1] = vals[1];
    ds_pg_req_t *r = ds_pg_req_new();
    int rc = ds_pg_req_add(r, audit_list_sql, 7, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, ds_api_step_value);
}
