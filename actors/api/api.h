/* api: the HTTP API's per-tenant session actor and the toolkit its route handlers use.
 *
 * Flow. The gateway (actors/gateway.c) finds a request's tenant (from the access token or API
 * key, from the refresh token for /v1/auth/refresh, from the Host subdomain for login), refuses
 * suspended tenants and rate-limited ones, and forwards the DS_MT_HTTP_REQUEST message
 * unchanged to that tenant's session actor, which runs in the tenant's runtime group (its
 * mailbox limit and byte cap are the tenant's: a full one answers 503 for that tenant only).
 * The session matches the route, authenticates the caller again (never trusting anything but
 * its own checks: a token of another tenant is refused), checks the route's role, decodes the
 * JSON body strictly, and calls the route's handler api_h_<name>() (actors/api/routes.def).
 *
 * A handler never blocks: it builds a tenant transaction (transports/pg/pool.h) and asks the
 * pool with ds_api_tx(), or hands CPU-heavy work (argon2id) to the work pool with
 * ds_api_work(), naming the step to run with the outcome. A step answers the request
 * (ds_api_reply*, ds_api_problem*) or starts another round. The call is freed once answered
 * with nothing in flight.
 *
 * Auditing. Mutating routes write their audit entry in the transaction that makes the change
 * (ds_api_audit_stmt()). When a mutating request fails after its route matched (not found,
 * conflict, denied...), ds_api_fail() writes a failure entry in a transaction of its own and
 * then answers: an id that does not exist and one the caller may not see take that same path.
 *
 * Threads: a call belongs to its session actor; everything here runs on the actor's turn. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "actors/api/router.h"
#include "actors/identity/json.h"
#include "actors/identity/token.h"
#include "config/config.h"
#include "runtime/loop.h"
#include "runtime/rt.h"
#include "transports/http/http_msgs.h"
#include "transports/http/server.h"
#include "transports/pg/pool.h"

enum {
    DS_API_IP_MAX = 64,
    DS_API_IDEM_KEY_MAX = 255,
    DS_API_LIST_DEFAULT = 50,
    DS_API_LIST_MAX = 200,
    DS_API_BODY_MAX = 65536, /* JSON request bodies */
    DS_API_REFRESH_TTL_S = 14 * 24 * 3600,
    DS_API_SESSION_TTL_S = 30 * 24 * 3600,
};

/* What every session of the node shares; read-only once serving. */
typedef struct ds_api_env {
    ds_actor_id_t pool;          /* the PostgreSQL pool */
    ds_loop_t *work_loop;        /* ds_loop_work() runs argon2id here */
    const ds_token_ring_t *ring; /* access-token keys */
    const ds_config_t *cfg;      /* plans (limits) */
    uint32_t refresh_ttl_s;      /* [DS_API_REFRESH_TTL_S] */
    uint32_t session_ttl_s;      /* [DS_API_SESSION_TTL_S] */
    const char *dummy_hash;      /* argon2id of a random password at the configured cost: what
                                    a login with an unknown email verifies (NULL: built-in) */
} ds_api_env_t;

/* What a session is spawned with (copied). */
typedef struct ds_api_session_cfg {
    const ds_api_env_t *env;
    char tenant[DS_API_UUID_LEN + 1];
    char slug[64];
    uint64_t max_users; /* the effective plan's; UINT64_MAX: unlimited */
} ds_api_session_cfg_t;

extern const ds_behaviour_t ds_api_session_behaviour;

typedef enum ds_api_principal {
    DS_API_ANONYMOUS = 0,
    DS_API_USER,
    DS_API_SERVICE_ACCOUNT,
} ds_api_principal_t;

typedef struct ds_api_call ds_api_call_t;
/* A continuation: the reply of the pool (RESULT, FAIL, an error reply or a timeout) or the
 * work pool's DS_MT_API_WORK_DONE. A negative return is a bug of ours: the session answers 500
 * (if nothing was answered yet) and logs it. */
typedef int (*ds_api_step_t)(ds_api_call_t *c, const ds_msg_t *reply);

