/* signing: token signing keys on disk. See actors/identity/signing.h. */
#include "actors/identity/signing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "runtime/err.h"
#include "runtime/mem.h"

enum {
    SIGNING_PATH_MAX = 4096,
    SIGNING_NAMES_MAX = 64,
};

static int signing_dir(const char *keys_dir, char *out, size_t cap, char **why)
{
    int n = snprintf(out, cap, "%s/tokens", keys_dir);
    if (n < 0 || (size_t)n >= cap) {
        *why = ds_xasprintf("key directory path too long: %s", keys_dir);
        return -ENAMETOOLONG;
    }
    if (mkdir(out, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        *why = ds_xasprintf("cannot create %s: %s", out, ds_strerror(-e));
        return -e;
    }
    return 0;
}

static bool signing_kid_ok(const char *name, size_t len)
{
    if (len == 0 || len > DS_TOKEN_KID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-')) {
            return false;
        }
    }
    return true;
}

static int signing_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The kids in dir, sorted (oldest first), into names (caller frees each): the count. */
static size_t signing_list(const char *dir, char *names[SIGNING_NAMES_MAX])
{
    size_t n = 0;
    DIR *dh = opendir(dir);
    struct dirent *e;
    while (dh != NULL && n < SIGNING_NAMES_MAX && (e = readdir(dh)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".key") == 0 &&
            signing_kid_ok(e->d_name, len - 4)) {
            names[n++] = ds_xasprintf("%.*s", (int)(len - 4), e->d_name);
        }
    }
    if (dh != NULL) {
        (void)closedir(dh);
    }
    qsort(names, n, sizeof(names[0]), signing_cmp);
    return n;
}

static int signing_write(const char *dir, char kid[DS_TOKEN_KID_MAX + 1], char **why)
{
    uint8_t key[DS_TOKEN_KEY_MIN];
    uint8_t r[2];
    time_t now = time(NULL);
    struct tm tm;
    (void)gmtime_r(&now, &tm);
    if (RAND_bytes(r, sizeof(r)) != 1 || ds_token_key_generate(key) != 0) {
        *why = ds_xasprintf("the random source failed");
        return -EIO;
    }
    (void)snprintf(kid, DS_TOKEN_KID_MAX + 1, "k%04d%02d%02dT%02d%02d%02dZ%02x%02x",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   r[0], r[1]);
    /* Written whole under a temporary name, then linked to its own: a reader never sees a
     * part of a key. */
    char path[SIGNING_PATH_MAX];
    char tmp[SIGNING_PATH_MAX];
    (void)snprintf(path, sizeof(path), "%s/%s.key", dir, kid);
    (void)snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, kid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    bool ok = fd >= 0 && write(fd, key, sizeof(key)) == (ssize_t)sizeof(key) && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) {
        (void)close(fd);
    }
    OPENSSL_cleanse(key, sizeof(key));
    if (ok && link(tmp, path) != 0) {
        ok = false;
        e = errno;
    }
    (void)unlink(tmp);
    if (!ok) {
        *why = ds_xasprintf("cannot write %s: %s", path, ds_strerror(-e));
        return -e;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        (void)close(dfd);
    }
    return 0;
}

static int signing_read(const char *dir, const char *kid, uint8_t key[DS_TOKEN_KEY_MAX],
                        size_t *len, char **why)
{
    char path[SIGNING_PATH_MAX];
    (void)snprintf(path, sizeof(path), "%s/%s.key", dir, kid);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) {
            (void)close(fd);
        }
        *why = ds_xasprintf("cannot read %s: %s", path, ds_strerror(-e));
        return -e;
    }
    if ((st.st_mode & 077) != 0 || !S_ISREG(st.st_mode)) {
        (void)close(fd);
        *why = ds_xasprintf("%s must be a regular file of mode 0600", path);
        return -EPERM;
    }
    ssize_t n = read(fd, key, DS_TOKEN_KEY_MAX);
    (void)close(fd);
    if (n < DS_TOKEN_KEY_MIN) {
        *why = ds_xasprintf("%s is too short to be a signing key", path);
        return -EINVAL;
    }
    *len = (size_t)n;
    return 0;
}

int ds_signing_load(const char *keys_dir, const char *iss, int64_t ttl, ds_token_ring_t **out,
                    char **why)
{
    char dir[SIGNING_PATH_MAX];
    int rc = signing_dir(keys_dir, dir, sizeof(dir), why);
    /* Nodes starting together agree on the first key: whoever holds the directory's lock
     * makes it, the others then find it. */
    int dfd = rc == 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        (void)flock(dfd, LOCK_EX);
    }
    char *names[SIGNING_NAMES_MAX];
    size_t n = rc == 0 ? signing_list(dir, names) : 0;
    if (rc == 0 && n == 0) {
        char kid[DS_TOKEN_KID_MAX + 1];
        rc = signing_write(dir, kid, why);
        n = rc == 0 ? signing_list(dir, names) : 0;
    }
    if (dfd >= 0) {
        (void)close(dfd); /* releases the lock */
    }
    ds_token_ring_t *ring = NULL;
    if (rc == 0) {
        rc = ds_token_ring_new(iss, ttl, DS_TOKEN_LEEWAY_DEFAULT, &ring);
    }
    /* The newest DS_TOKEN_RING_MAX keys; the newest signs. */
    size_t first = n > DS_TOKEN_RING_MAX ? n - DS_TOKEN_RING_MAX : 0;
    for (size_t i = first; rc == 0 && i < n; i++) {
        uint8_t key[DS_TOKEN_KEY_MAX];
        size_t len = 0;
        rc = signing_read(dir, names[i], key, &len, why);
        if (rc == 0) {
            rc = ds_token_ring_add(ring, names[i], key, len);
        }
        OPENSSL_cleanse(key, sizeof(key));
    }
    if (rc == 0 && n > 0) {
        rc = ds_token_ring_set_current(ring, names[n - 1]);
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    if (rc < 0) {
        if (*why == NULL) {
            *why = ds_xasprintf("cannot load the signing keys: %s", ds_strerror(rc));
        }
        ds_token_ring_free(&ring);
        return rc;
    }
    *out = ring;
    return 0;
}

int ds_signing_rotate(const char *keys_dir, char kid[DS_TOKEN_KID_MAX + 1], char **why)
{
    char dir[SIGNING_PATH_MAX];
    int rc = signing_dir(keys_dir, dir, sizeof(dir), why);
    if (rc == 0) {
        rc = signing_write(dir, kid, why);
    }
    char *names[SIGNING_NAMES_MAX];
    size_t n = rc == 0 ? signing_list(dir, names) : 0;
    for (size_t i = 0; i < n; i++) {
        if (i + DS_SIGNING_KEEP < n) {
            char path[SIGNING_PATH_MAX];
            (void)snprintf(path, sizeof(path), "%s/%s.key", dir, names[i]);
            (void)unlink(path);
        }
        free(names[i]);
    }
    return rc;
}
