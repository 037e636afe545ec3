/* blob_async: the store's calls for actors. Each request is a job run on libuv's pool by
 * ds_loop_work(); its result goes back as one message (see transports/blob/blob.h). A get
 * builds its message on the pool thread and decrypts straight into the payload, so the bytes
 * are copied once from the reader's authenticated chunk buffer and never again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/err.h"
#include "runtime/mem.h"
#include "runtime/mpack.h"
#include "transports/blob/blob.h"
#include "transports/blob/blob_int.h"

typedef struct job {
    ds_blob_store_t *store;
    char *tenant;
    char *name;
    uint32_t type;
    uint64_t tag;
    ds_blob_source_t src; /* put: released by the work, or by done when it never ran */
    bool src_held;
    uint64_t off; /* get */
    uint64_t len;
    int status; /* the result */
    ds_blob_info_t info;
    ds_msg_t *msg; /* get: the whole result, built on the pool thread */
} job_t;

enum {
    RESULT_FIELDS = 5,
    RESULT_HEAD_MAX = 64, /* array, three integers, the digest: never more than this */
};

static void src_release(job_t *j)
{
    if (!j->src_held) {
        return;
    }
    if (j->src.kind == DS_BLOB_SRC_FD) {
        (void)close(j->src.fd);
    } else {
        ds_buf_unref(&j->src.buf);
    }
    j->src_held = false;
}

static void job_free(job_t *j)
{
    src_release(j);
    ds_msg_free(&j->msg);
    free(j->tenant);
    free(j->name);
    free(j);
}

static job_t *job_new(const ds_blob_req_t *req)
{
    job_t *j = ds_xcalloc(1, sizeof(*j));
    j->store = req->store;
    j->tenant = ds_xstrdup(req->tenant);
    j->name = ds_xstrdup(req->name);
    j->type = req->reply_type;
    j->tag = req->tag;
    return j;
}

static bool req_valid(const ds_loop_t *l, const ds_blob_req_t *req)
{
    return l != NULL && req != NULL && req->store != NULL &&
           ds_keystore_tenant_valid(req->tenant) && ds_blob_name_valid(req->name);
}

/* The msgpack head of a result: [tag, status, size, sha256, then the caller puts data]. */
static void put_head(ds_mp_writer_t *w, const job_t *j, bool ok)
{
    (void)ds_mp_put_array(w, RESULT_FIELDS);
    (void)ds_mp_put_u64(w, j->tag);
    (void)ds_mp_put_i64(w, ok ? 0 : j->status);
    (void)ds_mp_put_u64(w, ok ? j->info.size : 0);
    (void)ds_mp_put_bin(w, j->info.sha256, ok ? DS_BLOB_SHA256_LEN : 0);
}

/* A result without data (a put, or a failed get). NULL only if allocation failed. */
static ds_msg_t *result_plain(const job_t *j)
{
    uint8_t *p = NULL;
    ds_msg_t *m = NULL;
    if (ds_msg_alloc(j->type, RESULT_HEAD_MAX, &p, &m) < 0) {
        return NULL;
    }
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, p, RESULT_HEAD_MAX);
    put_head(&w, j, j->status == 0);
    (void)ds_mp_put_bin(&w, NULL, 0);
    ds_msg_seal(m, ds_mp_writer_len(&w));
    return m;
}

/* ---- put ---- */

static int put_from_fd(ds_blob_writer_t *w, int fd, size_t piece)
{
    uint8_t *buf = ds_xmalloc(piece);
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, piece);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = n < 0 ? ds__neg_errno() : 0;
            break;
        }
        rc = ds_blob_writer_write(w, buf, (size_t)n);
        if (rc < 0) {
            break;
        }
    }
    free(buf);
    return rc;
}

static void put_work(void *arg)
{
    job_t *j = arg;
    ds_blob_writer_t *w = NULL;
    int rc = ds_blob_writer_open(j->store, j->tenant, j->name, &w);
    if (rc == 0 && j->src.kind == DS_BLOB_SRC_BUF) {
        rc = ds_blob_writer_write(w, ds_buf_data(j->src.buf), ds_buf_len(j->src.buf));
    } else if (rc == 0) {
        rc = put_from_fd(w, j->src.fd, DS_BLOB_CHUNK_DEFAULT);
    }
    src_release(j);
    if (rc == 0) {
        rc = ds_blob_writer_commit(&w, &j->info);
    } else {
        ds_blob_writer_abort(&w);
    }
    j->status = rc;
}

/* ---- get ---- */

