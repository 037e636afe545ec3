/* test_http: the HTTP/1.1 gateway core (transports/http/server.h) over real sockets. Each test
 * starts a runtime, a loop and a server on 127.0.0.1 port 0 with the limits it tests, and a
 * handler actor; a small blocking client written here (plain sockets, receive timeouts that
 * only catch hangs) speaks HTTP to it. No PostgreSQL. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "transports/http/http_msgs.h"
#include "transports/http/reader.h"
#include "transports/http/server.h"

enum {
    HANG_S = 20, /* a wait this long means a hang, not a slow machine */
    HELD_MAX = 16,
    CLIENT_BUF = 1 << 20,
    STREAMS_MAX = 4,
};

/* ---- the handler actor ----
 * /echo answers at once with what it saw; /hold/... is kept until /release, which answers
 * itself first and then the held requests newest first (out of order on purpose); /never is
 * never answered; /gate blocks the worker on a semaphore (to fill the mailbox behind it).
 * Streams: /stream/<pieces>/<bytes> answers with a streamed body of that many pieces of
 * pattern bytes (byte k of the body is k % 251), keeping at most `window` pieces
 * unacknowledged; /flood/<pieces>/<bytes> sends them all at once, ignoring the window. A
 * streamed request (REQUEST_START) to /upload is read with a credit of 2 pieces, acking each,
 * and answered "len=<bytes> bad=<bytes off the pattern>"; /upload-hold gets no credit until a
 * TICK arrives; /upload-reject is answered 401 at once. */

typedef struct out_stream {
    ds_msg_t *msg; /* the request, kept: req points into it */
    ds_http_request_t req;
    size_t next, total, piece;
    uint32_t outstanding;
} out_stream_t;

typedef struct in_stream {
    ds_msg_t *msg;
    ds_http_request_t req;
    uint64_t len, bad;
    bool hold;
} in_stream_t;

typedef struct handler {
    ds_msg_t *held[HELD_MAX];
    size_t nheld;
    out_stream_t out[STREAMS_MAX];
    in_stream_t in[STREAMS_MAX];
} handler_t;

/* What the handler saw, for the test thread. */
static atomic_uint window = 4;      /* the server's stream_window */
static atomic_uint max_outstanding; /* the most pieces it had unacknowledged */
static atomic_ullong sent_bytes;    /* body bytes it streamed out */
static atomic_ullong in_bytes;      /* request body bytes it received */
static atomic_int ack_error;        /* the first RESPONSE_ACK error */
static atomic_int body_error;       /* the first REQUEST_BODY error */
static atomic_uint body_pieces;     /* REQUEST_BODY pieces received */
static sem_t stream_done;           /* posted at an ack error or a body error */

static sem_t gate;      /* /gate waits on it */
static sem_t gate_seen; /* posted when /gate arrives */

static int h_init(ds_ctx_t *ctx, void *arg)
{
    (void)arg;
    ds_ctx_set_state(ctx, calloc(1, sizeof(handler_t)));
    return 0;
}

static void h_terminate(ds_ctx_t *ctx, int reason)
{
    (void)reason;
    handler_t *h = ds_ctx_state(ctx);
    for (size_t i = 0; i < h->nheld; i++) {
        ds_msg_free(&h->held[i]);
    }
    for (size_t i = 0; i < STREAMS_MAX; i++) {
        ds_msg_free(&h->out[i].msg);
        ds_msg_free(&h->in[i].msg);
    }
    free(h);
}

static bool path_is(const ds_http_request_t *r, const char *p)
{
    size_t n = strlen(p);
    return r->path.len >= n && memcmp(r->path.ptr, p, n) == 0;
}

static void pattern(uint8_t *p, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)((off + i) % 251);
    }
}

/* Sends pieces of o while the window allows (all of them when flood). */
static void out_pump(ds_ctx_t *ctx, out_stream_t *o, bool flood)
{
    uint8_t *buf = malloc(o->piece);
    while (o->msg != NULL && o->next < o->total &&
           (flood || o->outstanding < atomic_load(&window))) {
        pattern(buf, o->piece, (uint64_t)o->next * o->piece);
        bool last = o->next + 1 == o->total;
        if (ds_http_respond_body(ctx, &o->req, buf, o->piece, last) < 0) {
            break;
        }
        o->next++;
        o->outstanding++;
        atomic_fetch_add(&sent_bytes, o->piece);
        if (o->outstanding > atomic_load(&max_outstanding)) {
            atomic_store(&max_outstanding, o->outstanding);
        }
        if (last) {
            ds_msg_free(&o->msg);
        }
    }
    free(buf);
}

static void on_ack(ds_ctx_t *ctx, handler_t *h, const ds_msg_t *m)
{
    ds_http_response_ack_t a;
    assert_int_equal(ds_http_response_ack_decode(m, &a), 0);
    for (size_t i = 0; i < STREAMS_MAX; i++) {
        out_stream_t *o = &h->out[i];
        if (o->msg == NULL || o->req.conn != a.conn || o->req.seq != a.seq) {
            continue;
        }
        if (a.error < 0) {
            ds_msg_free(&o->msg);
        } else {
            assert_true(a.pieces <= o->outstanding);
            o->outstanding -= a.pieces;
            out_pump(ctx, o, false);
        }
    }
    int none = 0;
    if (a.error < 0 && atomic_compare_exchange_strong(&ack_error, &none, a.error)) {
        (void)sem_post(&stream_done); /* the first error: later ones follow from it */
    }
}

static void start_out(ds_ctx_t *ctx, handler_t *h, ds_msg_t **msgp, const ds_http_request_t *r)
{
    char path[64];
    (void)snprintf(path, sizeof(path), "%.*s", (int)r->path.len, r->path.ptr);
    bool flood = strncmp(path, "/flood/", 7) == 0;
    char *end;
    size_t n = strtoul(path + (flood ? 7 : 8), &end, 10);
    assert_int_equal(*end, '/');
    size_t size = strtoul(end + 1, NULL, 10);
    assert_true(n > 0 && size > 0);
    out_stream_t *o = NULL;
    for (size_t i = 0; i < STREAMS_MAX && o == NULL; i++) {
        o = h->out[i].msg == NULL ? &h->out[i] : NULL;
    }
    assert_non_null(o);
    *o = (out_stream_t){.msg = *msgp, .total = n, .piece = size};
    *msgp = NULL;
    assert_int_equal(ds_http_request_decode(o->msg, &o->req), 0);
    ds_http_header_t hs[] = {{"Content-Type", 12, "application/octet-stream", 24}};
    assert_int_equal(ds_http_respond_start(ctx, &o->req, 200, hs, 1), 0);
    out_pump(ctx, o, flood);
}

static in_stream_t *in_find(handler_t *h, uint64_t conn, uint64_t seq)
{
    for (size_t i = 0; i < STREAMS_MAX; i++) {
        in_stream_t *in = &h->in[i];
        if (in->msg != NULL && in->req.conn == conn && in->req.seq == seq) {
            return in;
        }
    }
    return NULL;
}