struct ds_api_call {
    const ds_api_session_cfg_t *session; /* the tenant */
    ds_ctx_t *ctx;                       /* valid during the current step only */
    uint64_t id;
    ds_msg_t *msg;         /* the request, owned */
    ds_http_request_t req; /* decoded view into msg */
    ds_api_match_t match;
    const ds_api_route_t *route;
    ds_api_principal_t who;
    char who_id[DS_API_UUID_LEN + 1]; /* user or service account */
    unsigned roles;                   /* DS_ROLE_* */
    bool read_only;                   /* an API key scoped to reads */
    char ip[DS_API_IP_MAX];           /* the client address, "" when unknown */
    char request_id[DS_HTTP_REQUEST_ID_MAX + 1];
    ds_json_body_t *body; /* the decoded JSON body, when the route takes one */
    /* in flight */
    ds_api_step_t next;
    uint64_t corr;            /* the pool ask */
    bool working;             /* work pool */
    void *work_item;          /* private: the session's */
    void *owner;              /* private: the session */
    const char *account_slot; /* private: the login account this call holds */
    bool idem_claimed;        /* its Idempotency-Key is claimed (released unless answered 201) */
    int64_t started_ns;       /* ds_clock_now() when it arrived */
    bool answered;
    /* Idempotency-Key of a create */
    bool idem;
    char idem_key[DS_API_IDEM_KEY_MAX + 1];
    char idem_hash[65]; /* hex SHA-256 of method, route and body */
    /* the audit entry of this request: action and object, set by the handler */
    const char *action;
    char action_buf[64];
    const char *object_type;
    char object_id[DS_API_UUID_LEN + 1];
    /* a failure being audited before it is answered (ds_api_fail) */
    uint32_t fail_status;
    const char *fail_slug;
    char fail_detail[256];
    ds_http_header_t fail_headers[1];
    size_t fail_nheaders;
    /* the handler's own */
    void *data;
    void (*data_free)(void *data);
    char new_id[DS_API_UUID_LEN + 1]; /* the id of an object being created */
};

/* --- rounds ------------------------------------------------------------------------------ */

/* Sends *reqp (statements added by the handler; consumed) as a transaction of the call's
 * tenant; next runs with the reply. 0, or a negative code (nothing in flight: answer 503). */
int ds_api_tx(ds_api_call_t *c, ds_pg_req_t **reqp, ds_api_step_t next);
/* Runs work(arg) on the work pool (off the scheduler threads); next runs with DS_MT_API_WORK_DONE.
 * arg belongs to the handler (keep it in c->data to have it freed). 0 or a negative code. */
int ds_api_work(ds_api_call_t *c, void (*work)(void *arg), void *arg, ds_api_step_t next);

/* --- replies ----------------------------------------------------------------------------- */

/* Answers status with body (len bytes of JSON; NULL/0 for none) and extra headers. */
int ds_api_reply(ds_api_call_t *c, uint32_t status, const ds_http_header_t *headers, size_t n,
                 const char *body, size_t len);
/* Answers an RFC 9457 problem: https://dossier.dev/problems/<slug>, its title (fixed per slug),
 * status, detail. */
int ds_api_problem(ds_api_call_t *c, uint32_t status, const char *slug, const char *detail);
/* The same with extra headers (Retry-After, Allow, WWW-Authenticate) and/or an "errors" array
 * (a jansson array, stolen; NULL for none). */
int ds_api_problem_ex(ds_api_call_t *c, uint32_t status, const char *slug, const char *detail,
                      const ds_http_header_t *headers, size_t n, json_t *errors);
/* 404 not-found. */
int ds_api_not_found(ds_api_call_t *c);
/* Maps a failed pool reply onto a problem: unique violation -> 409 conflict, check violation
 * -> 400 validation-failed, our plan-limit SQLSTATE -> 409, timeouts and lost connections ->
 * 503, anything else -> 500 (logged). */
int ds_api_pg_problem(ds_api_call_t *c, const ds_pg_reply_t *r);

/* For a mutating route: writes the failure audit entry (outcome, reason) in a transaction of
 * its own, releases the call's Idempotency-Key claim, then answers the problem. */
int ds_api_fail(ds_api_call_t *c, const char *outcome, const char *reason, uint32_t status,
                const char *slug, const char *detail);
/* The same for a failed pool reply (mapped as ds_api_pg_problem()). */
int ds_api_fail_pg(ds_api_call_t *c, const ds_pg_reply_t *r);

/* --- statements -------------------------------------------------------------------------- */

/* Appends to r the audit entry of the call (its principal, address, request id), with outcome
 * and details (a JSON object text, NULL for {}): SELECT dossier.audit_append(...). */
