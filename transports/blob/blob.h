/* blob: the encrypted object store (DESIGN.md §4; docs/storage.md has the operator's view).
 *
 * Objects. An object is named by region, tenant and name: its key is
 * "<region>/<tenant>/<name>" and it lives in the file <root>/<region>/<tenant>/<name>. The
 * region is the store's (fixed at open); the tenant is a separate argument of every call, so
 * code working for tenant A cannot name tenant B's object: a name is relative to its tenant
 * and cannot climb out of it. Names are checked even though they come from our code:
 * segments of [A-Za-z0-9._-] separated by single '/', none empty or starting with '.' (so no
 * "." or "..", and no clash with temporaries, which start with '.'), at most
 * DS_BLOB_SEGMENT_MAX bytes each and DS_BLOB_NAME_MAX in all. A name cannot be both an object
 * and the prefix of another ("a" and "a/b"): that put fails with -ENOTDIR or -EISDIR.
 *
 * Encryption. Each object has a random data key, wrapped (AES-256-GCM) by its tenant's key
 * (transports/blob/keystore.h) with AAD binding the object key and the tenant key id. The
 * plaintext is cut into chunks of chunk_size bytes (the last may be shorter; an empty object
 * is one empty chunk), each sealed with AES-256-GCM under the data key with nonce = the chunk
 * index and AAD = object key, chunk index and a last-chunk flag: a chunk swapped, moved,
 * dropped, cut or copied from another object fails authentication. The header (format below)
 * records the SHA-256 of the plaintext and is itself authenticated under the data key.
 *
 * File format (little-endian), header of DS_BLOB_HEADER_LEN bytes:
 *     0 "DSBL"   4 u16 version (1)   6 u16 header length (192)   8 u32 chunk size
 *    12 u32 flags (0)   16 u64 plaintext length   24 [16] tenant key id
 *    40 [12] data key nonce   52 [32] wrapped data key   84 [16] its tag
 *   100 [32] SHA-256 of the plaintext   132 [44] zero   176 [16] header tag (GMAC of 0..176)
 * then chunk i at 192 + i * (chunk size + 16): ciphertext, then its 16-byte tag.
 *
 * Writes are streamed and atomic: a writer encrypts chunk by chunk into a temporary file
 * ".<base>.tmp-<random>" in the object's directory (memory: one chunk and a 256 KiB batch of
 * sealed chunks, whatever the object's size; the kernel's writeback is started every 8 MiB);
 * commit writes the header, fsyncs, renames over the final name and fsyncs the directory. A reader
 * sees the old object or the new one, never a part, also after kill -9; a crash leaves only a
 * temporary, which readers never open and ds_blob_gc_temp() removes.
 *
 * Reads. A reader authenticates the header at open and then decrypts only the chunks a read
 * touches, each into its own buffer, copying out only what passed its tag: a damaged object
 * gives -EBADMSG, never unauthenticated bytes.
 *
 * Errors (besides those of each call): -EINVAL for a bad tenant or name; -ENOENT for no such
 * object; -EBADMSG when a file fails authentication or is not one of ours; -EKEYREVOKED when
 * the tenant's key was shredded (or the object predates its current key); -ENOKEY when the
 * tenant has no key; -ENOSPC and other -errno from the file system.
 *
 * Threads: a store never changes after open and may be used from any number of threads at
 * once; a writer or a reader belongs to one thread at a time. Every call but the _async ones
 * blocks on disk I/O: call them from libuv's pool (ds_loop_work), a command or a test, never
 * from an actor. Actors use ds_blob_put_async() and ds_blob_get_async(), which run the same
 * calls on the pool and send the result as a message. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/catalog.h"
#include "runtime/id.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "transports/blob/keystore.h"

typedef struct ds_blob_store ds_blob_store_t;
typedef struct ds_blob_writer ds_blob_writer_t;
typedef struct ds_blob_reader ds_blob_reader_t;

enum {
    DS_BLOB_HEADER_LEN = 192,
    DS_BLOB_CHUNK_DEFAULT = 64 * 1024,
    DS_BLOB_CHUNK_MIN = 4 * 1024,
    DS_BLOB_CHUNK_MAX = 16 * 1024 * 1024,
    DS_BLOB_NAME_MAX = 512,    /* bytes of a name (after region/tenant/) */
    DS_BLOB_SEGMENT_MAX = 128, /* bytes of one segment of a name */
    DS_BLOB_REGION_MAX = 32,   /* a region is 1..32 of [a-z0-9-] */
    DS_BLOB_SHA256_LEN = 32,
};