static void start_in(ds_ctx_t *ctx, handler_t *h, ds_msg_t **msgp, const ds_http_request_t *r)
{
    if (path_is(r, "/upload-reject")) {
        assert_int_equal(ds_http_respond(ctx, r, 401, NULL, 0, "no", 2), 0);
        return;
    }
    in_stream_t *in = NULL;
    for (size_t i = 0; i < STREAMS_MAX && in == NULL; i++) {
        in = h->in[i].msg == NULL ? &h->in[i] : NULL;
    }
    assert_non_null(in);
    *in = (in_stream_t){.msg = *msgp, .hold = path_is(r, "/upload-hold")};
    *msgp = NULL;
    bool streamed = false;
    assert_int_equal(ds_http_request_read(in->msg, &in->req, &streamed, NULL), 0);
    assert_true(streamed);
    if (!in->hold) {
        assert_int_equal(ds_http_request_credit(ctx, &in->req, 2), 0);
    }
}

static void on_body(ds_ctx_t *ctx, handler_t *h, const ds_msg_t *m)
{
    ds_http_request_body_t b;
    assert_int_equal(ds_http_request_body_decode(m, &b), 0);
    in_stream_t *in = in_find(h, b.conn, b.seq);
    if (b.error < 0) {
        int none = 0;
        if (atomic_compare_exchange_strong(&body_error, &none, b.error)) {
            (void)sem_post(&stream_done);
        }
        if (in != NULL) {
            ds_msg_free(&in->msg);
        }
        return;
    }
    assert_non_null(in);
    uint8_t want[65536];
    assert_true(b.data.len <= sizeof(want));
    pattern(want, b.data.len, in->len);
    for (uint32_t i = 0; i < b.data.len; i++) {
        in->bad += b.data.ptr[i] != want[i];
    }
    in->len += b.data.len;
    atomic_fetch_add(&in_bytes, b.data.len);
    atomic_fetch_add(&body_pieces, 1);
    if (!b.last) {
        assert_int_equal(ds_http_request_credit(ctx, &in->req, 1), 0);
        return;
    }
    char out[128];
    int n = snprintf(out, sizeof(out), "len=%llu bad=%llu", (unsigned long long)in->len,
                     (unsigned long long)in->bad);
    assert_int_equal(ds_http_respond(ctx, &in->req, 200, NULL, 0, out, (size_t)n), 0);
    ds_msg_free(&in->msg);
}

static void on_go(ds_ctx_t *ctx, handler_t *h)
{
    for (size_t i = 0; i < STREAMS_MAX; i++) {
        in_stream_t *in = &h->in[i];
        if (in->msg != NULL && in->hold) {
            in->hold = false;
            assert_int_equal(ds_http_request_credit(ctx, &in->req, 2), 0);
        }
    }
}

/* The streaming messages; 1 when m was one. */
static int stream_receive(ds_ctx_t *ctx, handler_t *h, ds_msg_t **msgp)
{
    ds_http_request_t r;
    bool streamed = false;
    switch ((*msgp)->type) {
    case DS_MT_HTTP_RESPONSE_ACK:
        on_ack(ctx, h, *msgp);
        return 1;
    case DS_MT_HTTP_REQUEST_BODY:
        on_body(ctx, h, *msgp);
        return 1;
    case DS_MT_TICK:
        on_go(ctx, h);
        return 1;
    case DS_MT_HTTP_REQUEST_START:
        assert_int_equal(ds_http_request_read(*msgp, &r, &streamed, NULL), 0);
        start_in(ctx, h, msgp, &r);
        return 1;
    default:
        break;
    }
    assert_int_equal(ds_http_request_read(*msgp, &r, &streamed, NULL), 0);
    assert_false(streamed);
    if (path_is(&r, "/stream/") || path_is(&r, "/flood/")) {
        start_out(ctx, h, msgp, &r);
        return 1;
    }
    return 0;
}

static void echo(ds_ctx_t *ctx, const ds_http_request_t *r)
{
    char body[4096];
    int n = snprintf(body, sizeof(body), "%.*s %.*s?%.*s peer=%.*s v=%u body=%.*s",
                     (int)r->method.len, r->method.ptr, (int)r->path.len, r->path.ptr,
                     (int)r->query.len, r->query.ptr, (int)r->peer.len, r->peer.ptr, r->version,
                     (int)(r->body.len > 2048 ? 2048 : r->body.len), (const char *)r->body.ptr);
    ds_http_header_t hs[] = {{"Content-Type", 12, "text/plain", 10}};
    assert_int_equal(ds_http_respond(ctx, r, 200, hs, 1, body, (size_t)n), 0);
}

static int h_receive(ds_ctx_t *ctx, ds_msg_t **msgp)
{
    handler_t *h = ds_ctx_state(ctx);
    if (stream_receive(ctx, h, msgp) == 1) {
        return 0;
    }
    ds_http_request_t r;
    if (ds_http_request_decode(*msgp, &r) < 0) {
        return 0;
    }
    if (path_is(&r, "/hold") && h->nheld < HELD_MAX) {
        h->held[h->nheld++] = *msgp;
        *msgp = NULL;
        return 0;
    }
    if (path_is(&r, "/never")) {
        return 0;
    }
    if (path_is(&r, "/gate")) {
        (void)sem_post(&gate_seen);
        (void)sem_wait(&gate);
    }
    echo(ctx, &r);
    if (path_is(&r, "/release")) {
        while (h->nheld > 0) {
            ds_msg_t *m = h->held[--h->nheld];
            ds_http_request_t hr;
            assert_int_equal(ds_http_request_decode(m, &hr), 0);
            echo(ctx, &hr);
            ds_msg_free(&m);
        }
    }
    return 0;
}

static const ds_behaviour_t handler_behaviour = {
    .name = "test-http-handler",
    .init = h_init,
    .receive = h_receive,
    .terminate = h_terminate,
};

/* ---- the server under test ---- */

typedef struct env {
    ds_rt_t *rt;
    ds_loop_t *loop;
    ds_http_server_t *srv;
    ds_actor_id_t handler;
    uint16_t port;
} env_t;

static void env_up(env_t *e, ds_http_config_t cfg, uint32_t mailbox_limit)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(ds_rt_new(&(ds_rt_cfg_t){.workers = 2}, &e->rt), 0);
    assert_int_equal(ds_rt_start(e->rt), 0);
    ds_spawn_opts_t opts = {0};
    if (mailbox_limit > 0) {
        ds_group_cfg_t g = {.weight = 1, .mailbox_limit = mailbox_limit, .bytes_cap = 1 << 24};
        assert_int_equal(ds_group_new(e->rt, &g, &opts.group), 0);
    }
    assert_int_equal(ds_spawn(e->rt, &handler_behaviour, NULL, &opts, &e->handler), 0);
    assert_int_equal(ds_loop_new(e->rt, "test-http", &e->loop), 0);
    cfg.handler = e->handler;
    assert_int_equal(ds_http_server_new(e->loop, &cfg, &e->srv), 0);
    e->port = ds_http_server_port(e->srv);
    assert_true(e->port != 0);
    assert_int_equal(ds_loop_start(e->loop), 0);
}

static void env_down(env_t *e)
{
    ds_loop_free(&e->loop);
    ds_rt_free(&e->rt);
}

/* ---- the client ---- */

typedef struct client {
    int fd;
    char *buf;
    size_t len;
} client_t;

