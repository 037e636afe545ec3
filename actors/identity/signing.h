/* signing: the access-token signing keys of a region, kept in the key store directory next to
 * the master key (never in PostgreSQL): KEYS_DIR/tokens/<kid>.key, each 32 random bytes, mode
 * 0600, in a 0700 directory. kids are "k" and the UTC creation time (k20261123T144500Z) plus 4
 * random hex digits, so the newest sorts last and signs; the others still verify, so rotating
 * logs no one out (docs/identity.md). The first node to start without keys makes one.
 *
 * Loading and rotation do blocking file I/O: node start-up and the CLI only. */
#pragma once

#include "actors/identity/token.h"

enum {
    DS_SIGNING_KEEP = 4, /* keys kept after a rotation: the newest */
};

/* Loads every key of keys_dir/tokens into a new ring for issuer iss with ttl seconds (making
 * the first key when there is none): 0 and *out, or a negative code with *why (free it). */
int ds_signing_load(const char *keys_dir, const char *iss, int64_t ttl, ds_token_ring_t **out,
                    char **why);

/* Adds a new key (it signs from the next start of each node) and removes all but the newest
 * DS_SIGNING_KEEP. 0 and the new kid in kid (DS_TOKEN_KID_MAX + 1 bytes), or a negative code
 * with *why. */
int ds_signing_rotate(const char *keys_dir, char kid[DS_TOKEN_KID_MAX + 1], char **why);
