/* message: building and reading the gateway's messages (transports/http/server.h). Header
 * lists are name NUL value NUL pairs: llhttp refuses NUL in a head, and ds_http_respond()
 * refuses it in a handler's headers, so the encoding is unambiguous. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "transports/http/http_msgs.h"
#include "transports/http/server.h"
#include "transports/http/server_int.h"

static bool field_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0') {
            return false;
        }
    }
    return true;
}

int ds__http_headers_encode(const ds_http_header_t *h, size_t n, bool check, uint8_t **out,
                            size_t *out_len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (check && (h[i].name_len == 0 || !field_ok(h[i].name, h[i].name_len) ||
                      !field_ok(h[i].value, h[i].value_len))) {
            return -EINVAL;
        }
        total += (size_t)h[i].name_len + h[i].value_len + 2;
        if (total > DS_HTTP_HEADER_LIST_MAX) {
            return -EMSGSIZE;
        }
    }
    uint8_t *b = ds_xmalloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(b + o, h[i].name, h[i].name_len);
        o += h[i].name_len;
        b[o++] = 0;
        memcpy(b + o, h[i].value, h[i].value_len);
        o += h[i].value_len;
        b[o++] = 0;
    }
    *out = b;
    *out_len = o;
    return 0;
}

int ds_http_header_next(ds_bytes_t list, size_t *pos, ds_http_header_t *out)
{
    size_t p = *pos;
    if (p >= list.len) {
        return 0;
    }
    const char *base = (const char *)list.ptr;
    const char *n_end = memchr(base + p, 0, list.len - p);
    if (n_end == NULL) {
        return DS_EDECODE;
    }
    size_t v = (size_t)(n_end - base) + 1;
    const char *v_end = v < list.len ? memchr(base + v, 0, list.len - v) : NULL;
    if (v_end == NULL) {
        return DS_EDECODE;
    }
    *out = (ds_http_header_t){.name = base + p,
                              .name_len = (uint32_t)(n_end - (base + p)),
                              .value = base + v,
                              .value_len = (uint32_t)(v_end - (base + v))};
    *pos = (size_t)(v_end - base) + 1;
    return 1;
}

int ds_http_header_get(ds_bytes_t list, const char *name, ds_http_header_t *out)
{
    size_t pos = 0;
    size_t nlen = strlen(name);
    ds_http_header_t h;
    int rc;
    while ((rc = ds_http_header_next(list, &pos, &h)) == 1) {
        if (h.name_len == nlen && strncasecmp(h.name, name, nlen) == 0) {
            *out = h;
            return 0;
        }
    }
    return rc == 0 ? -ENOENT : rc;
}

int ds_http_answer_new(const ds_http_request_t *req, uint32_t status,
                       const ds_http_header_t *headers, size_t nheaders, const void *body,
                       size_t body_len, ds_msg_t **out)
{
    if (status < 100 || status > 599 || (nheaders > 0 && headers == NULL) ||
        (body_len > 0 && body == NULL)) {
        return -EINVAL;
    }
    if (body_len > DS_HTTP_BODY_MAX) {
        return -EMSGSIZE;
    }
    uint8_t *list;
    size_t list_len;
    int rc = ds__http_headers_encode(headers, nheaders, true, &list, &list_len);
    if (rc < 0) {
        return rc;
    }
    ds_http_response_t v = {
        .conn = req->conn,
        .seq = req->seq,
        .status = status,
        .headers = {.ptr = list, .len = (uint32_t)list_len},
        .body = {.ptr = body, .len = (uint32_t)body_len},
    };
    rc = ds_http_response_new(&v, out);
    free(list);
    return rc;
}

int ds_http_respond(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t status,
                    const ds_http_header_t *headers, size_t nheaders, const void *body,
                    size_t body_len)
{
    ds_msg_t *m;
    int rc = ds_http_answer_new(req, status, headers, nheaders, body, body_len, &m);
    if (rc < 0) {
        return rc;
    }
    rc = ds_send(ctx, req->reply_to, &m);
    if (rc < 0) {
        ds_msg_free(&m);
    }
    return rc;
}

int ds_http_request_read(const ds_msg_t *m, ds_http_request_t *out, bool *streamed,
                         int64_t *content_length)
{
    if (m->type == DS_MT_HTTP_REQUEST) {
        ds_http_request_t v;
        int rc = ds_http_request_decode(m, &v);
        if (rc < 0) {
            return rc;
        }
        *out = v;
        *streamed = false;
        if (content_length != NULL) {
            *content_length = v.body.len;
        }
        return 0;
    }
    ds_http_request_start_t st;
    int rc = ds_http_request_start_decode(m, &st);
    if (rc < 0) {
        return rc;
    }
    *out = (ds_http_request_t){
        .reply_to = st.reply_to,
        .conn = st.conn,
        .seq = st.seq,
        .request_id = st.request_id,
        .method = st.method,
        .path = st.path,
        .query = st.query,
        .headers = st.headers,
        .body = {.ptr = NULL, .len = 0},
        .peer = st.peer,
        .version = st.version,
    };
    *streamed = true;
    if (content_length != NULL) {
        *content_length = st.content_length;
    }
    return 0;
}

static int send_or_free(ds_ctx_t *ctx, ds_actor_id_t to, int rc, ds_msg_t **m)
{
    if (rc == 0) {
        rc = ds_send(ctx, to, m);
    }
    ds_msg_free(m);
    return rc;
}

int ds_http_respond_start(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t status,
                          const ds_http_header_t *headers, size_t nheaders)
{
    if (status < 100 || status > 599 || (nheaders > 0 && headers == NULL)) {
        return -EINVAL;
    }
    uint8_t *list;
    size_t list_len;
    int rc = ds__http_headers_encode(headers, nheaders, true, &list, &list_len);
    if (rc < 0) {
        return rc;
    }
    ds_http_response_start_t v = {
        .conn = req->conn,
        .seq = req->seq,
        .status = status,
        .headers = {.ptr = list, .len = (uint32_t)list_len},
    };
    ds_msg_t *m = NULL;
    rc = ds_http_response_start_new(&v, &m);
    free(list);
    return send_or_free(ctx, req->reply_to, rc, &m);
}

int ds_http_respond_body(ds_ctx_t *ctx, const ds_http_request_t *req, const void *data, size_t len,
                         bool last)
{
    if (len > 0 && data == NULL) {
        return -EINVAL;
    }
    if (len > DS_HTTP_PIECE_MAX) {
        return -EMSGSIZE;
    }
    ds_http_response_body_t v = {
        .conn = req->conn,
        .seq = req->seq,
        .data = {.ptr = data, .len = (uint32_t)len},
        .last = last,
    };
    ds_msg_t *m = NULL;
    int rc = ds_http_response_body_new(&v, &m);
    return send_or_free(ctx, req->reply_to, rc, &m);
}

int ds_http_request_credit(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t pieces)
{
    if (pieces == 0) {
        return -EINVAL;
    }
    ds_http_request_credit_t v = {.conn = req->conn, .seq = req->seq, .pieces = pieces};
    ds_msg_t *m = NULL;
    int rc = ds_http_request_credit_new(&v, &m);
    return send_or_free(ctx, req->reply_to, rc, &m);
}
