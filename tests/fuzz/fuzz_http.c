/* fuzz_http: the request reader (transports/http/reader.h) over arbitrary bytes, as one
 * connection would receive them. The input is cut in two at a point taken from its first byte,
 * so requests split across reads are covered. Every request the reader hands out must be
 * within the limits; an error must come with a status the gateway answers (400, 413, 414,
 * 431) and stick. Small limits make the limit paths reachable; a threshold below max_body
 * makes long bodies stream: their pieces are drained after every feed (in pieces of a size
 * taken from the input), must add up to at most max_body, and only a whole body handed out
 * with its request may be kept in one piece. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transports/http/reader.h"

static const ds_http_limits_t limits = {
    .max_header_bytes = 2048,
    .max_headers = 16,
    .max_url = 512,
    .max_body = 4096,
    .stream_threshold = 1024,
};

typedef struct stream {
    bool on;          /* a streamed body is being taken */
    uint64_t total;   /* its bytes so far */
    size_t piece_max; /* the most taken at once */
} stream_t;

static void check(const ds_http_parsed_t *req)
{
    size_t head = req->url_len;
    if (req->url_len > limits.max_url || req->nheaders > limits.max_headers ||
        req->body_len > limits.stream_threshold || req->method == NULL ||
        (req->streamed && (req->body != NULL || req->body_len != 0))) {
        abort();
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        head += req->headers[i].name_len + req->headers[i].value_len;
        if (memchr(req->headers[i].name, 0, req->headers[i].name_len) != NULL) {
            abort(); /* NUL never reaches a header: the message encoding relies on it */
        }
    }
    if (head > limits.max_header_bytes) {
        abort();
    }
}

/* Takes every piece of a streamed body the reader holds. */
static void drain(ds_http_reader_t *r, stream_t *st)
{
    const uint8_t *d;
    size_t n;
    bool last;
    while (ds_http_reader_body_peek(r, st->piece_max, &d, &n, &last)) {
        if (!st->on || n > st->piece_max || (n == 0 && !last)) {
            abort();
        }
        st->total += n;
        if (st->total > limits.max_body) {
            abort();
        }
        ds_http_reader_body_consume(r, n, last);
        if (last) {
            st->on = false;
            if (ds_http_reader_streaming(r)) {
                abort(); /* the last piece ends the stream */
            }
        }
    }
}

/* Feeds data[0..len) until it is consumed or the reader stops. */
static bool feed_all(ds_http_reader_t *r, const uint8_t *data, size_t len, stream_t *st)
{
    while (len > 0) {
        size_t used = 0;
        ds_http_parsed_t req;
        int rc = ds_http_reader_feed(r, (const char *)data, len, &used, &req);
        if (rc < 0) {
            int status = ds_http_reader_status(r);
            if ((rc != -EPROTO && rc != -EMSGSIZE) ||
                (status != 400 && status != 413 && status != 414 && status != 431)) {
                abort();
            }
            if (ds_http_reader_feed(r, "x", 1, &used, &req) != rc) {
                abort(); /* errors stick */
            }
            return false;
        }
        if (used > len || (rc == 0 && used != len)) {
            abort();
        }
        if (rc == DS_HTTP_READ_REQUEST || rc == DS_HTTP_READ_STREAM) {
            check(&req);
            if (st->on || req.streamed != (rc == DS_HTTP_READ_STREAM)) {
                abort();
            }
            st->on = req.streamed;
            st->total = 0;
        }
        drain(r, st);
        data += used;
        len -= used;
    }
    return true;
}

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t cut = (size_t)data[0] % size;
    data++;
    size--;
    cut = cut > size ? size : cut;
    stream_t st = {.piece_max = (size_t)(data[-1] >> 4) * 97 + 1};
    ds_http_reader_t *r;
    if (ds_http_reader_new(&limits, &r) != 0) {
        abort();
    }
    if (feed_all(r, data, cut, &st) && feed_all(r, data + cut, size - cut, &st)) {
        (void)ds_http_reader_eof(r);
    }
    ds_http_reader_free(&r);
    return 0;
}
