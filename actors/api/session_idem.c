/* session_idem: Idempotency-Key on creates (DESIGN.md §9). The first request with a key claims
 * it (dossier.api_idem_claim), and the create's own transaction stores its response with the
 * change (ds_api_idem_complete_stmt), so a retry after a lost answer replays exactly what was
 * created; the same key with another request is refused (422), one still running is 409. A
 * failed create releases its claim (ds_api_fail), so it may be retried. */
#include <errno.h>
#include <string.h>

#include "actors/api/session_int.h"

static int idem_claimed(ds_api_call_t *c, const ds_msg_t *reply)
{
    ds_pg_reply_t r;
    int rc = ds_pg_reply_decode(reply, &r);
    if (rc < 0) {
        return rc;
    }
    if (r.code != 0) {
        rc = ds_api_pg_problem(c, &r);
        ds_pg_reply_fini(&r);
        return rc;
    }
    const ds_pg_rows_t *rows = &r.stmts[0];
    if (rows->nrows != 1 || rows->ncols != 6) {
        ds_pg_reply_fini(&r);
        return -EPROTO;
    }
    const ds_pg_value_t *claimed = ds_pg_rows_at(rows, 0, 0);
    const ds_pg_value_t *same = ds_pg_rows_at(rows, 0, 1);
    const ds_pg_value_t *state = ds_pg_rows_at(rows, 0, 2);
    const ds_pg_value_t *status = ds_pg_rows_at(rows, 0, 3);
    const ds_pg_value_t *headers = ds_pg_rows_at(rows, 0, 4);
    const ds_pg_value_t *body = ds_pg_rows_at(rows, 0, 5);
    if (claimed->len == 1 && claimed->ptr[0] == 't') {
        ds_pg_reply_fini(&r);
        c->idem_claimed = true;
        return ds_api_session_dispatch_handler(c);
    }
    c->idem = false; /* not ours: nothing to release */
    if (!(same->len == 1 && same->ptr[0] == 't')) {
        rc = ds_api_problem(c, 422, "idempotency-key-reused",
                            "this Idempotency-Key was used with another request");
    } else if (state->len != 9 || memcmp(state->ptr, "completed", 9) != 0 || status->null) {
        rc = ds_api_problem(c, 409, "idempotency-in-progress",
                            "a request with this Idempotency-Key is still being processed");
    } else {
        rc = ds_api_session_replay(c, status, headers, body);
    }
    ds_pg_reply_fini(&r);
    return rc;
}

int ds_api_session_idem_claim(ds_api_call_t *c)
{
    ds_pg_req_t *r = ds_pg_req_new();
    char method[33];
    char path[512];
    (void)snprintf(method, sizeof(method), "%.*s", (int)c->req.method.len, c->req.method.ptr);
    (void)snprintf(path, sizeof(path), "%.*s", (int)c->req.path.len, c->req.path.ptr);
    const char *p[] = {c->who_id, c->idem_key, method, path, c->idem_hash};
    int rc = ds_pg_req_add(
        r, "SELECT * FROM dossier.api_idem_claim($1::uuid, $2, $3, $4, decode($5, 'hex'))", 5, p);
    if (rc < 0) {
        ds_pg_req_free(&r);
        return rc;
    }
    return ds_api_tx(c, &r, idem_claimed);
}

void ds_api_session_idem_release(ds_api_call_t *c)
{
    if (!c->idem_claimed || c->ctx == NULL) {
        return;
    }
    c->idem_claimed = false;
    ds_pg_req_t *r = ds_pg_req_new();
    const char *p[] = {c->who_id, c->idem_key};
    ds_msg_t *ask = NULL;
    int rc = ds_pg_req_add(r,
                           "DELETE FROM dossier.idempotency_keys WHERE principal_id = $1::uuid"
                           " AND key = $2 AND state = 'in_progress'",
                           2, p);
    if (rc == 0) {
        rc = ds_pg_req_tx(r, c->session->tenant, &(ds_pg_opts_t){0}, &ask);
    }
    ds_pg_req_free(&r);
    uint64_t corr = 0;
    if (rc == 0) { /* its reply matches no call and is dropped; a failure leaves the claim to
                      expire (2 minutes) */
        (void)ds_ask(c->ctx, c->session->env->pool, &ask, SESSION_ASK_TIMEOUT_NS, &corr);
    }
    ds_msg_free(&ask);
}
