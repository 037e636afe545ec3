/* keystore: the master key file, tenant key files, shredding and master key rotation. See
 * transports/blob/keystore.h for the hierarchy and the file formats; docs/storage.md for the
 * operator's side (backups, rotation, recovery). */
#include "transports/blob/keystore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "runtime/err.h"
#include "runtime/log.h"
#include "runtime/mem.h"
#include "transports/blob/blob_int.h"

_Static_assert(DS_KEYSTORE_KEY_LEN == DS__KEY_LEN, "one key length");
_Static_assert(DS_KEYSTORE_KEY_ID_LEN == DS__KEY_ID_LEN, "one key id length");

enum {
    FORMAT_VERSION = 1,
    /* master.key: magic, version, reserved, id, key, check */
    MK_OFF_ID = 8,
    MK_OFF_KEY = 24,
    MK_OFF_CHECK = 56,
    MK_CHECK_LEN = 8,
    MK_LEN = 64,
    /* <uuid>.key: magic, version, reserved, master id, tenant key id | nonce, sealed key, tag */
    TK_OFF_MASTER = 8,
    TK_OFF_ID = 24,
    TK_OFF_IV = 40, /* bytes [0, 40) are the file's fixed fields, bound through the AAD */
    TK_OFF_CT = 52,
    TK_OFF_TAG = 84,
    TK_LEN = 100,
    /* <uuid>.shredded: magic, version, reserved, destroyed tenant key id, unix time */
    TS_LEN = 32,
    ROTATE_PASSES_MAX = 8,
};

static const uint8_t mk_magic[4] = {'D', 'S', 'M', 'K'};
static const uint8_t tk_magic[4] = {'D', 'S', 'T', 'K'};
static const uint8_t ts_magic[4] = {'D', 'S', 'T', 'S'};
/* Domain label of the tenant key wrap, NUL included, so no other AAD of ours can match it. */
static const char tk_label[] = "dossier tenant key v1";

typedef struct master {
    uint8_t id[DS__KEY_ID_LEN];
    uint8_t key[DS__KEY_LEN];
} master_t;

struct ds_keystore {
    char *master_path;
    char *tenant_dir;
    EVP_CIPHER *gcm;
    master_t master; /* as loaded at open; never changed after (threads share the handle) */
};

bool ds_keystore_tenant_valid(const char *s)
{
    if (s == NULL) {
        return false;
    }
    for (size_t i = 0; i < DS_TENANT_ID_LEN; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        if (dash ? c != '-' : !hex) {
            return false; /* also stops at a NUL before the end */
        }
    }
    return s[DS_TENANT_ID_LEN] == '\0';
}

void ds_keystore_key_wipe(ds_tenant_key_t *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

static void master_wipe(master_t *m)
{
    OPENSSL_cleanse(m, sizeof(*m));
}

static void put_head(uint8_t *p, const uint8_t magic[4])
{
    memcpy(p, magic, 4);
    ds__put_le16(p + 4, FORMAT_VERSION);
    ds__put_le16(p + 6, 0);
}

static bool head_ok(const uint8_t *p, const uint8_t magic[4])
{
    return memcmp(p, magic, 4) == 0 && ds__get_le16(p + 4) == FORMAT_VERSION &&
           ds__get_le16(p + 6) == 0;
}

/* ---- master key files ---- */

static int master_check(const uint8_t *buf, uint8_t out[MK_CHECK_LEN])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(buf, MK_OFF_CHECK, md, &n, EVP_sha256(), NULL) != 1) {
        return -EIO;
    }
    memcpy(out, md, MK_CHECK_LEN);
    OPENSSL_cleanse(md, sizeof(md)); /* a digest of the key: treat it as secret too */
    return 0;
}

static int master_encode(const master_t *m, uint8_t buf[MK_LEN])
{
    put_head(buf, mk_magic);
    memcpy(buf + MK_OFF_ID, m->id, DS__KEY_ID_LEN);
    memcpy(buf + MK_OFF_KEY, m->key, DS__KEY_LEN);
    return master_check(buf, buf + MK_OFF_CHECK);
}

