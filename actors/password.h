/* password: argon2id password hashes in the PHC string format ($argon2id$v=19$m=...,t=...,p=...
 * $salt$hash), as stored in dossier.users.password_hash, random passwords for accounts the
 * node creates itself (the demo admin), and the policy every new password must meet (the
 * operator CLI and the HTTP API check the same one).
 *
 * Hashing costs tens of milliseconds of CPU and DS_PASSWORD_M_COST KiB of memory on purpose:
 * call it from a command, node start-up or the work pool (runtime/loop.h, ds_loop_work), never
 * from an actor's turn. Threads: any. The caller wipes passwords it holds (OPENSSL_cleanse). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    /* OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane. */
    DS_PASSWORD_M_COST = 19456, /* KiB */
    DS_PASSWORD_T_COST = 2,
    DS_PASSWORD_LANES = 1,
    DS_PASSWORD_SALT_LEN = 16,
    DS_PASSWORD_HASH_LEN = 32,
    DS_PASSWORD_ENCODED_MAX = 128, /* bytes of an encoded hash, NUL included */
    DS_PASSWORD_GEN_LEN = 20,      /* characters of a generated password */
    DS_PASSWORD_MIN_CHARS = 12,    /* policy: characters (code points) of a new password */
    DS_PASSWORD_MAX_CHARS = 256,
    DS_PASSWORD_MAX_BYTES = 4 * DS_PASSWORD_MAX_CHARS, /* UTF-8: at most 4 bytes a character */
};

/* An argon2id cost (config keys auth.password_*): memory in KiB, passes, lanes. */
typedef struct ds_password_cost {
    uint32_t memory_kib;
    uint32_t iterations;
    uint32_t lanes;
} ds_password_cost_t;

/* Hashes password (len bytes) with a random salt into out (DS_PASSWORD_ENCODED_MAX bytes) at
 * the default cost (DS_PASSWORD_M_COST, _T_COST, _LANES): 0, or -EIO if the random source or
 * argon2 failed. */
int ds_password_hash(const char *password, size_t len, char out[DS_PASSWORD_ENCODED_MAX]);
/* The same at cost (NULL: the default). The encoded hash carries its cost, so verification
 * needs none and old hashes stay valid when the cost changes. -EINVAL for a cost argon2
 * refuses. */
int ds_password_hash_cost(const ds_password_cost_t *cost, const char *password, size_t len,
                          char out[DS_PASSWORD_ENCODED_MAX]);

/* True if password matches encoded (an argon2id PHC string); false for a malformed one. */
bool ds_password_verify(const char *encoded, const char *password, size_t len);

/* A random password of DS_PASSWORD_GEN_LEN characters from an unambiguous alphabet, NUL
 * terminated, into out (DS_PASSWORD_GEN_LEN + 1 bytes). 0, or -EIO. */
int ds_password_generate(char out[DS_PASSWORD_GEN_LEN + 1]);

/* Checks a new password (len bytes, untrusted: any bytes) against the policy:
 *   - valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF),
 *   - no control characters (U+0000..U+001F, U+007F..U+009F); spaces are fine,
 *   - DS_PASSWORD_MIN_CHARS to DS_PASSWORD_MAX_CHARS characters (code points),
 *   - characters of at least two classes: lower-case ASCII letters, upper-case ASCII letters,
 *     digits, anything else (punctuation, spaces, non-ASCII).
 * 0, or -EINVAL with *why (when why is not NULL) set to a static phrase to follow the word
 * "password", e.g. "must be at least 12 characters long". Never reads past len; no allocation;
 * the password is not copied. Threads: any. */
int ds_password_policy_check(const char *password, size_t len, const char **why);