/* The msgpack header of a bin of n bytes (n <= DS_BLOB_ASYNC_READ_MAX < 2^32). */
static size_t bin_head(uint8_t *p, size_t n)
{
    if (n < 256) {
        p[0] = 0xc4;
        p[1] = (uint8_t)n;
        return 2;
    }
    if (n < 65536) {
        p[0] = 0xc5;
        p[1] = (uint8_t)(n >> 8);
        p[2] = (uint8_t)n;
        return 3;
    }
    p[0] = 0xc6;
    for (int i = 0; i < 4; i++) {
        p[1 + i] = (uint8_t)(n >> (24 - 8 * i));
    }
    return 5;
}

static void get_work(void *arg)
{
    job_t *j = arg;
    ds_blob_reader_t *r = NULL;
    int rc = ds_blob_reader_open(j->store, j->tenant, j->name, &r);
    if (rc == 0) {
        ds_blob_reader_info(r, &j->info);
        uint64_t left = j->off < j->info.size ? j->info.size - j->off : 0;
        size_t n = (size_t)(left < j->len ? left : j->len);
        uint8_t *p = NULL;
        rc = ds_msg_alloc(j->type, RESULT_HEAD_MAX + 5 + n, &p, &j->msg);
        if (rc == 0) {
            ds_mp_writer_t w;
            ds_mp_writer_init(&w, p, RESULT_HEAD_MAX);
            put_head(&w, j, true);
            size_t pos = ds_mp_writer_len(&w);
            pos += bin_head(p + pos, n);
            size_t got = 0;
            rc = ds_blob_reader_read(r, j->off, p + pos, n, &got);
            rc = rc == 0 && got != n ? -EBADMSG : rc;
            ds_msg_seal(j->msg, pos + n);
        }
        ds_blob_reader_free(&r);
    }
    if (rc < 0) {
        ds_msg_free(&j->msg); /* may hold verified bytes of earlier chunks: drop them too */
    }
    j->status = rc;
}

/* ---- done, on the loop thread ---- */

static ds_msg_t *job_done(void *arg, int status)
{
    job_t *j = arg;
    if (status < 0) {
        j->status = status; /* -ECANCELED: the work never ran */
        ds_msg_free(&j->msg);
    }
    ds_msg_t *m = j->msg;
    j->msg = NULL;
    if (m == NULL) {
        m = result_plain(j);
    }
    job_free(j);
    return m;
}

int ds_blob_put_async(ds_loop_t *l, const ds_blob_req_t *req, ds_blob_source_t *src)
{
    if (!req_valid(l, req) || src == NULL ||
        (src->kind == DS_BLOB_SRC_BUF ? src->buf == NULL
                                      : src->kind != DS_BLOB_SRC_FD || src->fd < 0)) {
        return -EINVAL;
    }
    job_t *j = job_new(req);
    j->src = *src;
    j->src_held = true; /* before the work can run: it releases what it holds */
    int rc = ds_loop_work(l, req->to, put_work, job_done, j);
    if (rc < 0) {
        j->src_held = false; /* neither work nor done will run: the source stays the caller's */
        job_free(j);
        return rc;
    }
    /* The work may already run on the pool; it reads only j, so taking the source here is a
     * change to the caller's struct alone. The job owns the source from now on. */
    src->buf = NULL;
    src->fd = -1;
    return 0;
}

int ds_blob_get_async(ds_loop_t *l, const ds_blob_req_t *req, uint64_t offset, uint64_t len)
{
    if (!req_valid(l, req)) {
        return -EINVAL;
    }
    if (len > DS_BLOB_ASYNC_READ_MAX) {
        return -EMSGSIZE;
    }
    job_t *j = job_new(req);
    j->off = offset;
    j->len = len;
    int rc = ds_loop_work(l, req->to, get_work, job_done, j);
    if (rc < 0) {
        job_free(j);
    }
    return rc;
}

int ds_blob_result_decode(const ds_msg_t *m, ds_blob_result_t *out)
{
    ds_mp_reader_t r;
    ds_mp_reader_init(&r, m->data, m->len);
    uint32_t n = 0;
    ds_blob_result_t res = {0};
    int64_t status = 0;
    const uint8_t *p = NULL;
    uint32_t plen = 0;
    if (ds_mp_get_array(&r, &n) < 0 || n != RESULT_FIELDS || ds_mp_get_u64(&r, &res.tag) < 0 ||
        ds_mp_get_i64(&r, &status) < 0 || status > 0 || status < INT32_MIN ||
        ds_mp_get_u64(&r, &res.size) < 0 || ds_mp_get_bin(&r, &p, &plen) < 0 ||
        (plen != 0 && plen != DS_BLOB_SHA256_LEN)) {
        return DS_EDECODE;
    }
    res.status = (int)status;
    res.sha256 = (ds_bytes_t){p, plen};
    if (ds_mp_get_bin(&r, &p, &plen) < 0 || ds_mp_reader_left(&r) != 0) {
        return DS_EDECODE;
    }
    res.data = (ds_bytes_t){p, plen};
    *out = res;
    return 0;
}