static int master_load(const char *path, master_t *out)
{
    uint8_t buf[MK_LEN + 1];
    size_t len = 0;
    int rc = ds__blob_read_small(path, buf, sizeof(buf), &len);
    if (rc == 0) {
        uint8_t check[MK_CHECK_LEN];
        rc = len == MK_LEN && head_ok(buf, mk_magic) ? master_check(buf, check) : -EBADMSG;
        if (rc == 0 && CRYPTO_memcmp(check, buf + MK_OFF_CHECK, MK_CHECK_LEN) != 0) {
            rc = -EBADMSG;
        }
        if (rc == 0) {
            memcpy(out->id, buf + MK_OFF_ID, DS__KEY_ID_LEN);
            memcpy(out->key, buf + MK_OFF_KEY, DS__KEY_LEN);
        }
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

/* Publishes a new random master key at path unless one exists (link: first writer wins), then
 * loads whatever path holds. */
static int master_create(const char *path, master_t *out)
{
    master_t m;
    uint8_t buf[MK_LEN];
    int rc = ds__blob_random(m.id, sizeof(m.id));
    if (rc == 0) {
        rc = ds__blob_random(m.key, sizeof(m.key));
    }
    if (rc == 0) {
        rc = master_encode(&m, buf);
    }
    if (rc == 0) {
        rc = ds__blob_write_small(path, buf, sizeof(buf), false);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    master_wipe(&m);
    if (rc == 0 || rc == -EEXIST) {
        rc = master_load(path, out); /* ours, or the one a racing process published */
    }
    return rc;
}

/* The master key with this id: the handle's own, else master.key, .new or .old on disk (a
 * rotation by another process, or one in progress). -ENOKEY when none has it. */
static int master_find(const ds_keystore_t *ks, const uint8_t id[DS__KEY_ID_LEN], master_t *out)
{
    if (CRYPTO_memcmp(id, ks->master.id, DS__KEY_ID_LEN) == 0) {
        *out = ks->master;
        return 0;
    }
    static const char *const suffixes[] = {"", ".new", ".old"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char *path = ds_xasprintf("%s%s", ks->master_path, suffixes[i]);
        master_t m;
        int rc = master_load(path, &m);
        free(path);
        if (rc == 0 && CRYPTO_memcmp(id, m.id, DS__KEY_ID_LEN) == 0) {
            *out = m;
            master_wipe(&m);
            return 0;
        }
        master_wipe(&m);
    }
    return -ENOKEY;
}

/* ---- tenant key files ---- */

static char *tenant_path(const ds_keystore_t *ks, const char *tenant, const char *ext)
{
    return ds_xasprintf("%s/%s.%s", ks->tenant_dir, tenant, ext);
}

/* AAD of a tenant key wrap: label, tenant uuid, the file's fixed fields (magic, version,
 * master key id, tenant key id). */
static size_t tk_aad(const char *tenant, const uint8_t *file, uint8_t *aad)
{
    memcpy(aad, tk_label, sizeof(tk_label));
    memcpy(aad + sizeof(tk_label), tenant, DS_TENANT_ID_LEN);
    memcpy(aad + sizeof(tk_label) + DS_TENANT_ID_LEN, file, TK_OFF_IV);
    return sizeof(tk_label) + DS_TENANT_ID_LEN + TK_OFF_IV;
}

static int tk_seal(const ds_keystore_t *ks, const master_t *m, const char *tenant,
                   const ds_tenant_key_t *k, uint8_t buf[TK_LEN])
{
    uint8_t aad[sizeof(tk_label) + DS_TENANT_ID_LEN + TK_OFF_IV];
    put_head(buf, tk_magic);
    memcpy(buf + TK_OFF_MASTER, m->id, DS__KEY_ID_LEN);
    memcpy(buf + TK_OFF_ID, k->id, DS__KEY_ID_LEN);
    int rc = ds__blob_random(buf + TK_OFF_IV, DS__IV_LEN);
    if (rc < 0) {
        return rc;
    }
    ds__aead_t a = {.key = m->key, .iv = buf + TK_OFF_IV, .aad = aad};
    a.aad_len = tk_aad(tenant, buf, aad);
    return ds__gcm_seal(ks->gcm, &a, k->key, DS__KEY_LEN, buf + TK_OFF_CT, buf + TK_OFF_TAG);
}

static int tk_open(const ds_keystore_t *ks, const char *tenant, const uint8_t *buf, size_t len,
                   ds_tenant_key_t *out)
{
    if (len != TK_LEN || !head_ok(buf, tk_magic)) {
        return -EBADMSG;
    }
    master_t m;
    int rc = master_find(ks, buf + TK_OFF_MASTER, &m);
    if (rc < 0) {
        return rc;
    }
    uint8_t aad[sizeof(tk_label) + DS_TENANT_ID_LEN + TK_OFF_IV];
    ds__aead_t a = {.key = m.key, .iv = buf + TK_OFF_IV, .aad = aad};
    a.aad_len = tk_aad(tenant, buf, aad);
    ds_tenant_key_t k;
    rc = ds__gcm_open(ks->gcm, &a, buf + TK_OFF_CT, DS__KEY_LEN, buf + TK_OFF_TAG, k.key);
    master_wipe(&m);
    if (rc == 0) {
        memcpy(k.id, buf + TK_OFF_ID, DS__KEY_ID_LEN);
        *out = k;
    }
    ds_keystore_key_wipe(&k);
    return rc;
}

static int tk_read(const ds_keystore_t *ks, const char *tenant, const char *path,
                   ds_tenant_key_t *out)
{
    uint8_t buf[TK_LEN + 1];
    size_t len = 0;
    int rc = ds__blob_read_small(path, buf, sizeof(buf), &len);
    if (rc == 0) {
        rc = tk_open(ks, tenant, buf, len, out);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

bool ds_keystore_tenant_shredded(ds_keystore_t *ks, const char *tenant)
{
    if (!ds_keystore_tenant_valid(tenant)) {
        return false;
    }
    char *path = tenant_path(ks, tenant, "shredded");
    struct stat st;
    bool found = lstat(path, &st) == 0;
    free(path);
    return found;
}

/* A new key for the tenant, sealed under the master key on disk now (not the handle's: a
 * rotation may have installed another since open), published with link(): when two creators
 * race, the loser reads the winner's key. */
static int tk_create(ds_keystore_t *ks, const char *tenant, const char *path, ds_tenant_key_t *out)
{
    master_t m;
    ds_tenant_key_t k;
    uint8_t buf[TK_LEN];
    int rc = master_load(ks->master_path, &m);
    if (rc == 0) {
        rc = ds__blob_random(k.id, sizeof(k.id));
    }
    if (rc == 0) {
        rc = ds__blob_random(k.key, sizeof(k.key));
    }
    if (rc == 0) {
        rc = tk_seal(ks, &m, tenant, &k, buf);
    }
    if (rc == 0) {
        rc = ds__blob_write_small(path, buf, sizeof(buf), false);
    }
    master_wipe(&m);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (rc == -EEXIST) {
        rc = tk_read(ks, tenant, path, &k);
    } else if (rc == 0 && ds_keystore_tenant_shredded(ks, tenant)) {
        /* A shred ran between our tombstone check and the link: it wins. */
        (void)ds__blob_destroy_file(path);
        (void)ds__blob_fsync_dir(ks->tenant_dir);
        rc = -EKEYREVOKED;
    }
    if (rc == 0) {
        *out = k;
    }
    ds_keystore_key_wipe(&k);
    return rc;
}

int ds_keystore_tenant_key(ds_keystore_t *ks, const char *tenant, bool create, ds_tenant_key_t *out)
{
    if (!ds_keystore_tenant_valid(tenant)) {
        return -EINVAL;
    }
    char *path = tenant_path(ks, tenant, "key");
    int rc = tk_read(ks, tenant, path, out);
    if (rc == -ENOENT) {
        if (ds_keystore_tenant_shredded(ks, tenant)) {
            rc = -EKEYREVOKED;
        } else if (!create) {
            rc = -ENOKEY;
        } else {
            rc = tk_create(ks, tenant, path, out);
        }
    }
    free(path);
    return rc;
}

/* ---- temporaries ---- */

/* Destroys the temporaries ("<prefix>*.tmp-*") in dir older than min_age_s seconds (0: all).
 * Names of other files are left alone. Returns how many went, or -errno from opendir. */
static int clean_temps(const char *dir, const char *prefix, time_t min_age_s)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return ds__neg_errno();
    }
    int removed = 0;
    time_t now = time(NULL);
    size_t plen = strlen(prefix);
    struct dirent *e;
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the DIR stream is local to this call */
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, plen) != 0 || strstr(e->d_name, ".tmp-") == NULL) {
            continue;
        }
        char *path = ds_xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            (min_age_s == 0 || now - st.st_mtime >= min_age_s) &&
            ds__blob_destroy_file(path) == 0) {
            removed++;
        }
        free(path);
    }
    (void)closedir(d);
    return removed;
}

