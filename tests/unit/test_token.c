/* Unit tests for actors/identity/token.c: HS256 access tokens under a key ring, base64url, and
 * opaque refresh tokens and API keys.
 *
 * Forged tokens are built here with OpenSSL's HMAC directly (forge()), so a test can hold the
 * signing key and still show that a header other than ours, an extra claim or a bad uuid is
 * refused: the checks do not lean on the signature alone. No threads. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "actors/identity/token.h"

static const char iss[] = "https://dossier.test";
static const char user[] = "0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e5f";
static const char tenant[] = "0190f1c2-0000-7000-8000-00000000abcd";
static const int64_t now = 1800000000;

static uint8_t key1[32];
static uint8_t key2[48];

static ds_token_ring_t *ring_with(const char *kid, const uint8_t *key, size_t len)
{
    ds_token_ring_t *r = NULL;
    assert_int_equal(ds_token_ring_new(iss, DS_TOKEN_TTL_DEFAULT, 30, &r), 0);
    assert_int_equal(ds_token_ring_add(r, kid, key, len), 0);
    return r;
}

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(key1); i++) {
        key1[i] = (uint8_t)(0x11 + i);
    }
    for (size_t i = 0; i < sizeof(key2); i++) {
        key2[i] = (uint8_t)(0xa0 ^ i);
    }
    return 0;
}

/* A token signed now for user/tenant, into out. */
static size_t issue(const ds_token_ring_t *r, unsigned roles, int64_t at, char *out)
{
    ds_token_claims_t c;
    assert_int_equal(ds_token_claims_init(r, user, tenant, roles, at, &c), 0);
    size_t len = 0;
    assert_int_equal(ds_token_sign(r, &c, out, &len), 0);
    assert_int_equal(strlen(out), len);
    return len;
}

/* header.payload.signature from raw JSON texts, HMAC-SHA256 under key (what an attacker who
 * holds a key, or a buggy issuer, could produce). */
static void forge(const char *header, const char *payload, const uint8_t *key, size_t key_len,
                  char *out, size_t cap)
{
    size_t o = 0;
    size_t n = 0;
    assert_int_equal(ds_token_b64url_encode((const uint8_t *)header, strlen(header), out, cap, &n),
                     0);
    o += n;
    out[o++] = '.';
    assert_int_equal(
        ds_token_b64url_encode((const uint8_t *)payload, strlen(payload), out + o, cap - o, &n), 0);
    o += n;
    uint8_t sig[32];
    unsigned sig_len = 0;
    assert_non_null(HMAC(EVP_sha256(), key, (int)key_len, (const uint8_t *)out, o, sig, &sig_len));
    out[o++] = '.';
    assert_int_equal(ds_token_b64url_encode(sig, sig_len, out + o, cap - o, &n), 0);
}

static const char good_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}";

static char *good_payload(char *buf, size_t cap, int64_t iat, int64_t exp)
{
    (void)snprintf(buf, cap,
                   "{\"iss\":\"%s\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[\"editor\"],"
                   "\"iat\":%lld,\"exp\":%lld,\"jti\":\"abc\"}",
                   iss, user, tenant, (long long)iat, (long long)exp);
    return buf;
}

static void test_round_trip(void **state)
{
    (void)state;
    ds_token_ring_t *r = ring_with("k1", key1, sizeof(key1));
    char tok[DS_TOKEN_MAX_LEN + 1];
    size_t len = issue(r, DS_ROLE_VIEWER | DS_ROLE_ADMIN, now, tok);
    assert_memory_equal(tok, "eyJ", 3);
    assert_int_equal(ds_token_classify(tok, len), DS_TOKEN_ACCESS);
    ds_token_claims_t c;
    assert_int_equal(ds_token_verify(r, tok, len, now + 1, &c), 0);
    assert_string_equal(c.iss, iss);
    assert_string_equal(c.sub, user);
    assert_string_equal(c.tid, tenant);
    assert_int_equal(c.roles, DS_ROLE_VIEWER | DS_ROLE_ADMIN);
    assert_int_equal(c.iat, now);
    assert_int_equal(c.exp, now + DS_TOKEN_TTL_DEFAULT);
    assert_int_equal(strlen(c.jti), DS_TOKEN_JTI_LEN);
    /* Two tokens for the same claims differ by their jti. */
    char tok2[DS_TOKEN_MAX_LEN + 1];
    (void)issue(r, DS_ROLE_VIEWER | DS_ROLE_ADMIN, now, tok2);
    assert_string_not_equal(tok, tok2);
    /* A forged token with exactly our shape verifies: forge() matches the real signer. */
    char p[512];
    char f[DS_TOKEN_MAX_LEN + 1];
    forge(good_header, good_payload(p, sizeof(p), now, now + 60), key1, sizeof(key1), f, sizeof(f));
    assert_int_equal(ds_token_verify(r, f, strlen(f), now, &c), 0);
    assert_int_equal(c.roles, DS_ROLE_EDITOR);
    assert_string_equal(c.jti, "abc");
    ds_token_ring_free(&r);
    assert_null(r);
    ds_token_ring_free(&r);
    ds_token_ring_free(NULL);
}

