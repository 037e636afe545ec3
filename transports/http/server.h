/* server: the HTTP/1.1 gateway core on a libuv loop (runtime/loop.h). It accepts connections,
 * reads requests with transports/http/reader.h, sends each complete request as a
 * DS_MT_HTTP_REQUEST message to the handler actor named in its config, and writes the
 * handler's DS_MT_HTTP_RESPONSE back (or a streamed response, below). It runs no product
 * logic: routes, identity and the rest live in the handler.
 *
 * Protocol. Keep-alive (HTTP/1.1 by default, HTTP/1.0 with "Connection: keep-alive"),
 * pipelining (responses leave strictly in request order, whatever order handlers answer in),
 * Content-Length and chunked request bodies, "Connection: close". Every response carries an
 * X-Request-Id: the client's when it is a sane token (1..64 of [A-Za-z0-9._-]), else 32 random
 * hex digits. Upgrade and CONNECT requests are answered and the connection closed.
 *
 * Errors the gateway answers itself, as RFC 9457 application/problem+json documents with type
 * https://dossier.dev/problems/<slug>: 400 bad-request (malformed request; connection closed),
 * 408 request-timeout (head not read in time; closed), 413 content-too-large, 414
 * uri-too-long, 431 request-header-too-large (all three closed), 403 cors-origin-denied (a
 * preflight from an origin not allowed), 503 service-unavailable with
 * Retry-After (the handler's mailbox or its group's byte cap is full, or the handler is gone),
 * 504 handler-timeout (no response within handler_timeout_ms; the late response is dropped).
 *
 * Back-pressure. A connection stops reading (uv_read_stop) while it holds max_pipeline
 * unanswered requests or more than max_output_bytes of unsent output, and resumes once both
 * are under their limits. Bytes already read stay parsed-but-unprocessed until then.
 *
 * Streamed responses. A handler may answer with ds_http_respond_start() (RESPONSE_START: status
 * and headers) and then ds_http_respond_body() pieces (RESPONSE_BODY), the last one with last
 * set. The gateway sends them with Transfer-Encoding: chunked to HTTP/1.1 clients, and
 * close-delimited (Connection: close) to HTTP/1.0 ones; no body for HEAD, 1xx, 204 and 304 (the
 * pieces are still acknowledged). Each piece is acknowledged with a RESPONSE_ACK to its sender
 * once it is written to the socket; a handler keeps at most stream_window pieces
 * unacknowledged (a piece beyond that closes the connection, with an ACK error -ENOBUFS), so a
 * slow client holds at most stream_window pieces in the gateway. A RESPONSE_ACK with error < 0
 * means: send no more (-ECONNRESET / -ENOTCONN: the connection is gone; -ECANCELED: the request
 * was answered already, e.g. by a 504). Pipelined responses behind a stream wait for its end. A
 * stream whose handler sends nothing for handler_timeout_ms while it may, or whose client reads
 * nothing for idle_timeout_ms, is cut (the connection closes: its head is out already).
 *
 * Streamed requests. A request whose body is longer than limits.stream_threshold (by its
 * Content-Length, or while its chunks come in) reaches the handler as a REQUEST_START (the
 * REQUEST fields without the body, plus content_length; read both kinds with
 * ds_http_request_read()). The body follows in REQUEST_BODY pieces (at most 64 KiB each) only
 * as credit is granted with ds_http_request_credit() (one piece per unit of credit; pieces go
 * to the actor that granted credit last, so a handler may pass the request on); the gateway
 * stops reading the socket while a whole piece waits for credit. limits.max_body still caps the
 * whole body (413). REQUEST_BODY with last and error < 0 tells that the rest will not come
 * (-ECONNRESET: client gone; -EMSGSIZE: 413; -EPROTO: malformed; -ECANCELED: the request was
 * answered before its body was read, and the connection closes after that response). Bodies up
 * to the threshold come whole in REQUEST, as before; with the defaults (max_body ==
 * stream_threshold == 1 MiB) nothing streams.
 *
 * CORS. For a request whose Origin is one of cors_origins (exact match, no wildcards) every
 * response carries Access-Control-Allow-Origin (that origin), Vary: Origin and
 * Access-Control-Expose-Headers (X-Request-Id, ETag, Location, Retry-After, RateLimit-Limit,
 * RateLimit-Remaining, RateLimit-Reset). A preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered by the gateway, never the handler: 204 with
 * Access-Control-Allow-Methods (GET, POST, PUT, PATCH, DELETE), -Allow-Headers (Authorization,
 * Content-Type, Idempotency-Key, If-Match, X-Request-Id) and -Max-Age 600 for an allowed
 * origin, 403 cors-origin-denied otherwise. Other origins get no CORS header.
 *
 * Limits and timeouts (config below): header-read timeout from a request's first byte to the
 * end of its head (a slowloris client is cut off without holding anything else up), idle
 * timeout of a keep-alive connection with nothing pending, connections in total and per client
 * IP (the socket peer): an excess connection is closed at once.
 *
 * Access log: one info line "http request" per answered request (method, path, status, bytes,
 * duration_us, request_id, tenant, peer, socket_peer). tenant is the value of the handler's
 * X-Dossier-Tenant response header, which is logged and never sent ("" without one).
 *
 * Health. With health_path set, GET and HEAD of exactly that path (any query) are answered by
 * the server itself on its loop, never reaching the handler: 200, Content-Type
 * application/json, Cache-Control no-store, body {"status":"ok"}. So the answer proves that the
 * process and this loop run, not that actors are scheduled (a liveness probe: readiness belongs
 * to the handler). Other methods on that path go to the handler.
 *
 * Several loops. A server made with reuseport binds its listener with SO_REUSEPORT, and
 * ds_http_server_add() starts more servers on other loops listening on the same address and
 * port (port 0: the one the first got): the kernel spreads new connections over the listeners
 * (by a hash of the addresses), and each loop serves its own connections from accept to close,
 * sending requests to the same handler with its own port as reply_to. max_connections and
 * max_connections_ip are counted across all of them (runtime/admit.h, shared). With SO_REUSEPORT
 * another process of the same user could bind the port too; a server without reuseport
 * refuses that (-EADDRINUSE), as before.
 *
 * Access log: one info line "http request" per answered request (method, path, status, bytes,
 * duration_us, request_id, peer, socket_peer). Lines are collected per loop and written
 * together (ds_log_batch_t: one write(2) per loop iteration or per DS_LOG_LINE_MAX bytes), so a
 * line may reach the log a moment after its response reached the client.
 *
 * Threads. ds_http_server_new() and ds_http_server_add() run on the thread that created the
 * loop, before ds_loop_start() (they bind and listen, so errors come back synchronously). After
 * that the server's code runs on the loop thread only. ds_http_respond(), the streaming
 * helpers and the header helpers are safe from any actor / thread.
 *
 * Lifetime. The server is a port of its loop: ds_loop_free() stops it, closes its listener and
 * connections and frees it (the ds_http_server_t pointer is dangling afterwards). Servers made
 * with ds_http_server_add() are independent of the first once made: each dies with its loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/catalog.h"
#include "runtime/id.h"
#include "runtime/loop.h"
#include "runtime/rt.h"
#include "transports/http/http_msgs.h"
#include "transports/http/reader.h"

enum {
    DS_HTTP_TRUSTED_PROXIES_MAX = 16, /* entries of ds_http_config_t.trusted_proxies */
    DS_HTTP_REQUEST_ID_MAX = 64,      /* bytes of an X-Request-Id */
    DS_HTTP_CORS_ORIGINS_MAX = 64,    /* entries of ds_http_config_t.cors_origins */
    DS_HTTP_ORIGIN_MAX = 255,         /* bytes of one of them */
    DS_HTTP_PIECE_MAX = 1048576,      /* bytes of a RESPONSE_BODY piece (the message's max) */
};