typedef struct resp {
    int status;
    char head[8192];
    char body[CLIENT_BUF / 4];
    size_t body_len;
} resp_t;

static int cl_sockbuf; /* > 0: SO_RCVBUF and SO_SNDBUF of the next sockets (no autotuning) */

static int cl_open_at(const char *host, uint16_t port, client_t *c)
{
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    c->buf = NULL;
    c->len = 0;
    int fam = strchr(host, ':') != NULL ? AF_INET6 : AF_INET;
    if (fam == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, host, &a->sin6_addr), 1);
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, host, &a->sin_addr), 1);
        sl = sizeof(*a);
    }
    c->fd = socket(fam, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {.tv_sec = HANG_S};
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cl_sockbuf > 0) {
        (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &cl_sockbuf, sizeof(cl_sockbuf));
        (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &cl_sockbuf, sizeof(cl_sockbuf));
    }
    if (connect(c->fd, (struct sockaddr *)&ss, sl) < 0) {
        int err = errno;
        close(c->fd);
        return -err;
    }
    c->buf = malloc(CLIENT_BUF);
    c->len = 0;
    return 0;
}

static void cl_open(const env_t *e, client_t *c)
{
    assert_int_equal(cl_open_at("127.0.0.1", e->port, c), 0);
}

static void cl_close(client_t *c)
{
    close(c->fd);
    free(c->buf);
}

static void cl_send_n(client_t *c, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return; /* the server may have closed already: reads will tell */
        }
        s += w;
        n -= (size_t)w;
    }
}

static void cl_send(client_t *c, const char *s)
{
    cl_send_n(c, s, strlen(s));
}

/* Reads more bytes: >0, 0 at EOF (or reset), -1 on a timeout (a hang). */
static ssize_t cl_fill(client_t *c)
{
    if (c->len == CLIENT_BUF) {
        return -1;
    }
    ssize_t n;
    do {
        n = recv(c->fd, c->buf + c->len, CLIENT_BUF - c->len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == ECONNRESET || errno == EPIPE)) {
        return 0;
    }
    if (n < 0) {
        return -1;
    }
    c->len += (size_t)n;
    return n;
}

static const char *hdr(const resp_t *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *p = r->head;
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ') {
                v++;
            }
            const char *e = strstr(v, "\r\n");
            size_t l = e == NULL ? strlen(v) : (size_t)(e - v);
            l = l < cap - 1 ? l : cap - 1;
            memcpy(out, v, l);
            out[l] = 0;
            return out;
        }
    }
    return NULL;
}

/* Reads a response head into r; the body stays in c->buf. 0, or -1 at EOF. */
static int cl_head(client_t *c, resp_t *r)
{
    char *end;
    r->status = 0;
    r->head[0] = 0;
    assert_non_null(c->buf);
    if (c->buf == NULL) {
        return -1; /* for the analyzer: cmocka's asserts are not noreturn */
    }
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
        ssize_t n = cl_fill(c);
        if (n == 0) {
            return -1;
        }
        assert_true(n > 0); /* else: hang */
    }
    size_t hl = (size_t)(end - c->buf) + 2;
    assert_true(hl < sizeof(r->head));
    memcpy(r->head, c->buf, hl);
    r->head[hl] = 0;
    assert_memory_equal(r->head, "HTTP/1.1 ", 9);
    r->status = (int)strtol(r->head + 9, NULL, 10);
    memmove(c->buf, c->buf + hl + 2, c->len - hl - 2);
    c->len -= hl + 2;
    return 0;
}

/* Reads one response (Content-Length framed). 0, or -1 if the connection closed first. */
static int cl_read(client_t *c, resp_t *r)
{
    if (cl_head(c, r) < 0) {
        return -1;
    }
    char v[64];
    size_t cl = hdr(r, "Content-Length", v, sizeof(v)) == NULL ? 0 : strtoul(v, NULL, 10);
    size_t total = cl;
    while (c->len < total) {
        ssize_t n = cl_fill(c);
        assert_true(n > 0);
    }
    assert_true(cl < sizeof(r->body));
    memcpy(r->body, c->buf, cl);
    r->body[cl] = 0;
    r->body_len = cl;
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    return 0;
}

/* Drops the first n bytes of c->buf. */
static void cl_drop(client_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Checks the first n buffered bytes against the pattern at body offset off, then drops them. */
static uint64_t cl_take_pattern(client_t *c, size_t n, uint64_t off)
{
    uint64_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        bad += (uint8_t)c->buf[i] != (uint8_t)((off + i) % 251);
    }
    cl_drop(c, n);
    return bad;
}

/* A CRLF-terminated line at the start of c->buf: its length without CRLF (drop it + 2). */
static size_t cl_line(client_t *c)
{
    char *e;
    while ((e = memmem(c->buf, c->len, "\r\n", 2)) == NULL) {
        assert_true(cl_fill(c) > 0);
    }
    return (size_t)(e - c->buf);
}

/* Reads the streamed body of r (chunked, or up to EOF without Transfer-Encoding), checking
 * every byte against the pattern. Its length; *bad counts the bytes off the pattern. */
static uint64_t cl_stream_body(client_t *c, const resp_t *r, uint64_t *bad)
{
    char v[64];
    bool chunked = hdr(r, "Transfer-Encoding", v, sizeof(v)) != NULL;
    uint64_t len = 0;
    *bad = 0;
    while (!chunked) {
        size_t have = c->len;
        *bad += cl_take_pattern(c, have, len);
        len += have;
        ssize_t n = cl_fill(c);
        assert_true(n >= 0);
        if (n == 0) {
            return len;
        }
    }
    assert_string_equal(v, "chunked");
    for (;;) {
        size_t l = cl_line(c);
        size_t size = strtoul(c->buf, NULL, 16);
        cl_drop(c, l + 2);
        if (size == 0) {
            assert_int_equal(cl_line(c), 0); /* no trailers */
            cl_drop(c, 2);
            return len;
        }
        while (size > 0) {
            if (c->len == 0) {
                assert_true(cl_fill(c) > 0);
            }
            size_t n = c->len < size ? c->len : size;
            *bad += cl_take_pattern(c, n, len);
            len += n;
            size -= n;
        }
        assert_int_equal(cl_line(c), 0);
        cl_drop(c, 2);
    }
}

/* True when the server closed the connection (EOF or reset) with nothing more to read. */
static bool cl_closed(client_t *c)
{
    ssize_t n = cl_fill(c);
    assert_true(n >= 0); /* -1: hang */
    return n == 0 && c->len == 0;
}

static void expect_problem(client_t *c, int status, const char *slug)
{
    resp_t *r = malloc(sizeof(*r));
    assert_int_equal(cl_read(c, r), 0);
    assert_int_equal(r->status, status);
    char v[256];
    assert_non_null(hdr(r, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "application/problem+json");
    assert_non_null(hdr(r, "X-Request-Id", v, sizeof(v)));
    char type[256];
    (void)snprintf(type, sizeof(type), "\"type\":\"https://dossier.dev/problems/%s\"", slug);
    assert_non_null(strstr(r->body, type));
    char st[32];
    (void)snprintf(st, sizeof(st), "\"status\":%d", status);
    assert_non_null(strstr(r->body, st));
    assert_non_null(strstr(r->body, "\"title\":"));
    assert_non_null(strstr(r->body, "\"detail\":"));
    char rid[128];
    (void)snprintf(rid, sizeof(rid), "\"request_id\":\"%s\"", v);
    assert_non_null(strstr(r->body, rid));
    free(r);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL);
}