/* ---- open and free ---- */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return ds_xstrdup(".");
    }
    if (slash == path) {
        return ds_xstrdup("/");
    }
    char *d = ds_xstrdup(path);
    d[slash - path] = '\0';
    return d;
}

static char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return ds_xstrdup(slash != NULL ? slash + 1 : path);
}

static int open_master(ds_keystore_t *ks, bool create)
{
    char *dir = dir_of(ks->master_path);
    char *base = base_of(ks->master_path);
    char *prefix = ds_xasprintf(".%s", base);
    int rc = 0;
    if (create) {
        rc = ds__blob_mkdirs(dir, 0700);
    }
    if (rc == 0) {
        (void)clean_temps(dir, prefix, DS__TMP_AGE_S);
        rc = master_load(ks->master_path, &ks->master);
        if (rc == -ENOENT && create) {
            rc = master_create(ks->master_path, &ks->master);
            if (rc == 0) {
                ds_log_info("master key ready", DS_LOG_STR("path", ks->master_path), DS_LOG_END);
            }
        }
    }
    free(prefix);
    free(base);
    free(dir);
    return rc;
}

int ds_keystore_open(const ds_keystore_cfg_t *cfg, ds_keystore_t **out)
{
    if (cfg == NULL || cfg->master_path == NULL || cfg->tenant_dir == NULL ||
        cfg->master_path[0] == '\0' || cfg->tenant_dir[0] == '\0') {
        return -EINVAL;
    }
    ds_keystore_t *ks = ds_xcalloc(1, sizeof(*ks));
    ks->master_path = ds_xstrdup(cfg->master_path);
    ks->tenant_dir = ds_xstrdup(cfg->tenant_dir);
    ks->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    int rc = ks->gcm != NULL ? 0 : -ENOSYS;
    if (rc == 0) {
        rc = open_master(ks, cfg->create_master);
    }
    if (rc == 0) {
        rc = ds__blob_mkdirs(ks->tenant_dir, 0700);
    }
    if (rc == 0) {
        (void)clean_temps(ks->tenant_dir, ".", DS__TMP_AGE_S);
        *out = ks;
        return 0;
    }
    ds_keystore_free(&ks);
    return rc;
}

