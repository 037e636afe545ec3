/* reader: one connection's request reader on llhttp. See transports/http/reader.h.
 *
 * llhttp calls back with pieces of the request as they arrive (a header name may come in
 * several pieces across reads). The head is kept in one growing buffer: the target first,
 * then each header's name and value, located by offsets because the buffer moves as it grows.
 * on_message_complete pauses the parser, so a feed returns after each request and the caller
 * decides when to parse the next one (pipelining with back-pressure).
 *
 * Streaming. A body longer than stream_threshold (known from Content-Length when the head
 * ends, or found while decoding chunks) is not kept whole: the feed that finds it hands out
 * the head alone (DS_HTTP_READ_STREAM), and the body bytes then pile up in the body buffer
 * only as far as the caller feeds them; it takes them out in pieces (body_peek/consume). The
 * caller stops feeding while a piece waits, so the buffer holds at most one feed more than a
 * piece. The limits (max_body) count the whole body, not the buffer. */
#include "transports/http/reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "runtime/mem.h"

typedef struct hdr_off {
    uint32_t noff, nlen, voff, vlen;
} hdr_off_t;

enum rd_state {
    RD_IDLE = 0, /* between requests */
    RD_HEAD,     /* request line and headers */
    RD_BODY,
    RD_DONE, /* complete, handed out */
};

enum {
    BODY_CAP_MIN = 4096,
};

struct ds_http_reader {
    llhttp_t p;
    ds_http_limits_t lim;
    enum rd_state state;
    int status;         /* of the error that stopped the reader, or 0 */
    const char *reason; /* static */
    bool upgraded;
    bool last_was_value;
    char *head;
    uint32_t head_len, head_cap;
    uint32_t url_len;
    hdr_off_t *hdrs;
    uint32_t nhdrs, hdrs_cap;
    ds_http_header_t *out_hdrs; /* hdrs_cap of them, filled when a request completes */
    uint8_t *body;
    size_t body_len, body_cap; /* buffered (the whole body unless streaming) */
    uint64_t body_total;       /* decoded bytes of this request's body so far */
    bool streaming;            /* this request's body goes out in pieces */
    bool head_out;             /* its head was handed out (DS_HTTP_READ_STREAM) */
    bool body_done;            /* its body is complete (the rest is in the buffer) */
};

static int fail(ds_http_reader_t *r, int status, const char *reason)
{
    r->status = status;
    r->reason = reason;
    llhttp_set_error_reason(&r->p, reason);
    return HPE_USER;
}

/* Appends to the head, within max_header_bytes. */
static int head_add(ds_http_reader_t *r, const char *at, size_t len)
{
    if (len > r->lim.max_header_bytes - r->head_len) {
        return fail(r, 431, "request header fields too large");
    }
    size_t need = r->head_len + len;
    if (need > r->head_cap) {
        size_t cap = r->head_cap == 0 ? 1024 : (size_t)r->head_cap * 2;
        while (cap < need) {
            cap *= 2;
        }
        r->head = ds_xrealloc(r->head, cap);
        r->head_cap = (uint32_t)cap;
    }
    memcpy(r->head + r->head_len, at, len);
    r->head_len += (uint32_t)len;
    return 0;
}

static ds_http_reader_t *rd(llhttp_t *p)
{
    return p->data;
}

