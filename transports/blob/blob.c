/* blob: the encrypted object store's synchronous core: names, the writer, the reader,
 * housekeeping. See transports/blob/blob.h for the model and the file format.
 *
 * Chunk sealing follows the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
 * Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015), as age and
 * Tink's streaming AEAD do: chunk i is sealed under the object's data key with a nonce made of
 * i, and its AAD carries i and whether it is the last chunk. Reordering chunks changes their
 * index, dropping the tail leaves a last chunk sealed as "not last", appending after it breaks
 * the header's authenticated length; the object key in the AAD stops a chunk (or a whole file)
 * from being replayed under another name or tenant. */
#define _GNU_SOURCE /* sync_file_range */
#include "transports/blob/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "runtime/log.h"
#include "runtime/mem.h"
#include "runtime/side.h"
#include "transports/blob/blob_int.h"

enum {
    FORMAT_VERSION = 1,
    H_OFF_VERSION = 4,
    H_OFF_HLEN = 6,
    H_OFF_CHUNK = 8,
    H_OFF_FLAGS = 12,
    H_OFF_SIZE = 16,
    H_OFF_TKID = 24,
    H_OFF_IV = 40,
    H_OFF_WRAPPED = 52,
    H_OFF_WRAP_TAG = 84,
    H_OFF_SHA = 100,
    H_OFF_RESERVED = 132,
    H_OFF_TAG = 176,
    /* chunk AAD: "DSBC", u64 index, u8 last, u16 key length, key */
    A_OFF_INDEX = 4,
    A_OFF_LAST = 12,
    A_OFF_KLEN = 13,
    A_FIXED = 15,
    /* Sealed chunks are written in batches of about this many bytes (fewer system calls). */
    WRITE_BATCH = 256 * 1024,
    /* Every this many bytes written, the writer asks the kernel to start writing them back
     * (sync_file_range, not waiting), so the disk works while we encrypt the next ones and
     * commit's fsync finds little left to do; it also bounds the dirty pages one big upload
     * leaves behind. */
    WRITEBACK_BYTES = 8 * 1024 * 1024,
    SIDE_HASH_MIN = 256 * 1024, /* writes this large hash on a helper thread */
};

_Static_assert(H_OFF_TAG + DS__TAG_LEN == DS_BLOB_HEADER_LEN, "header layout");

static const uint8_t h_magic[4] = {'D', 'S', 'B', 'L'};
static const uint8_t a_magic[4] = {'D', 'S', 'B', 'C'};
/* Domain label of the data key wrap, NUL included. */
static const char dk_label[] = "dossier data key v1";

struct ds_blob_store {
    char *root; /* <root>/<region> */
    char *region;
    ds_keystore_t *keys;
    uint32_t chunk_size;
    EVP_CIPHER *gcm;
    EVP_MD *sha256;
};

/* An object's key (the AAD's "<region>/<tenant>/<name>") and its file's path. */
typedef struct objname {
    char *key;
    size_t klen;
    char *path;
} objname_t;

struct ds_blob_writer {
    ds_blob_store_t *s;
    objname_t o;
    char *tmp;
    int fd;
    int err; /* sticky: the first failure */
    uint32_t cs;
    EVP_CIPHER_CTX *cctx; /* keyed with the data key; the key itself is wiped */
    EVP_MD_CTX *md;
    uint8_t *aad;
    size_t aad_len;
    uint8_t *plain; /* the chunk being filled */
    size_t fill;
    uint8_t *out; /* sealed chunks (ciphertext and tag each) not yet written */
    size_t out_len;
    size_t out_cap;
    uint64_t written; /* bytes of chunks in the file */
    uint64_t kicked;  /* of those, bytes whose writeback was started */
    uint64_t index;
    uint64_t total;
    uint8_t hdr[DS_BLOB_HEADER_LEN];
    ds_side_t *side;       /* hashes large writes while this thread seals them, or NULL */
    bool side_failed;      /* no helper thread could be started: hash inline */
    const uint8_t *side_p; /* the side job: hash side_len bytes at side_p into md */
    size_t side_len;
    int side_rc;
};

struct ds_blob_reader {
    int fd;
    uint32_t cs;
    uint64_t chunks;
    EVP_CIPHER_CTX *cctx;
    uint8_t *aad;
    size_t aad_len;
    uint8_t *ct;
    uint8_t *plain; /* the chunk `cached`, authenticated, when `have` */
    uint64_t cached;
    size_t cached_len;
    bool have;
    ds_blob_info_t info;
    ds_blob_reader_stats_t stats;
};

