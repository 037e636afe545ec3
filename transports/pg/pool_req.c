/* pool_req: building the pool's requests and reading its replies (transports/pg/pool.h), and
 * decoding a request's statements for libpq (pool_int.h). Every msgpack layout the pool speaks
 * is written and read here; pool.c only drives connections. Nothing here touches the loop. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/catalog.h"
#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/mpack.h"
#include "runtime/msg.h"
#include "transports/pg/pg_msgs.h"
#include "transports/pg/pool.h"
#include "transports/pg/pool_int.h"

/* ---- the growable buffer ---- */

uint8_t *ds__pg_buf_reserve(ds__pg_buf_t *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap < 256 ? 256 : b->cap;
        while (cap - b->len < n) {
            cap *= 2;
        }
        b->p = ds_xrealloc(b->p, DS__PG_HDR_ROOM + cap);
        b->cap = cap;
    }
    return b->p + DS__PG_HDR_ROOM + b->len;
}

const uint8_t *ds__pg_buf_framed(ds__pg_buf_t *b, uint32_t count, size_t *len)
{
    (void)ds__pg_buf_reserve(b, 0);
    if (b->p == NULL) {
        b->p = ds_xmalloc(DS__PG_HDR_ROOM);
    }
    uint8_t hdr[DS__PG_HDR_ROOM];
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, hdr, sizeof(hdr));
    (void)ds_mp_put_array(&w, count);
    size_t h = ds_mp_writer_len(&w);
    uint8_t *start = b->p + DS__PG_HDR_ROOM - h;
    memcpy(start, hdr, h);
    *len = h + b->len;
    return start;
}

void ds__pg_buf_free(ds__pg_buf_t *b)
{
    free(b->p);
    *b = (ds__pg_buf_t){0};
}

/* ---- UUIDs ---- */

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool ds_pg_uuid_valid(const char *s, size_t len)
{
    if (s == NULL || len != DS_PG_UUID_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i])) {
            return false;
        }
    }
    return true;
}

/* ---- building requests ---- */

struct ds_pg_req {
    ds__pg_buf_t body; /* the statements, encoded, without the array header */
    uint32_t count;
};

ds_pg_req_t *ds_pg_req_new(void)
{
    return ds_xcalloc(1, sizeof(ds_pg_req_t));
}

void ds_pg_req_free(ds_pg_req_t **rp)
{
    if (rp == NULL || *rp == NULL) {
        return;
    }
    ds__pg_buf_free(&(*rp)->body);
    free(*rp);
    *rp = NULL;
}

uint32_t ds_pg_req_count(const ds_pg_req_t *r)
{
    return r->count;
}

/* Bytes of the encoded statement, or SIZE_MAX for bad input. */
static size_t stmt_size(const char *sql, uint32_t nparams, const char *const *params)
{
    size_t sl = strlen(sql);
    if (sl == 0 || !ds_mp_utf8_valid(sql, sl)) {
        return SIZE_MAX;
    }
    size_t total = ds_mp_size_array(2) + ds_mp_size_str(sl) + ds_mp_size_array(nparams);
    for (uint32_t i = 0; i < nparams; i++) {
        if (params[i] == NULL) {
            total += 1;
            continue;
        }
        size_t pl = strlen(params[i]);
        if (!ds_mp_utf8_valid(params[i], pl) || pl > DS_PG_REQ_BYTES_MAX) {
            return SIZE_MAX;
        }
        total += ds_mp_size_str(pl);
    }
    return total;
}

int ds_pg_req_add(ds_pg_req_t *r, const char *sql, uint32_t nparams, const char *const *params)
{
    if (r == NULL || sql == NULL || (nparams > 0 && params == NULL) ||
        nparams > DS_PG_REQ_PARAMS_MAX || r->count >= DS_PG_REQ_STMTS_MAX ||
        strlen(sql) > DS_PG_REQ_BYTES_MAX) {
        return -EINVAL;
    }
    size_t need = stmt_size(sql, nparams, params);
    if (need == SIZE_MAX) {
        return -EINVAL;
    }
    if (need > DS_PG_REQ_BYTES_MAX - DS__PG_HDR_ROOM - r->body.len) {
        return -EMSGSIZE;
    }
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, ds__pg_buf_reserve(&r->body, need), need);
    (void)ds_mp_put_array(&w, 2);
    (void)ds_mp_put_str(&w, sql, strlen(sql));
    (void)ds_mp_put_array(&w, nparams);
    for (uint32_t i = 0; i < nparams; i++) {
        if (params[i] == NULL) {
            (void)ds_mp_put_nil(&w);
        } else {
            (void)ds_mp_put_str(&w, params[i], strlen(params[i]));
        }
    }
    r->body.len += ds_mp_writer_len(&w);
    r->count++;
    return ds_mp_writer_err(&w);
}

