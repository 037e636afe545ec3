/* reader: the request reader of one HTTP/1.1 connection, without sockets. It drives one llhttp
 * parser over the bytes a connection receives, collects each request's method, target,
 * headers and body under the configured limits, and hands out one complete request at a time.
 * The server (transports/http/server.c) feeds it from its read callback; the fuzz target
 * (tests/fuzz/fuzz_http.c) feeds it arbitrary bytes.
 *
 * Invariants: the head (method, target, header names and values) of a request never holds
 * more than max_header_bytes, nor more than max_headers headers, nor a target longer than
 * max_url; a body never more than max_body bytes: each is checked before the bytes are kept.
 * Chunked bodies are decoded by llhttp; duplicate or invalid Content-Length, bad chunk sizes,
 * NUL or bare CR in the head and a Transfer-Encoding with a Content-Length are errors (400).
 * After an error the reader refuses every later feed.
 *
 * Streaming: a request whose body is longer than stream_threshold (by its Content-Length, or
 * while its chunks are decoded) is handed out as its head alone (DS_HTTP_READ_STREAM); its
 * body is then taken out in pieces with ds_http_reader_body_peek()/_consume() as later feeds
 * parse it, and only the whole body counts against max_body. No other request is parsed until
 * the last piece has been consumed. Bodies up to the threshold are handed out whole, as before.
 *
 * Threads: a reader belongs to one thread at a time. Free with ds_http_reader_free(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    DS_HTTP_HEADER_BYTES_MAX = 60000, /* ceiling of max_header_bytes (fits the REQUEST message) */
    DS_HTTP_HEADERS_MAX = 1024,       /* ceiling of max_headers */
    DS_HTTP_URL_MAX = 8192,           /* ceiling of max_url */
    DS_HTTP_BODY_MAX = 16777216,      /* ceiling of stream_threshold: a whole body (16 MiB) */
    DS_HTTP_STREAM_BODY_MAX = 0x7fffffff, /* ceiling of max_body (streamed past the threshold) */
};

/* What ds_http_reader_feed() found. */
enum {
    DS_HTTP_READ_MORE = 0,    /* every byte consumed, nothing complete */
    DS_HTTP_READ_REQUEST = 1, /* a complete request, body included */
    DS_HTTP_READ_STREAM = 2,  /* the head of a request whose body streams (take it in pieces) */
    DS_HTTP_READ_END = 3,     /* the streamed body is complete (its rest is buffered) */
};

/* Limits of one request. Zeroed fields take the defaults in brackets; larger values than the
 * ceilings above are cut to them. */
typedef struct ds_http_limits {
    uint32_t max_header_bytes; /* method, target, header names and values [16,384] -> 431 */
    uint32_t max_headers;      /* header lines [64] -> 431 */
    uint32_t max_url;          /* bytes of the request target [4,096] -> 414 */
    uint32_t max_body;         /* bytes of the decoded body [1 MiB] -> 413 */
    uint32_t stream_threshold; /* longer bodies stream in pieces [1 MiB; ceiling 16 MiB] */
} ds_http_limits_t;

/* A header: bytes borrowed from the reader or from a message, not NUL-terminated. */
typedef struct ds_http_header {
    const char *name;
    uint32_t name_len;
    const char *value;
    uint32_t value_len;
} ds_http_header_t;

/* A complete request. Every pointer is the reader's, valid until the next feed or free. */
typedef struct ds_http_parsed {
    const char *method; /* NUL-terminated ("GET") */
    const char *url;    /* the request target, url_len bytes */
    size_t url_len;
    const ds_http_header_t *headers; /* in the order received */
    size_t nheaders;
    const uint8_t *body; /* the decoded body (chunked or Content-Length); NULL when streamed */
    size_t body_len;
    int64_t content_length; /* the Content-Length, or -1 (chunked, or none) */
    uint8_t http_major;
    uint8_t http_minor;
    bool keep_alive; /* the connection may carry another request after this one */
    bool streamed;   /* the body follows in pieces (ds_http_reader_body_peek()) */
} ds_http_parsed_t;

typedef struct ds_http_reader ds_http_reader_t;

/* A reader with lim (NULL: all defaults). 0 and *out. Free with ds_http_reader_free(). */
int ds_http_reader_new(const ds_http_limits_t *lim, ds_http_reader_t **out);
/* Frees *rp and sets it to NULL. Accepts NULL. */
void ds_http_reader_free(ds_http_reader_t **rp);

/* Parses data[0..len) and stops after the first request it completes.
 *   DS_HTTP_READ_REQUEST: a request is complete; *req describes it and *used bytes of data
 *      were consumed (parse the rest with another call, once done with *req).
 *   DS_HTTP_READ_STREAM: the head of a streamed request, in *req (streamed set, no body);
 *      *used bytes consumed, part of the body may be buffered already (and even all of it).
 *   DS_HTTP_READ_END: a streamed body is complete; *used bytes consumed; *req is untouched.
 *   DS_HTTP_READ_MORE: all len bytes were consumed (*used == len), nothing else to tell.
 *   -EPROTO: the bytes are not HTTP/1.1 we accept; -EMSGSIZE: a limit tripped. Either way
 *      ds_http_reader_status() tells the status to answer (400, 413, 414, 431), and every
 *      later call fails the same way.
 *   -EBUSY: a streamed body is complete but not all consumed: nothing was parsed (not sticky). */
int ds_http_reader_feed(ds_http_reader_t *r, const char *data, size_t len, size_t *used,
                        ds_http_parsed_t *req);
/* The peer closed its side: -EPROTO if a request was cut short, else 0. */
int ds_http_reader_eof(ds_http_reader_t *r);
/* The status of the error that stopped the reader, or 0. */
int ds_http_reader_status(const ds_http_reader_t *r);
/* A short, static description of that error (for the problem's detail), or "". */
const char *ds_http_reader_reason(const ds_http_reader_t *r);
/* True while a request has begun and its head is not complete (the header-read timeout runs). */
bool ds_http_reader_in_head(const ds_http_reader_t *r);
/* True while a request has begun and is not complete (head or body). */
bool ds_http_reader_busy(const ds_http_reader_t *r);
/* True between DS_HTTP_READ_STREAM and the consumption of the last piece of that body. */
bool ds_http_reader_streaming(const ds_http_reader_t *r);
/* Bytes of a streamed body parsed and not yet consumed (0 when not streaming). */
size_t ds_http_reader_body_buffered(const ds_http_reader_t *r);
/* The next piece of a streamed body: true and up to max bytes in *data and *len (the reader's,
 * valid until the next feed or consume), *last when the body ends with them (the piece may then
 * be empty); false when there is nothing to hand out yet (or no streamed body). */
bool ds_http_reader_body_peek(const ds_http_reader_t *r, size_t max, const uint8_t **data,
                              size_t *len, bool *last);
/* Drops the first n bytes of a peeked piece; last: the piece was the last one (as peeked). */
void ds_http_reader_body_consume(ds_http_reader_t *r, size_t n, bool last);
/* The effective limits (defaults applied). */
ds_http_limits_t ds_http_limits_effective(const ds_http_limits_t *lim);
