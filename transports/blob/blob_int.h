/* blob_int: what the files of transports/blob share (file helpers, AES-256-GCM one-shots,
 * little-endian codecs) and the test-only fault hook. Not a public header: only
 * the files of transports/blob and the blob tests include it.
 *
 * Durability rule of every helper here: a file becomes visible under its final name only
 * after its bytes were fsync()ed, and the directory that names it is fsync()ed after the name
 * changed, so a crash (kill -9, power loss) leaves either the old state or the new one.
 *
 * Errors: 0 or -errno, never errno. Threads: every helper is safe from any thread that may
 * block; the fault hook is a plain pointer that a test sets before any blob call runs and
 * clears after the last one (it is read without a lock). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

enum {
    DS__KEY_LEN = 32, /* AES-256 key bytes */
    DS__KEY_ID_LEN = 16,
    DS__IV_LEN = 12,    /* GCM nonce */
    DS__TAG_LEN = 16,   /* GCM tag */
    DS__TMP_HEX = 16,   /* hex digits of a temporary file's random suffix */
    DS__TMP_AGE_S = 60, /* key store temporaries older than this are leftovers of a crash */
};

/* -errno after a failed system call, never 0 (-EIO should errno be unset). */
static inline int ds__neg_errno(void)
{
    int e = errno;
    return e > 0 ? -e : -EIO;
}

/* ---- the fault hook (tests only) ---- */

typedef enum ds_blob_fault_op {
    DS_BLOB_FAULT_WRITE = 1, /* write(2)/pwrite(2) of file data (objects, keys, markers) */
    DS_BLOB_FAULT_FSYNC,     /* fsync(2) of a file or a directory */
    DS_BLOB_FAULT_RENAME,    /* rename(2) or link(2) that publishes a file */
} ds_blob_fault_op_t;

/* Called before each operation of that kind with the path concerned: 0 lets it run, a
 * negative errno makes it fail with that code without running. */
typedef int (*ds_blob_fault_fn_t)(ds_blob_fault_op_t op, const char *path, void *arg);

/* TEST ONLY: installs fn (NULL removes it). Production code never calls it; it exists so that
 * a test can fail a write with -ENOSPC where it cannot mount a small file system. Not
 * thread-safe: set it while no blob call runs. */
void ds_blob_set_fault_hook(ds_blob_fault_fn_t fn, void *arg);

/* 0, or the hook's code for this operation. */
int ds__blob_fault(ds_blob_fault_op_t op, const char *path);

/* ---- files ---- */

/* Writes all of buf at the file position (pwrite at off when off >= 0), retrying EINTR and
 * short writes. 0 or -errno (-ENOSPC for a full disk). */
int ds__blob_write_all(int fd, const void *buf, size_t len, off_t off, const char *path);
/* Reads up to len bytes at off until len or end of file. 0 and the count in *got, or -errno. */
int ds__blob_pread_full(int fd, void *buf, size_t len, off_t off, size_t *got);
/* fsync(fd); path only names it for the fault hook. */
int ds__blob_fsync(int fd, const char *path);
/* Opens the directory dir and fsyncs it, so a rename, link or unlink in it is durable. */
int ds__blob_fsync_dir(const char *dir);
/* Like fsync_dir, for the directory holding path. */
int ds__blob_fsync_parent(const char *path);
/* Creates every missing directory of path with mode, fsyncing the parent of each one made.
 * 0 (also when all existed), -ENOTDIR if a component is not a directory, or -errno. */
int ds__blob_mkdirs(const char *path, mode_t mode);
/* rename(2) and link(2) through the fault hook. */
int ds__blob_rename(const char *from, const char *to);
int ds__blob_link(const char *from, const char *to);
/* Random lower-case hex: 2*n digits and a NUL into out (which holds 2*n+1 bytes). */
int ds__blob_random_hex(char *out, size_t n);
/* A temporary name beside path, for its directory: "<dir>/.<base>.tmp-<hex>" (free() it). */
char *ds__blob_tmp_name(const char *path);

/* Writes a small file atomically: a 0600 temporary beside path, written and fsynced, then
 * published under path (rename() when replace, else link(), which fails with -EEXIST when
 * path exists: the first writer wins), then the directory is fsynced. The temporary is
 * removed in every case. 0 or -errno. */
int ds__blob_write_small(const char *path, const void *data, size_t len, bool replace);
/* Reads a whole small regular file (not through a symbolic link) into buf. 0 and its length
 * in *len; -ENOENT; -EBADMSG if it holds more than cap bytes or is not a regular file. */
int ds__blob_read_small(const char *path, void *buf, size_t cap, size_t *len);
/* Overwrites the regular file path with random bytes, fsyncs it, unlinks it (no fsync of the
 * directory: the caller does it once). 0, -ENOENT, or -errno. */
int ds__blob_destroy_file(const char *path);

/* ---- crypto ---- */

/* The key, nonce and associated data of one AES-256-GCM operation. */
typedef struct ds__aead {
    const uint8_t *key; /* DS__KEY_LEN bytes */
    const uint8_t *iv;  /* DS__IV_LEN bytes */
    const uint8_t *aad;
    size_t aad_len;
} ds__aead_t;

/* AES-256-GCM one-shots for small values (key wrapping): seal writes len bytes to out and
 * the tag; open checks the tag before it returns 0 with the plaintext in out; -EBADMSG when
 * the tag does not match (out is wiped). cipher is a fetched "AES-256-GCM". */
int ds__gcm_seal(const EVP_CIPHER *cipher, const ds__aead_t *a, const uint8_t *in, size_t len,
                 uint8_t *out, uint8_t tag[DS__TAG_LEN]);
int ds__gcm_open(const EVP_CIPHER *cipher, const ds__aead_t *a, const uint8_t *in, size_t len,
                 const uint8_t tag[DS__TAG_LEN], uint8_t *out);
/* RAND_bytes as 0 or -EIO. */
int ds__blob_random(uint8_t *out, size_t n);

/* ---- little-endian fields of our file formats ---- */

static inline void ds__put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void ds__put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void ds__put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint16_t ds__get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t ds__get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline uint64_t ds__get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}