int ds_pg_req_tx(ds_pg_req_t *r, const char *tenant, const ds_pg_opts_t *opts, ds_msg_t **out)
{
    if (r == NULL || r->count == 0 || tenant == NULL || !ds_pg_uuid_valid(tenant, strlen(tenant))) {
        return -EINVAL;
    }
    size_t len;
    const uint8_t *p = ds__pg_buf_framed(&r->body, r->count, &len);
    ds_pg_tx_t v = {
        .tenant = {tenant, DS_PG_UUID_LEN},
        .timeout_ms = opts != NULL ? opts->timeout_ms : 0,
        .max_bytes = opts != NULL ? opts->max_bytes : 0,
        .stmts = {p, (uint32_t)len},
    };
    return ds_pg_tx_new(&v, out);
}

int ds_pg_req_system(ds_pg_req_t *r, const ds_pg_opts_t *opts, ds_msg_t **out)
{
    if (r == NULL || r->count == 0) {
        return -EINVAL;
    }
    size_t len;
    const uint8_t *p = ds__pg_buf_framed(&r->body, r->count, &len);
    ds_pg_system_t v = {
        .timeout_ms = opts != NULL ? opts->timeout_ms : 0,
        .max_bytes = opts != NULL ? opts->max_bytes : 0,
        .stmts = {p, (uint32_t)len},
    };
    return ds_pg_system_new(&v, out);
}

/* ---- decoding a request's statements (the pool's side) ---- */

/* Reads one string or nil: *s NULL for nil. */
static int get_text_or_nil(ds_mp_reader_t *rd, const char **s, uint32_t *len)
{
    ds_mp_type_t t;
    if (ds_mp_peek(rd, &t) < 0) {
        return -EINVAL;
    }
    if (t == DS_MP_NIL) {
        (void)ds_mp_get_nil(rd);
        *s = NULL;
        *len = 0;
        return 0;
    }
    if (ds_mp_get_str(rd, s, len) < 0 || memchr(*s, 0, *len) != NULL) {
        return -EINVAL; /* libpq takes NUL-terminated text; PostgreSQL refuses NUL anyway */
    }
    return 0;
}

/* The first pass: checks the shape and counts what the arena must hold. */
static int stmts_measure(const uint8_t *p, size_t n, uint32_t *count, size_t *nparams,
                         size_t *bytes)
{
    ds_mp_reader_t rd;
    ds_mp_reader_init(&rd, p, n);
    uint32_t ns;
    if (ds_mp_get_array(&rd, &ns) < 0 || ns == 0 || ns > DS_PG_REQ_STMTS_MAX) {
        return -EINVAL;
    }
    size_t np = 0, nb = 0;
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t two, k, len;
        const char *s;
        if (ds_mp_get_array(&rd, &two) < 0 || two != 2 || get_text_or_nil(&rd, &s, &len) < 0 ||
            s == NULL || len == 0 || ds_mp_get_array(&rd, &k) < 0 || k > DS_PG_REQ_PARAMS_MAX) {
            return -EINVAL;
        }
        nb += (size_t)len + 1;
        for (uint32_t j = 0; j < k; j++) {
            if (get_text_or_nil(&rd, &s, &len) < 0) {
                return -EINVAL;
            }
            nb += s != NULL ? (size_t)len + 1 : 0;
        }
        np += k;
    }
    if (ds_mp_reader_left(&rd) != 0) {
        return -EINVAL;
    }
    *count = ns;
    *nparams = np;
    *bytes = nb;
    return 0;
}

static char *copy_text(char **dst, const char *s, uint32_t len)
{
    char *d = *dst;
    if (s != NULL) {
        memcpy(d, s, len);
    }
    d[len] = '\0';
    *dst += (size_t)len + 1;
    return d;
}

