/* token: access tokens (HS256 JWS), key rings and opaque tokens. See actors/identity/token.h. */
#include "actors/identity/token.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "runtime/mem.h"

enum {
    SIG_LEN = 32,     /* HMAC-SHA256 */
    SIG_B64_LEN = 43, /* its base64url */
    HEADER_MAX = 128, /* bytes of our header JSON: 36 + kid + 2 */
    TENANT_BYTES = 16,
    OPAQUE_PREFIX_LEN = 4,
    OPAQUE_BODY_BYTES = TENANT_BYTES + DS_TOKEN_SECRET_BYTES,
    TTL_MAX = 86400,
};

/* The fixed header, up to the kid; the kid's characters need no escaping. */
static const char header_head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"";
static const char header_tail[] = "\"}";

typedef struct ring_key {
    char kid[DS_TOKEN_KID_MAX + 1];
    uint8_t key[DS_TOKEN_KEY_MAX];
    size_t key_len;
    /* base64url of this kid's header: a token's first segment is compared with it byte for
     * byte, so no JSON is parsed before the signature is checked. */
    char header_b64[HEADER_MAX];
    size_t header_b64_len;
    bool used;
} ring_key_t;

struct ds_token_ring {
    char iss[DS_TOKEN_ISS_MAX + 1];
    int64_t ttl;
    int64_t leeway;
    int current; /* index into keys, -1 if none */
    ring_key_t keys[DS_TOKEN_RING_MAX];
};

/* --- base64url ---------------------------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t ds_token_b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

int ds_token_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap, size_t *len)
{
    size_t need = ds_token_b64url_len(n);
    if (cap < need + 1) {
        return -ENOBUFS;
    }
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = b64_alphabet[v >> 6 & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = b64_alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    *len = o;
    return 0;
}

/* The 6-bit value of c, or -1 outside the alphabet ('=' included). */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

int ds_token_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *n)
{
    if (len % 4 == 1) {
        return -EBADMSG;
    }
    size_t need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (cap < need) {
        return -ENOBUFS;
    }
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0) {
            return -EBADMSG;
        }
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* The 2 or 4 bits left over must be zero, or two spellings would decode alike. */
    if ((acc & ((1u << bits) - 1)) != 0) {
        return -EBADMSG;
    }
    *n = o;
    return 0;
}

/* --- small checks ------------------------------------------------------------------------- */

static bool is_hex_lower(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool ds_token_uuid_valid(const char *s, size_t len)
{
    if (s == NULL || len != DS_TOKEN_UUID_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex_lower(s[i])) {
            return false;
        }
    }
    return true;
}

static bool is_b64_chars(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (b64_value(s[i]) < 0) {
            return false;
        }
    }
    return true;
}

static bool kid_valid(const char *kid)
{
    size_t len = kid == NULL ? 0 : strnlen(kid, DS_TOKEN_KID_MAX + 1);
    return len >= 1 && len <= DS_TOKEN_KID_MAX && is_b64_chars(kid, len);
}

static bool iss_valid(const char *iss)
{
    size_t len = iss == NULL ? 0 : strnlen(iss, DS_TOKEN_ISS_MAX + 1);
    if (len < 1 || len > DS_TOKEN_ISS_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (iss[i] < 0x20 || iss[i] > 0x7e || iss[i] == '"' || iss[i] == '\\') {
            return false;
        }
    }
    return true;
}

static const char *const role_names[] = {"viewer", "editor", "admin"};

/* --- key ring ----------------------------------------------------------------------------- */

int ds_token_ring_new(const char *iss, int64_t ttl, int64_t leeway, ds_token_ring_t **out)
{
    if (!iss_valid(iss) || ttl < 1 || ttl > TTL_MAX || leeway < 0 || leeway > DS_TOKEN_LEEWAY_MAX) {
        return -EINVAL;
    }
    ds_token_ring_t *r = ds_xcalloc(1, sizeof(*r));
    (void)snprintf(r->iss, sizeof(r->iss), "%s", iss);
    r->ttl = ttl;
    r->leeway = leeway;
    r->current = -1;
    *out = r;
    return 0;
}

void ds_token_ring_free(ds_token_ring_t **ring)
{
    if (ring == NULL || *ring == NULL) {
        return;
    }
    OPENSSL_cleanse(*ring, sizeof(**ring));
    free(*ring);
    *ring = NULL;
}

