/* fuzz_token: arbitrary bytes as a bearer credential. ds_token_verify() under a fixed two-key
 * ring must never crash and never accept a token whose signature this file cannot recompute
 * itself (HMAC-SHA256 under the key its header names, with OpenSSL directly); every refusal uses
 * a documented code. The same bytes go through the opaque-token parser and the strict base64url
 * decoder, whose accepted inputs must re-encode to themselves (one spelling per value). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "actors/identity/token.h"

/* The seeds in tests/fuzz/corpus/token/ are signed with these keys at this time. */
static const int64_t now = 1800000000;
static const char *const kids[] = {"k1", "k2"};
static uint8_t keys[2][32];

static ds_token_ring_t *ring_once(void)
{
    static ds_token_ring_t *ring; /* libFuzzer runs inputs on one thread */
    if (ring == NULL) {
        for (size_t i = 0; i < 32; i++) {
            keys[0][i] = (uint8_t)(0x11 + i);
            keys[1][i] = (uint8_t)(0xa0 ^ i);
        }
        if (ds_token_ring_new("https://dossier.test", 900, 30, &ring) != 0 ||
            ds_token_ring_add(ring, kids[0], keys[0], 32) != 0 ||
            ds_token_ring_add(ring, kids[1], keys[1], 32) != 0) {
            abort();
        }
    }
    return ring;
}

/* Aborts unless token carries a correct HMAC under one of the keys, by its header. */
static void check_genuine(const char *token, size_t len)
{
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = strrchr(token, '.');
    if (dot1 == NULL || dot2 == dot1) {
        abort();
    }
    for (size_t k = 0; k < 2; k++) {
        char header[96];
        char want[64];
        size_t n = 0;
        char json[80];
        size_t jl = (size_t)snprintf(json, sizeof(json),
                                     "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kids[k]);
        if (ds_token_b64url_encode((const uint8_t *)json, jl, header, sizeof(header), &n) != 0) {
            abort();
        }
        if (n != (size_t)(dot1 - token) || memcmp(header, token, n) != 0) {
            continue;
        }
        uint8_t sig[32];
        unsigned sl = 0;
        if (HMAC(EVP_sha256(), keys[k], 32, (const uint8_t *)token, (size_t)(dot2 - token), sig,
                 &sl) == NULL ||
            ds_token_b64url_encode(sig, sl, want, sizeof(want), &n) != 0 ||
            n != len - (size_t)(dot2 + 1 - token) || memcmp(want, dot2 + 1, n) != 0) {
            abort();
        }
        return;
    }
    abort();
}

static void check_b64(const char *s, size_t len)
{
    uint8_t out[1024];
    char back[1400];
    size_t n = 0;
    size_t m = 0;
    if (len > 1024 || ds_token_b64url_decode(s, len, out, sizeof(out), &n) != 0) {
        return;
    }
    if (ds_token_b64url_encode(out, n, back, sizeof(back), &m) != 0 || m != len ||
        memcmp(back, s, len) != 0) {
        abort();
    }
}

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ds_token_ring_t *ring = ring_once();
    /* A NUL-terminated copy, so strrchr and the checks above stay inside it. */
    char *token = malloc(size + 1);
    if (token == NULL) {
        return 0;
    }
    memcpy(token, data, size);
    token[size] = '\0';
    ds_token_claims_t c;
    int rc = ds_token_verify(ring, token, size, now, &c);
    if (rc == 0) {
        if (memchr(token, '\0', size) != NULL) {
            abort();
        }
        check_genuine(token, size);
        if (c.roles == 0 || c.exp <= c.iat || !ds_token_uuid_valid(c.sub, strlen(c.sub)) ||
            !ds_token_uuid_valid(c.tid, strlen(c.tid))) {
            abort();
        }
    } else if (rc != -EBADMSG && rc != -ENOKEY && rc != -ETIME && rc != -EMSGSIZE) {
        abort();
    }
    char tenant[DS_TOKEN_UUID_LEN + 1];
    rc = ds_token_opaque_parse(DS_TOKEN_PREFIX_REFRESH, token, size, tenant);
    if ((rc == 0 && !ds_token_uuid_valid(tenant, strlen(tenant))) ||
        (rc != 0 && rc != -EBADMSG && rc != -EMSGSIZE)) {
        abort();
    }
    (void)ds_token_classify(token, size);
    check_b64(token, size);
    free(token);
    return 0;
}