int ds__pg_stmts_decode(const uint8_t *p, size_t n, ds__pg_stmt_t **out, uint32_t *count,
                        void **arena)
{
    uint32_t ns;
    size_t np, nb;
    int rc = stmts_measure(p, n, &ns, &np, &nb);
    if (rc < 0) {
        return rc;
    }
    /* Sizes are bounded by n (at most DS_PG_REQ_BYTES_MAX): no overflow. */
    size_t head = ns * sizeof(ds__pg_stmt_t) + np * sizeof(const char *);
    uint8_t *mem = ds_xmalloc(head + nb);
    ds__pg_stmt_t *st = (ds__pg_stmt_t *)mem;
    const char **pv = (const char **)(mem + ns * sizeof(ds__pg_stmt_t));
    char *text = (char *)(mem + head);
    ds_mp_reader_t rd;
    ds_mp_reader_init(&rd, p, n);
    /* The first pass checked the shape: these reads cannot fail. */
    uint32_t tmp = 0, k = 0, len = 0;
    const char *s = NULL;
    (void)ds_mp_get_array(&rd, &tmp);
    for (uint32_t i = 0; i < ns; i++) {
        (void)ds_mp_get_array(&rd, &tmp);
        (void)get_text_or_nil(&rd, &s, &len);
        st[i].sql = copy_text(&text, s, len);
        (void)ds_mp_get_array(&rd, &k);
        st[i].nparams = k;
        st[i].params = pv;
        for (uint32_t j = 0; j < k; j++) {
            (void)get_text_or_nil(&rd, &s, &len);
            *pv++ = s != NULL ? copy_text(&text, s, len) : NULL;
        }
    }
    *out = st;
    *count = ns;
    *arena = mem;
    return 0;
}

/* ---- reading replies ---- */

/* One statement's shape: counts its columns and values, checks every element. */
static int rows_measure(ds_mp_reader_t *rd, uint32_t *ncols, uint32_t *nrows)
{
    uint32_t three, nc, nr, k, len;
    const char *s;
    uint64_t affected;
    if (ds_mp_get_array(rd, &three) < 0 || three != 3 || ds_mp_get_array(rd, &nc) < 0) {
        return DS_EDECODE;
    }
    for (uint32_t c = 0; c < nc; c++) {
        if (ds_mp_get_str(rd, &s, &len) < 0) {
            return DS_EDECODE;
        }
    }
    if (ds_mp_get_array(rd, &nr) < 0) {
        return DS_EDECODE;
    }
    for (uint32_t r = 0; r < nr; r++) {
        if (ds_mp_get_array(rd, &k) < 0 || k != nc) {
            return DS_EDECODE;
        }
        for (uint32_t c = 0; c < nc; c++) {
            if (ds_mp_get_nil(rd) < 0 && ds_mp_get_str(rd, &s, &len) < 0) {
                return DS_EDECODE;
            }
        }
    }
    if (ds_mp_get_u64(rd, &affected) < 0) {
        return DS_EDECODE;
    }
    *ncols = nc;
    *nrows = nr;
    return 0;
}

static void rows_fill(ds_mp_reader_t *rd, ds_pg_rows_t *out, ds_str_t *cols, ds_pg_value_t *vals)
{
    uint32_t tmp, nc, nr;
    (void)ds_mp_get_array(rd, &tmp);
    (void)ds_mp_get_array(rd, &nc);
    for (uint32_t c = 0; c < nc; c++) {
        (void)ds_mp_get_str(rd, &cols[c].ptr, &cols[c].len);
    }
    (void)ds_mp_get_array(rd, &nr);
    size_t v = 0;
    for (uint32_t r = 0; r < nr; r++) {
        (void)ds_mp_get_array(rd, &tmp);
        for (uint32_t c = 0; c < nc; c++, v++) {
            if (ds_mp_get_nil(rd) == 0) {
                vals[v] = (ds_pg_value_t){NULL, 0, true};
            } else {
                (void)ds_mp_get_str(rd, &vals[v].ptr, &vals[v].len);
                vals[v].null = false;
            }
        }
    }
    (void)ds_mp_get_u64(rd, &out->affected);
    out->ncols = nc;
    out->nrows = nr;
    out->cols = cols;
    out->vals = vals;
}