/* Configuration. Zeroed fields take the defaults in brackets. Strings are copied. */
typedef struct ds_http_config {
    const char *host;            /* address to listen on, IPv4 or IPv6 literal [127.0.0.1] */
    uint16_t port;               /* 0: any free port (see ds_http_server_port()) */
    ds_actor_id_t handler;       /* receives DS_MT_HTTP_REQUEST; required */
    ds_http_limits_t limits;     /* per request (transports/http/reader.h) */
    uint32_t header_timeout_ms;  /* first byte of a request to the end of its head [10,000] */
    uint32_t idle_timeout_ms;    /* keep-alive connection with nothing pending [60,000] */
    uint32_t handler_timeout_ms; /* a request's handler must answer within this [30,000] */
    uint32_t max_connections;    /* open connections in total [1,024] */
    uint32_t max_connections_ip; /* open connections per client IP [64] */
    uint32_t max_pipeline;       /* unanswered requests per connection before reading stops [16] */
    uint32_t max_output_bytes;   /* unsent bytes per connection before reading stops [1 MiB] */
    uint32_t retry_after_s;      /* Retry-After of a 503 [1] */
    uint32_t stream_window;      /* unacknowledged pieces of a streamed response [4] */
    const char *const *trusted_proxies; /* IP literals whose X-Forwarded-For is believed */
    size_t ntrusted_proxies;            /* at most DS_HTTP_TRUSTED_PROXIES_MAX */
    const char *const *cors_origins;    /* exact origins ("https://app.example.com") allowed */
    size_t ncors_origins;               /* at most DS_HTTP_CORS_ORIGINS_MAX; none by default */
    const char *health_path; /* GET/HEAD answered by the server ("Health" above); NULL: none */
    bool reuseport;          /* SO_REUSEPORT listener, so ds_http_server_add() may follow */
} ds_http_config_t;