static int ring_find(const ds_token_ring_t *ring, const char *kid)
{
    for (int i = 0; i < DS_TOKEN_RING_MAX; i++) {
        if (ring->keys[i].used && strcmp(ring->keys[i].kid, kid) == 0) {
            return i;
        }
    }
    return -1;
}

int ds_token_ring_add(ds_token_ring_t *ring, const char *kid, const uint8_t *key, size_t len)
{
    if (!kid_valid(kid) || key == NULL || len < DS_TOKEN_KEY_MIN || len > DS_TOKEN_KEY_MAX) {
        return -EINVAL;
    }
    if (ring_find(ring, kid) >= 0) {
        return -EEXIST;
    }
    int slot = -1;
    for (int i = 0; i < DS_TOKEN_RING_MAX && slot < 0; i++) {
        slot = ring->keys[i].used ? -1 : i;
    }
    if (slot < 0) {
        return -ENOSPC;
    }
    ring_key_t *k = &ring->keys[slot];
    char header[HEADER_MAX];
    int hl = snprintf(header, sizeof(header), "%s%s%s", header_head, kid, header_tail);
    if (hl < 0 || (size_t)hl >= sizeof(header) ||
        ds_token_b64url_encode((const uint8_t *)header, (size_t)hl, k->header_b64,
                               sizeof(k->header_b64), &k->header_b64_len) != 0) {
        return -EINVAL;
    }
    (void)snprintf(k->kid, sizeof(k->kid), "%s", kid);
    memcpy(k->key, key, len);
    k->key_len = len;
    k->used = true;
    if (ring->current < 0) {
        ring->current = slot;
    }
    return 0;
}

int ds_token_ring_set_current(ds_token_ring_t *ring, const char *kid)
{
    int i = kid == NULL ? -1 : ring_find(ring, kid);
    if (i < 0) {
        return -ENOENT;
    }
    ring->current = i;
    return 0;
}

int ds_token_ring_remove(ds_token_ring_t *ring, const char *kid)
{
    int i = kid == NULL ? -1 : ring_find(ring, kid);
    if (i < 0) {
        return -ENOENT;
    }
    if (i == ring->current) {
        return -EBUSY;
    }
    OPENSSL_cleanse(&ring->keys[i], sizeof(ring->keys[i]));
    ring->keys[i].used = false;
    return 0;
}

const char *ds_token_ring_current(const ds_token_ring_t *ring)
{
    return ring->current < 0 ? NULL : ring->keys[ring->current].kid;
}

int ds_token_key_generate(uint8_t out[DS_TOKEN_KEY_MIN])
{
    return RAND_bytes(out, DS_TOKEN_KEY_MIN) == 1 ? 0 : -EIO;
}

/* --- access tokens ------------------------------------------------------------------------ */

static bool claims_valid(const ds_token_ring_t *ring, const ds_token_claims_t *c)
{
    size_t jti_len = strnlen(c->jti, sizeof(c->jti));
    return strcmp(c->iss, ring->iss) == 0 &&
           ds_token_uuid_valid(c->sub, strnlen(c->sub, sizeof(c->sub))) &&
           ds_token_uuid_valid(c->tid, strnlen(c->tid, sizeof(c->tid))) && c->roles != 0 &&
           (c->roles & ~(unsigned)DS_ROLE_ALL) == 0 && c->exp > c->iat && jti_len >= 1 &&
           jti_len <= DS_TOKEN_JTI_MAX && is_b64_chars(c->jti, jti_len);
}

int ds_token_claims_init(const ds_token_ring_t *ring, const char *sub, const char *tid,
                         unsigned roles, int64_t now, ds_token_claims_t *out)
{
    if (sub == NULL || tid == NULL || !ds_token_uuid_valid(sub, strlen(sub)) ||
        !ds_token_uuid_valid(tid, strlen(tid)) || roles == 0 ||
        (roles & ~(unsigned)DS_ROLE_ALL) != 0 || now < 0 || now > INT64_MAX - ring->ttl) {
        return -EINVAL;
    }
    uint8_t raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return -EIO;
    }
    ds_token_claims_t c;
    memset(&c, 0, sizeof(c));
    size_t n = 0;
    (void)ds_token_b64url_encode(raw, sizeof(raw), c.jti, sizeof(c.jti), &n);
    (void)snprintf(c.iss, sizeof(c.iss), "%s", ring->iss);
    memcpy(c.sub, sub, DS_TOKEN_UUID_LEN);
    memcpy(c.tid, tid, DS_TOKEN_UUID_LEN);
    c.roles = roles;
    c.iat = now;
    c.exp = now + ring->ttl;
    *out = c;
    return 0;
}