void ds_keystore_free(ds_keystore_t **ksp)
{
    ds_keystore_t *ks = *ksp;
    if (ks == NULL) {
        return;
    }
    master_wipe(&ks->master);
    EVP_CIPHER_free(ks->gcm);
    free(ks->master_path);
    free(ks->tenant_dir);
    free(ks);
    *ksp = NULL;
}

void ds_keystore_master_id(const ds_keystore_t *ks, uint8_t out[DS_KEYSTORE_KEY_ID_LEN])
{
    memcpy(out, ks->master.id, DS_KEYSTORE_KEY_ID_LEN);
}

/* ---- shredding ---- */

int ds_keystore_shred_tenant(ds_keystore_t *ks, const char *tenant)
{
    if (!ds_keystore_tenant_valid(tenant)) {
        return -EINVAL;
    }
    char *key_path = tenant_path(ks, tenant, "key");
    char *ts_path = tenant_path(ks, tenant, "shredded");
    /* The tombstone names the key id destroyed (zeros when unknown), for the operator. */
    uint8_t file[TK_LEN + 1];
    size_t len = 0;
    uint8_t ts[TS_LEN] = {0};
    put_head(ts, ts_magic);
    if (ds__blob_read_small(key_path, file, sizeof(file), &len) == 0 && len == TK_LEN) {
        memcpy(ts + 8, file + TK_OFF_ID, DS__KEY_ID_LEN);
    }
    OPENSSL_cleanse(file, sizeof(file));
    ds__put_le64(ts + 24, (uint64_t)time(NULL));
    int rc = ds__blob_write_small(ts_path, ts, sizeof(ts), true);
    if (rc == 0) {
        rc = ds__blob_destroy_file(key_path);
        rc = rc == -ENOENT ? 0 : rc;
    }
    if (rc == 0) {
        char *prefix = ds_xasprintf(".%s.key", tenant);
        (void)clean_temps(ks->tenant_dir, prefix, 0); /* a crashed writer's copy of the key */
        free(prefix);
        rc = ds__blob_fsync_dir(ks->tenant_dir);
    }
    if (rc == 0) {
        ds_log_info("tenant key shredded", DS_LOG_STR("tenant", tenant), DS_LOG_END);
    }
    free(ts_path);
    free(key_path);
    return rc;
}

