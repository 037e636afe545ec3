/* server: the HTTP/1.1 gateway core. See transports/http/server.h.
 *
 * Each connection keeps its requests in a FIFO of pending entries, one per request read, in
 * the order read. A handler's response (or a problem the gateway makes itself: 504, 503...)
 * fills its entry; flush() writes entries from the head while they are answered, so responses
 * leave in request order whatever order they were answered in. A response arriving for an
 * entry already gone (answered 504, connection closed) finds no match and is dropped: entries
 * are found by (connection slot, generation, sequence number), never by pointer.
 *
 * One repeating uv_timer (the tick) checks every connection's timeouts: header read, idle and
 * handler deadline. A tick costs O(connections); its period is a quarter of the shortest
 * timeout (5 ms..1 s), so a timeout fires at most that late.
 *
 * Streamed responses. RESPONSE_START answers an entry with a head that promises a body in
 * pieces; RESPONSE_BODY pieces queue on the entry, framed (chunked, or raw for HTTP/1.0), and
 * are written only while the entry is at the head of the FIFO, so later responses wait for the
 * stream to end. Each piece is acknowledged (RESPONSE_ACK to its sender) when libuv reports it
 * written; a piece beyond stream_window unacknowledged ones is a handler bug and ends the
 * connection, so an entry never holds more than stream_window pieces. An ack that cannot be
 * delivered (the sender's mailbox is full) is owed and retried on the tick; acks count pieces,
 * so a late one makes up for every lost one.
 *
 * Streamed requests. The reader hands out the head of a long body (DS_HTTP_READ_STREAM): the
 * handler gets REQUEST_START, and the body stays in the reader until an actor grants credit
 * (REQUEST_CREDIT); each credit lets one piece (at most PIECE_BYTES) go to the last granter.
 * The reader is fed no further while a whole piece waits in it, so reading stops (uv_read_stop)
 * until credit comes. Nothing else is read on the connection until the body has gone out. A
 * request answered before its body went out (early error, 504) closes the connection after
 * the response: the rest of the body is never read. */
#include "transports/http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <uv.h>

#include "runtime/admit.h"
#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"
#include "runtime/msg.h"
#include "transports/http/http_msgs.h"
#include "transports/http/reader.h"
#include "transports/http/server_int.h"

enum {
    READ_BUF = 65536,
    PEER_MAX = 64,
    LOG_PATH_MAX = 256,
    METHOD_MAX = 32,
    ORIGIN_MAX = DS_HTTP_ORIGIN_MAX + 1, /* bytes of a CORS origin, NUL included */
    TENANT_MAX = 40,                     /* bytes of a logged tenant id, NUL included */
    PIECE_BYTES = 65536,                 /* the most a REQUEST_BODY carries */
    CREDIT_MAX = 1 << 20,                /* credit a streamed request may hold */
    RID_POOL = 512,                      /* random bytes drawn at once: 32 request ids */
};

/* A piece of a streamed response, framed and waiting for its entry to reach the head. */
typedef struct piece {
    struct piece *next;
    char *data; /* NULL when nothing is written (HEAD, 204, an empty piece): only acked */
    size_t len;
    ds_actor_id_t ack_to;
} piece_t;

typedef struct pending {
    struct pending *next;
    uint64_t seq;
    uint64_t start_ms; /* uv_now() when read */
    uint64_t start_ns; /* uv_hrtime(), for duration_us */
    bool answered;
    bool close_after; /* the connection closes after this response */
    bool head;        /* a HEAD request: no body is written */
    uint8_t minor;    /* HTTP/1.minor */
    bool stream;      /* answered by RESPONSE_START: the body follows in pieces */
    bool head_sent;   /* a stream's head is written */
    bool ended;       /* a stream's last piece arrived */
    bool discard;     /* a stream without a body on the wire (HEAD, 1xx, 204, 304) */
    bool chunked;     /* a stream framed as chunks (HTTP/1.1) */
    char *out;        /* the serialized response (a stream's head), once answered */
    size_t out_len;
    piece_t *pieces, *pieces_tail;
    uint32_t inflight;   /* a stream's pieces received and not yet acknowledged */
    uint64_t last_ms;    /* uv_now() of a stream's start or last piece */
    ds_actor_id_t owner; /* who is told when a stream cannot go on */
    uint32_t status;
    size_t body_len;
    char method[METHOD_MAX];
    char path[LOG_PATH_MAX];
    char request_id[DS_HTTP_REQUEST_ID_MAX + 1];
    char client[PEER_MAX];
    char origin[ORIGIN_MAX]; /* an allowed CORS Origin of the request, or "" */
    char tenant[TENANT_MAX]; /* the handler's X-Dossier-Tenant (logged, not sent), or "" */
} pending_t;

/* The streamed body of the request at the tail of a connection's FIFO. */
typedef struct rstream {
    bool active;
    uint64_t seq;
    ds_actor_id_t to; /* takes the pieces: the last granter of credit, the handler until then */
    uint32_t credit;  /* pieces it may take */
} rstream_t;

/* Acknowledgements a full mailbox refused, retried on the tick. */
typedef struct owed {
    ds_actor_id_t to;
    uint64_t seq;
    uint32_t n;
} owed_t;

typedef struct conn {
    uv_tcp_t tcp; /* tcp.data = the conn; must stay first */
    uv_shutdown_t shut;
    ds_http_server_t *s;
    uint32_t slot, gen;
    ds_http_reader_t *reader;
    char peer[PEER_MAX];
    pending_t *head, *tail;
    uint32_t npending;
    uint64_t next_seq;
    size_t out_bytes; /* written but not yet confirmed by libuv */
    char *stash;      /* read but not yet parsed (back-pressure) */
    size_t stash_len;
    uint64_t head_start_ms; /* a request head began at this uv_now(), or 0 */
    uint64_t last_active_ms;
    rstream_t rs;
    owed_t owed;
    bool in_table;
    bool reading;
    bool eof;           /* the peer closed its side */
    bool closing;       /* no more requests are read */
    bool shutting;      /* uv_shutdown() issued */
    bool closed;        /* uv_close() issued */
    bool resume_queued; /* in the server's resumes, for the loop's next prepare */
} conn_t;

typedef struct wreq {
    uv_write_t req;
    conn_t *c;
    size_t len;
    char *data;
    bool piece; /* a streamed piece of entry seq: acknowledged when written */
    uint64_t seq;
    ds_actor_id_t ack_to;
} wreq_t;

struct ds_http_server {
    ds_loop_t *loop;
    ds_rt_t *rt;
    ds_actor_id_t id;
    ds_http_config_t cfg; /* defaults applied; strings below */
    char *host;
    char **proxies;
    char **origins;
    char *health;         /* health_path, or NULL */
    uint8_t *health_list; /* the health answer's headers, encoded */
    size_t health_list_len;
    ds_admit_t *admit; /* connections, shared with the servers of ds_http_server_add() */
    uv_tcp_t listener;
    uv_timer_t tick;
    uv_prepare_t flusher; /* writes the access log's batch before the loop waits */
    ds_log_batch_t alog;  /* access-log lines of this loop iteration */
    uint16_t port;
    uint64_t rid_fallback;            /* request ids when RAND_bytes() fails */
    unsigned char rid_pool[RID_POOL]; /* RAND_bytes() drawn ahead for request ids */
    size_t rid_left;                  /* unused bytes at the end of rid_pool */
    uint64_t *resumes; /* conn_key()s to resume() before the loop waits (written in place) */
    size_t nresumes, resumes_cap;
    unsigned handles; /* open handles: the server is freed when the last one closes */
    bool stopping;
    conn_t **conns; /* max_connections slots */
    uint32_t *gens;
    uint32_t nconns;
    char rbuf[READ_BUF]; /* one read at a time on the loop thread */
};