static void test_tampered(void **state)
{
    (void)state;
    ds_token_ring_t *r = ring_with("k1", key1, sizeof(key1));
    char tok[DS_TOKEN_MAX_LEN + 1];
    size_t len = issue(r, DS_ROLE_VIEWER, now, tok);
    ds_token_claims_t c;
    memset(&c, 0x5a, sizeof(c));
    const ds_token_claims_t untouched = c;
    /* Every single-character change anywhere is refused, and *out is left alone. */
    for (size_t i = 0; i < len; i++) {
        char t[DS_TOKEN_MAX_LEN + 1];
        memcpy(t, tok, len + 1);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        int rc = ds_token_verify(r, t, len, now, &c);
        assert_true(rc == -EBADMSG || rc == -ENOKEY);
    }
    assert_memory_equal(&c, &untouched, sizeof(c));
    /* Payload swapped for one granting admin, signature kept. */
    char p[512];
    char f[DS_TOKEN_MAX_LEN + 1];
    forge(good_header, good_payload(p, sizeof(p), now, now + 60), key1, sizeof(key1), f, sizeof(f));
    const char *dot = strchr(tok, '.');
    const char *fdot = strchr(f, '.');
    const char *fsig = strrchr(f, '.');
    char mixed[2 * DS_TOKEN_MAX_LEN];
    (void)snprintf(mixed, sizeof(mixed), "%.*s%.*s%s", (int)(dot - tok), tok, (int)(fsig - fdot),
                   fdot, strrchr(tok, '.'));
    assert_int_equal(ds_token_verify(r, mixed, strlen(mixed), now, &c), -EBADMSG);
    /* Truncated, extended, missing or extra segments, empty. */
    assert_int_equal(ds_token_verify(r, tok, len - 1, now, &c), -EBADMSG);
    char longer[DS_TOKEN_MAX_LEN + 2];
    (void)snprintf(longer, sizeof(longer), "%sA", tok);
    assert_int_equal(ds_token_verify(r, longer, len + 1, now, &c), -EBADMSG);
    (void)snprintf(longer, sizeof(longer), "%s.", tok);
    assert_int_equal(ds_token_verify(r, longer, len + 1, now, &c), -EBADMSG);
    assert_int_equal(ds_token_verify(r, tok, (size_t)(strrchr(tok, '.') - tok), now, &c), -EBADMSG);
    assert_int_equal(ds_token_verify(r, "", 0, now, &c), -EBADMSG);
    assert_int_equal(ds_token_verify(r, "..", 2, now, &c), -EBADMSG);
    /* Signed with another key under the same kid. */
    forge(good_header, p, key2, 32, f, sizeof(f));
    assert_int_equal(ds_token_verify(r, f, strlen(f), now, &c), -EBADMSG);
    ds_token_ring_free(&r);
}

