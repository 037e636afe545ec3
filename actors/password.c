/* password: argon2id hashes and generated passwords. See actors/password.h. */
#include "actors/password.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

int ds_password_hash_cost(const ds_password_cost_t *cost, const char *password, size_t len,
                          char out[DS_PASSWORD_ENCODED_MAX])
{
    ds_password_cost_t c = {DS_PASSWORD_M_COST, DS_PASSWORD_T_COST, DS_PASSWORD_LANES};
    if (cost != NULL) {
        c = *cost;
    }
    uint8_t salt[DS_PASSWORD_SALT_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        return -EIO;
    }
    int rc =
        argon2id_hash_encoded(c.iterations, c.memory_kib, c.lanes, password, len, salt,
                              sizeof(salt), DS_PASSWORD_HASH_LEN, out, DS_PASSWORD_ENCODED_MAX);
    OPENSSL_cleanse(salt, sizeof(salt));
    if (rc == ARGON2_MEMORY_ALLOCATION_ERROR || rc == ARGON2_OK) {
        return rc == ARGON2_OK ? 0 : -EIO;
    }
    return rc == ARGON2_ENCODING_FAIL ? -EIO : -EINVAL;
}

int ds_password_hash(const char *password, size_t len, char out[DS_PASSWORD_ENCODED_MAX])
{
    return ds_password_hash_cost(NULL, password, len, out);
}

bool ds_password_verify(const char *encoded, const char *password, size_t len)
{
    return argon2id_verify(encoded, password, len) == ARGON2_OK;
}

int ds_password_generate(char out[DS_PASSWORD_GEN_LEN + 1])
{
    /* No 0/O/o, 1/l/I: the operator may have to type it. 56 symbols: ~5.8 bits each, 116 bits
     * in all. Rejection sampling keeps every symbol equally likely. */
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    const unsigned n = sizeof(alphabet) - 1;
    size_t o = 0;
    while (o < DS_PASSWORD_GEN_LEN) {
        uint8_t b[32];
        if (RAND_bytes(b, sizeof(b)) != 1) {
            return -EIO;
        }
        for (size_t i = 0; i < sizeof(b) && o < DS_PASSWORD_GEN_LEN; i++) {
            if (b[i] < 256 - 256 % n) {
                out[o++] = alphabet[b[i] % n];
            }
        }
        OPENSSL_cleanse(b, sizeof(b));
    }
    out[o] = '\0';
    return 0;
}

/* The code point at s[*i] (strict UTF-8, RFC 3629), advancing *i; -1 when malformed. */
static int32_t password_next_cp(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char b = s[*i];
    if (b < 0x80) {
        (*i)++;
        return b;
    }
    size_t n = b >= 0xC2 && b <= 0xDF   ? 1
               : b >= 0xE0 && b <= 0xEF ? 2
               : b >= 0xF0 && b <= 0xF4 ? 3
                                        : 0;
    if (n == 0 || len - *i <= n) {
        return -1;
    }
    int32_t cp = b & (0x3F >> n);
    for (size_t k = 1; k <= n; k++) {
        unsigned char c = s[*i + k];
        if ((c & 0xC0) != 0x80) {
            return -1;
        }
        cp = (cp << 6) | (c & 0x3F);
    }
    static const int32_t min_for[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_for[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return -1;
    }
    *i += n + 1;
    return cp;
}

static int password_refuse(const char **why, const char *reason)
{
    if (why != NULL) {
        *why = reason;
    }
    return -EINVAL;
}

int ds_password_policy_check(const char *password, size_t len, const char **why)
{
    if (len > DS_PASSWORD_MAX_BYTES) {
        return password_refuse(why, "must be at most 256 characters long");
    }
    const unsigned char *s = (const unsigned char *)password;
    unsigned classes = 0; /* bit 0 lower, 1 upper, 2 digit, 3 other */
    size_t chars = 0;
    size_t i = 0;
    while (i < len) {
        int32_t cp = password_next_cp(s, len, &i);
        if (cp < 0) {
            return password_refuse(why, "must be valid UTF-8");
        }
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            return password_refuse(why, "must not contain control characters");
        }
        classes |= cp >= 'a' && cp <= 'z'   ? 1U
                   : cp >= 'A' && cp <= 'Z' ? 2U
                   : cp >= '0' && cp <= '9' ? 4U
                                            : 8U;
        chars++;
    }
    if (chars < DS_PASSWORD_MIN_CHARS) {
        return password_refuse(why, "must be at least 12 characters long");
    }
    if (chars > DS_PASSWORD_MAX_CHARS) {
        return password_refuse(why, "must be at most 256 characters long");
    }
    if ((classes & (classes - 1)) == 0) { /* one bit: one class */
        return password_refuse(why, "must mix at least two kinds of characters (lower-case, "
                                    "upper-case, digits, others)");
    }
    return 0;
}