static void conn_close(conn_t *c);
static void flush(conn_t *c);
static void process(conn_t *c, const char *data, size_t len);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

/* ---- problems (RFC 9457) ---- */

typedef struct problem {
    uint32_t status;
    const char *slug;
    const char *title;
} problem_t;

static const problem_t problems[] = {
    {400, "bad-request", "Bad Request"},
    {403, "cors-origin-denied", "Forbidden"},
    {408, "request-timeout", "Request Timeout"},
    {413, "content-too-large", "Content Too Large"},
    {414, "uri-too-long", "URI Too Long"},
    {431, "request-header-too-large", "Request Header Fields Too Large"},
    {500, "internal-error", "Internal Server Error"},
    {503, "service-unavailable", "Service Unavailable"},
    {504, "handler-timeout", "Gateway Timeout"},
};

static const char *reason_phrase(uint32_t st)
{
    switch (st) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 410:
        return "Gone";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* ---- response serialization ---- */

typedef struct sb {
    char *p;
    size_t len, cap;
} sb_t;

static void sb_add(sb_t *b, const void *d, size_t n)
{
    if (n == 0) {
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap == 0 ? 512 : b->cap;
        while (cap < b->len + n) {
            cap *= 2;
        }
        b->p = ds_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void sb_str(sb_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static bool reserved_header(const ds_http_header_t *h)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection",
                                        "x-request-id"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t n = strlen(names[i]);
        if (h->name_len == n && strncasecmp(h->name, names[i], n) == 0) {
            return true;
        }
    }
    return false;
}

static bool no_body_status(uint32_t status)
{
    return status < 200 || status == 204 || status == 304;
}

/* The start of a head: status line, the handler's headers (list) but the reserved ones, then
 * X-Request-Id and, for an allowed Origin, the CORS headers; each line ends in CRLF. */
static void head_begin(sb_t *b, pending_t *p, uint32_t status, ds_bytes_t list)
{
    char line[128];
    (void)snprintf(line, sizeof(line), "HTTP/1.1 %u %s\r\n", status, reason_phrase(status));
    sb_str(b, line);
    size_t pos = 0;
    ds_http_header_t h;
    while (ds_http_header_next(list, &pos, &h) == 1) {
        if (h.name_len == 16 && strncasecmp(h.name, "x-dossier-tenant", 16) == 0) {
            (void)snprintf(p->tenant, sizeof(p->tenant), "%.*s", (int)h.value_len, h.value);
            continue;
        }
        if (reserved_header(&h)) {
            continue;
        }
        sb_add(b, h.name, h.name_len);
        sb_str(b, ": ");
        sb_add(b, h.value, h.value_len);
        sb_str(b, "\r\n");
    }
    sb_str(b, "X-Request-Id: ");
    sb_str(b, p->request_id);
    sb_str(b, "\r\n");
    if (p->origin[0] != 0) {
        sb_str(b, "Access-Control-Allow-Origin: ");
        sb_str(b, p->origin);
        sb_str(b, "\r\nVary: Origin\r\nAccess-Control-Expose-Headers: X-Request-Id, ETag, "
                  "Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, "
                  "RateLimit-Reset\r\n");
    }
}

/* The end of a head: Connection as the entry needs, and the empty line. */
static void head_end(sb_t *b, const pending_t *p)
{
    if (p->close_after) {
        sb_str(b, "Connection: close\r\n");
    } else if (p->minor == 0) {
        sb_str(b, "Connection: keep-alive\r\n");
    }
    sb_str(b, "\r\n");
}

/* Fills p's output: the head (list: the handler's headers, ours), then the body. */
static void serialize(pending_t *p, uint32_t status, ds_bytes_t list, const uint8_t *body,
                      size_t body_len)
{
    sb_t b = {0};
    head_begin(&b, p, status, list);
    bool no_body = no_body_status(status);
    if (!no_body) {
        char line[64];
        (void)snprintf(line, sizeof(line), "Content-Length: %zu\r\n", body_len);
        sb_str(&b, line);
    }
    head_end(&b, p);
    if (!no_body && !p->head && body_len > 0) {
        sb_add(&b, body, body_len);
    }
    p->out = b.p;
    p->out_len = b.len;
    p->status = status;
    p->body_len = no_body ? 0 : body_len;
    p->answered = true;
}

/* Fills p's output with the head of a streamed response: chunked for HTTP/1.1; for HTTP/1.0
 * no length, and the connection closes after the body (RFC 9112 section 6.3, rule 8). */
static void serialize_stream(pending_t *p, uint32_t status, ds_bytes_t list, ds_actor_id_t owner)
{
    p->stream = true;
    p->discard = p->head || no_body_status(status);
    p->chunked = p->minor >= 1 && !no_body_status(status);
    if (!p->chunked && !p->discard) {
        p->close_after = true;
    }
    sb_t b = {0};
    head_begin(&b, p, status, list);
    if (p->chunked) {
        sb_str(&b, "Transfer-Encoding: chunked\r\n");
    }
    head_end(&b, p);
    p->out = b.p;
    p->out_len = b.len;
    p->status = status;
    p->body_len = 0;
    p->owner = owner;
    p->answered = true;
}

/* Answers p with a problem document made by the gateway. */
static void answer_problem(pending_t *p, uint32_t status, const char *detail, uint32_t retry_s)
{
    const problem_t *pr = NULL;
    for (size_t i = 0; i < sizeof(problems) / sizeof(problems[0]); i++) {
        if (problems[i].status == status || (pr == NULL && problems[i].status == 500)) {
            pr = &problems[i];
        }
    }
    char type[128];
    (void)snprintf(type, sizeof(type), "https://dossier.dev/problems/%s", pr->slug);
    json_t *doc = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", pr->title, "status",
                            (int)status, "detail", detail, "request_id", p->request_id);
    char *body = doc == NULL ? NULL : json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char retry[16];
    (void)snprintf(retry, sizeof(retry), "%u", retry_s);
    ds_http_header_t hs[2] = {
        {"Content-Type", 12, "application/problem+json", 24},
        {"Retry-After", 11, retry, (uint32_t)strlen(retry)},
    };
    uint8_t *list = NULL;
    size_t list_len = 0;
    if (ds__http_headers_encode(hs, retry_s > 0 ? 2 : 1, false, &list, &list_len) < 0) {
        list_len = 0;
    }
    serialize(p, status, (ds_bytes_t){.ptr = list, .len = (uint32_t)list_len},
              (const uint8_t *)body, body == NULL ? 0 : strlen(body));
    free(list);
    free(body);
}

/* ---- writing, in request order ---- */

static uint64_t conn_key(const conn_t *c)
{
    return ((uint64_t)c->gen << 32) | c->slot;
}

/* A streamed request body holds the reader: a whole piece waits for credit, or the body is
 * parsed to its end and not all handed out. */
static bool rs_blocks(const conn_t *c)
{
    return c->rs.active &&
           (ds_http_reader_body_buffered(c->reader) >= PIECE_BYTES ||
            (ds_http_reader_streaming(c->reader) && !ds_http_reader_busy(c->reader)));
}

static bool can_read_more(const conn_t *c)
{
    const ds_http_config_t *cfg = &c->s->cfg;
    return !c->closing && !c->closed && c->npending < cfg->max_pipeline &&
           c->out_bytes < cfg->max_output_bytes && !rs_blocks(c);
}

/* ---- acknowledgements and notices to handlers ---- */

static int send_ack(ds_http_server_t *s, ds_actor_id_t to, uint64_t conn, uint64_t seq,
                    uint32_t pieces, int32_t error)
{
    if (ds_id_is_nil(to)) {
        return 0;
    }
    ds_http_response_ack_t v = {.conn = conn, .seq = seq, .pieces = pieces, .error = error};
    ds_msg_t *m = NULL;
    int rc = ds_http_response_ack_new(&v, &m);
    if (rc == 0) {
        rc = ds_send_from(s->rt, to, &m);
    }
    ds_msg_free(&m);
    return rc;
}

/* A send refused for now (a full mailbox or group cap): worth a retry. */
static bool busy(int rc)
{
    return rc == DS_EFULL || rc == DS_ECAP;
}

/* Acknowledges one written piece of entry seq to `to`, with any owed to the same stream. */
static void ack_piece(conn_t *c, ds_actor_id_t to, uint64_t seq)
{
    if (ds_id_is_nil(to)) {
        return;
    }
    uint32_t n = 1;
    if (c->owed.n > 0 && c->owed.seq == seq && ds_id_eq(c->owed.to, to)) {
        n += c->owed.n;
    }
    int rc = send_ack(c->s, to, conn_key(c), seq, n, 0);
    if (busy(rc)) {
        /* a stream before this one ended: what it was owed no longer matters */
        c->owed = (owed_t){.to = to, .seq = seq, .n = n};
    } else {
        c->owed.n = 0;
    }
}

static void ack_retry(conn_t *c)
{
    if (c->owed.n > 0 &&
        !busy(send_ack(c->s, c->owed.to, conn_key(c), c->owed.seq, c->owed.n, 0))) {
        c->owed.n = 0;
    }
}

/* Tells `to` that the streamed body of request seq ends without the rest (error < 0). */
static void body_notice(conn_t *c, ds_actor_id_t to, uint64_t seq, int32_t error)
{
    ds_http_request_body_t v = {.conn = conn_key(c), .seq = seq, .last = true, .error = error};
    ds_msg_t *m = NULL;
    if (ds_http_request_body_new(&v, &m) == 0 && ds_send_from(c->s->rt, to, &m) < 0) {
        ds_log_warn("could not tell the end of an http request body", DS_LOG_U64("seq", seq),
                    DS_LOG_END);
    }
    ds_msg_free(&m);
}

/* The streamed request body will not be handed out further. */
static void rs_end(conn_t *c, int32_t error)
{
    if (!c->rs.active) {
        return;
    }
    c->rs.active = false;
    body_notice(c, c->rs.to, c->rs.seq, error);
}

/* p is about to be answered: if its body is still streaming in, the rest is never read, so the
 * connection closes after the response. */
static void answering(conn_t *c, pending_t *p)
{
    if (c->rs.active && c->rs.seq == p->seq) {
        rs_end(c, -ECANCELED);
        p->close_after = true;
        c->closing = true;
    }
}

/* Parses what back-pressure left unparsed, then reads again if nothing holds it back. */
static void resume(conn_t *c)
{
    if (c->stash_len > 0 && can_read_more(c)) {
        char *data = c->stash;
        size_t len = c->stash_len;
        c->stash = NULL;
        c->stash_len = 0;
        process(c, data, len);
        free(data);
    }
    if (!c->closed && !c->reading && !c->eof && c->stash_len == 0 && can_read_more(c)) {
        c->reading = true;
        (void)uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

/* Closes once everything queued is written: the peer gets every response before the FIN. */
static void finish(conn_t *c)
{
    if (c->shutting || c->closed) {
        return;
    }
    c->shutting = true;
    c->closing = true;
    if (c->reading) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
    }
}

/* A piece of entry seq is written (or was never to be): one place more in its window. */
static void piece_done(conn_t *c, uint64_t seq, ds_actor_id_t ack_to)
{
    for (pending_t *p = c->head; p != NULL; p = p->next) {
        if (p->seq == seq && p->inflight > 0) {
            p->inflight--;
            break;
        }
    }
    ack_piece(c, ack_to, seq);
}

static void on_written(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    conn_t *c = w->c;
    c->out_bytes -= w->len;
    bool piece = w->piece;
    uint64_t seq = w->seq;
    ds_actor_id_t ack_to = w->ack_to;
    free(w->data);
    free(w);
    if (c->closed) {
        return;
    }
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->last_active_ms = uv_now(c->tcp.loop);
    if (piece) {
        piece_done(c, seq, ack_to);
    }
    resume(c);
}

/* c is to be resume()d before the loop waits: what a write callback would have done after a
 * write that completed at once (reading may have stopped for max_pipeline). */
static void resume_later(conn_t *c)
{
    ds_http_server_t *s = c->s;
    if (c->resume_queued) {
        return;
    }
    if (s->nresumes == s->resumes_cap) {
        s->resumes_cap = s->resumes_cap == 0 ? 64 : 2 * s->resumes_cap;
        s->resumes = ds_xrealloc(s->resumes, s->resumes_cap * sizeof(*s->resumes));
    }
    s->resumes[s->nresumes++] = conn_key(c);
    c->resume_queued = true;
}

/* Writes data[0..len) (taking it) on c; a piece of entry seq is acknowledged once written.
 * A response (not a piece) is first tried at once (uv_try_write: no write request, no write
 * callback, and none of the epoll_ctl() calls libuv 1.44 makes around one); what the socket
 * does not take then goes through uv_write(), behind nothing (the queue was empty), so the
 * order of bytes holds. 0, or -1 when the connection had to close. */
static int write_buf(conn_t *c, char *data, size_t len, const piece_t *pc, uint64_t seq)
{
    if (pc == NULL && c->tcp.write_queue_size == 0 && len > 0) {
        uv_buf_t b = uv_buf_init(data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            free(data);
            conn_close(c);
            return -1;
        }
        if (n == (int)len) {
            free(data);
            c->last_active_ms = uv_now(c->tcp.loop);
            resume_later(c);
            return 0;
        }
        if (n > 0) {
            memmove(data, data + n, len - (size_t)n);
            len -= (size_t)n;
        }
    }
    wreq_t *w = ds_xcalloc(1, sizeof(*w));
    w->c = c;
    w->len = len;
    w->data = data;
    w->piece = pc != NULL;
    w->seq = seq;
    w->ack_to = pc == NULL ? DS_ID_NIL : pc->ack_to;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
        free(w->data);
        free(w);
        conn_close(c);
        return -1;
    }
    c->out_bytes += len;
    return 0;
}

/* The access-log line of p, into the loop's batch (written by on_flusher()). */
static void access_log(const conn_t *c, const pending_t *p)
{
    uint64_t us = (uv_hrtime() - p->start_ns) / 1000;
    const ds_log_field_t f[] = {
        DS_LOG_STR("method", p->method),    DS_LOG_STR("path", p->path),
        DS_LOG_U64("status", p->status),    DS_LOG_U64("bytes", p->body_len),
        DS_LOG_U64("duration_us", us),      DS_LOG_STR("request_id", p->request_id),
        DS_LOG_STR("tenant", p->tenant),    DS_LOG_STR("peer", p->client),
        DS_LOG_STR("socket_peer", c->peer),
    };
    ds_log_batch_add(&c->s->alog, DS_LOG_INFO, "http request", f, sizeof(f) / sizeof(f[0]));
}

static void pending_free(pending_t *p)
{
    while (p->pieces != NULL) {
        piece_t *pc = p->pieces;
        p->pieces = pc->next;
        free(pc->data);
        free(pc);
    }
    free(p->out);
    free(p);
}

/* Writes what a streamed entry at the head has: its head, then its queued pieces. True when
 * the stream has ended and everything of it is written (or acknowledged, for empty pieces). */
static bool flush_stream(conn_t *c, pending_t *p)
{
    if (!p->head_sent) {
        p->head_sent = true;
        char *out = p->out;
        p->out = NULL;
        if (write_buf(c, out, p->out_len, NULL, p->seq) < 0) {
            return false;
        }
    }
    while (p->pieces != NULL && !c->closed) {
        piece_t *pc = p->pieces;
        p->pieces = pc->next;
        p->pieces_tail = p->pieces == NULL ? NULL : p->pieces_tail;
        if (pc->data == NULL) {
            piece_done(c, p->seq, pc->ack_to);
        } else {
            (void)write_buf(c, pc->data, pc->len, pc, p->seq);
        }
        free(pc);
    }
    return p->ended && !c->closed;
}

/* Writes the answered entries at the head of the queue, in order; a stream holds the head
 * until it ends. */
static void flush(conn_t *c)
{
    while (!c->closed && !c->shutting && c->head != NULL && c->head->answered) {
        pending_t *p = c->head;
        if (p->stream && !flush_stream(c, p)) {
            break;
        }
        c->head = p->next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        c->npending--;
        access_log(c, p);
        char *out = p->out;
        size_t out_len = p->out_len;
        p->out = NULL;
        bool close_after = p->close_after;
        bool stream = p->stream;
        pending_free(p);
        if (!stream && write_buf(c, out, out_len, NULL, 0) < 0) {
            return;
        }
        if (close_after) {
            finish(c);
        }
    }
    if (!c->closed && c->eof && c->head == NULL) {
        finish(c);
    }
}

/* ---- requests ---- */

static bool token_ok(const char *p, size_t n)
{
    if (n == 0 || n > DS_HTTP_REQUEST_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static const ds_http_header_t *find_header(const ds_http_parsed_t *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const ds_http_header_t *h = &req->headers[i];
        if (h->name_len == n && strncasecmp(h->name, name, n) == 0) {
            return h;
        }
    }
    return NULL;
}

static void request_id(ds_http_server_t *s, const ds_http_parsed_t *req,
                       char out[DS_HTTP_REQUEST_ID_MAX + 1])
{
    const ds_http_header_t *h = req == NULL ? NULL : find_header(req, "x-request-id");
    if (h != NULL && token_ok(h->value, h->value_len)) {
        memcpy(out, h->value, h->value_len);
        out[h->value_len] = 0;
        return;
    }
    unsigned char r[16];
    if (s->rid_left < sizeof(r) && RAND_bytes(s->rid_pool, sizeof(s->rid_pool)) == 1) {
        s->rid_left = sizeof(s->rid_pool); /* one call (and its getpid()) per 32 ids */
    }
    if (s->rid_left >= sizeof(r)) {
        memcpy(r, s->rid_pool + sizeof(s->rid_pool) - s->rid_left, sizeof(r));
        s->rid_left -= sizeof(r);
    } else {
        /* unique, if not unpredictable: the id is a log key, never a secret */
        uint64_t n = ++s->rid_fallback;
        uint64_t who = (uint64_t)(uintptr_t)s;
        memcpy(r, &n, sizeof(n));
        memcpy(r + sizeof(n), &who, sizeof(who));
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(r); i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[2 * sizeof(r)] = 0;
}

static bool trusted(const ds_http_server_t *s, const char *ip)
{
    for (size_t i = 0; i < s->cfg.ntrusted_proxies; i++) {
        if (strcmp(s->proxies[i], ip) == 0) {
            return true;
        }
    }
    return false;
}

/* The client: the socket peer, or, when that is a trusted proxy, the rightmost address of
 * X-Forwarded-For that is not a trusted proxy itself. */
static void client_addr(const conn_t *c, const ds_http_parsed_t *req, char out[PEER_MAX])
{
    (void)snprintf(out, PEER_MAX, "%s", c->peer);
    const ds_http_header_t *h = find_header(req, "x-forwarded-for");
    if (h == NULL || !trusted(c->s, c->peer)) {
        return;
    }
    size_t end = h->value_len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && h->value[start - 1] != ',') {
            start--;
        }
        size_t a = start, b = end;
        while (a < b && (h->value[a] == ' ' || h->value[a] == '\t')) {
            a++;
        }
        while (b > a && (h->value[b - 1] == ' ' || h->value[b - 1] == '\t')) {
            b--;
        }
        char ip[PEER_MAX];
        unsigned char bin[16];
        if (b - a == 0 || b - a >= sizeof(ip)) {
            return;
        }
        memcpy(ip, h->value + a, b - a);
        ip[b - a] = 0;
        if (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1) {
            return; /* garbage: keep the last address we could trust */
        }
        (void)snprintf(out, PEER_MAX, "%s", ip);
        if (!trusted(c->s, ip)) {
            return;
        }
        end = start == 0 ? 0 : start - 1;
    }
}

/* The request's Origin when it is one of cors_origins (exact match: no wildcards), else "". */
static void cors_origin(const ds_http_server_t *s, const ds_http_parsed_t *req,
                        char out[ORIGIN_MAX])
{
    out[0] = 0;
    const ds_http_header_t *h = find_header(req, "origin");
    if (h == NULL || h->value_len >= ORIGIN_MAX) {
        return;
    }
    for (size_t i = 0; i < s->cfg.ncors_origins; i++) {
        if (strlen(s->origins[i]) == h->value_len &&
            memcmp(s->origins[i], h->value, h->value_len) == 0) {
            memcpy(out, h->value, h->value_len);
            out[h->value_len] = 0;
            return;
        }
    }
}

static pending_t *pending_add(conn_t *c, const ds_http_parsed_t *req)
{
    pending_t *p = ds_xcalloc(1, sizeof(*p));
    p->seq = c->next_seq++;
    p->start_ms = uv_now(c->tcp.loop);
    p->start_ns = uv_hrtime();
    request_id(c->s, req, p->request_id);
    if (req != NULL) {
        (void)snprintf(p->method, sizeof(p->method), "%s", req->method);
        size_t n = req->url_len < LOG_PATH_MAX - 1 ? req->url_len : LOG_PATH_MAX - 1;
        const char *q = memchr(req->url, '?', n);
        n = q == NULL ? n : (size_t)(q - req->url);
        memcpy(p->path, req->url, n);
        p->head = strcmp(req->method, "HEAD") == 0;
        p->minor = req->http_minor;
        p->close_after = !req->keep_alive;
        client_addr(c, req, p->client);
        cors_origin(c->s, req, p->origin);
    } else {
        (void)snprintf(p->client, sizeof(p->client), "%s", c->peer);
        p->minor = 1;
    }
    if (c->tail == NULL) {
        c->head = p;
    } else {
        c->tail->next = p;
    }
    c->tail = p;
    c->npending++;
    return p;
}

/* Builds the REQUEST message of req, or REQUEST_START for a streamed one; 0 or the status to
 * answer instead. */
static uint32_t request_msg(conn_t *c, const pending_t *p, const ds_http_parsed_t *req,
                            ds_msg_t **out)
{
    uint8_t *list;
    size_t list_len;
    if (ds__http_headers_encode(req->headers, req->nheaders, false, &list, &list_len) < 0) {
        return 431;
    }
    const char *q = memchr(req->url, '?', req->url_len);
    size_t path_len = q == NULL ? req->url_len : (size_t)(q - req->url);
    ds_http_request_t v = {
        .reply_to = c->s->id,
        .conn = conn_key(c),
        .seq = p->seq,
        .request_id = {.ptr = p->request_id, .len = (uint32_t)strlen(p->request_id)},
        .method = {.ptr = req->method, .len = (uint32_t)strlen(req->method)},
        .path = {.ptr = req->url, .len = (uint32_t)path_len},
        .query = {.ptr = q == NULL ? "" : q + 1,
                  .len = q == NULL ? 0 : (uint32_t)(req->url_len - path_len - 1)},
        .headers = {.ptr = list, .len = (uint32_t)list_len},
        .body = {.ptr = req->body, .len = (uint32_t)req->body_len},
        .peer = {.ptr = p->client, .len = (uint32_t)strlen(p->client)},
        .version = (uint32_t)req->http_major * 10 + req->http_minor,
    };
    int rc;
    if (req->streamed) {
        ds_http_request_start_t st = {
            .reply_to = v.reply_to,
            .conn = v.conn,
            .seq = v.seq,
            .request_id = v.request_id,
            .method = v.method,
            .path = v.path,
            .query = v.query,
            .headers = v.headers,
            .peer = v.peer,
            .version = v.version,
            .content_length = req->content_length,
        };
        rc = ds_http_request_start_new(&st, out);
    } else {
        rc = ds_http_request_new(&v, out);
    }
    free(list);
    if (rc == -EMSGSIZE) {
        return 431;
    }
    return rc < 0 ? 400 : 0;
}

/* Answers a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) in place of
 * the handler: 204 with the policy for an allowed origin, else 403 cors-origin-denied. True
 * when req was one. */
static bool preflight(conn_t *c, pending_t *p, const ds_http_parsed_t *req)
{
    if (strcmp(req->method, "OPTIONS") != 0 || find_header(req, "origin") == NULL ||
        find_header(req, "access-control-request-method") == NULL) {
        return false;
    }
    if (req->streamed) {
        p->close_after = true; /* its body is never read */
        c->closing = true;
    }
    if (p->origin[0] == 0) {
        answer_problem(p, 403, "the origin is not allowed to make cross-origin requests", 0);
        return true;
    }
    static const ds_http_header_t hs[] = {
        {"Access-Control-Allow-Methods", 28, "GET, POST, PUT, PATCH, DELETE", 29},
        {"Access-Control-Allow-Headers", 28,
         "Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-Id", 68},
        {"Access-Control-Max-Age", 22, "600", 3},
    };
    uint8_t *list = NULL;
    size_t list_len = 0;
    if (ds__http_headers_encode(hs, 3, false, &list, &list_len) < 0) {
        list_len = 0;
    }
    serialize(p, 204, (ds_bytes_t){.ptr = list, .len = (uint32_t)list_len}, NULL, 0);
    free(list);
    return true;
}

/* Answers GET or HEAD of health_path in place of the handler (server.h, "Health"). True when
 * req was one. A streamed request (a long body) is left to the handler. */
static bool health(conn_t *c, pending_t *p, const ds_http_parsed_t *req)
{
    const ds_http_server_t *s = c->s;
    if (s->health == NULL || req->streamed ||
        (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)) {
        return false;
    }
    const char *q = memchr(req->url, '?', req->url_len);
    size_t n = q == NULL ? req->url_len : (size_t)(q - req->url);
    if (n != strlen(s->health) || memcmp(req->url, s->health, n) != 0) {
        return false;
    }
    static const char ok[] = "{\"status\":\"ok\"}";
    serialize(p, 200, (ds_bytes_t){.ptr = s->health_list, .len = (uint32_t)s->health_list_len},
              (const uint8_t *)ok, sizeof(ok) - 1);
    return true;
}

/* A request (whole, or the head of a streamed one) goes to the handler. */
static void on_request(conn_t *c, const ds_http_parsed_t *req)
{
    pending_t *p = pending_add(c, req);
    if (p->close_after) {
        c->closing = true; /* Connection: close, HTTP/1.0, upgrade: nothing more is read */
    }
    if (preflight(c, p, req) || health(c, p, req)) {
        return;
    }
    if (req->streamed) {
        c->rs = (rstream_t){.active = true, .seq = p->seq, .to = c->s->cfg.handler};
    }
    ds_msg_t *m = NULL;
    uint32_t st = request_msg(c, p, req, &m);
    if (st != 0) {
        answering(c, p);
        answer_problem(p, st, "the request could not be encoded", 0);
        return;
    }
    int rc = ds_send_from(c->s->rt, c->s->cfg.handler, &m);
    if (rc < 0) {
        ds_msg_free(&m);
        ds_log_warn("could not deliver http request", DS_LOG_STR("request_id", p->request_id),
                    DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
        c->rs.active = false; /* the handler never heard of it: nobody to tell */
        p->close_after = p->close_after || req->streamed;
        c->closing = c->closing || req->streamed;
        answer_problem(p, 503, "the service is busy; retry later", c->s->cfg.retry_after_s);
    }
}

/* Hands out pieces of the streamed request body while its taker has credit. A full mailbox
 * leaves the piece in the reader for the tick to retry. */
static void rs_pump(conn_t *c)
{
    while (c->rs.active && c->rs.credit > 0 && !c->closed) {
        const uint8_t *d;
        size_t n;
        bool last;
        if (!ds_http_reader_body_peek(c->reader, PIECE_BYTES, &d, &n, &last)) {
            return;
        }
        ds_http_request_body_t v = {.conn = conn_key(c),
                                    .seq = c->rs.seq,
                                    .data = {.ptr = d, .len = (uint32_t)n},
                                    .last = last};
        ds_msg_t *m = NULL;
        int rc = ds_http_request_body_new(&v, &m);
        if (rc == 0) {
            rc = ds_send_from(c->s->rt, c->rs.to, &m);
        }
        ds_msg_free(&m);
        if (busy(rc)) {
            return;
        }
        if (rc < 0) {
            ds_log_warn("could not deliver an http request body", DS_LOG_U64("seq", c->rs.seq),
                        DS_LOG_STR("error", ds_errname(rc)), DS_LOG_END);
            c->rs.active = false;
            conn_close(c); /* the taker is gone: nobody will answer for this body */
            return;
        }
        ds_http_reader_body_consume(c->reader, n, last);
        c->rs.credit--;
        c->rs.active = !last;
        if (c->tail != NULL && c->tail->seq == v.seq) {
            c->tail->start_ms = uv_now(c->tcp.loop); /* the handler is at work */
        }
    }
}

static void on_bad_request(conn_t *c)
{
    uint32_t status = (uint32_t)ds_http_reader_status(c->reader);
    pending_t *p = NULL;
    if (c->rs.active && c->tail != NULL && c->tail->seq == c->rs.seq && !c->tail->answered) {
        p = c->tail; /* a limit tripped in a streamed body: that request gets the problem */
        rs_end(c, status == 413 ? -EMSGSIZE : -EPROTO);
    } else {
        rs_end(c, -EPROTO);
        p = pending_add(c, NULL);
    }
    p->close_after = true;
    c->closing = true;
    answer_problem(p, status, ds_http_reader_reason(c->reader), 0);
}

/* Parses data[0..len): one request at a time while the connection may take more; what is left
 * goes to the stash and reading stops (back-pressure). */
static void process(conn_t *c, const char *data, size_t len)
{
    while (len > 0 && can_read_more(c)) {
        size_t used = 0;
        ds_http_parsed_t req;
        int rc = ds_http_reader_feed(c->reader, data, len, &used, &req);
        if (rc == -EBUSY) {
            break; /* not reached: rs_blocks() keeps the reader from being fed */
        }
        if (rc < 0) {
            on_bad_request(c);
            len = 0;
            break;
        }
        if (!ds_http_reader_in_head(c->reader)) {
            c->head_start_ms = 0;
        } else if (c->head_start_ms == 0) {
            c->head_start_ms = uv_now(c->tcp.loop);
        }
        if (rc == DS_HTTP_READ_REQUEST || rc == DS_HTTP_READ_STREAM) {
            on_request(c, &req);
        }
        rs_pump(c);
        data += used;
        len -= used;
    }
    if (len > 0 && !c->closing) {
        c->stash = ds_xrealloc(c->stash, c->stash_len + len);
        memcpy(c->stash + c->stash_len, data, len);
        c->stash_len += len;
    }
    if (c->reading && (c->stash_len > 0 || !can_read_more(c))) {
        (void)uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    flush(c);
}

/* ---- connections ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    conn_t *c = h->data;
    *buf = uv_buf_init(c->s->rbuf, sizeof(c->s->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    conn_t *c = st->data;
    if (n == 0 || c->closed) {
        return;
    }
    if (n < 0) {
        (void)uv_read_stop(st);
        c->reading = false;
        c->eof = true;
        if (n != UV_EOF || ds_http_reader_eof(c->reader) < 0) {
            conn_close(c); /* reset, or a request cut short: nobody to answer */
            return;
        }
        flush(c);
        return;
    }
    c->last_active_ms = uv_now(st->loop);
    process(c, buf->base, (size_t)n);
}

