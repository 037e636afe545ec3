/* blob_fs: file and crypto helpers shared by the object store and the key store. See
 * transports/blob/blob_int.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "runtime/mem.h"
#include "transports/blob/blob_int.h"

/* The hook is a test seam: set before any blob call runs (blob_int.h), so a plain pointer. */
static ds_blob_fault_fn_t fault_fn;
static void *fault_arg;

void ds_blob_set_fault_hook(ds_blob_fault_fn_t fn, void *arg)
{
    fault_fn = fn;
    fault_arg = arg;
}

int ds__blob_fault(ds_blob_fault_op_t op, const char *path)
{
    ds_blob_fault_fn_t fn = fault_fn;
    return fn != NULL ? fn(op, path, fault_arg) : 0;
}

int ds__blob_write_all(int fd, const void *buf, size_t len, off_t off, const char *path)
{
    int rc = ds__blob_fault(DS_BLOB_FAULT_WRITE, path);
    if (rc < 0) {
        return rc;
    }
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = off >= 0 ? pwrite(fd, p, len, off) : write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return ds__neg_errno();
        }
        if (n == 0) {
            return -EIO; /* a regular file never accepts 0 bytes of a non-empty write */
        }
        p += n;
        len -= (size_t)n;
        if (off >= 0) {
            off += n;
        }
    }
    return 0;
}

int ds__blob_pread_full(int fd, void *buf, size_t len, off_t off, size_t *got)
{
    uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return ds__neg_errno();
        }
        if (n == 0) {
            break;
        }
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

int ds__blob_fsync(int fd, const char *path)
{
    int rc = ds__blob_fault(DS_BLOB_FAULT_FSYNC, path);
    if (rc < 0) {
        return rc;
    }
    return fsync(fd) < 0 ? ds__neg_errno() : 0;
}

int ds__blob_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return ds__neg_errno();
    }
    int rc = ds__blob_fsync(fd, dir);
    (void)close(fd);
    return rc;
}

int ds__blob_fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return ds__blob_fsync_dir(".");
    }
    if (slash == path) {
        return ds__blob_fsync_dir("/");
    }
    size_t n = (size_t)(slash - path);
    char *dir = ds_xmalloc(n + 1);
    memcpy(dir, path, n);
    dir[n] = '\0';
    int rc = ds__blob_fsync_dir(dir);
    free(dir);
    return rc;
}

/* mkdir of one prefix: 1 when made, 0 when it existed as a directory, or -errno. */
static int mkdir_one(const char *dir, mode_t mode)
{
    if (mkdir(dir, mode) == 0) {
        return 1;
    }
    if (errno != EEXIST) {
        return ds__neg_errno();
    }
    struct stat st;
    if (stat(dir, &st) < 0) {
        return ds__neg_errno();
    }
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int ds__blob_mkdirs(const char *path, mode_t mode)
{
    size_t n = strlen(path);
    if (n == 0 || n >= PATH_MAX) {
        return n == 0 ? -EINVAL : -ENAMETOOLONG;
    }
    char *buf = ds_xstrdup(path);
    int rc = 0;
    /* Each prefix ending before a '/' (and the whole path), shortest first. */
    for (size_t i = 1; i <= n && rc >= 0; i++) {
        if (i < n && buf[i] != '/') {
            continue;
        }
        if (i < n && buf[i - 1] == '/') {
            continue; /* "a//b": the empty component adds nothing */
        }
        char saved = buf[i];
        buf[i] = '\0';
        rc = mkdir_one(buf, mode);
        if (rc == 1) {
            rc = ds__blob_fsync_parent(buf); /* the new entry must survive a crash */
        }
        buf[i] = saved;
    }
    free(buf);
    return rc < 0 ? rc : 0;
}

int ds__blob_rename(const char *from, const char *to)
{
    int rc = ds__blob_fault(DS_BLOB_FAULT_RENAME, to);
    if (rc < 0) {
        return rc;
    }
    return rename(from, to) < 0 ? ds__neg_errno() : 0;
}

int ds__blob_link(const char *from, const char *to)
{
    int rc = ds__blob_fault(DS_BLOB_FAULT_RENAME, to);
    if (rc < 0) {
        return rc;
    }
    return link(from, to) < 0 ? ds__neg_errno() : 0;
}

int ds__blob_random(uint8_t *out, size_t n)
{
    if (n > INT_MAX) {
        return -EINVAL;
    }
    return RAND_bytes(out, (int)n) == 1 ? 0 : -EIO;
}

int ds__blob_random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[32];
    if (n > sizeof(raw)) {
        return -EINVAL;
    }
    int rc = ds__blob_random(raw, n);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * n] = '\0';
    return 0;
}