/* HMAC-SHA256 of data under key k into sig. */
static int hmac(const ring_key_t *k, const char *data, size_t len, uint8_t sig[SIG_LEN])
{
    unsigned sig_len = 0;
    if (HMAC(EVP_sha256(), k->key, (int)k->key_len, (const unsigned char *)data, len, sig,
             &sig_len) == NULL ||
        sig_len != SIG_LEN) {
        return -EIO;
    }
    return 0;
}

/* The roles as a JSON array body, in a fixed order: "viewer","editor","admin". */
static void roles_json(unsigned roles, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < 3; i++) {
        if ((roles & (1u << i)) != 0) {
            int w = snprintf(out + o, cap - o, "%s\"%s\"", o == 0 ? "" : ",", role_names[i]);
            o += (size_t)w;
        }
    }
}

int ds_token_sign(const ds_token_ring_t *ring, const ds_token_claims_t *claims,
                  char out[DS_TOKEN_MAX_LEN + 1], size_t *len)
{
    if (ring->current < 0 || !claims_valid(ring, claims)) {
        return -EINVAL;
    }
    const ring_key_t *k = &ring->keys[ring->current];
    /* Every value was checked above to need no JSON escaping. */
    char roles[40];
    roles_json(claims->roles, roles, sizeof(roles));
    char payload[512];
    int pl = snprintf(payload, sizeof(payload),
                      "{\"iss\":\"%s\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[%s],"
                      "\"iat\":%" PRId64 ",\"exp\":%" PRId64 ",\"jti\":\"%s\"}",
                      claims->iss, claims->sub, claims->tid, roles, claims->iat, claims->exp,
                      claims->jti);
    if (pl < 0 || (size_t)pl >= sizeof(payload)) {
        return -EINVAL;
    }
    size_t o = k->header_b64_len;
    memcpy(out, k->header_b64, o);
    out[o++] = '.';
    size_t n = 0;
    if (ds_token_b64url_encode((const uint8_t *)payload, (size_t)pl, out + o,
                               DS_TOKEN_MAX_LEN + 1 - o, &n) != 0 ||
        o + n + 1 + SIG_B64_LEN > DS_TOKEN_MAX_LEN) {
        return -EINVAL;
    }
    o += n;
    uint8_t sig[SIG_LEN];
    if (hmac(k, out, o, sig) != 0) {
        return -EIO;
    }
    out[o++] = '.';
    (void)ds_token_b64url_encode(sig, sizeof(sig), out + o, DS_TOKEN_MAX_LEN + 1 - o, &n);
    *len = o + n;
    return 0;
}

/* For a first segment that matches no key: -ENOKEY if it is our header with a kid we do not
 * hold (rotated out), -EBADMSG for anything else. Only for the error code: nothing decoded here
 * is trusted or used. */
static int classify_header(const char *seg, size_t len)
{
    uint8_t buf[HEADER_MAX];
    size_t n = 0;
    size_t head = sizeof(header_head) - 1;
    size_t tail = sizeof(header_tail) - 1;
    if (len > ds_token_b64url_len(sizeof(buf)) ||
        ds_token_b64url_decode(seg, len, buf, sizeof(buf), &n) != 0 || n < head + tail + 1 ||
        memcmp(buf, header_head, head) != 0 || memcmp(buf + n - tail, header_tail, tail) != 0 ||
        n - head - tail > DS_TOKEN_KID_MAX ||
        !is_b64_chars((const char *)buf + head, n - head - tail)) {
        return -EBADMSG;
    }
    return -ENOKEY;
}

