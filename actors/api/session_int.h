/* session_int: what the session actor's files share (actors/api/session*.c). Private. */
#pragma once

#include "actors/api/api.h"

enum {
    SESSION_CALLS_MAX = 1024, /* requests in flight per tenant; more are answered 503 */
    SESSION_STUCK_S = 60,     /* a request waiting this long for its work is reclaimed */
    SESSION_TICK_S = 5,
};
#define SESSION_ASK_TIMEOUT_NS (25LL * 1000 * 1000 * 1000) /* under the gateway's 30 s */

typedef struct session {
    ds_api_session_cfg_t cfg;
    ds_api_call_t *calls[SESSION_CALLS_MAX];
    size_t ncalls;
    uint64_t next_id;
    const char *accounts[SESSION_CALLS_MAX]; /* logins in progress, by account hash */
    size_t naccounts;
    bool ticking; /* the sweep timer runs */
} session_t;

/* The first step of every call: route, authentication, role, then dispatch. */
int ds_api_session_start(ds_api_call_t *c, const ds_msg_t *reply);
/* Runs the call's handler (after its Idempotency-Key claim, if it carries one). */
int ds_api_session_dispatch(ds_api_call_t *c);
/* Takes the login slot of account (a hash, owned by the call's data) for c: false when another
 * login of the same account is in progress. Released when the call is freed. */
bool ds_api_session_account_take(ds_api_call_t *c, const char *account);
/* Runs the call's handler now. */
int ds_api_session_dispatch_handler(ds_api_call_t *c);
/* Answers a stored response again (an Idempotency-Key retry). */
int ds_api_session_replay(ds_api_call_t *c, const ds_pg_value_t *status,
                          const ds_pg_value_t *headers, const ds_pg_value_t *body);
/* Releases the call's Idempotency-Key claim (its create did not succeed), without waiting. */
void ds_api_session_idem_release(ds_api_call_t *c);
/* Claims the call's Idempotency-Key, then dispatches, replays or refuses. */
int ds_api_session_idem_claim(ds_api_call_t *c);
/* A problem answered outside any call (the session is full). */
int ds_api_session_problem_raw(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t status,
                               const char *slug, const char *detail,
                               const ds_http_header_t *headers, size_t n);