/* ---- rotation ---- */

/* True when name is "<uuid>.key"; the uuid goes to tenant. */
static bool key_file_name(const char *name, char tenant[DS_TENANT_ID_LEN + 1])
{
    if (strlen(name) != DS_TENANT_ID_LEN + 4 || strcmp(name + DS_TENANT_ID_LEN, ".key") != 0) {
        return false;
    }
    memcpy(tenant, name, DS_TENANT_ID_LEN);
    tenant[DS_TENANT_ID_LEN] = '\0';
    return ds_keystore_tenant_valid(tenant);
}

/* Re-wraps one tenant key file under m unless it already is. 1 when rewritten, 0 when it was
 * already under m, or an error. */
static int rewrap_one(ds_keystore_t *ks, const master_t *m, const char *tenant)
{
    char *path = tenant_path(ks, tenant, "key");
    uint8_t buf[TK_LEN + 1];
    size_t len = 0;
    ds_tenant_key_t k;
    int rc = ds__blob_read_small(path, buf, sizeof(buf), &len);
    if (rc == 0 && len == TK_LEN &&
        CRYPTO_memcmp(buf + TK_OFF_MASTER, m->id, DS__KEY_ID_LEN) == 0) {
        rc = 0;
    } else if (rc == 0) {
        rc = tk_open(ks, tenant, buf, len, &k);
        if (rc == 0) {
            rc = tk_seal(ks, m, tenant, &k, buf);
        }
        if (rc == 0) {
            rc = ds__blob_write_small(path, buf, TK_LEN, true);
        }
        rc = rc == 0 ? 1 : rc;
        ds_keystore_key_wipe(&k);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    free(path);
    return rc == -ENOENT ? 0 : rc; /* shredded meanwhile: nothing to re-wrap */
}

/* One scan of the tenant directory. The count re-wrapped, or an error. */
static int rewrap_pass(ds_keystore_t *ks, const master_t *m, ds_keystore_rotation_t *st)
{
    DIR *d = opendir(ks->tenant_dir);
    if (d == NULL) {
        return ds__neg_errno();
    }
    int rc = 0;
    int done = 0;
    struct dirent *e;
    char tenant[DS_TENANT_ID_LEN + 1];
    /* NOLINTNEXTLINE(concurrency-mt-unsafe): the DIR stream is local to this call */
    while (rc >= 0 && (e = readdir(d)) != NULL) {
        if (!key_file_name(e->d_name, tenant)) {
            continue;
        }
        rc = rewrap_one(ks, m, tenant);
        if (rc == 1) {
            done++;
            st->rewrapped++;
        } else if (rc == 0 && st->passes == 1) {
            st->unchanged++;
        }
    }
    (void)closedir(d);
    return rc < 0 ? rc : done;
}

/* The staged key of a rotation: master.key.new as left by a crashed rotation, or a new one. */
static int stage_new(const char *new_path, const master_t *cur, master_t *out)
{
    int rc = master_load(new_path, out);
    if (rc == -ENOENT) {
        rc = master_create(new_path, out);
    }
    if (rc == 0 && CRYPTO_memcmp(out->id, cur->id, DS__KEY_ID_LEN) == 0) {
        rc = -EBADMSG; /* a staged key equal to the current one: not our doing */
    }
    return rc;
}

/* The last step: master.key.old := current key, then master.key.new -> master.key. Between the
 * two, master.key and .old hold the same key and .new the new one: all readable. */
static int install(ds_keystore_t *ks, const master_t *cur, const char *new_path)
{
    char *old_path = ds_xasprintf("%s.old", ks->master_path);
    uint8_t buf[MK_LEN];
    int rc = master_encode(cur, buf);
    if (rc == 0) {
        rc = ds__blob_write_small(old_path, buf, sizeof(buf), true);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    if (rc == 0) {
        rc = ds__blob_rename(new_path, ks->master_path);
    }
    if (rc == 0) {
        rc = ds__blob_fsync_parent(ks->master_path);
    }
    free(old_path);
    return rc;
}

static int rotate_locked(ds_keystore_t *ks, ds_keystore_rotation_t *st)
{
    char *new_path = ds_xasprintf("%s.new", ks->master_path);
    master_t cur;
    master_t next;
    int rc = master_load(ks->master_path, &cur);
    if (rc == 0) {
        rc = stage_new(new_path, &cur, &next);
    }
    for (int n = 1; rc == 0 && n > 0 && st->passes < ROTATE_PASSES_MAX;) {
        st->passes++;
        n = rewrap_pass(ks, &next, st);
        rc = n < 0 ? n : 0;
    }
    if (rc == 0) {
        rc = install(ks, &cur, new_path);
    }
    if (rc == 0) {
        memcpy(st->new_id, next.id, DS__KEY_ID_LEN);
    }
    master_wipe(&cur);
    master_wipe(&next);
    free(new_path);
    return rc;
}

int ds_keystore_rotate_master(ds_keystore_t *ks, ds_keystore_rotation_t *out)
{
    char *lock_path = ds_xasprintf("%s.lock", ks->master_path);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(lock_path);
    if (fd < 0) {
        return ds__neg_errno();
    }
    int rc = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : ds__neg_errno();
    }
    ds_keystore_rotation_t st = {0};
    if (rc == 0) {
        rc = rotate_locked(ks, &st);
    }
    (void)close(fd); /* releases the lock */
    if (rc < 0) {
        ds_log_error("could not rotate the master key", DS_LOG_STR("error", ds_errname(rc)),
                     DS_LOG_U64("rewrapped", st.rewrapped), DS_LOG_END);
        return rc;
    }
    ds_log_info("master key rotated", DS_LOG_U64("rewrapped", st.rewrapped),
                DS_LOG_U64("unchanged", st.unchanged), DS_LOG_END);
    if (out != NULL) {
        *out = st;
    }
    return 0;
}
