/* fuzz_http: the request reader (transports/http/reader.h) over arbitrary bytes, as one
 * connection would receive them. The input is cut in two at a point taken from its first byte,
 * so requests split across reads are covered. Every request the reader hands out must be
 * within the limits; an error must come with a status the gateway answers (400, 413, 414,
 * 431) and stick. Small limits make the limit paths reachable. */
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
};

static void check(const ds_http_parsed_t *req)
{
    size_t head = req->url_len;
    if (req->url_len > limits.max_url || req->nheaders > limits.max_headers ||
        req->body_len > limits.max_body || req->method == NULL) {
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

/* Feeds data[0..len) until it is consumed or the reader stops. */
static bool feed_all(ds_http_reader_t *r, const uint8_t *data, size_t len)
{
    while (len > 0) {
        size_t used = 0;
        ds_http_parsed_t req;
        int rc = ds_http_reader_feed(r, (const char *)data, len, &used, &req);
        if (rc < 0) {
            int st = ds_http_reader_status(r);
            if ((rc != -EPROTO && rc != -EMSGSIZE) ||
                (st != 400 && st != 413 && st != 414 && st != 431)) {
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
        if (rc == 1) {
            check(&req);
        }
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
    ds_http_reader_t *r;
    if (ds_http_reader_new(&limits, &r) != 0) {
        abort();
    }
    if (feed_all(r, data, cut) && feed_all(r, data + cut, size - cut)) {
        (void)ds_http_reader_eof(r);
    }
    ds_http_reader_free(&r);
    return 0;
}