/* ---- tests ---- */

static void test_keep_alive_and_request_id(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){0}, 0);
    client_t c;
    cl_open(&e, &c);
    resp_t *r = malloc(sizeof(*r));
    char v[128];
    cl_send(&c, "GET /echo/a?x=1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-123\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "GET /echo/a?x=1 peer=127.0.0.1 v=11 body=");
    assert_string_equal(hdr(r, "X-Request-Id", v, sizeof(v)), "abc-123");
    assert_string_equal(hdr(r, "Content-Type", v, sizeof(v)), "text/plain");
    assert_null(hdr(r, "Connection", v, sizeof(v)));
    /* the same connection again; an insane id is replaced by 32 random hex digits */
    cl_send(&c, "GET /echo/b HTTP/1.1\r\nHost: t\r\nX-Request-Id: a b\"c\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "GET /echo/b? peer=127.0.0.1 v=11 body=");
    assert_non_null(hdr(r, "X-Request-Id", v, sizeof(v)));
    assert_int_equal(strlen(v), 32);
    assert_int_equal(strspn(v, "0123456789abcdef"), 32);
    /* Content-Length body, then Connection: close */
    cl_send(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                "hello");
    assert_int_equal(cl_read(&c, r), 0);
    assert_string_equal(r->body, "POST /echo? peer=127.0.0.1 v=11 body=hello");
    assert_string_equal(hdr(r, "Connection", v, sizeof(v)), "close");
    assert_true(cl_closed(&c));
    free(r);
    cl_close(&c);
    env_down(&e);
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){0}, 0);
    client_t c;
    cl_open(&e, &c);
    /* the handler answers /release first, then /hold/2, then /hold/1 */
    cl_send(&c, "GET /hold/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /hold/2 HTTP/1.1\r\nHost: t\r\n\r\n"
                "GET /release HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t *r = malloc(sizeof(*r));
    const char *want[] = {"GET /hold/1?", "GET /hold/2?", "GET /release?"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(cl_read(&c, r), 0);
        assert_int_equal(r->status, 200);
        assert_memory_equal(r->body, want[i], strlen(want[i]));
    }
    free(r);
    cl_close(&c);
    env_down(&e);
}

/* 20 pipelined requests in one write, with reading stopped at 2 unanswered requests (or at
 * any unsent output): all are answered, in order. */
static void back_pressure(ds_http_config_t cfg)
{
    env_t e;
    env_up(&e, cfg, 0);
    client_t c;
    cl_open(&e, &c);
    char req[8192];
    size_t o = 0;
    for (int i = 0; i < 20; i++) {
        o += (size_t)snprintf(req + o, sizeof(req) - o, "GET /echo/%d HTTP/1.1\r\nHost: t\r\n\r\n",
                              i);
    }
    cl_send(&c, req);
    resp_t *r = malloc(sizeof(*r));
    for (int i = 0; i < 20; i++) {
        char want[64];
        (void)snprintf(want, sizeof(want), "GET /echo/%d?", i);
        assert_int_equal(cl_read(&c, r), 0);
        assert_int_equal(r->status, 200);
        assert_memory_equal(r->body, want, strlen(want));
    }
    free(r);
    cl_close(&c);
    env_down(&e);
}

static void test_back_pressure_pipeline(void **state)
{
    (void)state;
    back_pressure((ds_http_config_t){.max_pipeline = 2});
}

static void test_back_pressure_output(void **state)
{
    (void)state;
    back_pressure((ds_http_config_t){.max_output_bytes = 1});
}

static void test_message_helpers(void **state)
{
    (void)state;
    ds_http_request_t req = {.conn = 7, .seq = 9};
    ds_http_header_t hs[] = {{"A", 1, "x", 1}, {"Content-Type", 12, "text/plain", 10}};
    ds_msg_t *m;
    assert_int_equal(ds_http_answer_new(&req, 201, hs, 2, "hi", 2, &m), 0);
    ds_http_response_t r;
    assert_int_equal(ds_http_response_decode(m, &r), 0);
    assert_int_equal(r.conn, 7);
    assert_int_equal(r.seq, 9);
    assert_int_equal(r.status, 201);
    ds_http_header_t h;
    assert_int_equal(ds_http_header_get(r.headers, "content-type", &h), 0);
    assert_memory_equal(h.value, "text/plain", 10);
    assert_int_equal(ds_http_header_get(r.headers, "b", &h), -ENOENT);
    size_t pos = 0;
    int n = 0;
    while (ds_http_header_next(r.headers, &pos, &h) == 1) {
        n++;
    }
    assert_int_equal(n, 2);
    ds_msg_free(&m);
    ds_http_header_t crlf[] = {{"A", 1, "x\r\nSet-Cookie: y", 17}};
    assert_int_equal(ds_http_answer_new(&req, 200, crlf, 1, NULL, 0, &m), -EINVAL);
    assert_int_equal(ds_http_answer_new(&req, 99, NULL, 0, NULL, 0, &m), -EINVAL);
    static const uint8_t broken[] = {'A', 0, 'x'};
    assert_int_equal(ds_http_header_get((ds_bytes_t){broken, 3}, "b", &h), DS_EDECODE);
}

