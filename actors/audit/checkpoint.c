/* checkpoint: the signing key and signed chain heads. See actors/audit/checkpoint.h. */
#include "actors/audit/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "runtime/err.h"
#include "runtime/mem.h"
#include "transports/blob/keystore.h"

enum {
    CP_KEY_FILE_MAX = 16384, /* bytes of a PEM key file we read */
    CP_PAYLOAD_MAX = 384,
};

struct ds_audit_signer {
    EVP_PKEY *key;
    char key_id[DS_AUDIT_KEY_ID_HEX + 1];
};

/* ---- the key ---- */

static int cp_neg_errno(void)
{
    return errno != 0 ? -errno : -EIO;
}

/* Reads the whole (small) file fd into buf (cap bytes): 0 and *n, -EFBIG, or -errno. */
static int cp_read_fd(int fd, char *buf, size_t cap, size_t *n)
{
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return cp_neg_errno();
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
        if (got == cap) {
            return -EFBIG;
        }
    }
    *n = got;
    return 0;
}

static int cp_key_id(EVP_PKEY *key, char out[DS_AUDIT_KEY_ID_HEX + 1])
{
    uint8_t pub[32];
    size_t len = sizeof(pub);
    uint8_t digest[32];
    unsigned int dlen = 0;
    if (EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 || len != sizeof(pub) ||
        EVP_Digest(pub, len, digest, &dlen, EVP_sha256(), NULL) != 1) {
        return -EIO;
    }
    ds_audit_hex(digest, DS_AUDIT_KEY_ID_HEX / 2, out);
    return 0;
}

/* Loads the key at path: 0 and *out, or the errors of ds_audit_signer_open(). */
static int cp_key_load(const char *path, EVP_PKEY **out)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return errno == ELOOP ? -EPERM : cp_neg_errno();
    }
    struct stat st;
    char *buf = ds_xmalloc(CP_KEY_FILE_MAX);
    size_t n = 0;
    int rc = fstat(fd, &st) < 0 ? cp_neg_errno() : 0;
    if (rc == 0 && (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0)) {
        rc = -EPERM;
    }
    if (rc == 0) {
        rc = cp_read_fd(fd, buf, CP_KEY_FILE_MAX, &n);
    }
    (void)close(fd);
    EVP_PKEY *key = NULL;
    if (rc == 0) {
        BIO *bio = BIO_new_mem_buf(buf, (int)n);
        key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (key == NULL || EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
            rc = -EBADMSG;
        }
    }
    OPENSSL_cleanse(buf, CP_KEY_FILE_MAX);
    free(buf);
    if (rc < 0) {
        EVP_PKEY_free(key);
        return rc;
    }
    *out = key;
    return 0;
}

/* The PEM text of a new Ed25519 key into a BIO: 0 and *out (BIO_free()), or -EIO. */
static int cp_key_generate_pem(BIO **out)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    EVP_PKEY *key = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    int rc = ctx != NULL && bio != NULL && EVP_PKEY_keygen_init(ctx) == 1 &&
                     EVP_PKEY_keygen(ctx, &key) == 1 &&
                     PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1
                 ? 0
                 : -EIO;
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    if (rc < 0) {
        BIO_free(bio);
        return rc;
    }
    *out = bio;
    return 0;
}

static int cp_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return cp_neg_errno();
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cp_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return cp_neg_errno();
    }
    int rc = fsync(fd) < 0 ? cp_neg_errno() : 0;
    (void)close(fd);
    return rc;
}