static void test_headers_refused(void **state)
{
    (void)state;
    ds_token_ring_t *r = ring_with("k1", key1, sizeof(key1));
    char p[512];
    (void)good_payload(p, sizeof(p), now, now + 60);
    /* Each header is "signed" with the right key: the header alone must sink it. */
    static const char *const bad[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"alg\":\"HS512\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"alg\":\"hs256\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\",\"crit\":[\"exp\"]}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\",\"jku\":\"https://evil\"}",
        "{\"typ\":\"JWT\",\"alg\":\"HS256\",\"kid\":\"k1\"}",
        "{ \"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"alg\":\"HS256\",\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k\\u0031\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"\"}",
        "[]",
        "",
    };
    ds_token_claims_t c;
    char f[DS_TOKEN_MAX_LEN + 1];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        forge(bad[i], p, key1, sizeof(key1), f, sizeof(f));
        assert_int_equal(ds_token_verify(r, f, strlen(f), now, &c), -EBADMSG);
    }
    /* alg none with an empty signature, as such attacks send it. */
    char none[DS_TOKEN_MAX_LEN + 1];
    forge(bad[0], p, key1, sizeof(key1), none, sizeof(none));
    *(strrchr(none, '.') + 1) = '\0';
    assert_int_equal(ds_token_verify(r, none, strlen(none), now, &c), -EBADMSG);
    /* Our header with a kid the ring does not hold: -ENOKEY. */
    forge("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k9\"}", p, key1, sizeof(key1), f,
          sizeof(f));
    assert_int_equal(ds_token_verify(r, f, strlen(f), now, &c), -ENOKEY);
    ds_token_ring_free(&r);
}

static void test_claims_refused(void **state)
{
    (void)state;
    ds_token_ring_t *r = ring_with("k1", key1, sizeof(key1));
    const long long t = now;
    char p[512];
    static const char *const fmt[] = {
        /* wrong issuer */
        "{\"iss\":\"other\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[\"viewer\"],"
        "\"iat\":%lld,\"exp\":%lld,\"jti\":\"a\"}",
        /* extra claim */
        "{\"iss\":\""
        "https://dossier.test"
        "\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":"
        "[\"viewer\"],\"iat\":%lld,\"exp\":%lld,\"jti\":\"a\",\"x\":1}",
        /* unknown role */
        "{\"iss\":\"https://dossier.test\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[\"root\"],"
        "\"iat\":%lld,\"exp\":%lld,\"jti\":\"a\"}",
        /* duplicate role */
        "{\"iss\":\"https://dossier.test\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":"
        "[\"viewer\",\"viewer\"],\"iat\":%lld,\"exp\":%lld,\"jti\":\"a\"}",
        /* no role */
        "{\"iss\":\"https://dossier.test\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[],"
        "\"iat\":%lld,\"exp\":%lld,\"jti\":\"a\"}",
        /* duplicate key */
        "{\"iss\":\"https://dossier.test\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[\"viewer\"],"
        "\"iat\":%lld,\"exp\":%lld,\"jti\":\"a\",\"jti\":\"b\"}",
        /* exp a string */
        "{\"iss\":\"https://dossier.test\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[\"viewer\"],"
        "\"iat\":%lld,\"exp\":\"%lld\",\"jti\":\"a\"}",
        /* exp a real */
        "{\"iss\":\"https://dossier.test\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[\"viewer\"],"
        "\"iat\":%lld,\"exp\":%lld.0,\"jti\":\"a\"}",
    };
    ds_token_claims_t c;
    char f[DS_TOKEN_MAX_LEN + 1];
    for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
        // NOLINTNEXTLINE(clang-diagnostic-format-nonliteral): formats are the table above
        (void)snprintf(p, sizeof(p), fmt[i], user, tenant, t, t + 60);
        forge(good_header, p, key1, sizeof(key1), f, sizeof(f));
        assert_int_equal(ds_token_verify(r, f, strlen(f), now, &c), -EBADMSG);
    }
    /* Non-canonical uuids: upper case, no dashes, braces. */
    static const char *const uuids[] = {
        "0190F1C2-7A4B-7C3D-8E9F-0A1B2C3D4E5F",
        "0190f1c27a4b7c3d8e9f0a1b2c3d4e5f",
        "{0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e}",
    };
    for (size_t i = 0; i < sizeof(uuids) / sizeof(uuids[0]); i++) {
        (void)snprintf(p, sizeof(p),
                       "{\"iss\":\"%s\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[\"viewer\"],"
                       "\"iat\":%lld,\"exp\":%lld,\"jti\":\"a\"}",
                       iss, uuids[i], tenant, t, t + 60);
        forge(good_header, p, key1, sizeof(key1), f, sizeof(f));
        assert_int_equal(ds_token_verify(r, f, strlen(f), now, &c), -EBADMSG);
        (void)snprintf(p, sizeof(p),
                       "{\"iss\":\"%s\",\"sub\":\"%s\",\"tid\":\"%s\",\"roles\":[\"viewer\"],"
                       "\"iat\":%lld,\"exp\":%lld,\"jti\":\"a\"}",
                       iss, user, uuids[i], t, t + 60);
        forge(good_header, p, key1, sizeof(key1), f, sizeof(f));
        assert_int_equal(ds_token_verify(r, f, strlen(f), now, &c), -EBADMSG);
    }
    /* exp before iat. */
    forge(good_header, good_payload(p, sizeof(p), now, now - 1), key1, sizeof(key1), f, sizeof(f));
    assert_int_equal(ds_token_verify(r, f, strlen(f), now - 10, &c), -EBADMSG);
    ds_token_ring_free(&r);
}