/* Copies a string claim of at most max characters into out (max + 1 bytes). */
static bool claim_string(const json_t *obj, const char *name, char *out, size_t max)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > max) {
        return false;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

static bool claim_roles(const json_t *obj, unsigned *roles)
{
    const json_t *arr = json_object_get(obj, "roles");
    if (!json_is_array(arr) || json_array_size(arr) < 1 || json_array_size(arr) > 3) {
        return false;
    }
    unsigned set = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        unsigned bit = 0;
        for (unsigned r = 0; s != NULL && r < 3; r++) {
            bit = strcmp(s, role_names[r]) == 0 ? 1u << r : bit;
        }
        if (bit == 0 || (set & bit) != 0) {
            return false;
        }
        set |= bit;
    }
    *roles = set;
    return true;
}

/* Decodes and checks the payload of a token whose signature is already verified. */
static int parse_claims(const char *seg, size_t len, ds_token_claims_t *c)
{
    uint8_t buf[DS_TOKEN_MAX_LEN];
    size_t n = 0;
    if (ds_token_b64url_decode(seg, len, buf, sizeof(buf), &n) != 0) {
        return -EBADMSG;
    }
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
    memset(c, 0, sizeof(*c));
    const json_t *iat = json_object_get(obj, "iat");
    const json_t *exp = json_object_get(obj, "exp");
    bool ok = json_is_object(obj) && json_object_size(obj) == 7 &&
              claim_string(obj, "iss", c->iss, DS_TOKEN_ISS_MAX) &&
              claim_string(obj, "sub", c->sub, DS_TOKEN_UUID_LEN) &&
              claim_string(obj, "tid", c->tid, DS_TOKEN_UUID_LEN) &&
              claim_string(obj, "jti", c->jti, DS_TOKEN_JTI_MAX) && claim_roles(obj, &c->roles) &&
              json_is_integer(iat) && json_is_integer(exp);
    if (ok) {
        c->iat = (int64_t)json_integer_value(iat);
        c->exp = (int64_t)json_integer_value(exp);
    }
    json_decref(obj);
    OPENSSL_cleanse(buf, sizeof(buf));
    return ok ? 0 : -EBADMSG;
}

int ds_token_verify(const ds_token_ring_t *ring, const char *token, size_t len, int64_t now,
                    ds_token_claims_t *out)
{
    if (len > DS_TOKEN_MAX_LEN) {
        return -EMSGSIZE;
    }
    const char *dot1 = token == NULL ? NULL : memchr(token, '.', len);
    const char *dot2 =
        dot1 == NULL ? NULL : memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        return -EBADMSG;
    }
    size_t hlen = (size_t)(dot1 - token);
    const ring_key_t *k = NULL;
    for (int i = 0; i < DS_TOKEN_RING_MAX && k == NULL; i++) {
        const ring_key_t *c = &ring->keys[i];
        if (c->used && c->header_b64_len == hlen && memcmp(c->header_b64, token, hlen) == 0) {
            k = c;
        }
    }
    if (k == NULL) {
        return classify_header(token, hlen);
    }
    /* The signature: exactly 43 characters, strictly decoded, compared in constant time. */
    size_t slen = len - (size_t)(dot2 + 1 - token);
    uint8_t sig[SIG_LEN];
    uint8_t want[SIG_LEN];
    size_t n = 0;
    if (slen != SIG_B64_LEN || ds_token_b64url_decode(dot2 + 1, slen, sig, sizeof(sig), &n) != 0 ||
        n != SIG_LEN) {
        return -EBADMSG;
    }
    if (hmac(k, token, (size_t)(dot2 - token), want) != 0) {
        return -EIO;
    }
    if (CRYPTO_memcmp(sig, want, SIG_LEN) != 0) {
        return -EBADMSG;
    }
    /* Genuine from here on: we signed these bytes. The checks below still hold the payload to
     * our shape, so a key leaked to another issuer cannot smuggle anything in. */
    ds_token_claims_t c;
    int rc = parse_claims(dot1 + 1, (size_t)(dot2 - dot1 - 1), &c);
    if (rc != 0) {
        return rc;
    }
    if (c.exp <= c.iat || c.iat < 0) {
        return -EBADMSG;
    }
    if (now >= c.exp && now - c.exp >= ring->leeway) {
        return -ETIME;
    }
    if (c.iat > now && c.iat - now > ring->leeway) {
        return -EBADMSG;
    }
    if (!claims_valid(ring, &c)) {
        return -EBADMSG;
    }
    *out = c;
    return 0;
}

/* --- opaque tokens ------------------------------------------------------------------------ */

