/* token: the credentials a client presents, as pure functions (no I/O, no database).
 *
 * Access tokens are compact JWS (RFC 7515) JWTs (RFC 7519) signed with HMAC-SHA256, following
 * the JWT best current practices (RFC 8725):
 *   - the algorithm is fixed by the server. The only header accepted is, byte for byte, the one
 *     ds_token_sign() writes: {"alg":"HS256","typ":"JWT","kid":"<kid>"}. alg "none", any other
 *     algorithm, a missing or unknown kid, "crit", "jku", reordered keys or whitespace are all
 *     refused before anything else is looked at (§2.1, §3.1);
 *   - the signature (HMAC over the first two segments, compared with CRYPTO_memcmp) is checked
 *     before a byte of the payload is decoded; only then are exp (with a small leeway), iat,
 *     iss and the claims' shapes checked (§3.2, §3.8, §3.10);
 *   - base64url is decoded strictly: no padding, no characters outside the alphabet, no
 *     non-zero trailing bits, so every token has exactly one spelling (§3.2 of RFC 7515);
 *   - sizes are bounded (DS_TOKEN_MAX_LEN) before anything is decoded or allocated.
 * Claims: iss (the ring's issuer), sub (user uuid), tid (tenant uuid), roles (a non-empty set of
 * viewer/editor/admin), iat, exp (iat + ttl, 15 minutes by default), jti (random, 22 chars).
 *
 * The key ring holds up to DS_TOKEN_RING_MAX HMAC keys by kid: one current key signs, the others
 * still verify, so rotating the signing key logs no one out (add the new key, make it current,
 * remove the old one after the longest ttl has passed). Keys are copied into the ring and wiped
 * (OPENSSL_cleanse) when removed or when the ring is freed.
 *
 * Opaque tokens: refresh tokens ("dsr_...") and API keys ("dsk_...") are the prefix followed by
 * base64url(16-byte tenant uuid || 32 random bytes), 68 characters in all. The tenant is in the
 * clear so the lookup can run under that tenant's row-level security (a refresh or an API call
 * has no Host-derived tenant, DESIGN.md §4); the 256 random bits are the secret. The database
 * keeps only SHA-256 of the whole token string (ds_token_opaque_hash: refresh_tokens.token_hash,
 * api_keys.key_hash, both bytea of 32 bytes), so a stolen backup gives no usable token. The
 * prefix tells an API key from a refresh token and from a JWT (which starts with "eyJ") in an
 * Authorization header (ds_token_classify).
 *
 * Refresh rotation and reuse detection (implemented by the identity actor over 0003_identity.sql;
 * nothing here touches the database):
 *   - login creates a sessions row (the token family, with its absolute expires_at) and its
 *     first refresh_tokens row: token_hash = ds_token_opaque_hash(token), expires_at;
 *   - POST /v1/auth/refresh parses the token (ds_token_opaque_parse gives the tenant to set),
 *     hashes it and looks it up by (tenant_id, token_hash) with the session, FOR UPDATE;
 *       * not found: 401, nothing else;
 *       * found, rotated_at IS NULL, not expired, not revoked, session live: in one transaction
 *         insert the successor row (new token, same session_id), set rotated_at = now() and
 *         replaced_by = successor on the presented row, bump sessions.last_used_at, answer the
 *         new refresh token and a new access token;
 *       * found but rotated_at IS NOT NULL (a token used twice: stolen, or a client race):
 *         revoke the family, sessions.revoked_at = now(), revoked_reason = 'token_reuse'
 *         (and refresh_tokens.revoked_at of its live rows), audit it, answer 401;
 *   - logout revokes one session ('logout'), "log out everywhere" all of the user's
 *     ('logout_all'); a revoked session's tokens are refused even if never rotated.
 * Access tokens are not revocable before exp (15 minutes): that is the price of a check
 * without a database round trip; deactivation and password changes revoke the sessions, so no
 * new access token is issued after them.
 *
 * Errors: 0, or a negative code. -EMSGSIZE: longer than the limit (checked first). -EBADMSG:
 * malformed, a header other than ours, a bad signature or claims that are not ours (HTTP 401,
 * WWW-Authenticate: Bearer error="invalid_token"). -ENOKEY: a well-formed header naming a kid
 * the ring no longer holds (also 401; distinct for the log). -ETIME: a genuine token whose exp
 * (plus the leeway) has passed (401, error_description "token expired"). -EINVAL: a bad
 * argument from our own code. -EIO: the random source or OpenSSL failed.
 *
 * Threads: every function is safe on any thread. A ring is not locked: concurrent
 * ds_token_sign/ds_token_verify calls on one ring are safe, but changing it (add, remove,
 * set_current) must not overlap any other call on it; to rotate while serving, build a new ring
 * and swap the pointer the way immutable config is swapped. Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    DS_TOKEN_KEY_MIN = 32,        /* bytes of an HMAC key, at least (RFC 7518 §3.2) */
    DS_TOKEN_KEY_MAX = 64,        /* bytes of an HMAC key, at most (SHA-256's block) */
    DS_TOKEN_KID_MAX = 32,        /* characters of a kid, from [A-Za-z0-9_-] */
    DS_TOKEN_ISS_MAX = 64,        /* characters of the issuer, printable ASCII but " and \ */
    DS_TOKEN_JTI_LEN = 22,        /* characters of a generated jti (16 random bytes) */
    DS_TOKEN_JTI_MAX = 64,        /* characters of a jti accepted from a token */
    DS_TOKEN_RING_MAX = 8,        /* keys in a ring */
    DS_TOKEN_MAX_LEN = 1024,      /* characters of an access token, at most */
    DS_TOKEN_TTL_DEFAULT = 900,   /* seconds an access token lives: 15 minutes */
    DS_TOKEN_LEEWAY_DEFAULT = 30, /* seconds of clock skew tolerated on exp and iat */
    DS_TOKEN_LEEWAY_MAX = 300,
    DS_TOKEN_UUID_LEN = 36,     /* characters of a canonical uuid, 8-4-4-4-12 lower-case hex */
    DS_TOKEN_SECRET_BYTES = 32, /* random bytes in an opaque token */
    DS_TOKEN_OPAQUE_LEN = 68,   /* "dsr_" + base64url(16 + 32 bytes) */
    DS_TOKEN_HASH_LEN = 32,     /* bytes of ds_token_opaque_hash() */
};