static void server_unref(ds_http_server_t *s)
{
    if (--s->handles > 0) {
        return;
    }
    for (size_t i = 0; i < s->cfg.ntrusted_proxies; i++) {
        free(s->proxies[i]);
    }
    free(s->proxies);
    for (size_t i = 0; s->origins != NULL && i < s->cfg.ncors_origins; i++) {
        free(s->origins[i]);
    }
    free(s->origins);
    ds_log_batch_flush(&s->alog);
    ds_admit_unref(&s->admit);
    free(s->resumes);
    free(s->health);
    free(s->health_list);
    free(s->host);
    free(s->conns);
    free(s->gens);
    free(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    ds_http_server_t *s = c->s;
    rs_end(c, -ECONNRESET);
    while (c->head != NULL) {
        pending_t *p = c->head;
        c->head = p->next;
        if (p->stream && !p->ended) {
            (void)send_ack(s, p->owner, conn_key(c), p->seq, 0, -ECONNRESET);
        }
        pending_free(p);
    }
    ds_http_reader_free(&c->reader);
    free(c->stash);
    free(c);
    server_unref(s);
}

static void conn_close(conn_t *c)
{
    if (c->closed) {
        return;
    }
    c->closed = true;
    c->closing = true;
    ds_http_server_t *s = c->s;
    if (c->in_table) {
        s->conns[c->slot] = NULL;
        s->gens[c->slot]++;
        s->nconns--;
        c->in_table = false;
        ds_admit_release(s->admit, c->peer);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void peer_name(uv_tcp_t *t, char out[PEER_MAX])
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    out[0] = 0;
    if (uv_tcp_getpeername(t, (struct sockaddr *)&ss, &len) < 0) {
        return;
    }
    if (ss.ss_family == AF_INET6) {
        (void)uv_ip6_name((const struct sockaddr_in6 *)&ss, out, PEER_MAX);
    } else {
        (void)uv_ip4_name((const struct sockaddr_in *)&ss, out, PEER_MAX);
    }
}

/* A slot for a new connection from peer, or -1 when a limit refuses it. The limits count the
 * connections of every server sharing s->admit; a slot is s's own. */
static int64_t admit(const ds_http_server_t *s, const char *peer)
{
    int64_t free_slot = -1;
    for (uint32_t i = 0; i < s->cfg.max_connections && free_slot < 0; i++) {
        if (s->conns[i] == NULL) {
            free_slot = i;
        }
    }
    if (free_slot < 0 || ds_admit_take(s->admit, peer) < 0) {
        return -1;
    }
    return free_slot;
}

static void on_connection(uv_stream_t *server, int status)
{
    ds_http_server_t *s = server->data;
    if (status < 0 || s->stopping) {
        return;
    }
    conn_t *c = ds_xcalloc(1, sizeof(*c));
    c->s = s;
    (void)uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    s->handles++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    peer_name(&c->tcp, c->peer);
    int64_t slot = admit(s, c->peer);
    if (slot < 0) {
        ds_log_warn("http connection refused", DS_LOG_STR("peer", c->peer),
                    DS_LOG_U64("connections", ds_admit_held(s->admit)), DS_LOG_END);
        conn_close(c);
        return;
    }
    c->slot = (uint32_t)slot;
    c->gen = s->gens[slot];
    s->conns[slot] = c;
    s->nconns++;
    c->in_table = true;
    (void)ds_http_reader_new(&s->cfg.limits, &c->reader);
    (void)uv_tcp_nodelay(&c->tcp, 1);
    c->last_active_ms = uv_now(server->loop);
    c->reading = true;
    (void)uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- timeouts ---- */

/* A stream whose handler sent nothing for handler_timeout_ms while it had room, or whose
 * client read nothing for idle_timeout_ms while pieces waited: it cannot end well. */
static bool stream_stalled(const conn_t *c, const pending_t *p, uint64_t now)
{
    const ds_http_config_t *cfg = &c->s->cfg;
    if (!p->stream || p->ended) {
        return false;
    }
    if (p->inflight == 0) {
        return now - p->last_ms >= cfg->handler_timeout_ms;
    }
    return p == c->head && c->out_bytes > 0 && now - c->last_active_ms >= cfg->idle_timeout_ms;
}

static void check_conn(conn_t *c, uint64_t now)
{
    const ds_http_config_t *cfg = &c->s->cfg;
    ack_retry(c);
    rs_pump(c);
    for (pending_t *p = c->head; p != NULL; p = p->next) {
        if (!p->answered && now - p->start_ms >= cfg->handler_timeout_ms) {
            answering(c, p);
            answer_problem(p, 504, "the handler did not answer in time", 0);
        }
        if (stream_stalled(c, p, now)) {
            ds_log_warn("http response stream stalled", DS_LOG_STR("request_id", p->request_id),
                        DS_LOG_U64("inflight", p->inflight), DS_LOG_END);
            conn_close(c);
            return;
        }
    }
    if (!c->closing && c->head_start_ms != 0 && now - c->head_start_ms >= cfg->header_timeout_ms) {
        pending_t *p = pending_add(c, NULL);
        p->close_after = true;
        c->closing = true;
        c->stash_len = 0;
        answer_problem(p, 408, "the request head was not received in time", 0);
        ds_log_info("http header timeout", DS_LOG_STR("peer", c->peer), DS_LOG_END);
    }
    flush(c);
    resume(c);
    if (!c->closed && c->head == NULL && c->out_bytes == 0 && !c->shutting &&
        now - c->last_active_ms >= cfg->idle_timeout_ms) {
        conn_close(c);
    }
}

static void on_tick(uv_timer_t *t)
{
    ds_http_server_t *s = t->data;
    uint64_t now = uv_now(t->loop);
    for (uint32_t i = 0; i < s->cfg.max_connections; i++) {
        if (s->conns[i] != NULL) {
            check_conn(s->conns[i], now);
        }
    }
}

/* ---- the port: responses from handlers ---- */

static conn_t *conn_of(const ds_http_server_t *s, uint64_t key)
{
    uint32_t slot = (uint32_t)key;
    uint32_t gen = (uint32_t)(key >> 32);
    conn_t *c = slot < s->cfg.max_connections ? s->conns[slot] : NULL;
    return c == NULL || c->gen != gen || c->closed ? NULL : c;
}

static pending_t *pending_find(const conn_t *c, uint64_t seq)
{
    pending_t *p = c == NULL ? NULL : c->head;
    while (p != NULL && p->seq != seq) {
        p = p->next;
    }
    return p;
}

static bool head_ok(ds_bytes_t list, uint32_t status)
{
    size_t pos = 0;
    ds_http_header_t h;
    int rc;
    while ((rc = ds_http_header_next(list, &pos, &h)) == 1) {
    }
    return rc == 0 && status >= 100 && status <= 599;
}

static void on_response(ds_http_server_t *s, const ds_msg_t *m)
{
    ds_http_response_t r;
    if (ds_http_response_decode(m, &r) < 0) {
        ds_log_warn("malformed http response message", DS_LOG_U64("type", m->type), DS_LOG_END);
        return;
    }
    conn_t *c = conn_of(s, r.conn);
    pending_t *p = pending_find(c, r.seq);
    if (p == NULL || p->answered) {
        return; /* the connection is gone, or the request was answered already (504) */
    }
    answering(c, p);
    if (!head_ok(r.headers, r.status)) {
        answer_problem(p, 500, "the handler gave a malformed response", 0);
    } else {
        serialize(p, r.status, r.headers, r.body.ptr, r.body.len);
    }
    flush(c);
}

static void on_response_start(ds_http_server_t *s, const ds_msg_t *m)
{
    ds_http_response_start_t r;
    if (ds_http_response_start_decode(m, &r) < 0) {
        ds_log_warn("malformed http response message", DS_LOG_U64("type", m->type), DS_LOG_END);
        return;
    }
    conn_t *c = conn_of(s, r.conn);
    pending_t *p = pending_find(c, r.seq);
    if (p == NULL || p->answered) {
        (void)send_ack(s, m->from, r.conn, r.seq, 0, c == NULL ? -ENOTCONN : -ECANCELED);
        return;
    }
    answering(c, p);
    if (!head_ok(r.headers, r.status)) {
        answer_problem(p, 500, "the handler gave a malformed response", 0);
        (void)send_ack(s, m->from, r.conn, r.seq, 0, -EINVAL);
    } else {
        serialize_stream(p, r.status, r.headers, m->from);
        p->last_ms = uv_now(c->tcp.loop);
    }
    flush(c);
}

/* Queues a piece on stream p, framed for the wire (nothing for a stream without a body). */
static void piece_add(pending_t *p, ds_bytes_t data, bool last, ds_actor_id_t from)
{
    piece_t *pc = ds_xcalloc(1, sizeof(*pc));
    pc->ack_to = from;
    if (!p->discard && p->chunked) {
        sb_t b = {0};
        if (data.len > 0) {
            char line[32];
            (void)snprintf(line, sizeof(line), "%x\r\n", (unsigned)data.len);
            sb_str(&b, line);
            sb_add(&b, data.ptr, data.len);
            sb_str(&b, "\r\n");
        }
        if (last) {
            sb_str(&b, "0\r\n\r\n");
        }
        pc->data = b.p;
        pc->len = b.len;
    } else if (!p->discard && data.len > 0) {
        pc->data = ds_xmalloc(data.len);
        memcpy(pc->data, data.ptr, data.len);
        pc->len = data.len;
    }
    p->body_len += p->discard ? 0 : data.len;
    if (p->pieces_tail == NULL) {
        p->pieces = pc;
    } else {
        p->pieces_tail->next = pc;
    }
    p->pieces_tail = pc;
    p->inflight++;
    p->ended = last;
}

static void on_response_body(ds_http_server_t *s, const ds_msg_t *m)
{
    ds_http_response_body_t r;
    if (ds_http_response_body_decode(m, &r) < 0) {
        ds_log_warn("malformed http response message", DS_LOG_U64("type", m->type), DS_LOG_END);
        return;
    }
    conn_t *c = conn_of(s, r.conn);
    pending_t *p = pending_find(c, r.seq);
    if (p == NULL || !p->stream || p->ended) {
        (void)send_ack(s, m->from, r.conn, r.seq, 0, c == NULL ? -ENOTCONN : -ECANCELED);
        return;
    }
    if (p->inflight >= s->cfg.stream_window) {
        ds_log_warn("http response stream overran its window",
                    DS_LOG_STR("request_id", p->request_id),
                    DS_LOG_U64("window", s->cfg.stream_window), DS_LOG_END);
        (void)send_ack(s, m->from, r.conn, r.seq, 0, -ENOBUFS);
        p->ended = true; /* told already: no second notice when the connection closes */
        conn_close(c);
        return;
    }
    piece_add(p, r.data, r.last, m->from);
    p->owner = ds_id_is_nil(m->from) ? p->owner : m->from;
    p->last_ms = uv_now(c->tcp.loop);
    flush(c);
}

static void on_credit(ds_http_server_t *s, const ds_msg_t *m)
{
    ds_http_request_credit_t r;
    if (ds_http_request_credit_decode(m, &r) < 0) {
        ds_log_warn("malformed http credit message", DS_LOG_U64("type", m->type), DS_LOG_END);
        return;
    }
    conn_t *c = conn_of(s, r.conn);
    if (c == NULL || !c->rs.active || c->rs.seq != r.seq) {
        return; /* the body went out, or will not: its taker has been told */
    }
    if (!ds_id_is_nil(m->from)) {
        c->rs.to = m->from;
    }
    uint64_t credit = (uint64_t)c->rs.credit + r.pieces;
    c->rs.credit = credit > CREDIT_MAX ? CREDIT_MAX : (uint32_t)credit;
    pending_t *p = pending_find(c, r.seq);
    if (p != NULL) {
        p->start_ms = uv_now(c->tcp.loop);
    }
    rs_pump(c);
    resume(c);
}

static int port_init(ds_ctx_t *ctx, void *arg)
{
    ds_ctx_set_state(ctx, arg);
    return 0;
}

static int port_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    ds_http_server_t *s = ds_ctx_state(ctx);
    switch ((*msgp)->type) {
    case DS_MT_HTTP_RESPONSE:
        on_response(s, *msgp);
        break;
    case DS_MT_HTTP_RESPONSE_START:
        on_response_start(s, *msgp);
        break;
    case DS_MT_HTTP_RESPONSE_BODY:
        on_response_body(s, *msgp);
        break;
    case DS_MT_HTTP_REQUEST_CREDIT:
        on_credit(s, *msgp);
        break;
    default:
        break;
    }
    return 0;
}

static void on_server_handle_closed(uv_handle_t *h)
{
    server_unref(h->data);
}

static void port_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    ds_http_server_t *s = ds_ctx_state(ctx);
    s->stopping = true;
    for (uint32_t i = 0; i < s->cfg.max_connections; i++) {
        if (s->conns[i] != NULL) {
            conn_close(s->conns[i]);
        }
    }
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->tick, on_server_handle_closed);
    uv_close((uv_handle_t *)&s->flusher, on_server_handle_closed);
    ds_log_batch_flush(&s->alog);
}