typedef struct ds_http_server ds_http_server_t;

/* Binds host:port, listens and spawns the server's port on l. Call before ds_loop_start(l),
 * on the thread that created l. 0 and *out; -EINVAL for a bad config (nil handler, bad host,
 * too many proxies or origins, an empty or "*" origin or one longer than DS_HTTP_ORIGIN_MAX,
 * a health_path not starting with '/');
 * libuv's error (-EADDRINUSE...) if the socket could not be set up. The server is freed by
 * ds_loop_free(l). The caller must have registered the http catalog (ds_http_msgs_register()) if it
 * sends the messages across nodes or validates them. */
int ds_http_server_new(ds_loop_t *l, const ds_http_config_t *cfg, ds_http_server_t **out);
/* Another server on loop l (not started; not first's loop) with first's configuration,
 * listening on first's address and port, sharing its connection limits ("Several loops"
 * above). Call on the thread that created l, before ds_loop_start(l), while first's loop is not
 * yet freed. 0 and *out (freed by ds_loop_free(l)); -EINVAL if first was made without
 * reuseport; libuv's or the socket's error (-EADDRINUSE...). */
int ds_http_server_add(ds_http_server_t *first, ds_loop_t *l, ds_http_server_t **out);
/* The port bound (useful with port 0). Valid until ds_loop_free(). */
uint16_t ds_http_server_port(const ds_http_server_t *s);
/* The id of the server's port actor (where responses go). */
ds_actor_id_t ds_http_server_id(const ds_http_server_t *s);

/* Answers req from an actor: builds a DS_MT_HTTP_RESPONSE with status (100..599), the headers
 * (names and values without CR, LF or NUL) and body[0..body_len), and sends it to
 * req->reply_to. 0; -EINVAL for a bad status or header; -EMSGSIZE past the message's maxima;
 * or the send's error (DS_ENOACTOR: the server is gone). Nothing is kept. */
int ds_http_respond(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t status,
                    const ds_http_header_t *headers, size_t nheaders, const void *body,
                    size_t body_len);
/* The response ds_http_respond() would send, as a new message in *out (free with
 * ds_msg_free()), for a caller outside any actor: send it to req->reply_to with
 * ds_send_from(). Errors as ds_http_respond() before its send. */
int ds_http_answer_new(const ds_http_request_t *req, uint32_t status,
                       const ds_http_header_t *headers, size_t nheaders, const void *body,
                       size_t body_len, ds_msg_t **out);

/* Decodes a DS_MT_HTTP_REQUEST or a DS_MT_HTTP_REQUEST_START into *out (the latter with an
 * empty body). 0, *streamed (the body follows in REQUEST_BODY pieces) and, if content_length is
 * not NULL, *content_length (the declared length; -1 when chunked or, for REQUEST, the body's
 * length); DS_EDECODE for another type or a malformed message. Fields point into m. */
int ds_http_request_read(const ds_msg_t *m, ds_http_request_t *out, bool *streamed,
                         int64_t *content_length);

/* Starts a streamed response to req: sends RESPONSE_START with status (100..599) and headers
 * (as ds_http_respond()) to req->reply_to. The body follows with ds_http_respond_body().
 * 0; -EINVAL, -EMSGSIZE or the send's error as ds_http_respond(). */
int ds_http_respond_start(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t status,
                          const ds_http_header_t *headers, size_t nheaders);
/* Sends the next piece of req's streamed response: data[0..len), len <= DS_HTTP_PIECE_MAX
 * (else -EMSGSIZE); last ends the body (len may be 0). The caller counts RESPONSE_ACKs
 * (DS_MT_HTTP_RESPONSE_ACK, sent to it): at most stream_window pieces may be unacknowledged.
 * 0, -EINVAL, -EMSGSIZE, or the send's error (DS_EFULL: the port's mailbox is full, retry). */
int ds_http_respond_body(ds_ctx_t *ctx, const ds_http_request_t *req, const void *data, size_t len,
                         bool last);
/* Grants credit for pieces more of req's streamed body (REQUEST_CREDIT to req->reply_to): the
 * gateway sends up to that many REQUEST_BODY pieces to the caller. 0, -EINVAL for 0 pieces, or
 * the send's error. */
int ds_http_request_credit(ds_ctx_t *ctx, const ds_http_request_t *req, uint32_t pieces);

/* Iterates over a header list of a REQUEST or RESPONSE: 1 and the next header in *out
 * (advancing *pos, which starts at 0), 0 at the end, DS_EDECODE if the list is malformed. */
int ds_http_header_next(ds_bytes_t list, size_t *pos, ds_http_header_t *out);
/* The first header named name (ASCII case-insensitive): 0 and *out, -ENOENT, or DS_EDECODE. */
int ds_http_header_get(ds_bytes_t list, const char *name, ds_http_header_t *out);