ds_token_kind_t ds_token_classify(const char *token, size_t len)
{
    if (token == NULL || len < OPAQUE_PREFIX_LEN) {
        return DS_TOKEN_UNKNOWN;
    }
    if (memcmp(token, DS_TOKEN_PREFIX_REFRESH, OPAQUE_PREFIX_LEN) == 0) {
        return DS_TOKEN_REFRESH;
    }
    if (memcmp(token, DS_TOKEN_PREFIX_API_KEY, OPAQUE_PREFIX_LEN) == 0) {
        return DS_TOKEN_API_KEY;
    }
    if (memcmp(token, "eyJ", 3) == 0) {
        return DS_TOKEN_ACCESS;
    }
    return DS_TOKEN_UNKNOWN;
}

static bool prefix_ours(const char *prefix)
{
    return prefix != NULL && (strcmp(prefix, DS_TOKEN_PREFIX_REFRESH) == 0 ||
                              strcmp(prefix, DS_TOKEN_PREFIX_API_KEY) == 0);
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

int ds_token_opaque_new(const char *prefix, const char *tenant, char out[DS_TOKEN_OPAQUE_LEN + 1])
{
    if (!prefix_ours(prefix) || tenant == NULL ||
        !ds_token_uuid_valid(tenant, strnlen(tenant, DS_TOKEN_UUID_LEN + 1))) {
        return -EINVAL;
    }
    uint8_t body[OPAQUE_BODY_BYTES];
    size_t o = 0;
    for (size_t i = 0; i < DS_TOKEN_UUID_LEN; i++) {
        if (tenant[i] != '-') {
            body[o / 2] =
                (uint8_t)(o % 2 == 0 ? hexval(tenant[i]) << 4 : body[o / 2] | hexval(tenant[i]));
            o++;
        }
    }
    if (RAND_bytes(body + TENANT_BYTES, DS_TOKEN_SECRET_BYTES) != 1) {
        OPENSSL_cleanse(body, sizeof(body));
        return -EIO;
    }
    memcpy(out, prefix, OPAQUE_PREFIX_LEN);
    size_t n = 0;
    (void)ds_token_b64url_encode(body, sizeof(body), out + OPAQUE_PREFIX_LEN,
                                 DS_TOKEN_OPAQUE_LEN + 1 - OPAQUE_PREFIX_LEN, &n);
    OPENSSL_cleanse(body, sizeof(body));
    return 0;
}

int ds_token_opaque_parse(const char *prefix, const char *token, size_t len,
                          char tenant[DS_TOKEN_UUID_LEN + 1])
{
    if (!prefix_ours(prefix)) {
        return -EINVAL;
    }
    if (len > DS_TOKEN_OPAQUE_LEN) {
        return -EMSGSIZE;
    }
    uint8_t body[OPAQUE_BODY_BYTES];
    size_t n = 0;
    if (token == NULL || len != DS_TOKEN_OPAQUE_LEN ||
        memcmp(token, prefix, OPAQUE_PREFIX_LEN) != 0 ||
        ds_token_b64url_decode(token + OPAQUE_PREFIX_LEN, len - OPAQUE_PREFIX_LEN, body,
                               sizeof(body), &n) != 0 ||
        n != sizeof(body)) {
        return -EBADMSG;
    }
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < TENANT_BYTES; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            tenant[o++] = '-';
        }
        tenant[o++] = hex[body[i] >> 4];
        tenant[o++] = hex[body[i] & 15];
    }
    tenant[o] = '\0';
    OPENSSL_cleanse(body, sizeof(body));
    return 0;
}

int ds_token_opaque_hash(const char *token, size_t len, uint8_t out[DS_TOKEN_HASH_LEN])
{
    unsigned n = 0;
    if (EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) != 1 || n != DS_TOKEN_HASH_LEN) {
        return -EIO;
    }
    return 0;
}

int ds_token_opaque_hash_hex(const char *token, size_t len, char out[2 * DS_TOKEN_HASH_LEN + 1])
{
    uint8_t h[DS_TOKEN_HASH_LEN];
    int rc = ds_token_opaque_hash(token, len, h);
    if (rc != 0) {
        return rc;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < DS_TOKEN_HASH_LEN; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[(size_t)2 * DS_TOKEN_HASH_LEN] = '\0';
    return 0;
}