static const ds_behaviour_t port_behaviour = {
    .name = "http",
    .init = port_init,
    .receive = port_receive,
    .terminate = port_terminate,
};

/* ---- set-up ---- */

static uint32_t def(uint32_t v, uint32_t d)
{
    return v == 0 ? d : v;
}

static int config_copy(ds_http_server_t *s, const ds_http_config_t *in)
{
    if (ds_id_is_nil(in->handler) || in->ntrusted_proxies > DS_HTTP_TRUSTED_PROXIES_MAX ||
        (in->ntrusted_proxies > 0 && in->trusted_proxies == NULL) ||
        in->ncors_origins > DS_HTTP_CORS_ORIGINS_MAX ||
        (in->ncors_origins > 0 && in->cors_origins == NULL)) {
        return -EINVAL;
    }
    ds_http_config_t *c = &s->cfg;
    *c = *in;
    c->limits = ds_http_limits_effective(&in->limits);
    c->header_timeout_ms = def(in->header_timeout_ms, 10000);
    c->idle_timeout_ms = def(in->idle_timeout_ms, 60000);
    c->handler_timeout_ms = def(in->handler_timeout_ms, 30000);
    c->max_connections = def(in->max_connections, 1024);
    c->max_connections_ip = def(in->max_connections_ip, 64);
    c->max_pipeline = def(in->max_pipeline, 16);
    c->max_output_bytes = def(in->max_output_bytes, 1048576);
    c->retry_after_s = def(in->retry_after_s, 1);
    c->stream_window = def(in->stream_window, 4);
    s->host = ds_xstrdup(in->host == NULL ? "127.0.0.1" : in->host);
    c->host = s->host;
    s->proxies = ds_xcalloc(in->ntrusted_proxies + 1, sizeof(char *));
    for (size_t i = 0; i < in->ntrusted_proxies; i++) {
        if (in->trusted_proxies[i] == NULL) {
            return -EINVAL;
        }
        s->proxies[i] = ds_xstrdup(in->trusted_proxies[i]);
    }
    c->trusted_proxies = NULL;
    s->origins = ds_xcalloc(in->ncors_origins + 1, sizeof(char *));
    for (size_t i = 0; i < in->ncors_origins; i++) {
        const char *o = in->cors_origins[i];
        if (o == NULL || o[0] == 0 || strlen(o) >= ORIGIN_MAX || strcmp(o, "*") == 0) {
            return -EINVAL;
        }
        s->origins[i] = ds_xstrdup(o);
    }
    c->cors_origins = NULL;
    if (in->health_path != NULL && in->health_path[0] != '/') {
        return -EINVAL;
    }
    c->health_path = NULL;
    if (in->health_path != NULL) {
        static const ds_http_header_t hs[] = {
            {"Content-Type", 12, "application/json", 16},
            {"Cache-Control", 13, "no-store", 8},
        };
        s->health = ds_xstrdup(in->health_path);
        if (ds__http_headers_encode(hs, 2, false, &s->health_list, &s->health_list_len) < 0) {
            return -EINVAL;
        }
    }
    s->conns = ds_xcalloc(c->max_connections, sizeof(conn_t *));
    s->gens = ds_xcalloc(c->max_connections, sizeof(uint32_t));
    return 0;
}