/* Publishes a new key at path unless one is there already (the first link wins). */
static int cp_key_create(const char *keys_dir, const char *path)
{
    if (mkdir(keys_dir, 0700) < 0 && errno != EEXIST) {
        return cp_neg_errno();
    }
    BIO *bio = NULL;
    int rc = cp_key_generate_pem(&bio);
    if (rc < 0) {
        return rc;
    }
    char *tmp = ds_xasprintf("%s/." DS_AUDIT_KEY_FILE ".tmp-XXXXXX", keys_dir);
    int fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0) {
        rc = cp_neg_errno();
    } else {
        char *pem = NULL;
        long len = BIO_get_mem_data(bio, &pem);
        rc = len > 0 ? cp_write_all(fd, pem, (size_t)len) : -EIO;
        if (len > 0) {
            OPENSSL_cleanse(pem, (size_t)len); /* the private key's text */
        }
        if (rc == 0 && fsync(fd) < 0) {
            rc = cp_neg_errno();
        }
        (void)close(fd);
        if (rc == 0 && link(tmp, path) < 0 && errno != EEXIST) {
            rc = cp_neg_errno();
        }
        (void)unlink(tmp);
    }
    if (rc == 0) {
        rc = cp_fsync_dir(keys_dir);
    }
    BIO_free(bio);
    free(tmp);
    return rc;
}

