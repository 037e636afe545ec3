/* password: argon2id hashes and generated passwords. See actors/password.h. */
#include "actors/password.h"

#include <errno.h>
#include <stdint.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

int ds_password_hash(const char *password, size_t len, char out[DS_PASSWORD_ENCODED_MAX])
{
    uint8_t salt[DS_PASSWORD_SALT_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        return -EIO;
    }
    int rc = argon2id_hash_encoded(DS_PASSWORD_T_COST, DS_PASSWORD_M_COST, DS_PASSWORD_LANES,
                                   password, len, salt, sizeof(salt), DS_PASSWORD_HASH_LEN, out,
                                   DS_PASSWORD_ENCODED_MAX);
    OPENSSL_cleanse(salt, sizeof(salt));
    return rc == ARGON2_OK ? 0 : -EIO;
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