char *ds__blob_tmp_name(const char *path)
{
    char hex[DS__TMP_HEX + 1];
    if (ds__blob_random_hex(hex, DS__TMP_HEX / 2) < 0) {
        /* No randomness: a fixed suffix; O_EXCL then refuses a second writer (-EEXIST). */
        memset(hex, '0', DS__TMP_HEX);
        hex[DS__TMP_HEX] = '\0';
    }
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return ds_xasprintf(".%s.tmp-%s", path, hex);
    }
    return ds_xasprintf("%.*s/.%s.tmp-%s", (int)(slash - path), path, slash + 1, hex);
}

int ds__blob_write_small(const char *path, const void *data, size_t len, bool replace)
{
    char *tmp = ds__blob_tmp_name(path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int err = ds__neg_errno();
        free(tmp);
        return err;
    }
    int rc = ds__blob_write_all(fd, data, len, 0, tmp);
    if (rc == 0) {
        rc = ds__blob_fsync(fd, tmp);
    }
    if (close(fd) < 0 && rc == 0) {
        rc = ds__neg_errno();
    }
    if (rc == 0) {
        rc = replace ? ds__blob_rename(tmp, path) : ds__blob_link(tmp, path);
    }
    if (rc < 0 || !replace) {
        (void)unlink(tmp); /* after a link both names hold the file: drop the temporary one */
    }
    if (rc == 0) {
        rc = ds__blob_fsync_parent(path);
    }
    free(tmp);
    return rc;
}

int ds__blob_read_small(const char *path, void *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return errno == ELOOP ? -EBADMSG : ds__neg_errno();
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? ds__neg_errno() : 0;
    if (rc == 0 && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > cap)) {
        rc = -EBADMSG;
    }
    size_t got = 0;
    if (rc == 0) {
        rc = ds__blob_pread_full(fd, buf, (size_t)st.st_size, 0, &got);
    }
    (void)close(fd);
    if (rc == 0) {
        *len = got;
    }
    return rc;
}

int ds__blob_destroy_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return ds__neg_errno();
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? ds__neg_errno() : 0;
    if (rc == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= 65536) {
        uint8_t noise[65536];
        rc = ds__blob_random(noise, (size_t)st.st_size);
        if (rc == 0) {
            rc = ds__blob_write_all(fd, noise, (size_t)st.st_size, 0, path);
        }
        if (rc == 0) {
            rc = ds__blob_fsync(fd, path);
        }
    }
    (void)close(fd);
    if (rc == 0 && unlink(path) < 0) {
        rc = ds__neg_errno();
    }
    return rc;
}

int ds__gcm_seal(const EVP_CIPHER *cipher, const ds__aead_t *a, const uint8_t *in, size_t len,
                 uint8_t *out, uint8_t tag[DS__TAG_LEN])
{
    if (a->aad_len > INT_MAX || len > INT_MAX) {
        return -EINVAL;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -ENOMEM;
    }
    int n = 0;
    int ok = EVP_EncryptInit_ex2(ctx, cipher, a->key, a->iv, NULL) == 1 &&
             EVP_EncryptUpdate(ctx, NULL, &n, a->aad, (int)a->aad_len) == 1 &&
             EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1 &&
             EVP_EncryptFinal_ex(ctx, out + n, &n) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, DS__TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    return ok ? 0 : -EIO;
}

int ds__gcm_open(const EVP_CIPHER *cipher, const ds__aead_t *a, const uint8_t *in, size_t len,
                 const uint8_t tag[DS__TAG_LEN], uint8_t *out)
{
    if (a->aad_len > INT_MAX || len > INT_MAX) {
        return -EINVAL;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -ENOMEM;
    }
    uint8_t t[DS__TAG_LEN];
    memcpy(t, tag, sizeof(t));
    int n = 0;
    int ok = EVP_DecryptInit_ex2(ctx, cipher, a->key, a->iv, NULL) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &n, a->aad, (int)a->aad_len) == 1 &&
             EVP_DecryptUpdate(ctx, out, &n, in, (int)len) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, DS__TAG_LEN, t) == 1 &&
             EVP_DecryptFinal_ex(ctx, out + n, &n) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(out, len); /* never hand out unauthenticated bytes */
        return -EBADMSG;
    }
    return 0;
}