static uint32_t tick_ms(const ds_http_config_t *c)
{
    uint32_t m = c->header_timeout_ms;
    m = c->idle_timeout_ms < m ? c->idle_timeout_ms : m;
    m = c->handler_timeout_ms < m ? c->handler_timeout_ms : m;
    m /= 4;
    return m < 5 ? 5 : (m > 1000 ? 1000 : m);
}

/* A socket bound to ss with SO_REUSEADDR and SO_REUSEPORT, into the listener (libuv 1.44 has
 * no UV_TCP_REUSEPORT: it came in 1.49). 0, or -errno. */
static int bind_reuseport(ds_http_server_t *s, const struct sockaddr_storage *ss)
{
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    int rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (const struct sockaddr *)ss, len) < 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = uv_tcp_open(&s->listener, fd);
    }
    if (rc < 0) {
        (void)close(fd);
    }
    return rc;
}

static int listen_on(ds_http_server_t *s, uv_loop_t *uv)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(s->host, s->cfg.port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(s->host, s->cfg.port, (struct sockaddr_in6 *)&ss) != 0) {
        return -EINVAL;
    }
    int rc = uv_tcp_init(uv, &s->listener);
    if (rc < 0) {
        return rc;
    }
    s->listener.data = s;
    s->handles++;
    if (s->cfg.reuseport) {
        rc = bind_reuseport(s, &ss);
    } else {
        rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    }
    if (rc < 0) {
        return rc;
    }
    int len = sizeof(ss);
    rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    if (rc < 0) {
        return rc;
    }
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