/* ---- names ---- */

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

bool ds_blob_name_valid(const char *name)
{
    if (name == NULL) {
        return false;
    }
    size_t n = strnlen(name, DS_BLOB_NAME_MAX + 1);
    if (n == 0 || n > DS_BLOB_NAME_MAX) {
        return false;
    }
    size_t seg = 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '/') {
            if (seg == 0) {
                return false; /* a leading '/' or an empty segment */
            }
            seg = 0;
        } else if (!name_char(c) || (seg == 0 && c == '.') || ++seg > DS_BLOB_SEGMENT_MAX) {
            return false;
        }
    }
    return seg > 0; /* no trailing '/' */
}

static bool region_valid(const char *r)
{
    size_t n = r != NULL ? strnlen(r, DS_BLOB_REGION_MAX + 1) : 0;
    if (n == 0 || n > DS_BLOB_REGION_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

static int objname_make(const ds_blob_store_t *s, const char *tenant, const char *name,
                        objname_t *o)
{
    if (!ds_keystore_tenant_valid(tenant) || !ds_blob_name_valid(name)) {
        return -EINVAL;
    }
    char *path = ds_xasprintf("%s/%s/%s", s->root, tenant, name);
    if (strlen(path) + DS__TMP_HEX + 8 >= PATH_MAX) {
        free(path);
        return -ENAMETOOLONG;
    }
    o->path = path;
    o->key = ds_xasprintf("%s/%s/%s", s->region, tenant, name);
    o->klen = strlen(o->key);
    return 0;
}

static void objname_fini(objname_t *o)
{
    free(o->key);
    free(o->path);
    *o = (objname_t){0};
}

/* ---- crypto pieces ---- */

/* Chunk i's nonce: 4 zero bytes, then i big-endian. The data key is fresh for every object
 * and each index is sealed once under it, so no (key, nonce) pair ever repeats; the header
 * tag's nonce starts with 0xff bytes and so never equals a chunk's. */
static void chunk_iv(uint8_t iv[DS__IV_LEN], uint64_t index)
{
    memset(iv, 0, 4);
    for (int i = 0; i < 8; i++) {
        iv[4 + i] = (uint8_t)(index >> (56 - 8 * i));
    }
}

static void header_iv(uint8_t iv[DS__IV_LEN])
{
    memset(iv, 0xff, 4);
    memset(iv + 4, 0, 8);
}

static uint8_t *chunk_aad_new(const objname_t *o, size_t *len)
{
    uint8_t *aad = ds_xmalloc(A_FIXED + o->klen);
    memcpy(aad, a_magic, 4);
    ds__put_le16(aad + A_OFF_KLEN, (uint16_t)o->klen);
    memcpy(aad + A_FIXED, o->key, o->klen);
    *len = A_FIXED + o->klen;
    return aad;
}

static void chunk_aad_set(uint8_t *aad, uint64_t index, bool last)
{
    ds__put_le64(aad + A_OFF_INDEX, index);
    aad[A_OFF_LAST] = last ? 1 : 0;
}

/* AAD of the data key wrap: label, tenant key id, object key. */
static uint8_t *dk_aad_new(const objname_t *o, const uint8_t *tkid, size_t *len)
{
    size_t n = sizeof(dk_label) + DS__KEY_ID_LEN + 2 + o->klen;
    uint8_t *aad = ds_xmalloc(n);
    memcpy(aad, dk_label, sizeof(dk_label));
    memcpy(aad + sizeof(dk_label), tkid, DS__KEY_ID_LEN);
    ds__put_le16(aad + sizeof(dk_label) + DS__KEY_ID_LEN, (uint16_t)o->klen);
    memcpy(aad + sizeof(dk_label) + DS__KEY_ID_LEN + 2, o->key, o->klen);
    *len = n;
    return aad;
}

/* ---- the store ---- */

int ds_blob_open(const ds_blob_cfg_t *cfg, ds_blob_store_t **out)
{
    uint32_t cs = cfg != NULL && cfg->chunk_size != 0 ? cfg->chunk_size : DS_BLOB_CHUNK_DEFAULT;
    if (cfg == NULL || cfg->root == NULL || cfg->root[0] == '\0' || cfg->keys == NULL ||
        !region_valid(cfg->region) || cs < DS_BLOB_CHUNK_MIN || cs > DS_BLOB_CHUNK_MAX) {
        return -EINVAL;
    }
    ds_blob_store_t *s = ds_xcalloc(1, sizeof(*s));
    s->root = ds_xasprintf("%s/%s", cfg->root, cfg->region);
    s->region = ds_xstrdup(cfg->region);
    s->keys = cfg->keys;
    s->chunk_size = cs;
    s->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    int rc = s->gcm != NULL && s->sha256 != NULL ? 0 : -ENOSYS;
    if (rc == 0) {
        rc = ds__blob_mkdirs(s->root, 0700);
    }
    if (rc < 0) {
        ds_blob_free(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void ds_blob_free(ds_blob_store_t **sp)
{
    ds_blob_store_t *s = *sp;
    if (s == NULL) {
        return;
    }
    EVP_CIPHER_free(s->gcm);
    EVP_MD_free(s->sha256);
    free(s->root);
    free(s->region);
    free(s);
    *sp = NULL;
}

/* ---- writing ---- */

static void writer_free(ds_blob_writer_t *w, bool unlink_tmp)
{
    if (w->fd >= 0) {
        (void)close(w->fd);
    }
    if (unlink_tmp && w->tmp != NULL) {
        (void)unlink(w->tmp);
    }
    ds_side_free(&w->side);
    EVP_CIPHER_CTX_free(w->cctx);
    EVP_MD_CTX_free(w->md);
    if (w->plain != NULL) {
        OPENSSL_cleanse(w->plain, w->cs);
    }
    free(w->plain);
    free(w->out);
    free(w->aad);
    free(w->tmp);
    objname_fini(&w->o);
    free(w);
}

/* Header fields known at open: everything but length, SHA-256 and the header tag. The data
 * key is sealed under the tenant key here and then only lives in the cipher context. */
static int writer_keys(ds_blob_writer_t *w, const char *tenant)
{
    ds_tenant_key_t tk;
    int rc = ds_keystore_tenant_key(w->s->keys, tenant, true, &tk);
    if (rc < 0) {
        return rc;
    }
    uint8_t *h = w->hdr;
    uint8_t dk[DS__KEY_LEN];
    memcpy(h, h_magic, 4);
    ds__put_le16(h + H_OFF_VERSION, FORMAT_VERSION);
    ds__put_le16(h + H_OFF_HLEN, DS_BLOB_HEADER_LEN);
    ds__put_le32(h + H_OFF_CHUNK, w->cs);
    memcpy(h + H_OFF_TKID, tk.id, DS__KEY_ID_LEN);
    rc = ds__blob_random(dk, sizeof(dk));
    if (rc == 0) {
        rc = ds__blob_random(h + H_OFF_IV, DS__IV_LEN);
    }
    if (rc == 0) {
        ds__aead_t a = {.key = tk.key, .iv = h + H_OFF_IV};
        uint8_t *aad = dk_aad_new(&w->o, tk.id, &a.aad_len);
        a.aad = aad;
        rc = ds__gcm_seal(w->s->gcm, &a, dk, sizeof(dk), h + H_OFF_WRAPPED, h + H_OFF_WRAP_TAG);
        free(aad);
    }
    ds_keystore_key_wipe(&tk);
    w->cctx = EVP_CIPHER_CTX_new();
    w->md = EVP_MD_CTX_new();
    if (rc == 0 && (w->cctx == NULL || w->md == NULL)) {
        rc = -ENOMEM;
    }
    if (rc == 0 && (EVP_EncryptInit_ex2(w->cctx, w->s->gcm, dk, NULL, NULL) != 1 ||
                    EVP_DigestInit_ex2(w->md, w->s->sha256, NULL) != 1)) {
        rc = -EIO;
    }
    OPENSSL_cleanse(dk, sizeof(dk));
    return rc;
}

static int writer_file(ds_blob_writer_t *w)
{
    const char *slash = strrchr(w->o.path, '/');
    char *dir = ds_xstrdup(w->o.path);
    dir[slash - w->o.path] = '\0';
    int rc = ds__blob_mkdirs(dir, 0700);
    free(dir);
    if (rc < 0) {
        return rc;
    }
    w->tmp = ds__blob_tmp_name(w->o.path);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (w->fd < 0) {
        rc = ds__neg_errno();
        free(w->tmp);
        w->tmp = NULL; /* not ours: never unlink it */
        return rc;
    }
    /* Chunks follow the header, which commit writes once its length and digest are known. */
    return lseek(w->fd, DS_BLOB_HEADER_LEN, SEEK_SET) < 0 ? ds__neg_errno() : 0;
}

int ds_blob_writer_open(ds_blob_store_t *s, const char *tenant, const char *name,
                        ds_blob_writer_t **out)
{
    ds_blob_writer_t *w = ds_xcalloc(1, sizeof(*w));
    w->s = s;
    w->fd = -1;
    w->cs = s->chunk_size;
    int rc = objname_make(s, tenant, name, &w->o);
    if (rc == 0) {
        rc = writer_keys(w, tenant);
    }
    if (rc == 0) {
        rc = writer_file(w);
    }
    if (rc < 0) {
        writer_free(w, true);
        return rc;
    }
    w->aad = chunk_aad_new(&w->o, &w->aad_len);
    w->plain = ds_xmalloc(w->cs);
    size_t sealed = (size_t)w->cs + DS__TAG_LEN;
    w->out_cap = sealed * (WRITE_BATCH / sealed > 0 ? WRITE_BATCH / sealed : 1);
    w->out = ds_xmalloc(w->out_cap);
    *out = w;
    return 0;
}

/* Writes the batch of sealed chunks, and starts the writeback of what is written so far
 * every WRITEBACK_BYTES. */
static int flush_out(ds_blob_writer_t *w)
{
    int rc = ds__blob_write_all(w->fd, w->out, w->out_len, -1, w->tmp);
    if (rc < 0) {
        return rc;
    }
    w->written += w->out_len;
    w->out_len = 0;
    if (w->written - w->kicked >= WRITEBACK_BYTES) {
        /* Advisory: an error here shows again at commit's fsync, which decides. */
        (void)sync_file_range(w->fd, (off_t)(DS_BLOB_HEADER_LEN + w->kicked),
                              (off_t)(w->written - w->kicked), SYNC_FILE_RANGE_WRITE);
        w->kicked = w->written;
    }
    return 0;
}

/* Seals n bytes at p as the next chunk into the batch (writing the batch first if full). */
static int seal_chunk(ds_blob_writer_t *w, const uint8_t *p, size_t n, bool last)
{
    if (w->out_len + n + DS__TAG_LEN > w->out_cap) {
        int rc = flush_out(w);
        if (rc < 0) {
            return rc;
        }
    }
    uint8_t iv[DS__IV_LEN];
    chunk_iv(iv, w->index);
    chunk_aad_set(w->aad, w->index, last);
    uint8_t *o = w->out + w->out_len;
    int outl = 0;
    int fin = 0;
    int ok = EVP_EncryptInit_ex2(w->cctx, NULL, NULL, iv, NULL) == 1 &&
             EVP_EncryptUpdate(w->cctx, NULL, &outl, w->aad, (int)w->aad_len) == 1 &&
             EVP_EncryptUpdate(w->cctx, o, &outl, p, (int)n) == 1 &&
             EVP_EncryptFinal_ex(w->cctx, o + outl, &fin) == 1 &&
             EVP_CIPHER_CTX_ctrl(w->cctx, EVP_CTRL_GCM_GET_TAG, DS__TAG_LEN, o + n) == 1;
    if (!ok) {
        return -EIO;
    }
    w->out_len += n + DS__TAG_LEN;
    w->index++;
    return 0;
}

/* Buffers or seals the caller's bytes, a chunk at a time; with hash, each piece is hashed
 * right before it is sealed or copied, while it is in cache. */
static int writer_append(ds_blob_writer_t *w, const uint8_t *p, size_t len, bool hash)
{
    int rc = 0;
    while (len > 0 && rc == 0) {
        if (w->fill == w->cs) {
            /* More bytes follow, so the buffered chunk is not the last one. */
            rc = seal_chunk(w, w->plain, w->cs, false);
            w->fill = 0;
            continue;
        }
        bool direct = w->fill == 0 && len > w->cs; /* a whole chunk with more after it */
        size_t n = direct ? w->cs : (w->cs - w->fill < len ? w->cs - w->fill : len);
        if (hash && EVP_DigestUpdate(w->md, p, n) != 1) {
            return -EIO;
        }
        if (direct) {
            rc = seal_chunk(w, p, n, false); /* straight from the caller's buffer */
        } else {
            memcpy(w->plain + w->fill, p, n);
            w->fill += n;
        }
        p += n;
        len -= n;
    }
    return rc;
}

/* The side job: SHA-256 of the caller's buffer, on the helper thread. */
static void writer_side_hash(void *arg)
{
    ds_blob_writer_t *w = arg;
    w->side_rc = EVP_DigestUpdate(w->md, w->side_p, w->side_len) == 1 ? 0 : -EIO;
}

/* A large write hashes on the helper thread while this one seals and writes the same bytes:
 * SHA-256 (~1.7 GB/s with SHA-NI) is the largest cost of a write, so on a machine with a core
 * to spare the two overlap. The digest only ever sees bytes in order: the helper hashes this
 * call's buffer while no other update runs, and the call returns after it finished. */
static int writer_append_big(ds_blob_writer_t *w, const uint8_t *p, size_t len)
{
    if (w->side == NULL && !w->side_failed && ds_side_new(&w->side) < 0) {
        w->side_failed = true;
    }
    if (w->side == NULL) {
        return writer_append(w, p, len, true);
    }
    w->side_p = p;
    w->side_len = len;
    ds_side_run(w->side, writer_side_hash, w);
    int rc = writer_append(w, p, len, false);
    ds_side_wait(w->side);
    return rc < 0 ? rc : w->side_rc;
}

int ds_blob_writer_write(ds_blob_writer_t *w, const void *buf, size_t len)
{
    if (w->err == 0 && len > 0) {
        uint64_t total = 0;
        if (__builtin_add_overflow(w->total, (uint64_t)len, &total) || total > INT64_MAX) {
            w->err = -EFBIG;
        } else {
            w->total = total;
            w->err = len >= SIDE_HASH_MIN ? writer_append_big(w, buf, len)
                                          : writer_append(w, buf, len, true);
        }
    }
    return w->err;
}

/* The header's last fields and its tag (a GMAC under the data key over bytes [0, 176)). */
static int writer_header(ds_blob_writer_t *w, ds_blob_info_t *info)
{
    unsigned int mdlen = 0;
    uint8_t md[EVP_MAX_MD_SIZE];
    if (EVP_DigestFinal_ex(w->md, md, &mdlen) != 1 || mdlen != DS_BLOB_SHA256_LEN) {
        return -EIO;
    }
    uint8_t *h = w->hdr;
    ds__put_le64(h + H_OFF_SIZE, w->total);
    memcpy(h + H_OFF_SHA, md, DS_BLOB_SHA256_LEN);
    uint8_t iv[DS__IV_LEN];
    header_iv(iv);
    int n = 0;
    int ok = EVP_EncryptInit_ex2(w->cctx, NULL, NULL, iv, NULL) == 1 &&
             EVP_EncryptUpdate(w->cctx, NULL, &n, h, H_OFF_TAG) == 1 &&
             EVP_EncryptFinal_ex(w->cctx, w->out, &n) == 1 &&
             EVP_CIPHER_CTX_ctrl(w->cctx, EVP_CTRL_GCM_GET_TAG, DS__TAG_LEN, h + H_OFF_TAG) == 1;
    if (!ok) {
        return -EIO;
    }
    info->size = w->total;
    info->chunk_size = w->cs;
    memcpy(info->sha256, md, DS_BLOB_SHA256_LEN);
    return 0;
}

int ds_blob_writer_commit(ds_blob_writer_t **wp, ds_blob_info_t *out)
{
    ds_blob_writer_t *w = *wp;
    *wp = NULL;
    ds_blob_info_t info;
    int rc = w->err;
    if (rc == 0) {
        rc = seal_chunk(w, w->plain, w->fill, true);
    }
    if (rc == 0) {
        rc = flush_out(w);
    }
    if (rc == 0) {
        rc = writer_header(w, &info);
    }
    if (rc == 0) {
        rc = ds__blob_write_all(w->fd, w->hdr, DS_BLOB_HEADER_LEN, 0, w->tmp);
    }
    if (rc == 0) {
        rc = ds__blob_fsync(w->fd, w->tmp);
    }
    if (rc == 0) {
        rc = close(w->fd) < 0 ? ds__neg_errno() : 0;
        w->fd = -1;
    }
    if (rc == 0) {
        rc = ds__blob_rename(w->tmp, w->o.path);
    }
    bool published = rc == 0;
    if (rc == 0) {
        rc = ds__blob_fsync_parent(w->o.path);
    }
    writer_free(w, !published);
    if (rc == 0 && out != NULL) {
        *out = info;
    }
    return rc;
}

void ds_blob_writer_abort(ds_blob_writer_t **wp)
{
    if (*wp != NULL) {
        writer_free(*wp, true);
        *wp = NULL;
    }
}

int ds_blob_put(ds_blob_store_t *s, const char *tenant, const char *name, const void *data,
                size_t len, ds_blob_info_t *out)
{
    ds_blob_writer_t *w = NULL;
    int rc = ds_blob_writer_open(s, tenant, name, &w);
    if (rc < 0) {
        return rc;
    }
    rc = ds_blob_writer_write(w, data, len);
    if (rc < 0) {
        ds_blob_writer_abort(&w);
        return rc;
    }
    return ds_blob_writer_commit(&w, out);
}

/* ---- reading ---- */

void ds_blob_reader_free(ds_blob_reader_t **rp)
{
    ds_blob_reader_t *r = *rp;
    if (r == NULL) {
        return;
    }
    if (r->fd >= 0) {
        (void)close(r->fd);
    }
    EVP_CIPHER_CTX_free(r->cctx);
    if (r->plain != NULL) {
        OPENSSL_cleanse(r->plain, r->cs);
    }
    free(r->plain);
    free(r->ct);
    free(r->aad);
    free(r);
    *rp = NULL;
}

/* Checks the header's plain fields against the file's size. 0 or -EBADMSG. */
static int header_parse(ds_blob_reader_t *r, const uint8_t *h, uint64_t file_size)
{
    static const uint8_t zero[DS_BLOB_HEADER_LEN];
    uint32_t cs = ds__get_le32(h + H_OFF_CHUNK);
    uint64_t size = ds__get_le64(h + H_OFF_SIZE);
    if (memcmp(h, h_magic, 4) != 0 || ds__get_le16(h + H_OFF_VERSION) != FORMAT_VERSION ||
        ds__get_le16(h + H_OFF_HLEN) != DS_BLOB_HEADER_LEN || cs < DS_BLOB_CHUNK_MIN ||
        cs > DS_BLOB_CHUNK_MAX || ds__get_le32(h + H_OFF_FLAGS) != 0 ||
        memcmp(h + H_OFF_RESERVED, zero, H_OFF_TAG - H_OFF_RESERVED) != 0 || size > INT64_MAX) {
        return -EBADMSG;
    }
    uint64_t chunks = size == 0 ? 1 : size / cs + (size % cs != 0);
    uint64_t want = 0;
    if (__builtin_mul_overflow(chunks, (uint64_t)DS__TAG_LEN, &want) ||
        __builtin_add_overflow(want, size + DS_BLOB_HEADER_LEN, &want) || want != file_size) {
        return -EBADMSG; /* cut, grown, or a header that lies about the length */
    }
    r->cs = cs;
    r->chunks = chunks;
    r->info.size = size;
    r->info.chunk_size = cs;
    memcpy(r->info.sha256, h + H_OFF_SHA, DS_BLOB_SHA256_LEN);
    return 0;
}

/* Unwraps the data key with the tenant's key, keys the reader's cipher with it and checks the
 * header tag. -EKEYREVOKED when the tenant key that wrapped it is gone. */
static int reader_keys(ds_blob_store_t *s, ds_blob_reader_t *r, const objname_t *o,
                       const char *tenant, const uint8_t *h)
{
    ds_tenant_key_t tk;
    int rc = ds_keystore_tenant_key(s->keys, tenant, false, &tk);
    if (rc < 0) {
        return rc;
    }
    uint8_t dk[DS__KEY_LEN];
    if (CRYPTO_memcmp(tk.id, h + H_OFF_TKID, DS__KEY_ID_LEN) != 0) {
        rc = -EKEYREVOKED; /* sealed under a tenant key that no longer exists */
    } else {
        ds__aead_t a = {.key = tk.key, .iv = h + H_OFF_IV};
        uint8_t *aad = dk_aad_new(o, tk.id, &a.aad_len);
        a.aad = aad;
        rc = ds__gcm_open(s->gcm, &a, h + H_OFF_WRAPPED, DS__KEY_LEN, h + H_OFF_WRAP_TAG, dk);
        free(aad);
    }
    ds_keystore_key_wipe(&tk);
    if (rc == 0) {
        r->cctx = EVP_CIPHER_CTX_new();
        rc = r->cctx != NULL ? 0 : -ENOMEM;
    }
    if (rc == 0 && EVP_DecryptInit_ex2(r->cctx, s->gcm, dk, NULL, NULL) != 1) {
        rc = -EIO;
    }
    OPENSSL_cleanse(dk, sizeof(dk));
    if (rc == 0) {
        uint8_t iv[DS__IV_LEN];
        uint8_t tag[DS__TAG_LEN];
        uint8_t sink[DS__TAG_LEN];
        int n = 0;
        header_iv(iv);
        memcpy(tag, h + H_OFF_TAG, DS__TAG_LEN);
        bool ok = EVP_DecryptInit_ex2(r->cctx, NULL, NULL, iv, NULL) == 1 &&
                  EVP_DecryptUpdate(r->cctx, NULL, &n, h, H_OFF_TAG) == 1 &&
                  EVP_CIPHER_CTX_ctrl(r->cctx, EVP_CTRL_GCM_SET_TAG, DS__TAG_LEN, tag) == 1 &&
                  EVP_DecryptFinal_ex(r->cctx, sink, &n) == 1;
        rc = ok ? 0 : -EBADMSG;
    }
    return rc;
}

static int reader_file(ds_blob_reader_t *r, const objname_t *o, uint8_t *h, uint64_t *size)
{
    r->fd = open(o->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (r->fd < 0) {
        return errno == ELOOP ? -EBADMSG : ds__neg_errno();
    }
    struct stat st;
    if (fstat(r->fd, &st) < 0) {
        return ds__neg_errno();
    }
    if (S_ISDIR(st.st_mode)) {
        return -ENOENT; /* a prefix of other objects' names, not an object */
    }
    size_t got = 0;
    int rc =
        S_ISREG(st.st_mode) ? ds__blob_pread_full(r->fd, h, DS_BLOB_HEADER_LEN, 0, &got) : -EBADMSG;
    if (rc == 0 && got != DS_BLOB_HEADER_LEN) {
        rc = -EBADMSG;
    }
    *size = (uint64_t)st.st_size;
    return rc;
}

static int load_chunk(ds_blob_reader_t *r, uint64_t idx);

int ds_blob_reader_open(ds_blob_store_t *s, const char *tenant, const char *name,
                        ds_blob_reader_t **out)
{
    objname_t o;
    int rc = objname_make(s, tenant, name, &o);
    if (rc < 0) {
        return rc;
    }
    ds_blob_reader_t *r = ds_xcalloc(1, sizeof(*r));
    r->fd = -1;
    uint8_t h[DS_BLOB_HEADER_LEN] = {0};
    uint64_t file_size = 0;
    rc = reader_file(r, &o, h, &file_size);
    if (rc == 0) {
        rc = header_parse(r, h, file_size);
    }
    if (rc == 0) {
        rc = reader_keys(s, r, &o, tenant, h);
    }
    if (rc == 0) {
        r->aad = chunk_aad_new(&o, &r->aad_len);
        r->plain = ds_xmalloc(r->cs);
        r->ct = ds_xmalloc((size_t)r->cs + DS__TAG_LEN);
        /* No read of an empty object ever loads its one (empty) chunk: authenticate its tag
         * here, so a damaged empty object fails like any other. */
        rc = r->info.size == 0 ? load_chunk(r, 0) : 0;
    }
    if (rc == 0) {
        *out = r;
    } else {
        ds_blob_reader_free(&r);
    }
    objname_fini(&o);
    return rc;
}

void ds_blob_reader_info(const ds_blob_reader_t *r, ds_blob_info_t *out)
{
    *out = r->info;
}

void ds_blob_reader_stats(const ds_blob_reader_t *r, ds_blob_reader_stats_t *out)
{
    *out = r->stats;
}

/* Makes chunk idx the reader's authenticated plaintext, decrypting it unless it is already. */
static int load_chunk(ds_blob_reader_t *r, uint64_t idx)
{
    if (r->have && r->cached == idx) {
        return 0;
    }
    r->have = false;
    bool last = idx == r->chunks - 1;
    size_t n = last ? (size_t)(r->info.size - idx * r->cs) : r->cs;
    off_t off = (off_t)(DS_BLOB_HEADER_LEN + idx * ((uint64_t)r->cs + DS__TAG_LEN));
    size_t got = 0;
    int rc = ds__blob_pread_full(r->fd, r->ct, n + DS__TAG_LEN, off, &got);
    if (rc < 0) {
        return rc;
    }
    if (got != n + DS__TAG_LEN) {
        return -EBADMSG; /* cut while we held it open */
    }
    uint8_t iv[DS__IV_LEN];
    chunk_iv(iv, idx);
    chunk_aad_set(r->aad, idx, last);
    int outl = 0;
    int fin = 0;
    bool ok = EVP_DecryptInit_ex2(r->cctx, NULL, NULL, iv, NULL) == 1 &&
              EVP_DecryptUpdate(r->cctx, NULL, &outl, r->aad, (int)r->aad_len) == 1 &&
              EVP_DecryptUpdate(r->cctx, r->plain, &outl, r->ct, (int)n) == 1 &&
              EVP_CIPHER_CTX_ctrl(r->cctx, EVP_CTRL_GCM_SET_TAG, DS__TAG_LEN, r->ct + n) == 1 &&
              EVP_DecryptFinal_ex(r->cctx, r->plain + outl, &fin) == 1;
    if (!ok) {
        OPENSSL_cleanse(r->plain, n); /* unauthenticated: never handed out */
        return -EBADMSG;
    }
    r->have = true;
    r->cached = idx;
    r->cached_len = n;
    r->stats.chunks_decrypted++;
    return 0;
}

int ds_blob_reader_read(ds_blob_reader_t *r, uint64_t offset, void *buf, size_t len, size_t *n)
{
    if (offset >= r->info.size || len == 0) {
        *n = 0;
        return 0;
    }
    uint64_t want = r->info.size - offset < len ? r->info.size - offset : len;
    uint8_t *dst = buf;
    uint64_t pos = offset;
    uint64_t end = offset + want;
    while (pos < end) {
        uint64_t idx = pos / r->cs;
        int rc = load_chunk(r, idx);
        if (rc < 0) {
            return rc;
        }
        size_t in = (size_t)(pos - idx * r->cs);
        size_t k = r->cached_len - in < end - pos ? r->cached_len - in : (size_t)(end - pos);
        memcpy(dst, r->plain + in, k);
        dst += k;
        pos += k;
    }
    r->stats.bytes_out += want;
    *n = (size_t)want;
    return 0;
}

int ds_blob_stat(ds_blob_store_t *s, const char *tenant, const char *name, ds_blob_info_t *out)
{
    ds_blob_reader_t *r = NULL;
    int rc = ds_blob_reader_open(s, tenant, name, &r);
    if (rc == 0) {
        ds_blob_reader_info(r, out);
        ds_blob_reader_free(&r);
    }
    return rc;
}

/* ---- housekeeping ---- */

int ds_blob_delete(ds_blob_store_t *s, const char *tenant, const char *name)
{
    objname_t o;
    int rc = objname_make(s, tenant, name, &o);
    if (rc < 0) {
        return rc;
    }
    struct stat st;
    rc = lstat(o.path, &st) < 0 ? ds__neg_errno() : 0;
    if (rc == 0 && !S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -ENOENT : -EBADMSG;
    }
    if (rc == 0) {
        rc = unlink(o.path) < 0 ? ds__neg_errno() : ds__blob_fsync_parent(o.path);
    }
    objname_fini(&o);
    return rc;
}

static bool tmp_name(const char *base)
{
    return base[0] == '.' && strstr(base, ".tmp-") != NULL;
}

int ds_blob_gc_temp(ds_blob_store_t *s, uint32_t min_age_s, uint64_t *removed)
{
    char *paths[] = {s->root, NULL};
    /* fts walks without recursion in our code; FTS_PHYSICAL never follows a symbolic link. */
    FTS *f = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, NULL);
    if (f == NULL) {
        return ds__neg_errno();
    }
    time_t now = time(NULL);
    uint64_t count = 0;
    FTSENT *e;
    while ((e = fts_read(f)) != NULL) {
        if (e->fts_info == FTS_F && tmp_name(e->fts_name) &&
            (min_age_s == 0 || now - e->fts_statp->st_mtime >= (time_t)min_age_s) &&
            unlink(e->fts_accpath) == 0) {
            count++;
        }
    }
    (void)fts_close(f);
    if (count > 0) {
        ds_log_info("removed blob temporaries", DS_LOG_U64("count", count), DS_LOG_END);
    }
    if (removed != NULL) {
        *removed = count;
    }
    return 0;
}
