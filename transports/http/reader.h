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
 * Threads: a reader belongs to one thread at a time. Free with ds_http_reader_free(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    DS_HTTP_HEADER_BYTES_MAX = 60000, /* ceiling of max_header_bytes (fits the REQUEST message) */
    DS_HTTP_HEADERS_MAX = 1024,       /* ceiling of max_headers */
    DS_HTTP_URL_MAX = 8192,           /* ceiling of max_url */
    DS_HTTP_BODY_MAX = 16777216,      /* ceiling of max_body (16 MiB) */
};

/* Limits of one request. Zeroed fields take the defaults in brackets; larger values than the
 * ceilings above are cut to them. */
typedef struct ds_http_limits {
    uint32_t max_header_bytes; /* method, target, header names and values [16,384] -> 431 */
    uint32_t max_headers;      /* header lines [64] -> 431 */
    uint32_t max_url;          /* bytes of the request target [4,096] -> 414 */
    uint32_t max_body;         /* bytes of the decoded body [1 MiB] -> 413 */
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
    const uint8_t *body; /* the decoded body (chunked or Content-Length) */
    size_t body_len;
    uint8_t http_major;
    uint8_t http_minor;
    bool keep_alive; /* the connection may carry another request after this one */
} ds_http_parsed_t;

typedef struct ds_http_reader ds_http_reader_t;

/* A reader with lim (NULL: all defaults). 0 and *out. Free with ds_http_reader_free(). */
int ds_http_reader_new(const ds_http_limits_t *lim, ds_http_reader_t **out);
/* Frees *rp and sets it to NULL. Accepts NULL. */
void ds_http_reader_free(ds_http_reader_t **rp);

/* Parses data[0..len) and stops after the first request it completes.
 *   1: a request is complete; *req describes it and *used bytes of data were consumed (parse
 *      the rest with another call, once done with *req).
 *   0: all len bytes were consumed (*used == len) without completing a request.
 *   -EPROTO: the bytes are not HTTP/1.1 we accept; -EMSGSIZE: a limit tripped. Either way
 *      ds_http_reader_status() tells the status to answer (400, 413, 414, 431), and every
 *      later call fails the same way. */
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
/* The effective limits (defaults applied). */
ds_http_limits_t ds_http_limits_effective(const ds_http_limits_t *lim);