static void test_expiry_and_leeway(void **state)
{
    (void)state;
    ds_token_ring_t *r = ring_with("k1", key1, sizeof(key1));
    char tok[DS_TOKEN_MAX_LEN + 1];
    size_t len = issue(r, DS_ROLE_VIEWER, now, tok);
    const int64_t exp = now + DS_TOKEN_TTL_DEFAULT;
    ds_token_claims_t c;
    assert_int_equal(ds_token_verify(r, tok, len, exp - 1, &c), 0);
    assert_int_equal(ds_token_verify(r, tok, len, exp, &c), 0);
    assert_int_equal(ds_token_verify(r, tok, len, exp + 29, &c), 0);
    assert_int_equal(ds_token_verify(r, tok, len, exp + 30, &c), -ETIME);
    assert_int_equal(ds_token_verify(r, tok, len, exp + 100000, &c), -ETIME);
    /* iat in the future: up to the leeway (a node whose clock is ahead issued it). */
    assert_int_equal(ds_token_verify(r, tok, len, now - 30, &c), 0);
    assert_int_equal(ds_token_verify(r, tok, len, now - 31, &c), -EBADMSG);
    /* Expired and tampered: the signature is checked first, so invalid wins. */
    tok[len - 2] = tok[len - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(ds_token_verify(r, tok, len, exp + 100, &c), -EBADMSG);
    ds_token_ring_free(&r);
    /* Zero leeway. */
    assert_int_equal(ds_token_ring_new(iss, 60, 0, &r), 0);
    assert_int_equal(ds_token_ring_add(r, "k1", key1, sizeof(key1)), 0);
    len = issue(r, DS_ROLE_VIEWER, now, tok);
    assert_int_equal(ds_token_verify(r, tok, len, now + 59, &c), 0);
    assert_int_equal(ds_token_verify(r, tok, len, now + 60, &c), -ETIME);
    assert_int_equal(ds_token_verify(r, tok, len, now - 1, &c), -EBADMSG);
    ds_token_ring_free(&r);
}

static void test_rotation(void **state)
{
    (void)state;
    ds_token_ring_t *r = ring_with("2026-01", key1, sizeof(key1));
    assert_string_equal(ds_token_ring_current(r), "2026-01");
    char old[DS_TOKEN_MAX_LEN + 1];
    size_t old_len = issue(r, DS_ROLE_VIEWER, now, old);
    /* A second key does not become current by being added. */
    assert_int_equal(ds_token_ring_add(r, "2026-02", key2, sizeof(key2)), 0);
    assert_string_equal(ds_token_ring_current(r), "2026-01");
    assert_int_equal(ds_token_ring_set_current(r, "2026-02"), 0);
    char new[DS_TOKEN_MAX_LEN + 1];
    size_t new_len = issue(r, DS_ROLE_VIEWER, now, new);
    ds_token_claims_t c;
    assert_int_equal(ds_token_verify(r, old, old_len, now, &c), 0);
    assert_int_equal(ds_token_verify(r, new, new_len, now, &c), 0);
    /* The new token names the new kid in its header. */
    assert_int_not_equal(strncmp(old, new, (size_t)(strchr(old, '.') - old)), 0);
    assert_int_equal(ds_token_ring_remove(r, "2026-02"), -EBUSY);
    assert_int_equal(ds_token_ring_remove(r, "2026-01"), 0);
    assert_int_equal(ds_token_ring_remove(r, "2026-01"), -ENOENT);
    assert_int_equal(ds_token_verify(r, old, old_len, now, &c), -ENOKEY);
    assert_int_equal(ds_token_verify(r, new, new_len, now, &c), 0);
    /* The old kid may come back with another key: old tokens still fail. */
    assert_int_equal(ds_token_ring_add(r, "2026-01", key2, 32), 0);
    assert_int_equal(ds_token_verify(r, old, old_len, now, &c), -EBADMSG);
    /* A ring that never held the kid. */
    ds_token_ring_t *other = ring_with("k1", key1, sizeof(key1));
    assert_int_equal(ds_token_verify(other, new, new_len, now, &c), -ENOKEY);
    ds_token_ring_free(&other);
    ds_token_ring_free(&r);
}

static void test_ring_arguments(void **state)
{
    (void)state;
    ds_token_ring_t *r = NULL;
    assert_int_equal(ds_token_ring_new("", 900, 30, &r), -EINVAL);
    assert_int_equal(ds_token_ring_new("a\"b", 900, 30, &r), -EINVAL);
    assert_int_equal(ds_token_ring_new(iss, 0, 30, &r), -EINVAL);
    assert_int_equal(ds_token_ring_new(iss, 900, -1, &r), -EINVAL);
    assert_int_equal(ds_token_ring_new(iss, 900, DS_TOKEN_LEEWAY_MAX + 1, &r), -EINVAL);
    assert_null(r);
    assert_int_equal(ds_token_ring_new(iss, 900, 30, &r), 0);
    assert_null(ds_token_ring_current(r));
    /* An empty ring signs nothing and verifies nothing. */
    ds_token_claims_t c;
    assert_int_equal(ds_token_claims_init(r, user, tenant, DS_ROLE_VIEWER, now, &c), 0);
    char tok[DS_TOKEN_MAX_LEN + 1];
    size_t len = 0;
    assert_int_equal(ds_token_sign(r, &c, tok, &len), -EINVAL);
    uint8_t key[DS_TOKEN_KEY_MAX + 1] = {0};
    assert_int_equal(ds_token_ring_add(r, "k", key, DS_TOKEN_KEY_MIN - 1), -EINVAL);
    assert_int_equal(ds_token_ring_add(r, "k", key, DS_TOKEN_KEY_MAX + 1), -EINVAL);
    assert_int_equal(ds_token_ring_add(r, "", key, 32), -EINVAL);
    assert_int_equal(ds_token_ring_add(r, "a.b", key, 32), -EINVAL);
    assert_int_equal(ds_token_ring_add(r, "a\"b", key, 32), -EINVAL);
    assert_int_equal(ds_token_ring_add(r, "k0123456789012345678901234567890123", key, 32), -EINVAL);
    assert_int_equal(ds_token_ring_set_current(r, "k"), -ENOENT);
    for (int i = 0; i < DS_TOKEN_RING_MAX; i++) {
        char kid[8];
        (void)snprintf(kid, sizeof(kid), "k%d", i);
        assert_int_equal(ds_token_key_generate(key), 0);
        assert_int_equal(ds_token_ring_add(r, kid, key, DS_TOKEN_KEY_MIN), 0);
    }
    assert_int_equal(ds_token_ring_add(r, "k0", key, 32), -EEXIST);
    assert_int_equal(ds_token_ring_add(r, "kx", key, 32), -ENOSPC);
    /* Claims the signer refuses. */
    assert_int_equal(ds_token_claims_init(r, "0190F1C2-7A4B-7C3D-8E9F-0A1B2C3D4E5F", tenant,
                                          DS_ROLE_VIEWER, now, &c),
                     -EINVAL);
    assert_int_equal(ds_token_claims_init(r, user, "nope", DS_ROLE_VIEWER, now, &c), -EINVAL);
    assert_int_equal(ds_token_claims_init(r, user, tenant, 0, now, &c), -EINVAL);
    assert_int_equal(ds_token_claims_init(r, user, tenant, 8, now, &c), -EINVAL);
    assert_int_equal(ds_token_claims_init(r, user, tenant, DS_ROLE_VIEWER, now, &c), 0);
    ds_token_claims_t bad = c;
    bad.exp = bad.iat;
    assert_int_equal(ds_token_sign(r, &bad, tok, &len), -EINVAL);
    bad = c;
    (void)snprintf(bad.jti, sizeof(bad.jti), "a\"b");
    assert_int_equal(ds_token_sign(r, &bad, tok, &len), -EINVAL);
    bad = c;
    (void)snprintf(bad.iss, sizeof(bad.iss), "other");
    assert_int_equal(ds_token_sign(r, &bad, tok, &len), -EINVAL);
    assert_int_equal(ds_token_sign(r, &c, tok, &len), 0);
    /* Too long is refused before anything is read. */
    char big[DS_TOKEN_MAX_LEN + 1];
    memset(big, 'A', sizeof(big));
    assert_int_equal(ds_token_verify(r, big, sizeof(big), now, &c), -EMSGSIZE);
    ds_token_ring_free(&r);
}

static void test_b64url(void **state)
{
    (void)state;
    static const char *const vec[][2] = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    char out[32];
    uint8_t bytes[32];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        size_t in = strlen(vec[i][0]);
        assert_int_equal(ds_token_b64url_len(in), strlen(vec[i][1]));
        assert_int_equal(
            ds_token_b64url_encode((const uint8_t *)vec[i][0], in, out, sizeof(out), &n), 0);
        assert_string_equal(out, vec[i][1]);
        assert_int_equal(ds_token_b64url_decode(vec[i][1], n, bytes, sizeof(bytes), &n), 0);
        assert_int_equal(n, in);
        assert_memory_equal(bytes, vec[i][0], in);
    }
    /* The URL-safe alphabet: 0xfb 0xff is "-_8", never "+/8". */
    const uint8_t hi[] = {0xfb, 0xff};
    assert_int_equal(ds_token_b64url_encode(hi, 2, out, sizeof(out), &n), 0);
    assert_string_equal(out, "-_8");
    assert_int_equal(ds_token_b64url_decode("-_8", 3, bytes, sizeof(bytes), &n), 0);
    assert_memory_equal(bytes, hi, 2);
    static const char *const bad[] = {
        "Zg==", "Zg=",      "Zm8=",  "+_8",    "/_8",  "Z",     "Zm9vY", "Zh",
        "Zm9",  "Zm9vYmF=", "Zm 9v", "Zm9v\n", "Zm9.", "Z\x80", "Zm\0v",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = strlen(bad[i]) + (i == sizeof(bad) / sizeof(bad[0]) - 1 ? 2 : 0);
        assert_int_equal(ds_token_b64url_decode(bad[i], len, bytes, sizeof(bytes), &n), -EBADMSG);
    }
    /* Output bounds. */
    assert_int_equal(ds_token_b64url_encode((const uint8_t *)"foo", 3, out, 4, &n), -ENOBUFS);
    assert_int_equal(ds_token_b64url_decode("Zm9vYmFy", 8, bytes, 5, &n), -ENOBUFS);
}