/* Before the loop waits: the resumes owed by writes that completed at once (a connection may
 * be queued again meanwhile: the loop takes those too), then the access log's batch. */
static void on_flusher(uv_prepare_t *h)
{
    ds_http_server_t *s = h->data;
    for (size_t i = 0; i < s->nresumes; i++) {
        conn_t *c = conn_of(s, s->resumes[i]);
        if (c != NULL && c->resume_queued) {
            c->resume_queued = false;
            resume(c);
        }
    }
    s->nresumes = 0;
    ds_log_batch_flush(&s->alog);
}

/* A server on l with cfg, counting its connections in admit (a reference is taken) or, when
 * admit is NULL, in a table of its own. */
static int server_create(ds_loop_t *l, const ds_http_config_t *cfg, ds_admit_t *admit,
                         ds_http_server_t **out)
{
    ds_http_server_t *s = ds_xcalloc(1, sizeof(*s));
    s->loop = l;
    s->rt = ds_loop_rt(l);
    s->handles = 1; /* ours, until the set-up is done */
    uv_loop_t *uv = ds_loop_uv(l);
    int rc = config_copy(s, cfg);
    if (rc == 0 && admit != NULL) {
        s->admit = ds_admit_ref(admit);
    } else if (rc == 0) {
        rc = ds_admit_new(s->cfg.max_connections, s->cfg.max_connections_ip, &s->admit);
    }
    if (rc == 0) {
        rc = listen_on(s, uv);
    }
    if (rc == 0) {
        rc = ds_loop_port(l, &port_behaviour, s, NULL, &s->id);
    }
    if (rc < 0) {
        s->stopping = true;
        if (s->handles > 1) {
            uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
        }
        server_unref(s);
        return rc;
    }
    (void)uv_timer_init(uv, &s->tick);
    s->tick.data = s;
    s->handles++;
    uint32_t t = tick_ms(&s->cfg);
    (void)uv_timer_start(&s->tick, on_tick, t, t);
    (void)uv_prepare_init(uv, &s->flusher);
    s->flusher.data = s;
    s->handles++;
    (void)uv_prepare_start(&s->flusher, on_flusher);
    server_unref(s); /* the handles keep it now */
    *out = s;
    return 0;
}

int ds_http_server_new(ds_loop_t *l, const ds_http_config_t *cfg, ds_http_server_t **out)
{
    if (l == NULL || cfg == NULL || out == NULL) {
        return -EINVAL;
    }
    return server_create(l, cfg, NULL, out);
}

int ds_http_server_add(ds_http_server_t *first, ds_loop_t *l, ds_http_server_t **out)
{
    if (first == NULL || l == NULL || out == NULL || !first->cfg.reuseport || l == first->loop) {
        return -EINVAL;
    }
    /* first's configuration, defaults applied, with its strings (immutable once made) */
    ds_http_config_t cfg = first->cfg;
    cfg.host = first->host;
    cfg.port = first->port;
    cfg.trusted_proxies = (const char *const *)first->proxies;
    cfg.cors_origins = (const char *const *)first->origins;
    cfg.health_path = first->health;
    return server_create(l, &cfg, first->admit, out);
}

uint16_t ds_http_server_port(const ds_http_server_t *s)
{
    return s->port;
}

ds_actor_id_t ds_http_server_id(const ds_http_server_t *s)
{
    return s->id;
}