static void test_chunked_and_http10(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){0}, 0);
    client_t c;
    cl_open(&e, &c);
    resp_t *r = malloc(sizeof(*r));
    cl_send(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "POST /echo? peer=127.0.0.1 v=11 body=hello world");
    cl_close(&c);
    /* HTTP/1.0: closed after the response */
    cl_open(&e, &c);
    cl_send(&c, "GET /echo HTTP/1.0\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "GET /echo? peer=127.0.0.1 v=10 body=");
    assert_true(cl_closed(&c));
    cl_close(&c);
    /* HTTP/1.0 with keep-alive */
    cl_open(&e, &c);
    cl_send(&c, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    char v[64];
    assert_string_equal(hdr(r, "Connection", v, sizeof(v)), "keep-alive");
    cl_send(&c, "GET /echo HTTP/1.0\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    free(r);
    cl_close(&c);
    env_down(&e);
}

/* Sends req on a new connection; expects a problem and the connection closed. */
static void bad(const env_t *e, const char *req, size_t len, int status, const char *slug)
{
    client_t c;
    cl_open(e, &c);
    cl_send_n(&c, req, len);
    expect_problem(&c, status, slug);
    assert_true(cl_closed(&c));
    cl_close(&c);
}

static void bad_s(const env_t *e, const char *req, int status, const char *slug)
{
    bad(e, req, strlen(req), status, slug);
}

static void test_limits(void **state)
{
    (void)state;
    env_t e;
    ds_http_limits_t lim = {
        .max_header_bytes = 1024, .max_headers = 8, .max_url = 256, .max_body = 64};
    env_up(&e, (ds_http_config_t){.limits = lim}, 0);
    char *req = malloc(8192);
    char big[2048];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    (void)snprintf(req, 8192, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", big);
    bad_s(&e, req, 431, "request-header-too-large");
    size_t o = (size_t)snprintf(req, 8192, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 9; i++) {
        o += (size_t)snprintf(req + o, 8192 - o, "X-H%d: v\r\n", i);
    }
    (void)snprintf(req + o, 8192 - o, "\r\n");
    bad_s(&e, req, 431, "request-header-too-large");
    (void)snprintf(req, 8192, "GET /%.300s HTTP/1.1\r\nHost: t\r\n\r\n", big);
    bad_s(&e, req, 414, "uri-too-long");
    bad_s(&e, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 65\r\n\r\n", 413,
          "content-too-large");
    (void)snprintf(req, 8192,
                   "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "40\r\n%.64s\r\n1\r\nx\r\n0\r\n\r\n",
                   big);
    bad_s(&e, req, 413, "content-too-large");
    /* at the limits: accepted */
    client_t c;
    cl_open(&e, &c);
    (void)snprintf(req, 8192, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 64\r\n\r\n%.64s",
                   big);
    cl_send(&c, req);
    resp_t *r = malloc(sizeof(*r));
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    free(r);
    cl_close(&c);
    free(req);
    env_down(&e);
}

static void test_malformed(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){0}, 0);
    bad_s(&e, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400,
          "bad-request");
    bad_s(&e, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n", 400,
          "bad-request");
    bad_s(&e, "\x01\x02 garbage\r\n\r\n", 400, "bad-request");
    bad_s(&e, "GET / HTTP/9.9\r\n\r\n", 400, "bad-request");
    static const char nul[] = "GET / HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n";
    bad(&e, nul, sizeof(nul) - 1, 400, "bad-request");
    bad_s(&e,
          "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"
          "\r\n\r\n0\r\n\r\n",
          400, "bad-request");
    env_down(&e);
}

static void test_slowloris(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){.header_timeout_ms = 400}, 0);
    client_t slow, fast;
    cl_open(&e, &slow);
    const char *head = "GET /echo HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    bool cut = false;
    for (size_t i = 0; i < strlen(head) && !cut; i++) {
        cl_send_n(&slow, head + i, 1);
        if (i == 3) {
            /* a normal client is served meanwhile */
            cl_open(&e, &fast);
            cl_send(&fast, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
            resp_t *r = malloc(sizeof(*r));
            assert_int_equal(cl_read(&fast, r), 0);
            assert_int_equal(r->status, 200);
            free(r);
            cl_close(&fast);
        }
        sleep_ms(100);
        struct timeval tv = {0, 1000};
        (void)setsockopt(slow.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t n = recv(slow.fd, slow.buf, CLIENT_BUF, MSG_PEEK);
        cut = n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }
    assert_true(cut); /* the server spoke (408) or closed before the head was done */
    struct timeval tv = {.tv_sec = HANG_S};
    (void)setsockopt(slow.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    expect_problem(&slow, 408, "request-timeout");
    assert_true(cl_closed(&slow));
    cl_close(&slow);
    env_down(&e);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){.idle_timeout_ms = 200}, 0);
    client_t c;
    cl_open(&e, &c);
    cl_send(&c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t *r = malloc(sizeof(*r));
    assert_int_equal(cl_read(&c, r), 0);
    free(r);
    assert_true(cl_closed(&c)); /* closed by the server after 200 ms idle, not a hang */
    cl_close(&c);
    env_down(&e);
}

static void test_handler_timeout(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){.handler_timeout_ms = 200}, 0);
    client_t c;
    cl_open(&e, &c);
    cl_send(&c, "GET /never HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_problem(&c, 504, "handler-timeout");
    resp_t *r = malloc(sizeof(*r));
    assert_int_equal(cl_read(&c, r), 0); /* the connection goes on */
    assert_int_equal(r->status, 200);
    free(r);
    cl_close(&c);
    env_down(&e);
}

static void test_full_mailbox(void **state)
{
    (void)state;
    env_t e;
    assert_int_equal(sem_init(&gate, 0, 0), 0);
    assert_int_equal(sem_init(&gate_seen, 0, 0), 0);
    env_up(&e, (ds_http_config_t){.retry_after_s = 7}, 1);
    client_t a, c;
    cl_open(&e, &a);
    cl_send(&a, "GET /gate HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(sem_wait(&gate_seen), 0); /* the handler is busy */
    resp_t *r = malloc(sizeof(*r));
    char v[64];
    /* the mailbox (limit 1) fills up behind /gate: a request is refused */
    bool refused = false;
    for (int i = 0; i < 50 && !refused; i++) {
        cl_open(&e, &c);
        cl_send(&c, "GET /echo/refused HTTP/1.1\r\nHost: t\r\n\r\n");
        struct timeval tv = {0, 200000};
        (void)setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t n = recv(c.fd, c.buf, CLIENT_BUF, MSG_PEEK);
        tv = (struct timeval){.tv_sec = HANG_S};
        (void)setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (n > 0) {
            assert_int_equal(cl_read(&c, r), 0);
            assert_int_equal(r->status, 503);
            assert_string_equal(hdr(r, "Retry-After", v, sizeof(v)), "7");
            assert_non_null(strstr(r->body, "https://dossier.dev/problems/service-unavailable"));
            refused = true;
        }
        cl_close(&c);
    }
    assert_true(refused);
    assert_int_equal(sem_post(&gate), 0);
    assert_int_equal(cl_read(&a, r), 0);
    assert_int_equal(r->status, 200);
    free(r);
    cl_close(&a);
    env_down(&e);
    (void)sem_destroy(&gate);
    (void)sem_destroy(&gate_seen);
}

static void test_connection_limits(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){.max_connections = 2}, 0);
    client_t c[3];
    resp_t *r = malloc(sizeof(*r));
    for (int i = 0; i < 2; i++) {
        cl_open(&e, &c[i]);
        cl_send(&c[i], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(cl_read(&c[i], r), 0);
    }
    cl_open(&e, &c[2]);
    assert_true(cl_closed(&c[2]));
    cl_close(&c[2]);
    cl_close(&c[1]);
    /* a slot frees up once the server saw the close */
    bool served = false;
    for (int i = 0; i < 100 && !served; i++) {
        cl_open(&e, &c[2]);
        cl_send(&c[2], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
        served = cl_read(&c[2], r) == 0;
        cl_close(&c[2]);
        sleep_ms(served ? 0 : 20);
    }
    assert_true(served);
    cl_close(&c[0]);
    env_down(&e);
    /* per client IP */
    env_up(&e, (ds_http_config_t){.max_connections_ip = 1}, 0);
    cl_open(&e, &c[0]);
    cl_send(&c[0], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c[0], r), 0);
    cl_open(&e, &c[1]);
    assert_true(cl_closed(&c[1]));
    cl_close(&c[1]);
    cl_send(&c[0], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c[0], r), 0); /* the first is unaffected */
    assert_int_equal(r->status, 200);
    cl_close(&c[0]);
    free(r);
    env_down(&e);
}