int ds_api_audit_stmt(ds_pg_req_t *r, const ds_api_call_t *c, const char *outcome,
                      const char *details);
/* The SQL fragment of the audit call with parameters numbered from first ($first..$first+9),
 * and their values in params[10] (pointing into c and details). For statements that write
 * the entry in the same statement as the change (WITH ... SELECT ..., <this> FROM ...). The
 * object id parameter is c->object_id, or NULL when empty. */
void ds_api_audit_params(const ds_api_call_t *c, const char *outcome, const char *details,
                         const char *params[10]);
/* Appends the Idempotency-Key completion to r, when the call carries a key: the stored
 * response is 201 with the body render_sql and the Location location_sql, both SQL
 * expressions over $1 = param (the new object's id, or what finds it). */
int ds_api_idem_complete_stmt(ds_pg_req_t *r, const ds_api_call_t *c, const char *render_sql,
                              const char *location_sql, const char *param);

/* --- reading ----------------------------------------------------------------------------- */

/* A list: runs sql ($1 = the cursor uuid or NULL, $2 = the limit, $3.. = extra[]) whose one
 * value is the page's JSON, and answers it 200 (or the failure). Answers 400 for a bad
 * limit or cursor. */
int ds_api_list(ds_api_call_t *c, const char *sql, const char *const *extra, size_t nextra);
/* A list page's SQL over rows of table (alias r, rendered by render(r)), newest ids last,
 * keyset-paginated on id, filtered by where (over r, may use $3..): into out. */
int ds_api_list_sql(char *out, size_t cap, const char *render, const char *table,
                    const char *where);
/* Answers a single object: statement 0 of reply has one row (json, row_version) -> 200 with
 * ETag, or none -> 404 (or ds_api_fail for mutating routes). status is 200 or 201; location
 * is set for 201. */
int ds_api_object_reply(ds_api_call_t *c, const ds_pg_reply_t *r, uint32_t stmt, uint32_t status,
                        const char *location_prefix);
/* The single value of the first row of statement i of a RESULT, or NULL (no row, NULL value). */
const ds_pg_value_t *ds_api_value(const ds_pg_reply_t *r, uint32_t stmt);
/* The query parameter name's value, percent-decoded into out (cap bytes): 1 found, 0 absent,
 * -EINVAL malformed or too long. */
int ds_api_query(const ds_api_call_t *c, const char *name, char *out, size_t cap);
/* limit and cursor of a list (400 answered and -EINVAL returned on bad values). cursor is a
 * uuid or "" (cap DS_API_UUID_LEN + 1). */
int ds_api_list_params(ds_api_call_t *c, char *limit, size_t limit_cap, char *cursor);
/* If-Match as a row version: 1 and *version, 0 absent, -EINVAL malformed (412 answered). */
int ds_api_if_match(ds_api_call_t *c, char *version, size_t cap);
/* Decodes the body against fields; on failure answers 400/413/415 and returns -EINVAL. */
int ds_api_body(ds_api_call_t *c, const ds_json_field_t *fields, size_t n);
/* A new UUID v7 (time-ordered, as dossier.uuid_v7()) into out. 0 or -EIO. */
int ds_api_uuid_v7(char out[DS_API_UUID_LEN + 1]);
/* The roles bit set of a text[] literal ("{viewer,admin}"), 0 if none is known. */
unsigned ds_api_roles_parse(const char *s, size_t len);
/* roles as a text[] literal into out ("{admin}"). */
void ds_api_roles_format(unsigned roles, char *out, size_t cap);

/* Steps most handlers end with. ds_api_step_204: 204 when statement 0 returned a row, else a
 * 404 failure (audited). ds_api_step_object: statement 0's (json, row_version) as 200 with
 * ETag, else 404. ds_api_step_value: statement 0's one value as 200, NULL as 404. */
int ds_api_step_204(ds_api_call_t *c, const ds_msg_t *reply);
int ds_api_step_object(ds_api_call_t *c, const ds_msg_t *reply);
int ds_api_step_value(ds_api_call_t *c, const ds_msg_t *reply);

/* The handlers, one per route of routes.def. */
#define DS_ROUTE(method, pattern, name, flags, kinds, body) int api_h_##name(ds_api_call_t *c);
#include "actors/api/routes.def"
#undef DS_ROUTE