int ds_audit_signer_open(const char *keys_dir, bool create, ds_audit_signer_t **out)
{
    if (keys_dir == NULL || keys_dir[0] == '\0') {
        return -EINVAL;
    }
    char *path = ds_xasprintf("%s/" DS_AUDIT_KEY_FILE, keys_dir);
    EVP_PKEY *key = NULL;
    int rc = cp_key_load(path, &key);
    if (rc == -ENOENT && create) {
        rc = cp_key_create(keys_dir, path);
        if (rc == 0) {
            rc = cp_key_load(path, &key);
        }
    }
    free(path);
    if (rc < 0) {
        return rc;
    }
    ds_audit_signer_t *s = ds_xcalloc(1, sizeof(*s));
    s->key = key;
    rc = cp_key_id(key, s->key_id);
    if (rc < 0) {
        ds_audit_signer_free(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void ds_audit_signer_free(ds_audit_signer_t **sp)
{
    if (sp == NULL || *sp == NULL) {
        return;
    }
    EVP_PKEY_free((*sp)->key); /* OpenSSL clears the private key's memory */
    free(*sp);
    *sp = NULL;
}

const char *ds_audit_signer_key_id(const ds_audit_signer_t *s)
{
    return s->key_id;
}

void ds_audit_now(char out[DS_AUDIT_TIME_LEN + 1])
{
    struct timespec ts = {0};
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm = {0};
    (void)gmtime_r(&ts.tv_sec, &tm);
    (void)strftime(out, DS_AUDIT_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the format ---- */

/* The canonical payload of cp with key id kid into buf (CP_PAYLOAD_MAX): its length, or -1. */
static int cp_payload(const ds_audit_checkpoint_t *cp, const char *kid, char *buf)
{
    char hash[DS_AUDIT_HEX_LEN + 1];
    ds_audit_hex(cp->hash, DS_AUDIT_HASH_LEN, hash);
    int n = snprintf(buf, CP_PAYLOAD_MAX,
                     "{\"v\":1,\"tenant_id\":\"%s\",\"seq\":%llu,\"hash\":\"%s\","
                     "\"signed_at\":\"%s\",\"key_id\":\"%s\"}",
                     cp->tenant_id, (unsigned long long)cp->seq, hash, cp->signed_at, kid);
    return n > 0 && n < CP_PAYLOAD_MAX ? n : -1;
}

static bool cp_time_valid(const char *t)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(t) != DS_AUDIT_TIME_LEN) {
        return false;
    }
    for (size_t i = 0; i < DS_AUDIT_TIME_LEN; i++) {
        bool ok = shape[i] == 'd' ? (t[i] >= '0' && t[i] <= '9') : t[i] == shape[i];
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool cp_fields_valid(const ds_audit_checkpoint_t *cp)
{
    return cp->seq >= 1 && cp->seq <= (uint64_t)INT64_MAX &&
           ds_keystore_tenant_valid(cp->tenant_id) && cp_time_valid(cp->signed_at);
}

int ds_audit_checkpoint_sign(const ds_audit_signer_t *s, const ds_audit_checkpoint_t *cp,
                             char **out, size_t *len)
{
    if (!cp_fields_valid(cp)) {
        return -EINVAL;
    }
    char payload[CP_PAYLOAD_MAX];
    int n = cp_payload(cp, s->key_id, payload);
    if (n < 0) {
        return -EINVAL;
    }
    uint8_t sig[DS_AUDIT_SIG_LEN];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md != NULL && EVP_DigestSignInit(md, NULL, NULL, NULL, s->key) == 1 &&
                     EVP_DigestSign(md, sig, &siglen, (const uint8_t *)payload, (size_t)n) == 1 &&
                     siglen == sizeof(sig)
                 ? 0
                 : -EIO;
    EVP_MD_CTX_free(md);
    if (rc < 0) {
        return rc;
    }
    char hex[DS_AUDIT_SIG_HEX + 1];
    ds_audit_hex(sig, sizeof(sig), hex);
    *out = ds_xasprintf("%s\n%s\n", payload, hex);
    *len = strlen(*out);
    return 0;
}

/* A cursor over the payload being parsed. */
typedef struct cp_cur {
    const char *p;
    const char *end;
    bool ok;
} cp_cur_t;

static void cp_expect(cp_cur_t *c, const char *lit)
{
    size_t n = strlen(lit);
    if (!c->ok || (size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) {
        c->ok = false;
        return;
    }
    c->p += n;
}

/* Copies exactly n bytes into out (n + 1 bytes) and NUL-terminates. */
static void cp_take(cp_cur_t *c, size_t n, char *out)
{
    if (!c->ok || (size_t)(c->end - c->p) < n) {
        c->ok = false;
        return;
    }
    memcpy(out, c->p, n);
    out[n] = '\0';
    c->p += n;
}

/* 1 to 19 decimal digits (the canonical spelling is checked by re-encoding). */
static void cp_number(cp_cur_t *c, uint64_t *out)
{
    uint64_t v = 0;
    size_t digits = 0;
    while (c->ok && c->p < c->end && *c->p >= '0' && *c->p <= '9' && digits < 19) {
        v = v * 10 + (uint64_t)(*c->p - '0');
        c->p++;
        digits++;
    }
    if (digits == 0) {
        c->ok = false;
    }
    *out = v;
}

/* Lower-case hex only: the signature has one spelling too. */
static bool cp_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

int ds_audit_checkpoint_parse(const uint8_t *data, size_t len, ds_audit_checkpoint_t *out,
                              uint8_t sig[DS_AUDIT_SIG_LEN])
{
    const char *text = (const char *)data;
    const char *nl = len > 0 && len <= DS_AUDIT_CP_MAX ? memchr(text, '\n', len) : NULL;
    size_t plen = nl != NULL ? (size_t)(nl - text) : 0;
    if (nl == NULL || plen >= CP_PAYLOAD_MAX || len != plen + DS_AUDIT_SIG_HEX + 2 ||
        text[len - 1] != '\n' || !cp_lower_hex(nl + 1, DS_AUDIT_SIG_HEX) ||
        ds_audit_unhex(nl + 1, DS_AUDIT_SIG_HEX, sig, DS_AUDIT_SIG_LEN) < 0) {
        return DS_EDECODE;
    }
    ds_audit_checkpoint_t cp = {0};
    char hash[DS_AUDIT_HEX_LEN + 1];
    cp_cur_t c = {.p = text, .end = nl, .ok = true};
    cp_expect(&c, "{\"v\":1,\"tenant_id\":\"");
    cp_take(&c, DS_AUDIT_UUID_LEN, cp.tenant_id);
    cp_expect(&c, "\",\"seq\":");
    cp_number(&c, &cp.seq);
    cp_expect(&c, ",\"hash\":\"");
    cp_take(&c, DS_AUDIT_HEX_LEN, hash);
    cp_expect(&c, "\",\"signed_at\":\"");
    cp_take(&c, DS_AUDIT_TIME_LEN, cp.signed_at);
    cp_expect(&c, "\",\"key_id\":\"");
    cp_take(&c, DS_AUDIT_KEY_ID_HEX, cp.key_id);
    cp_expect(&c, "\"}");
    if (!c.ok || c.p != c.end || !cp_fields_valid(&cp) ||
        ds_audit_unhex(hash, DS_AUDIT_HEX_LEN, cp.hash, DS_AUDIT_HASH_LEN) < 0) {
        return DS_EDECODE;
    }
    /* One spelling per checkpoint: lower-case hex, no leading zeros, as the signer writes. */
    char again[CP_PAYLOAD_MAX];
    uint8_t kid[DS_AUDIT_KEY_ID_HEX / 2];
    int n = cp_payload(&cp, cp.key_id, again);
    if (n < 0 || (size_t)n != plen || memcmp(again, text, plen) != 0 ||
        ds_audit_unhex(cp.key_id, DS_AUDIT_KEY_ID_HEX, kid, sizeof(kid)) < 0) {
        return DS_EDECODE;
    }
    *out = cp;
    return 0;
}

int ds_audit_checkpoint_open(const ds_audit_signer_t *s, const uint8_t *data, size_t len,
                             ds_audit_checkpoint_t *out)
{
    ds_audit_checkpoint_t cp;
    uint8_t sig[DS_AUDIT_SIG_LEN];
    int rc = ds_audit_checkpoint_parse(data, len, &cp, sig);
    if (rc < 0) {
        return rc;
    }
    if (strcmp(cp.key_id, s->key_id) != 0) {
        return -EKEYREJECTED;
    }
    size_t plen = (size_t)((const char *)memchr(data, '\n', len) - (const char *)data);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool good = md != NULL && EVP_DigestVerifyInit(md, NULL, NULL, NULL, s->key) == 1 &&
                EVP_DigestVerify(md, sig, sizeof(sig), data, plen) == 1;
    EVP_MD_CTX_free(md);
    if (!good) {
        return -EKEYREJECTED;
    }
    *out = cp;
    return 0;
}

void ds_audit_checkpoint_name(uint64_t seq, char out[DS_AUDIT_CP_NAME_MAX])
{
    (void)snprintf(out, DS_AUDIT_CP_NAME_MAX, "audit/checkpoints/%020llu", (unsigned long long)seq);
}

/* ---- storage ---- */

int ds_audit_checkpoint_load(ds_blob_store_t *bs, const ds_audit_signer_t *s, const char *tenant,
                             ds_audit_checkpoint_t *out)
{
    ds_blob_reader_t *r = NULL;
    int rc = ds_blob_reader_open(bs, tenant, DS_AUDIT_CP_LATEST, &r);
    if (rc == -ENOKEY) {
        return -ENOENT; /* the tenant never had a key: nothing was ever stored for it */
    }
    if (rc < 0) {
        return rc;
    }
    ds_blob_info_t info;
    ds_blob_reader_info(r, &info);
    uint8_t buf[DS_AUDIT_CP_MAX];
    size_t n = 0;
    if (info.size > DS_AUDIT_CP_MAX) {
        rc = DS_EDECODE;
    } else {
        rc = ds_blob_reader_read(r, 0, buf, (size_t)info.size, &n);
    }
    ds_blob_reader_free(&r);
    if (rc == 0 && n != info.size) {
        rc = DS_EDECODE;
    }
    ds_audit_checkpoint_t cp;
    if (rc == 0) {
        rc = ds_audit_checkpoint_open(s, buf, n, &cp);
    }
    if (rc == 0 && strcmp(cp.tenant_id, tenant) != 0) {
        rc = -EKEYREJECTED; /* signed, but for another tenant: copied here */
    }
    if (rc == 0) {
        *out = cp;
    }
    return rc;
}

int ds_audit_checkpoint_store(ds_blob_store_t *bs, const char *tenant, uint64_t seq,
                              const char *bytes, size_t len)
{
    char name[DS_AUDIT_CP_NAME_MAX];
    ds_audit_checkpoint_name(seq, name);
    int rc = ds_blob_put(bs, tenant, name, bytes, len, NULL);
    if (rc == 0) {
        rc = ds_blob_put(bs, tenant, DS_AUDIT_CP_LATEST, bytes, len, NULL);
    }
    return rc;
}