static void test_forwarded_for(void **state)
{
    (void)state;
    env_t e;
    resp_t *r = malloc(sizeof(*r));
    client_t c;
    const char *req = "GET /echo HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1, "
                      "127.0.0.1\r\n\r\n";
    /* untrusted peer: X-Forwarded-For is ignored */
    env_up(&e, (ds_http_config_t){0}, 0);
    cl_open(&e, &c);
    cl_send(&c, req);
    assert_int_equal(cl_read(&c, r), 0);
    assert_non_null(strstr(r->body, "peer=127.0.0.1 "));
    cl_close(&c);
    env_down(&e);
    /* trusted proxies: the rightmost untrusted address */
    const char *const proxies[] = {"127.0.0.1", "10.0.0.1"};
    env_up(&e, (ds_http_config_t){.trusted_proxies = proxies, .ntrusted_proxies = 2}, 0);
    cl_open(&e, &c);
    cl_send(&c, req);
    assert_int_equal(cl_read(&c, r), 0);
    assert_non_null(strstr(r->body, "peer=203.0.113.9 "));
    cl_close(&c);
    env_down(&e);
    free(r);
}

static void test_ipv6(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){.host = "::1"}, 0);
    client_t c;
    if (cl_open_at("::1", e.port, &c) < 0) {
        env_down(&e);
        skip();
    }
    cl_send(&c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    resp_t *r = malloc(sizeof(*r));
    assert_int_equal(cl_read(&c, r), 0);
    assert_non_null(strstr(r->body, "peer=::1 "));
    free(r);
    cl_close(&c);
    env_down(&e);
}

/* health_path: GET and HEAD answered by the server (never the handler's echo), in order with
 * pipelined requests around them; other methods and paths still reach the handler. */