static void test_uuid(void **state)
{
    (void)state;
    assert_true(ds_token_uuid_valid(user, strlen(user)));
    assert_false(ds_token_uuid_valid("0190F1C2-7A4B-7C3D-8E9F-0A1B2C3D4E5F", 36));
    assert_false(ds_token_uuid_valid("0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e5", 35));
    assert_false(ds_token_uuid_valid("0190f1c2_7a4b-7c3d-8e9f-0a1b2c3d4e5f", 36));
    assert_false(ds_token_uuid_valid("0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e5g", 36));
    assert_false(ds_token_uuid_valid(NULL, 36));
}

static void test_opaque(void **state)
{
    (void)state;
    char a[DS_TOKEN_OPAQUE_LEN + 1];
    char b[DS_TOKEN_OPAQUE_LEN + 1];
    assert_int_equal(ds_token_opaque_new(DS_TOKEN_PREFIX_REFRESH, tenant, a), 0);
    assert_int_equal(ds_token_opaque_new(DS_TOKEN_PREFIX_REFRESH, tenant, b), 0);
    assert_int_equal(strlen(a), DS_TOKEN_OPAQUE_LEN);
    assert_memory_equal(a, "dsr_", 4);
    assert_string_not_equal(a, b);
    /* Same tenant prefix, different secret. */
    assert_memory_equal(a, b, 4 + 21);
    assert_int_equal(ds_token_classify(a, strlen(a)), DS_TOKEN_REFRESH);
    char t[DS_TOKEN_UUID_LEN + 1];
    assert_int_equal(ds_token_opaque_parse(DS_TOKEN_PREFIX_REFRESH, a, strlen(a), t), 0);
    assert_string_equal(t, tenant);
    assert_int_equal(ds_token_opaque_parse(DS_TOKEN_PREFIX_API_KEY, a, strlen(a), t), -EBADMSG);
    char k[DS_TOKEN_OPAQUE_LEN + 1];
    assert_int_equal(ds_token_opaque_new(DS_TOKEN_PREFIX_API_KEY, user, k), 0);
    assert_memory_equal(k, "dsk_", 4);
    assert_int_equal(ds_token_classify(k, strlen(k)), DS_TOKEN_API_KEY);
    assert_int_equal(ds_token_opaque_parse(DS_TOKEN_PREFIX_API_KEY, k, strlen(k), t), 0);
    assert_string_equal(t, user);
    /* Malformed. */
    char m[DS_TOKEN_OPAQUE_LEN + 2];
    assert_int_equal(ds_token_opaque_parse(DS_TOKEN_PREFIX_REFRESH, a, strlen(a) - 1, t), -EBADMSG);
    (void)snprintf(m, sizeof(m), "%sA", a);
    assert_int_equal(ds_token_opaque_parse(DS_TOKEN_PREFIX_REFRESH, m, strlen(m), t), -EMSGSIZE);
    memcpy(m, a, sizeof(a));
    m[10] = '+';
    assert_int_equal(ds_token_opaque_parse(DS_TOKEN_PREFIX_REFRESH, m, strlen(m), t), -EBADMSG);
    m[10] = '=';
    assert_int_equal(ds_token_opaque_parse(DS_TOKEN_PREFIX_REFRESH, m, strlen(m), t), -EBADMSG);
    memcpy(m, a, sizeof(a));
    m[0] = 'D';
    assert_int_equal(ds_token_opaque_parse(DS_TOKEN_PREFIX_REFRESH, m, strlen(m), t), -EBADMSG);
    assert_int_equal(ds_token_opaque_parse("xyz_", a, strlen(a), t), -EINVAL);
    assert_int_equal(ds_token_opaque_new("dsx_", tenant, m), -EINVAL);
    assert_int_equal(ds_token_opaque_new(DS_TOKEN_PREFIX_REFRESH, "not-a-uuid", m), -EINVAL);
    assert_int_equal(ds_token_classify("Bearer", 6), DS_TOKEN_UNKNOWN);
    assert_int_equal(ds_token_classify("ds", 2), DS_TOKEN_UNKNOWN);
    /* The stored hash: SHA-256 of the whole string (FIPS 180-2 "abc" vector). */
    uint8_t h[DS_TOKEN_HASH_LEN];
    char hex[2 * DS_TOKEN_HASH_LEN + 1];
    assert_int_equal(ds_token_opaque_hash("abc", 3, h), 0);
    assert_int_equal(h[0], 0xba);
    assert_int_equal(h[31], 0xad);
    assert_int_equal(ds_token_opaque_hash_hex("abc", 3, hex), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    uint8_t ha[DS_TOKEN_HASH_LEN];
    uint8_t hb[DS_TOKEN_HASH_LEN];
    assert_int_equal(ds_token_opaque_hash(a, strlen(a), ha), 0);
    assert_int_equal(ds_token_opaque_hash(b, strlen(b), hb), 0);
    assert_memory_not_equal(ha, hb, sizeof(ha));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_headers_refused),
        cmocka_unit_test(test_claims_refused),
        cmocka_unit_test(test_expiry_and_leeway),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_ring_arguments),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_opaque),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