static int results_decode(const uint8_t *p, size_t n, ds_pg_reply_t *out)
{
    ds_mp_reader_t rd;
    ds_mp_reader_init(&rd, p, n);
    uint32_t ns;
    if (ds_mp_get_array(&rd, &ns) < 0 || ns > DS_PG_REQ_STMTS_MAX) {
        return DS_EDECODE;
    }
    /* Every column name and value takes at least one byte, so the counts are bounded by n. */
    size_t ncols = 0, nvals = 0;
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t nc, nr;
        if (rows_measure(&rd, &nc, &nr) < 0) {
            return DS_EDECODE;
        }
        ncols += nc;
        nvals += (size_t)nc * nr;
        if (nvals > n) {
            return DS_EDECODE; /* columns with zero values each: refuse absurd shapes */
        }
    }
    if (ds_mp_reader_left(&rd) != 0) {
        return DS_EDECODE;
    }
    size_t bytes =
        ns * sizeof(ds_pg_rows_t) + ncols * sizeof(ds_str_t) + nvals * sizeof(ds_pg_value_t);
    uint8_t *mem = ds_xmalloc(bytes > 0 ? bytes : 1);
    ds_pg_rows_t *stmts = (ds_pg_rows_t *)mem;
    ds_str_t *cols = (ds_str_t *)(mem + ns * sizeof(ds_pg_rows_t));
    ds_pg_value_t *vals =
        (ds_pg_value_t *)(mem + ns * sizeof(ds_pg_rows_t) + ncols * sizeof(ds_str_t));
    ds_mp_reader_init(&rd, p, n);
    (void)ds_mp_get_array(&rd, &ns);
    for (uint32_t i = 0; i < ns; i++) {
        rows_fill(&rd, &stmts[i], cols, vals);
        cols += stmts[i].ncols;
        vals += (size_t)stmts[i].ncols * stmts[i].nrows;
    }
    *out = (ds_pg_reply_t){.stmt = DS_PG_STMT_NONE, .nstmts = ns, .stmts = stmts};
    return 0;
}

static int fail_decode(const ds_msg_t *m, ds_pg_reply_t *out)
{
    ds_pg_fail_t f;
    if (ds_pg_fail_decode(m, &f) < 0 || f.code >= 0) {
        return DS_EDECODE;
    }
    ds_pg_reply_t r = {.code = f.code, .message = f.message, .stmt = f.stmt};
    memcpy(r.sqlstate, f.sqlstate.ptr, f.sqlstate.len);
    r.sqlstate[f.sqlstate.len] = '\0';
    *out = r;
    return 0;
}

int ds_pg_reply_decode(const ds_msg_t *m, ds_pg_reply_t *out)
{
    if (m == NULL) {
        return DS_EDECODE;
    }
    if (m->type == DS_MT_TIMEOUT) {
        *out = (ds_pg_reply_t){.code = DS_ETIMEDOUT, .stmt = DS_PG_STMT_NONE};
        return 0;
    }
    if ((m->flags & DS_MSG_F_ERROR) != 0) {
        int code = ds_msg_error(m);
        if (code >= 0 || code == DS_EDECODE) {
            return DS_EDECODE;
        }
        *out = (ds_pg_reply_t){.code = code, .stmt = DS_PG_STMT_NONE};
        return 0;
    }
    if (m->type == DS_MT_PG_FAIL) {
        return fail_decode(m, out);
    }
    ds_pg_result_t res;
    if (ds_pg_result_decode(m, &res) < 0) {
        return DS_EDECODE;
    }
    return results_decode(res.results.ptr, res.results.len, out);
}

void ds_pg_reply_fini(ds_pg_reply_t *r)
{
    if (r == NULL) {
        return;
    }
    free(r->stmts);
    r->stmts = NULL;
    r->nstmts = 0;
}

const ds_pg_value_t *ds_pg_rows_at(const ds_pg_rows_t *rows, uint32_t row, uint32_t col)
{
    if (rows == NULL || row >= rows->nrows || col >= rows->ncols) {
        return NULL;
    }
    return &rows->vals[(size_t)row * rows->ncols + col];
}