/* Tenant roles, as a bit set (users.roles, service_accounts.roles). */
typedef enum ds_token_role {
    DS_ROLE_VIEWER = 1,
    DS_ROLE_EDITOR = 2,
    DS_ROLE_ADMIN = 4,
} ds_token_role_t;
enum {
    DS_ROLE_ALL = DS_ROLE_VIEWER | DS_ROLE_EDITOR | DS_ROLE_ADMIN
};

/* What an Authorization: Bearer credential is, by its prefix alone (nothing is verified). */
typedef enum ds_token_kind {
    DS_TOKEN_UNKNOWN = 0,
    DS_TOKEN_ACCESS,  /* "eyJ...": a JWT, for ds_token_verify() */
    DS_TOKEN_REFRESH, /* "dsr_..." */
    DS_TOKEN_API_KEY, /* "dsk_..." */
} ds_token_kind_t;

#define DS_TOKEN_PREFIX_REFRESH "dsr_"
#define DS_TOKEN_PREFIX_API_KEY "dsk_"

/* The claims of an access token; strings NUL-terminated. */
typedef struct ds_token_claims {
    char iss[DS_TOKEN_ISS_MAX + 1];
    char sub[DS_TOKEN_UUID_LEN + 1]; /* the user */
    char tid[DS_TOKEN_UUID_LEN + 1]; /* the tenant */
    unsigned roles;                  /* DS_ROLE_* bits, never 0 */
    int64_t iat;                     /* seconds since the epoch */
    int64_t exp;
    char jti[DS_TOKEN_JTI_MAX + 1];
} ds_token_claims_t;

typedef struct ds_token_ring ds_token_ring_t;

/* --- base64url (RFC 4648 §5), without padding ------------------------------------------- */

/* Encoded length of n bytes, without padding. */
size_t ds_token_b64url_len(size_t n);
/* Encodes n bytes into out (cap characters, a NUL included): 0 and the length in *len, or
 * -ENOBUFS if cap is too small. */
int ds_token_b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap, size_t *len);
/* Decodes exactly len characters into out (cap bytes): 0 and the byte count in *n, -EBADMSG for
 * padding, a character outside the alphabet, a length of 1 mod 4 or non-zero trailing bits, or
 * -ENOBUFS if cap is too small. */
int ds_token_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *n);

/* True if s (len bytes) is a canonical uuid: 8-4-4-4-12 lower-case hex digits. */
bool ds_token_uuid_valid(const char *s, size_t len);

/* --- key ring ----------------------------------------------------------------------------- */

/* A new, empty ring for issuer iss (1..DS_TOKEN_ISS_MAX printable ASCII characters, no " or \,
 * copied), issuing tokens that live ttl seconds (1..86400) and tolerating leeway seconds of
 * clock skew (0..DS_TOKEN_LEEWAY_MAX). 0 and the ring in *out, or -EINVAL. Free with
 * ds_token_ring_free(). */