static void test_health(void **state)
{
    (void)state;
    env_t e;
    env_up(&e, (ds_http_config_t){.health_path = "/healthz"}, 0);
    client_t c;
    cl_open(&e, &c);
    resp_t *r = malloc(sizeof(*r));
    char v[128];
    cl_send(&c, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"
                "GET /healthz?probe=1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: hz-1\r\n\r\n"
                "GET /release HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_string_equal(r->body, "GET /hold? peer=127.0.0.1 v=11 body=");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "{\"status\":\"ok\"}");
    assert_string_equal(hdr(r, "Content-Type", v, sizeof(v)), "application/json");
    assert_string_equal(hdr(r, "Cache-Control", v, sizeof(v)), "no-store");
    assert_string_equal(hdr(r, "X-Request-Id", v, sizeof(v)), "hz-1");
    assert_int_equal(cl_read(&c, r), 0);
    assert_string_equal(r->body, "GET /release? peer=127.0.0.1 v=11 body=");
    /* HEAD: the head alone (the next response follows at once) */
    cl_send(&c, "HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_head(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(hdr(r, "Content-Length", v, sizeof(v)), "15");
    assert_int_equal(cl_read(&c, r), 0);
    assert_string_equal(r->body, "GET /echo? peer=127.0.0.1 v=11 body=");
    /* other methods and near paths are the handler's */
    cl_send(&c, "DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_string_equal(r->body, "DELETE /healthz? peer=127.0.0.1 v=11 body=");
    cl_send(&c, "GET /healthz/x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_string_equal(r->body, "GET /healthz/x? peer=127.0.0.1 v=11 body=");
    free(r);
    cl_close(&c);
    env_down(&e);

    ds_loop_t *l = NULL;
    ds_http_server_t *s = NULL;
    assert_int_equal(ds_rt_new(&(ds_rt_cfg_t){.workers = 1}, &e.rt), 0);
    assert_int_equal(ds_loop_new(e.rt, "test-http", &l), 0);
    ds_http_config_t bad_path = {.handler = {.v = 1}, .health_path = "healthz"};
    assert_int_equal(ds_http_server_new(l, &bad_path, &s), -EINVAL);
    ds_loop_free(&l);
    ds_rt_free(&e.rt);
}

/* Two loops on one port (reuseport): both serve, the per-IP limit counts across them, and the
 * second serves alone once the first is gone. */
static void test_two_loops(void **state)
{
    (void)state;
    enum {
        PER_IP = 4,
        CONNS = 2 * PER_IP
    };
    env_t e;
    env_up(&e, (ds_http_config_t){.reuseport = true, .max_connections_ip = PER_IP}, 0);
    ds_loop_t *l2 = NULL;
    ds_http_server_t *s2 = NULL;
    assert_int_equal(ds_http_server_add(e.srv, e.loop, &s2), -EINVAL); /* its own loop */
    assert_int_equal(ds_loop_new(e.rt, "test-http-2", &l2), 0);
    assert_int_equal(ds_http_server_add(e.srv, l2, &s2), 0);
    assert_int_equal(ds_http_server_port(s2), e.port);
    assert_false(ds_id_eq(ds_http_server_id(s2), ds_http_server_id(e.srv)));
    assert_int_equal(ds_loop_start(l2), 0);
    client_t c[CONNS];
    resp_t *r = malloc(sizeof(*r));
    int served = 0;
    for (int i = 0; i < CONNS; i++) {
        cl_open(&e, &c[i]);
        cl_send(&c[i], "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
        if (cl_read(&c[i], r) == 0) {
            assert_int_equal(r->status, 200);
            served++;
        }
    }
    assert_int_equal(served, PER_IP); /* whichever loops the kernel chose */
    for (int i = 0; i < CONNS; i++) {
        cl_close(&c[i]);
    }
    /* the first loop stops: new connections all reach the second one, which still answers */
    ds_loop_free(&e.loop);
    served = 0;
    for (int i = 0; i < 50 && served < 3; i++) {
        cl_open(&e, &c[0]);
        cl_send(&c[0], "GET /echo/2 HTTP/1.1\r\nHost: t\r\n\r\n");
        if (cl_read(&c[0], r) == 0) {
            assert_string_equal(r->body, "GET /echo/2? peer=127.0.0.1 v=11 body=");
            served++;
        } else {
            sleep_ms(20); /* the per-IP count of closed connections is not yet released */
        }
        cl_close(&c[0]);
    }
    assert_int_equal(served, 3);
    free(r);
    ds_loop_free(&l2);
    env_down(&e);
}

/* ---- streaming and CORS ---- */

static void counters_reset(unsigned win)
{
    atomic_store(&window, win);
    atomic_store(&max_outstanding, 0);
    atomic_store(&sent_bytes, 0);
    atomic_store(&in_bytes, 0);
    atomic_store(&ack_error, 0);
    atomic_store(&body_error, 0);
    atomic_store(&body_pieces, 0);
    assert_int_equal(sem_init(&stream_done, 0, 0), 0);
}

static void wait_done(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += HANG_S;
    int rc;
    do {
        rc = sem_timedwait(&stream_done, &ts);
    } while (rc < 0 && errno == EINTR);
    assert_int_equal(rc, 0); /* else: hang */
}

static void test_stream_response(void **state)
{
    (void)state;
    counters_reset(4);
    env_t e;
    env_up(&e, (ds_http_config_t){.stream_window = 4}, 0);
    client_t c;
    cl_open(&e, &c);
    resp_t *r = malloc(sizeof(*r));
    char v[64];
    uint64_t bad;
    /* chunked, and the pipelined request behind it waits for its end */
    cl_send(&c, "GET /stream/10/1000 HTTP/1.1\r\nHost: t\r\n\r\n"
                "GET /echo/after HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_head(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(hdr(r, "Transfer-Encoding", v, sizeof(v)), "chunked");
    assert_string_equal(hdr(r, "Content-Type", v, sizeof(v)), "application/octet-stream");
    assert_null(hdr(r, "Content-Length", v, sizeof(v)));
    assert_non_null(hdr(r, "X-Request-Id", v, sizeof(v)));
    assert_int_equal(cl_stream_body(&c, r, &bad), 10000);
    assert_int_equal(bad, 0);
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "GET /echo/after? peer=127.0.0.1 v=11 body=");
    /* HEAD: the head alone, and the connection goes on */
    cl_send(&c, "HEAD /stream/3/100 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_head(&c, r), 0);
    assert_int_equal(r->status, 200);
    cl_send(&c, "GET /echo/next HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_string_equal(r->body, "GET /echo/next? peer=127.0.0.1 v=11 body=");
    cl_close(&c);
    /* HTTP/1.0: no chunks, the end of the body is the end of the connection */
    cl_open(&e, &c);
    cl_send(&c, "GET /stream/5/300 HTTP/1.0\r\n\r\n");
    assert_int_equal(cl_head(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_null(hdr(r, "Transfer-Encoding", v, sizeof(v)));
    assert_string_equal(hdr(r, "Connection", v, sizeof(v)), "close");
    assert_int_equal(cl_stream_body(&c, r, &bad), 1500);
    assert_int_equal(bad, 0);
    cl_close(&c);
    assert_true(atomic_load(&max_outstanding) <= 4);
    assert_int_equal(atomic_load(&ack_error), 0);
    free(r);
    env_down(&e);
    (void)sem_destroy(&stream_done);
}

/* A client that does not read holds up the handler: 32 MiB cannot all leave it while the
 * kernel buffers (a few MiB) are full and the window is 4 pieces of 64 KiB. */
static void test_stream_response_back_pressure(void **state)
{
    (void)state;
    enum {
        PIECES = 512,
        PIECE = 65536
    };
    counters_reset(4);
    env_t e;
    env_up(&e, (ds_http_config_t){.stream_window = 4}, 0);
    client_t c;
    cl_sockbuf = 65536;
    cl_open(&e, &c);
    cl_sockbuf = 0;
    char req[128];
    (void)snprintf(req, sizeof(req), "GET /stream/%d/%d HTTP/1.1\r\nHost: t\r\n\r\n", PIECES,
                   PIECE);
    cl_send(&c, req);
    sleep_ms(500);
    uint64_t early = atomic_load(&sent_bytes);
    assert_true(early < (uint64_t)PIECES * PIECE);
    resp_t *r = malloc(sizeof(*r));
    assert_int_equal(cl_head(&c, r), 0);
    uint64_t bad;
    assert_int_equal(cl_stream_body(&c, r, &bad), (uint64_t)PIECES * PIECE);
    assert_int_equal(bad, 0);
    assert_true(atomic_load(&max_outstanding) <= 4);
    assert_int_equal(atomic_load(&ack_error), 0);
    free(r);
    cl_close(&c);
    env_down(&e);
    (void)sem_destroy(&stream_done);
}

/* A handler that ignores the window is cut off: ACK error -ENOBUFS, connection closed. */
static void test_stream_window_overrun(void **state)
{
    (void)state;
    counters_reset(2);
    env_t e;
    env_up(&e, (ds_http_config_t){.stream_window = 2}, 0);
    client_t c;
    cl_sockbuf = 65536;
    cl_open(&e, &c);
    cl_sockbuf = 0;
    cl_send(&c, "GET /flood/64/262144 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_done();
    assert_int_equal(atomic_load(&ack_error), -ENOBUFS);
    ssize_t n;
    do {
        c.len = 0;
        n = cl_fill(&c);
    } while (n > 0);
    assert_int_equal(n, 0); /* closed, not a hang */
    cl_close(&c);
    env_down(&e);
    (void)sem_destroy(&stream_done);
}

/* Sends a request head and a pattern body of len bytes, as Content-Length or in chunks of
 * chunk bytes. */
static void send_pattern(client_t *c, const char *path, size_t len, size_t chunk)
{
    char head[256];
    if (chunk == 0) {
        (void)snprintf(head, sizeof(head),
                       "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", path, len);
    } else {
        (void)snprintf(head, sizeof(head),
                       "POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", path);
    }
    cl_send(c, head);
    uint8_t *b = malloc(len);
    pattern(b, len, 0);
    for (size_t off = 0; off < len;) {
        size_t n = chunk == 0 ? len : (len - off < chunk ? len - off : chunk);
        char line[32];
        (void)snprintf(line, sizeof(line), "%zx\r\n", n);
        if (chunk > 0) {
            cl_send(c, line);
        }
        cl_send_n(c, (const char *)b + off, n);
        if (chunk > 0) {
            cl_send(c, "\r\n");
        }
        off += n;
    }
    if (chunk > 0) {
        cl_send(c, "0\r\n\r\n");
    }
    free(b);
}

static void test_stream_request(void **state)
{
    (void)state;
    counters_reset(4);
    env_t e;
    ds_http_limits_t lim = {.max_body = 1 << 26, .stream_threshold = 1000};
    env_up(&e, (ds_http_config_t){.limits = lim}, 0);
    client_t c;
    cl_open(&e, &c);
    resp_t *r = malloc(sizeof(*r));
    char v[64];
    send_pattern(&c, "/upload", 300000, 0);
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "len=300000 bad=0");
    assert_true(atomic_load(&body_pieces) >= 300000 / 65536);
    assert_null(hdr(r, "Connection", v, sizeof(v))); /* the body was read: keep-alive */
    send_pattern(&c, "/upload", 200000, 4000);
    assert_int_equal(cl_read(&c, r), 0);
    assert_string_equal(r->body, "len=200000 bad=0");
    /* up to the threshold: a whole REQUEST, as before */
    cl_send(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nsmall");
    assert_int_equal(cl_read(&c, r), 0);
    assert_string_equal(r->body, "POST /echo? peer=127.0.0.1 v=11 body=small");
    /* answered before the body was read: the rest is never read, the connection closes */
    cl_send(&c, "POST /upload-reject HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    cl_send(&c, "abcdefgh");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 401);
    assert_string_equal(hdr(r, "Connection", v, sizeof(v)), "close");
    assert_true(cl_closed(&c));
    wait_done();
    assert_int_equal(atomic_load(&body_error), -ECANCELED);
    cl_close(&c);
    free(r);
    env_down(&e);
    (void)sem_destroy(&stream_done);
    /* max_body still counts a streamed body: 413 mid-stream, and the taker is told */
    counters_reset(4);
    lim = (ds_http_limits_t){.max_body = 5000, .stream_threshold = 1000};
    env_up(&e, (ds_http_config_t){.limits = lim}, 0);
    cl_open(&e, &c);
    cl_send(&c, "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                "7d0\r\n");
    char *chunk = malloc(2000);
    pattern((uint8_t *)chunk, 2000, 0);
    cl_send_n(&c, chunk, 2000);
    cl_send(&c, "\r\n");
    /* the handler has the head and the first chunk before the limit trips */
    for (int i = 0; i < HANG_S * 100 && atomic_load(&in_bytes) < 2000; i++) {
        sleep_ms(10);
    }
    assert_int_equal(atomic_load(&in_bytes), 2000);
    for (int i = 0; i < 2; i++) {
        cl_send(&c, "7d0\r\n");
        cl_send_n(&c, chunk, 2000);
        cl_send(&c, "\r\n");
    }
    free(chunk);
    expect_problem(&c, 413, "content-too-large");
    assert_true(cl_closed(&c));
    wait_done();
    assert_int_equal(atomic_load(&body_error), -EMSGSIZE);
    cl_close(&c);
    env_down(&e);
    (void)sem_destroy(&stream_done);
}

/* Without credit the server stops reading: a 32 MiB upload stalls in the kernel buffers and
 * nothing reaches the handler; once it grants credit the whole body arrives intact. */
static void test_stream_request_back_pressure(void **state)
{
    (void)state;
    enum {
        LEN = 1 << 25
    };
    counters_reset(4);
    env_t e;
    ds_http_limits_t lim = {.max_body = 1 << 26, .stream_threshold = 1000};
    env_up(&e, (ds_http_config_t){.limits = lim}, 0);
    client_t c;
    cl_sockbuf = 65536;
    cl_open(&e, &c);
    cl_sockbuf = 0;
    char head[128];
    (void)snprintf(head, sizeof(head),
                   "POST /upload-hold HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", LEN);
    cl_send(&c, head);
    uint8_t *b = malloc(LEN);
    pattern(b, LEN, 0);
    int fl = fcntl(c.fd, F_GETFL);
    assert_int_equal(fcntl(c.fd, F_SETFL, fl | O_NONBLOCK), 0);
    size_t off = 0;
    int idle = 0;
    while (off < LEN && idle < 5) { /* until 5 x 100 ms without progress */
        ssize_t w = send(c.fd, b + off, LEN - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            idle = 0;
        } else {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
            sleep_ms(100);
            idle++;
        }
    }
    assert_true(off < LEN); /* the server stopped reading */
    assert_int_equal(atomic_load(&in_bytes), 0);
    ds_msg_t *go;
    assert_int_equal(ds_tick_new(&(ds_tick_t){.seq = 1}, &go), 0);
    assert_int_equal(ds_send_from(e.rt, e.handler, &go), 0);
    assert_int_equal(fcntl(c.fd, F_SETFL, fl), 0);
    cl_send_n(&c, (const char *)b + off, LEN - off);
    free(b);
    resp_t *r = malloc(sizeof(*r));
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    char want[64];
    (void)snprintf(want, sizeof(want), "len=%d bad=0", LEN);
    assert_string_equal(r->body, want);
    free(r);
    cl_close(&c);
    env_down(&e);
    (void)sem_destroy(&stream_done);
}

static void test_cors(void **state)
{
    (void)state;
    env_t e;
    ds_http_server_t *srv;
    const char *const star[] = {"*"};
    ds_loop_t *l;
    ds_rt_t *rt;
    assert_int_equal(ds_rt_new(&(ds_rt_cfg_t){.workers = 1}, &rt), 0);
    assert_int_equal(ds_loop_new(rt, "cors", &l), 0);
    ds_http_config_t bad_cfg = {
        .handler = ds_id_make(0, 1, 1), .cors_origins = star, .ncors_origins = 1};
    assert_int_equal(ds_http_server_new(l, &bad_cfg, &srv), -EINVAL); /* no wildcards */
    ds_loop_free(&l);
    ds_rt_free(&rt);
    const char *const origins[] = {"https://app.example.com", "http://localhost:5173"};
    env_up(&e, (ds_http_config_t){.cors_origins = origins, .ncors_origins = 2}, 0);
    client_t c;
    cl_open(&e, &c);
    resp_t *r = malloc(sizeof(*r));
    char v[256];
    cl_send(&c, "GET /echo HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example.com\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(hdr(r, "Access-Control-Allow-Origin", v, sizeof(v)),
                        "https://app.example.com");
    assert_string_equal(hdr(r, "Vary", v, sizeof(v)), "Origin");
    assert_string_equal(hdr(r, "Access-Control-Expose-Headers", v, sizeof(v)),
                        "X-Request-Id, ETag, Location, Retry-After, RateLimit-Limit, "
                        "RateLimit-Remaining, RateLimit-Reset");
    /* another origin (or a near miss): no CORS header at all */
    cl_send(&c, "GET /echo HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example.com.evil\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_null(hdr(r, "Access-Control-Allow-Origin", v, sizeof(v)));
    assert_null(hdr(r, "Vary", v, sizeof(v)));
    assert_null(hdr(r, "Access-Control-Expose-Headers", v, sizeof(v)));
    /* preflight, allowed: answered by the gateway */
    cl_send(&c, "OPTIONS /v1/users HTTP/1.1\r\nHost: t\r\nOrigin: http://localhost:5173\r\n"
                "Access-Control-Request-Method: PATCH\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 204);
    assert_int_equal(r->body_len, 0);
    assert_string_equal(hdr(r, "Access-Control-Allow-Origin", v, sizeof(v)),
                        "http://localhost:5173");
    assert_string_equal(hdr(r, "Access-Control-Allow-Methods", v, sizeof(v)),
                        "GET, POST, PUT, PATCH, DELETE");
    assert_string_equal(hdr(r, "Access-Control-Allow-Headers", v, sizeof(v)),
                        "Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-Id");
    assert_string_equal(hdr(r, "Access-Control-Max-Age", v, sizeof(v)), "600");
    assert_string_equal(hdr(r, "Vary", v, sizeof(v)), "Origin");
    /* preflight, denied */
    cl_send(&c, "OPTIONS /v1/users HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n"
                "Access-Control-Request-Method: DELETE\r\n\r\n");
    expect_problem(&c, 403, "cors-origin-denied");
    /* an OPTIONS that is no preflight goes to the handler */
    cl_send(&c, "OPTIONS /echo HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example.com\r\n\r\n");
    assert_int_equal(cl_read(&c, r), 0);
    assert_int_equal(r->status, 200);
    assert_memory_equal(r->body, "OPTIONS /echo?", 14);
    assert_non_null(hdr(r, "Access-Control-Allow-Origin", v, sizeof(v)));
    free(r);
    cl_close(&c);
    env_down(&e);
}

int main(void)
{
    (void)ds_http_msgs_register();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_alive_and_request_id),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_back_pressure_pipeline),
        cmocka_unit_test(test_back_pressure_output),
        cmocka_unit_test(test_message_helpers),
        cmocka_unit_test(test_chunked_and_http10),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_handler_timeout),
        cmocka_unit_test(test_full_mailbox),
        cmocka_unit_test(test_connection_limits),
        cmocka_unit_test(test_forwarded_for),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_two_loops),
        cmocka_unit_test(test_stream_response),
        cmocka_unit_test(test_stream_response_back_pressure),
        cmocka_unit_test(test_stream_window_overrun),
        cmocka_unit_test(test_stream_request),
        cmocka_unit_test(test_stream_request_back_pressure),
        cmocka_unit_test(test_cors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
