/* pool_int: what transports/pg/pool.c and pool_req.c share: the request's statements decoded
 * for libpq, and the growable msgpack buffer both sides write. Not a public header.
 * Threads: plain data, one thread at a time. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer that keeps DS__PG_HDR_ROOM free bytes in front, so that a msgpack
 * array header can be put before the elements once their count is known. */
enum {
    DS__PG_HDR_ROOM = 5, /* the largest array header (array32) */
};

typedef struct ds__pg_buf {
    uint8_t *p;
    size_t len; /* bytes after the header room */
    size_t cap; /* bytes after the header room */
} ds__pg_buf_t;

/* Makes room for n more bytes (aborts on OOM) and returns where they go. */
uint8_t *ds__pg_buf_reserve(ds__pg_buf_t *b, size_t n);
/* Puts the header of an array of count elements just before the elements and returns the
 * whole: *len gets its length. */
const uint8_t *ds__pg_buf_framed(ds__pg_buf_t *b, uint32_t count, size_t *len);
void ds__pg_buf_free(ds__pg_buf_t *b);

/* A statement ready for libpq: NUL-terminated strings. */
typedef struct ds__pg_stmt {
    const char *sql;
    uint32_t nparams;
    const char *const *params; /* NULL entries: SQL NULL */
} ds__pg_stmt_t;

/* Decodes a request's stmts (the msgpack array of [sql, [params...]]) into *out (n of them)
 * and *arena, one allocation holding every statement and string (free(*arena)). 0; -EINVAL
 * for a malformed array, an empty one, more than DS_PG_REQ_STMTS_MAX statements or
 * DS_PG_REQ_PARAMS_MAX parameters, an empty sql, or a string holding a NUL byte. */
int ds__pg_stmts_decode(const uint8_t *p, size_t n, ds__pg_stmt_t **out, uint32_t *count,
                        void **arena);