static int on_message_begin(llhttp_t *p)
{
    ds_http_reader_t *r = rd(p);
    r->state = RD_HEAD;
    r->head_len = 0;
    r->url_len = 0;
    r->nhdrs = 0;
    r->body_len = 0;
    r->body_total = 0;
    r->streaming = false;
    r->head_out = false;
    r->body_done = false;
    r->last_was_value = true;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    ds_http_reader_t *r = rd(p);
    if (len > r->lim.max_url - r->url_len) {
        return fail(r, 414, "request target too long");
    }
    r->url_len += (uint32_t)len;
    return head_add(r, at, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    ds_http_reader_t *r = rd(p);
    if (r->last_was_value) {
        if (r->nhdrs == r->lim.max_headers) {
            return fail(r, 431, "too many header fields");
        }
        if (r->nhdrs == r->hdrs_cap) {
            r->hdrs_cap = r->hdrs_cap == 0 ? 16 : r->hdrs_cap * 2;
            r->hdrs = ds_xrealloc(r->hdrs, r->hdrs_cap * sizeof(*r->hdrs));
            r->out_hdrs = ds_xrealloc(r->out_hdrs, r->hdrs_cap * sizeof(*r->out_hdrs));
        }
        r->hdrs[r->nhdrs++] = (hdr_off_t){.noff = r->head_len, .voff = r->head_len};
        r->last_was_value = false;
    }
    hdr_off_t *h = &r->hdrs[r->nhdrs - 1];
    int rc = head_add(r, at, len);
    if (rc == 0) {
        h->nlen += (uint32_t)len;
        h->voff = r->head_len;
    }
    return rc;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    ds_http_reader_t *r = rd(p);
    if (r->nhdrs == 0) {
        return fail(r, 400, "header value without a name");
    }
    hdr_off_t *h = &r->hdrs[r->nhdrs - 1];
    if (!r->last_was_value) {
        h->voff = r->head_len;
        r->last_was_value = true;
    }
    int rc = head_add(r, at, len);
    if (rc == 0) {
        h->vlen += (uint32_t)len;
    }
    return rc;
}

static int on_headers_complete(llhttp_t *p)
{
    ds_http_reader_t *r = rd(p);
    r->state = RD_BODY;
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > r->lim.max_body) {
        (void)fail(r, 413, "request body too large");
        return -1;
    }
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > r->lim.stream_threshold) {
        r->streaming = true;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    ds_http_reader_t *r = rd(p);
    if (len > r->lim.max_body - r->body_total) {
        return fail(r, 413, "request body too large");
    }
    r->body_total += len;
    if (r->body_total > r->lim.stream_threshold) {
        r->streaming = true; /* chunked: found while decoding */
    }
    size_t need = r->body_len + len;
    if (need > r->body_cap) {
        size_t cap = r->body_cap == 0 ? BODY_CAP_MIN : r->body_cap * 2;
        while (cap < need) {
            cap *= 2;
        }
        r->body = ds_xrealloc(r->body, cap);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    rd(p)->state = RD_DONE;
    rd(p)->body_done = true;
    return HPE_PAUSED; /* one request per feed: the caller parses the next when ready */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static uint32_t pick(uint32_t v, uint32_t def, uint32_t ceiling)
{
    if (v == 0) {
        return def;
    }
    return v > ceiling ? ceiling : v;
}

ds_http_limits_t ds_http_limits_effective(const ds_http_limits_t *lim)
{
    ds_http_limits_t z = {0};
    if (lim == NULL) {
        lim = &z;
    }
    return (ds_http_limits_t){
        .max_header_bytes = pick(lim->max_header_bytes, 16384, DS_HTTP_HEADER_BYTES_MAX),
        .max_headers = pick(lim->max_headers, 64, DS_HTTP_HEADERS_MAX),
        .max_url = pick(lim->max_url, 4096, DS_HTTP_URL_MAX),
        .max_body = pick(lim->max_body, 1048576, DS_HTTP_STREAM_BODY_MAX),
        .stream_threshold = pick(lim->stream_threshold, 1048576, DS_HTTP_BODY_MAX),
    };
}

int ds_http_reader_new(const ds_http_limits_t *lim, ds_http_reader_t **out)
{
    ds_http_reader_t *r = ds_xcalloc(1, sizeof(*r));
    r->lim = ds_http_limits_effective(lim);
    llhttp_init(&r->p, HTTP_REQUEST, &settings);
    r->p.data = r;
    *out = r;
    return 0;
}

void ds_http_reader_free(ds_http_reader_t **rp)
{
    if (rp == NULL || *rp == NULL) {
        return;
    }
    ds_http_reader_t *r = *rp;
    free(r->head);
    free(r->hdrs);
    free(r->out_hdrs);
    free(r->body);
    free(r);
    *rp = NULL;
}

static void fill(ds_http_reader_t *r, ds_http_parsed_t *req)
{
    for (uint32_t i = 0; i < r->nhdrs; i++) {
        const hdr_off_t *h = &r->hdrs[i];
        r->out_hdrs[i] = (ds_http_header_t){.name = r->head + h->noff,
                                            .name_len = h->nlen,
                                            .value = r->head + h->voff,
                                            .value_len = h->vlen};
    }
    *req = (ds_http_parsed_t){
        .method = llhttp_method_name((llhttp_method_t)llhttp_get_method(&r->p)),
        .url = r->head,
        .url_len = r->url_len,
        .headers = r->out_hdrs,
        .nheaders = r->nhdrs,
        .body = r->streaming ? NULL : r->body,
        .body_len = r->streaming ? 0 : r->body_len,
        .content_length = (r->p.flags & F_CONTENT_LENGTH) != 0 ? (int64_t)r->p.content_length : -1,
        .http_major = llhttp_get_http_major(&r->p),
        .http_minor = llhttp_get_http_minor(&r->p),
        .keep_alive = !r->upgraded && llhttp_should_keep_alive(&r->p) != 0,
        .streamed = r->streaming,
    };
}

/* What a feed that parsed without pausing tells: the head of a request found to stream. */
static int feed_end(ds_http_reader_t *r, ds_http_parsed_t *req)
{
    if (r->streaming && !r->head_out) {
        r->head_out = true;
        fill(r, req);
        return DS_HTTP_READ_STREAM;
    }
    return DS_HTTP_READ_MORE;
}

int ds_http_reader_feed(ds_http_reader_t *r, const char *data, size_t len, size_t *used,
                        ds_http_parsed_t *req)
{
    if (r->status != 0) {
        return r->status == 400 ? -EPROTO : -EMSGSIZE;
    }
    if (r->upgraded) {
        r->status = 400;
        r->reason = "bytes after an upgrade request";
        return -EPROTO;
    }
    if (r->streaming && r->body_done) {
        return -EBUSY; /* the caller must take the streamed body out first */
    }
    llhttp_errno_t e = llhttp_execute(&r->p, data, len);
    if (e == HPE_OK) {
        *used = len;
        return feed_end(r, req);
    }
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&r->p);
        *used = pos == NULL ? len : (size_t)(pos - data);
        if (e == HPE_PAUSED) {
            llhttp_resume(&r->p);
        } else {
            r->upgraded = true; /* no WebSocket yet: answered, then closed */
        }
        r->state = RD_IDLE;
        if (!r->streaming) {
            fill(r, req);
            return DS_HTTP_READ_REQUEST;
        }
        return feed_end(r, req) == DS_HTTP_READ_STREAM ? DS_HTTP_READ_STREAM : DS_HTTP_READ_END;
    }
    if (r->status == 0) {
        r->status = 400;
        r->reason = "malformed request";
    }
    return r->status == 400 ? -EPROTO : -EMSGSIZE;
}

