/* password: argon2id password hashes in the PHC string format ($argon2id$v=19$m=...,t=...,p=...
 * $salt$hash), as stored in dossier.users.password_hash, and random passwords for accounts the
 * node creates itself (the demo admin).
 *
 * Hashing costs tens of milliseconds of CPU and DS_PASSWORD_M_COST KiB of memory on purpose:
 * call it from a command, node start-up or the work pool (runtime/loop.h, ds_loop_work), never
 * from an actor's turn. Threads: any. The caller wipes passwords it holds (OPENSSL_cleanse). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum {
    /* OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane. */
    DS_PASSWORD_M_COST = 19456, /* KiB */
    DS_PASSWORD_T_COST = 2,
    DS_PASSWORD_LANES = 1,
    DS_PASSWORD_SALT_LEN = 16,
    DS_PASSWORD_HASH_LEN = 32,
    DS_PASSWORD_ENCODED_MAX = 128, /* bytes of an encoded hash, NUL included */
    DS_PASSWORD_GEN_LEN = 20,      /* characters of a generated password */
};

/* Hashes password (len bytes) with a random salt into out (DS_PASSWORD_ENCODED_MAX bytes):
 * 0, or -EIO if the random source or argon2 failed. */
int ds_password_hash(const char *password, size_t len, char out[DS_PASSWORD_ENCODED_MAX]);

/* True if password matches encoded (an argon2id PHC string); false for a malformed one. */
bool ds_password_verify(const char *encoded, const char *password, size_t len);

/* A random password of DS_PASSWORD_GEN_LEN characters from an unambiguous alphabet, NUL
 * terminated, into out (DS_PASSWORD_GEN_LEN + 1 bytes). 0, or -EIO. */
int ds_password_generate(char out[DS_PASSWORD_GEN_LEN + 1]);