typedef struct ds_blob_cfg {
    const char *root;    /* the store's directory (DATA_DIR/blobs); made 0700 if missing */
    const char *region;  /* this node's region, 1..DS_BLOB_REGION_MAX of [a-z0-9-] */
    ds_keystore_t *keys; /* borrowed: must outlive the store */
    uint32_t chunk_size; /* plaintext bytes per chunk of new objects [DS_BLOB_CHUNK_DEFAULT];
                            DS_BLOB_CHUNK_MIN..DS_BLOB_CHUNK_MAX. Readers use each object's own. */
} ds_blob_cfg_t;

/* What is known of a stored object. */
typedef struct ds_blob_info {
    uint64_t size;       /* plaintext bytes */
    uint32_t chunk_size; /* the object's chunk size */
    uint8_t sha256[DS_BLOB_SHA256_LEN];
} ds_blob_info_t;

/* Counters of one reader: how much work its reads really did. */
typedef struct ds_blob_reader_stats {
    uint64_t chunks_decrypted; /* chunks read from disk and authenticated */
    uint64_t bytes_out;        /* plaintext bytes copied to callers */
} ds_blob_reader_stats_t;

/* Opens the store: checks cfg and creates <root>/<region> (0700) if missing. Does not remove
 * temporaries (see ds_blob_gc_temp()). 0 and *out (free with ds_blob_free() after every
 * writer, reader and async request is done); -EINVAL for a bad cfg; -ENOSYS when OpenSSL
 * lacks AES-256-GCM or SHA-256; -errno. */
int ds_blob_open(const ds_blob_cfg_t *cfg, ds_blob_store_t **out);
/* Frees the store. Accepts NULL; sets *sp to NULL. */
void ds_blob_free(ds_blob_store_t **sp);

/* True when name is a valid object name (see above). */
bool ds_blob_name_valid(const char *name);

/* ---- writing ---- */

/* Starts writing tenant/name: gets (or creates) the tenant's key, makes a data key and the
 * temporary file. Nothing is visible until commit. 0 and *out; errors above (-EKEYREVOKED for
 * a shredded tenant). */
int ds_blob_writer_open(ds_blob_store_t *s, const char *tenant, const char *name,
                        ds_blob_writer_t **out);
/* Appends len bytes. 0, or the first error of this writer (every later write and the commit
 * return it too); the object is not published after an error. */
int ds_blob_writer_write(ds_blob_writer_t *w, const void *buf, size_t len);
/* Publishes the object atomically (replacing an existing one) and frees the writer: always
 * takes *wp and sets it to NULL. 0 and *out (may be NULL) with the size and SHA-256; or an
 * error, and then the temporary is removed and whatever object was there before is intact,
 * except for an error of the last step (the directory's fsync), after which the new object is
 * in place but may not survive a power cut: write it again. */
int ds_blob_writer_commit(ds_blob_writer_t **wp, ds_blob_info_t *out);
/* Drops the temporary and frees the writer. Accepts NULL; sets *wp to NULL. */
void ds_blob_writer_abort(ds_blob_writer_t **wp);

/* A whole object from memory, for small ones (writer_open + write + commit). */
int ds_blob_put(ds_blob_store_t *s, const char *tenant, const char *name, const void *data,
                size_t len, ds_blob_info_t *out);

/* ---- reading ---- */

/* Opens tenant/name for reading: reads and authenticates the header (unwrapping the data key
 * with the tenant's key). The reader keeps the file open: a later replace or delete of the
 * object does not disturb it. 0 and *out (free with ds_blob_reader_free()); errors above. */
int ds_blob_reader_open(ds_blob_store_t *s, const char *tenant, const char *name,
                        ds_blob_reader_t **out);
/* The object's size, chunk size and SHA-256 (authenticated at open). */
void ds_blob_reader_info(const ds_blob_reader_t *r, ds_blob_info_t *out);
/* Reads up to len plaintext bytes at offset into buf, decrypting only the chunks that hold
 * them (the last one decrypted is kept, so sequential small reads decrypt each chunk once).
 * 0 and the count in *n: less than len only at the end of the object, 0 at or past it. On
 * -EBADMSG (a damaged chunk) *n is not written and buf holds only authenticated bytes. */
int ds_blob_reader_read(ds_blob_reader_t *r, uint64_t offset, void *buf, size_t len, size_t *n);
/* This reader's counters. */
void ds_blob_reader_stats(const ds_blob_reader_t *r, ds_blob_reader_stats_t *out);
/* Wipes the plaintext buffer and frees. Accepts NULL; sets *rp to NULL. */
void ds_blob_reader_free(ds_blob_reader_t **rp);

/* The info of tenant/name, authenticated (reader_open + info). */
int ds_blob_stat(ds_blob_store_t *s, const char *tenant, const char *name, ds_blob_info_t *out);

