/* checkpoint: signed heads of a tenant's audit chain, kept outside PostgreSQL (docs/audit.md).
 *
 * The key. One Ed25519 key per region signs every checkpoint: the PKCS#8 PEM file
 * KEYS_DIR/audit-ed25519.pem (0600), beside the blob store's master key and never in the
 * database. ds_audit_signer_open() generates it on first need: a 0600 temporary, fsynced, then
 * link(2)ed to the final name, so two processes starting at once agree on one key. A key file
 * readable by group or others is refused. Its key id is the hex of the first 16 bytes of
 * SHA-256 of the raw 32-byte public key.
 *
 * A checkpoint says "the chain of tenant T had entry seq with this hash when signed_at" and is
 * stored as two lines: the payload, canonical JSON with the keys in this order and no spaces,
 *     {"v":1,"tenant_id":"<uuid>","seq":<n>,"hash":"<64 hex>","signed_at":"<YYYY-MM-DDTHH:MM:SSZ>",
 *      "key_id":"<32 hex>"}
 * then the Ed25519 signature of the payload's bytes in 128 lower-case hex digits, each line
 * ended by '\n'. The parser accepts only that exact spelling (one per checkpoint).
 *
 * Storage: in the tenant's blob store (transports/blob/blob.h, encrypted under the tenant's
 * key) as DS_AUDIT_CP_LATEST, replaced by each new checkpoint, and as
 * audit/checkpoints/<seq, 20 digits>, one object per checkpoint, kept as a history.
 *
 * Threads: a signer never changes after open; any thread may use it. The functions that touch
 * files (signer open, load, store) block: node start-up and shutdown, commands and tests, never
 * an actor. Signing and parsing are pure CPU (microseconds). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/audit/chain.h"
#include "transports/blob/blob.h"

#define DS_AUDIT_KEY_FILE  "audit-ed25519.pem"
#define DS_AUDIT_CP_LATEST "audit/checkpoint-latest"

enum {
    DS_AUDIT_KEY_ID_HEX = 32,
    DS_AUDIT_SIG_LEN = 64,
    DS_AUDIT_SIG_HEX = 128,
    DS_AUDIT_TIME_LEN = 20,    /* YYYY-MM-DDTHH:MM:SSZ */
    DS_AUDIT_CP_MAX = 512,     /* bytes of a stored checkpoint, at most */
    DS_AUDIT_CP_NAME_MAX = 40, /* "audit/checkpoints/" and 20 digits, NUL */
};

typedef struct ds_audit_signer ds_audit_signer_t;

typedef struct ds_audit_checkpoint {
    char tenant_id[DS_AUDIT_UUID_LEN + 1];
    uint64_t seq; /* >= 1 */
    uint8_t hash[DS_AUDIT_HASH_LEN];
    char signed_at[DS_AUDIT_TIME_LEN + 1];
    char key_id[DS_AUDIT_KEY_ID_HEX + 1];
} ds_audit_checkpoint_t;

/* Loads KEYS_DIR/audit-ed25519.pem, generating it first when it is missing and create is set
 * (keys_dir is made 0700 if missing; its parent must exist). 0 and *out (free with
 * ds_audit_signer_free()); -ENOENT when missing and !create; -EPERM when the file is not a
 * regular file of mode 0600 or stricter; -EBADMSG when it is not an Ed25519 private key;
 * -errno for I/O. */
int ds_audit_signer_open(const char *keys_dir, bool create, ds_audit_signer_t **out);
/* Frees the key. Accepts NULL; sets *sp to NULL. */
void ds_audit_signer_free(ds_audit_signer_t **sp);
/* The key id (32 hex digits). Valid while s lives. */
const char *ds_audit_signer_key_id(const ds_audit_signer_t *s);

/* The UTC time now as YYYY-MM-DDTHH:MM:SSZ into out. */
void ds_audit_now(char out[DS_AUDIT_TIME_LEN + 1]);

/* The stored bytes of cp signed by s (cp->key_id is ignored: s's is written). 0 and a
 * NUL-terminated string in *out (free() it) of *len bytes; -EINVAL for a cp with seq 0 or a
 * tenant or time of the wrong length; -EIO if OpenSSL failed. */
int ds_audit_checkpoint_sign(const ds_audit_signer_t *s, const ds_audit_checkpoint_t *cp,
                             char **out, size_t *len);

/* Parses stored bytes without checking the signature (the fuzz target's entry). 0, *out and
 * the signature in sig; DS_EDECODE when data is not exactly the format above. */
int ds_audit_checkpoint_parse(const uint8_t *data, size_t len, ds_audit_checkpoint_t *out,
                              uint8_t sig[DS_AUDIT_SIG_LEN]);
/* Parses and checks the signature under s: 0 and *out; DS_EDECODE for bytes not in the format;
 * -EKEYREJECTED for a signature that does not verify or a key id that is not s's. */
int ds_audit_checkpoint_open(const ds_audit_signer_t *s, const uint8_t *data, size_t len,
                             ds_audit_checkpoint_t *out);

/* "audit/checkpoints/<seq as 20 digits>" into out. */
void ds_audit_checkpoint_name(uint64_t seq, char out[DS_AUDIT_CP_NAME_MAX]);

/* Reads and checks tenant's latest checkpoint (blocking). 0 and *out; -ENOENT when there is
 * none (no object, or the tenant has no key yet); -EKEYREJECTED or DS_EDECODE for a forged one
 * (also when its tenant_id is not tenant's); -EBADMSG when the blob fails authentication (a
 * file changed behind the store); other blob errors. */
int ds_audit_checkpoint_load(ds_blob_store_t *bs, const ds_audit_signer_t *s, const char *tenant,
                             ds_audit_checkpoint_t *out);
/* Writes signed bytes (len <= DS_AUDIT_CP_MAX) as tenant's checkpoint of seq: the history
 * object first, then DS_AUDIT_CP_LATEST (blocking). 0, or the blob store's error. */
int ds_audit_checkpoint_store(ds_blob_store_t *bs, const char *tenant, uint64_t seq,
                              const char *bytes, size_t len);