int ds_http_reader_eof(ds_http_reader_t *r)
{
    return r->state == RD_IDLE || r->state == RD_DONE ? 0 : -EPROTO;
}

int ds_http_reader_status(const ds_http_reader_t *r)
{
    return r->status;
}

const char *ds_http_reader_reason(const ds_http_reader_t *r)
{
    return r->reason == NULL ? "" : r->reason;
}

bool ds_http_reader_in_head(const ds_http_reader_t *r)
{
    return r->state == RD_HEAD;
}

bool ds_http_reader_busy(const ds_http_reader_t *r)
{
    return r->state == RD_HEAD || r->state == RD_BODY;
}

bool ds_http_reader_streaming(const ds_http_reader_t *r)
{
    return r->streaming && r->head_out;
}

size_t ds_http_reader_body_buffered(const ds_http_reader_t *r)
{
    return r->streaming ? r->body_len : 0;
}

bool ds_http_reader_body_peek(const ds_http_reader_t *r, size_t max, const uint8_t **data,
                              size_t *len, bool *last)
{
    if (!ds_http_reader_streaming(r) || max == 0) {
        return false;
    }
    size_t n = r->body_len < max ? r->body_len : max;
    bool end = r->body_done && n == r->body_len;
    if (n == 0 && !end) {
        return false;
    }
    *data = r->body;
    *len = n;
    *last = end;
    return true;
}

void ds_http_reader_body_consume(ds_http_reader_t *r, size_t n, bool last)
{
    if (!ds_http_reader_streaming(r)) {
        return;
    }
    n = n > r->body_len ? r->body_len : n;
    memmove(r->body, r->body + n, r->body_len - n);
    r->body_len -= n;
    if (last && r->body_done && r->body_len == 0) {
        r->streaming = false; /* the next request may begin */
        r->head_out = false;
    }
}