int ds_token_ring_new(const char *iss, int64_t ttl, int64_t leeway, ds_token_ring_t **out);
/* Wipes every key and frees the ring; sets *ring to NULL. Accepts NULL and *ring == NULL. */
void ds_token_ring_free(ds_token_ring_t **ring);
/* Copies key (DS_TOKEN_KEY_MIN..DS_TOKEN_KEY_MAX bytes, from a CSPRNG) under kid
 * (1..DS_TOKEN_KID_MAX of [A-Za-z0-9_-]). The first key added becomes current. 0, -EINVAL
 * (kid or key length), -EEXIST (kid taken), -ENOSPC (DS_TOKEN_RING_MAX keys). */
int ds_token_ring_add(ds_token_ring_t *ring, const char *kid, const uint8_t *key, size_t len);
/* Makes kid the signing key. 0 or -ENOENT. */
int ds_token_ring_set_current(ds_token_ring_t *ring, const char *kid);
/* Wipes and removes kid: tokens signed with it stop verifying (-ENOKEY). 0, -ENOENT, or -EBUSY
 * if kid is the current key (make another current first). */
int ds_token_ring_remove(ds_token_ring_t *ring, const char *kid);
/* The current kid (owned by the ring, valid until it changes), or NULL if the ring is empty. */
const char *ds_token_ring_current(const ds_token_ring_t *ring);
/* DS_TOKEN_KEY_MIN random bytes for a new key into out. 0 or -EIO. */
int ds_token_key_generate(uint8_t out[DS_TOKEN_KEY_MIN]);

/* --- access tokens ------------------------------------------------------------------------ */

/* Fills *out for user sub of tenant tid (canonical uuids) with roles (a non-empty subset of
 * DS_ROLE_ALL), issued now: iss from the ring, iat = now, exp = now + ttl, a random jti.
 * 0, -EINVAL or -EIO. */
int ds_token_claims_init(const ds_token_ring_t *ring, const char *sub, const char *tid,
                         unsigned roles, int64_t now, ds_token_claims_t *out);
/* Signs claims with the ring's current key into out (DS_TOKEN_MAX_LEN + 1 bytes), NUL
 * terminated: 0 and the length in *len; -EINVAL if the ring is empty or the claims are not
 * well formed (uuids, roles, exp > iat, jti of [A-Za-z0-9_-], iss the ring's); -EIO. */
int ds_token_sign(const ds_token_ring_t *ring, const ds_token_claims_t *claims,
                  char out[DS_TOKEN_MAX_LEN + 1], size_t *len);
/* Verifies token (len bytes, need not be NUL terminated) at time now: 0 and the claims in
 * *out; -EMSGSIZE, -EBADMSG, -ENOKEY or -ETIME as described above; *out is written only on
 * success. Accepts iat up to leeway in the future, and exp until now >= exp + leeway. */
int ds_token_verify(const ds_token_ring_t *ring, const char *token, size_t len, int64_t now,
                    ds_token_claims_t *out);

/* --- opaque tokens ------------------------------------------------------------------------ */

/* The kind of a bearer credential by its prefix; DS_TOKEN_UNKNOWN for anything else. */
ds_token_kind_t ds_token_classify(const char *token, size_t len);
/* A new opaque token for tenant (a canonical uuid) with prefix DS_TOKEN_PREFIX_REFRESH or
 * DS_TOKEN_PREFIX_API_KEY into out, NUL terminated. Shown once to the client and never
 * stored: store ds_token_opaque_hash() of it. The caller wipes out after use. 0, -EINVAL
 * (prefix or tenant) or -EIO. */
int ds_token_opaque_new(const char *prefix, const char *tenant, char out[DS_TOKEN_OPAQUE_LEN + 1]);
/* Checks that token (len bytes) is an opaque token with prefix and writes its tenant uuid
 * (canonical, NUL terminated) into tenant. 0, -EMSGSIZE (too long), -EBADMSG (anything else
 * malformed, including a wrong prefix) or -EINVAL (prefix not one of ours). Says nothing of
 * whether the token exists: hash it and look it up. */
int ds_token_opaque_parse(const char *prefix, const char *token, size_t len,
                          char tenant[DS_TOKEN_UUID_LEN + 1]);
/* SHA-256 of token (len bytes) into out: the value stored in token_hash / key_hash. 0, -EIO. */
int ds_token_opaque_hash(const char *token, size_t len, uint8_t out[DS_TOKEN_HASH_LEN]);
/* The same hash as lower-case hex, NUL terminated (for logs of hashes, fixtures, psql). */
int ds_token_opaque_hash_hex(const char *token, size_t len, char out[2 * DS_TOKEN_HASH_LEN + 1]);