/* ---- housekeeping ---- */

/* Removes tenant/name and fsyncs its directory. 0, -ENOENT, or an error above. */
int ds_blob_delete(ds_blob_store_t *s, const char *tenant, const char *name);

/* Removes the temporaries under <root>/<region> whose last change is at least min_age_s
 * seconds old (0: every one; only when no writer runs, on any node sharing the directory).
 * Call it at start-up with an age longer than any upload, e.g. 3600. 0 and the count removed
 * in *removed (may be NULL), or -errno if the walk could not start. */
int ds_blob_gc_temp(ds_blob_store_t *s, uint32_t min_age_s, uint64_t *removed);

/* ---- the async layer, for actors ----
 *
 * Each call queues the blocking calls above on libuv's pool with ds_loop_work() and returns at
 * once; when the work is done, the actor req->to gets one message of type req->reply_type
 * (a number of the caller's catalog) whose payload is the msgpack array
 *     [tag u64, status i64, size u64, sha256 bin (32 bytes, or empty on error), data bin]
 * which ds_blob_result_decode() reads. (The same shape as a catalog message
 * DS_MSG(..., DS_F(U64, tag) DS_F(I64, status) DS_F(U64, size) DS_BIN(sha256, 32)
 * DS_BIN(data, DS_BLOB_ASYNC_READ_MAX)).) Delivery is ds_loop_work()'s: a result refused by a
 * full mailbox or a byte cap is dropped (and logged), so an actor that must hear back keeps a
 * timer. Requests and results cross no node: they are local to the loop's runtime.
 *
 * The store must outlive the requests: free it only after ds_loop_free(). */

enum {
    DS_BLOB_ASYNC_READ_MAX = 8 * 1024 * 1024, /* bytes one get may return */
};

typedef struct ds_blob_req {
    ds_blob_store_t *store;
    const char *tenant;  /* copied */
    const char *name;    /* copied */
    ds_actor_id_t to;    /* the actor that gets the result */
    uint32_t reply_type; /* the result message's type */
    uint64_t tag;        /* echoed in the result, to match it with its request */
} ds_blob_req_t;

/* Where the bytes of an async put come from. Callback-free on purpose: the pool thread reads
 * it without calling back into an actor.
 *   DS_BLOB_SRC_BUF: the bytes of buf (a shared, immutable ds_buf_t: a message payload can be
 *                    stored without a copy). The put takes the reference.
 *   DS_BLOB_SRC_FD:  fd (blocking) read from its offset to end of file, in 64 KiB pieces:
 *                    a spooled upload, or the read end of a pipe that another thread (the
 *                    HTTP transport, later) feeds while the put runs; a pipe ties one pool
 *                    thread until its writer closes it. The put takes the descriptor and
 *                    closes it. */
typedef enum ds_blob_src_kind {
    DS_BLOB_SRC_BUF = 1,
    DS_BLOB_SRC_FD = 2,
} ds_blob_src_kind_t;

typedef struct ds_blob_source {
    ds_blob_src_kind_t kind;
    ds_buf_t *buf; /* BUF; set to NULL when the put takes it */
    int fd;        /* FD; set to -1 when the put takes it */
} ds_blob_source_t;

/* Stores tenant/name from src. Result: status 0 (or the put's error), size and sha256 of the
 * object, empty data. 0 (the request is queued and took src) or, with src still the caller's:
 * -EINVAL for a bad request, tenant, name or source; DS_ESHUTDOWN when the loop stops. */
int ds_blob_put_async(ds_loop_t *l, const ds_blob_req_t *req, ds_blob_source_t *src);

/* Reads len bytes of tenant/name at offset (len <= DS_BLOB_ASYNC_READ_MAX; 0 reads nothing
 * and serves as an async stat). Result: status, the object's size and sha256, and the bytes
 * (fewer than len at the end of the object, none past it). 0 (queued), -EINVAL, -EMSGSIZE for
 * len past the maximum, DS_ESHUTDOWN. */
int ds_blob_get_async(ds_loop_t *l, const ds_blob_req_t *req, uint64_t offset, uint64_t len);

/* A decoded result; sha256 and data point into the message (valid while it lives). */
typedef struct ds_blob_result {
    uint64_t tag;
    int status;        /* 0 or a negative code: the result of the put or get */
    uint64_t size;     /* the object's plaintext size (on success) */
    ds_bytes_t sha256; /* 32 bytes on success, else empty */
    ds_bytes_t data;   /* get: the bytes read */
} ds_blob_result_t;

/* 0 and *out, or DS_EDECODE when m's payload is not a result. */
int ds_blob_result_decode(const ds_msg_t *m, ds_blob_result_t *out);
