/* keystore: the region's master key and the tenants' keys (DESIGN.md §4, docs/storage.md).
 *
 * Hierarchy. Every object has a random data key (transports/blob/blob.h), wrapped by its
 * tenant's key; every tenant key is wrapped by the region's master key. The master key is a
 * 0600 file, the same on every node of a region (copy it, or share the key directory); tenant
 * keys are small files in a directory of their own, never in PostgreSQL, so a database backup
 * alone decrypts nothing.
 *
 *   master.key           "DSMK" v1, key id (16 random bytes), key (32), SHA-256 check (8)
 *   master.key.new       during a rotation only: the key being rolled in
 *   master.key.old       after a rotation: the key it replaced (for recovery; see rotate)
 *   <tenant_dir>/<uuid>.key       "DSTK" v1, master key id, tenant key id, nonce, the tenant
 *                                 key sealed with AES-256-GCM under the master key (AAD: a
 *                                 label, the tenant uuid and the file's fixed fields), tag
 *   <tenant_dir>/<uuid>.shredded  tombstone: the tenant's key was destroyed on purpose
 *
 * Invariants. A key file is published only whole (temporary, fsync, link or rename, directory
 * fsync). Every tenant key file is readable at every instant of a rotation, also after a crash
 * in it: a wrapping key is looked up by its id in master.key, master.key.new and
 * master.key.old. A tenant with a tombstone never gets a key again.
 *
 * Tenants are named by their UUID in canonical form: 36 characters, lower-case hex and dashes
 * (8-4-4-4-12). Upper case is refused so that one tenant never has two spellings.
 *
 * Secrets: keys handed out (ds_tenant_key_t) are the caller's to wipe with
 * ds_keystore_key_wipe(); nothing here logs a key or its bytes.
 *
 * Threads: a ds_keystore_t never changes after open, so every call is safe from any number of
 * threads at once (and processes: files are published atomically). Every call blocks on file
 * I/O: call it from a thread that may block (libuv's pool, a command), never from an actor. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ds_keystore ds_keystore_t;

enum {
    DS_KEYSTORE_KEY_LEN = 32,    /* AES-256 */
    DS_KEYSTORE_KEY_ID_LEN = 16, /* random key ids */
    DS_TENANT_ID_LEN = 36,       /* canonical UUID text */
};

typedef struct ds_keystore_cfg {
    const char *master_path; /* the master key file, e.g. DATA_DIR/keys/master.key */
    const char *tenant_dir;  /* tenant key files, e.g. DATA_DIR/keys/tenants (made 0700) */
    bool create_master;      /* generate the master key when the file is missing */
} ds_keystore_cfg_t;

/* A tenant's key, unwrapped. Wipe with ds_keystore_key_wipe() when done. */
typedef struct ds_tenant_key {
    uint8_t id[DS_KEYSTORE_KEY_ID_LEN]; /* recorded in each object it wraps */
    uint8_t key[DS_KEYSTORE_KEY_LEN];
} ds_tenant_key_t;

/* What a rotation did. */
typedef struct ds_keystore_rotation {
    uint64_t rewrapped; /* tenant key files re-wrapped under the new master key */
    uint64_t unchanged; /* already under it (a rotation resumed after a crash) */
    unsigned passes;    /* directory scans (a tenant created meanwhile takes another) */
    uint8_t new_id[DS_KEYSTORE_KEY_ID_LEN]; /* the master key id now in master.key */
} ds_keystore_rotation_t;

/* True when s is a canonical tenant UUID (see above). NULL is not. */
bool ds_keystore_tenant_valid(const char *s);

/* Opens the key store: loads the master key (generating it first when create_master is set
 * and the file is missing: a 0600 temporary published with link(2), so when two processes
 * start at once exactly one key wins and both use it) and creates tenant_dir (0700, with its
 * parents) if missing. Removes temporaries older than a minute left by a crash. 0 and the key
 * store in *out (free with ds_keystore_free()); -EINVAL for a missing path; -ENOENT when the
 * master key is missing and create_master is off; -EBADMSG for a master key file that is not
 * one (wrong size, magic or check); -errno for I/O. */
int ds_keystore_open(const ds_keystore_cfg_t *cfg, ds_keystore_t **out);

/* Wipes the master key and frees. Accepts NULL; sets *ksp to NULL. */
void ds_keystore_free(ds_keystore_t **ksp);

/* The current master key id of this handle (as loaded at open) into out. */
void ds_keystore_master_id(const ds_keystore_t *ks, uint8_t out[DS_KEYSTORE_KEY_ID_LEN]);

/* The tenant's key into *out. With create, a tenant without a key gets a new random one (two
 * racing creators agree: the first link wins); without, that is -ENOKEY. -EINVAL for a tenant
 * that is not a canonical UUID; -EKEYREVOKED when the tenant's key was shredded; -EBADMSG when
 * the key file is damaged or was not sealed for this tenant; -ENOKEY also when the master key
 * that wrapped it is in none of the master key files; -errno for I/O. */
int ds_keystore_tenant_key(ds_keystore_t *ks, const char *tenant, bool create,
                           ds_tenant_key_t *out);

/* Crypto-shredding: destroys the tenant's key for good. Writes the tombstone first (so no
 * creator can bring a key back), then overwrites the key file with random bytes, fsyncs,
 * unlinks it (and any temporary of that tenant) and fsyncs the directory. Every object of the
 * tenant is unreadable afterwards (-EKEYREVOKED) by every process sharing the directory, as
 * tenant keys are read from their file at each open (readers opened before keep their data
 * key until freed); other tenants are untouched. Idempotent: 0
 * also when the tenant had no key. -EINVAL for a bad tenant; -errno for I/O (run it again). See
 * docs/storage.md for what a shred means for backups of the key store. */
int ds_keystore_shred_tenant(ds_keystore_t *ks, const char *tenant);

/* True when the tenant has been shredded (its tombstone exists). */
bool ds_keystore_tenant_shredded(ds_keystore_t *ks, const char *tenant);

/* Rotates the master key: stages a new key in master.key.new (or resumes with the one already
 * staged by a rotation that crashed), re-wraps every tenant key file under it (each file
 * replaced atomically; scans repeat, at most 8 times, until one finds nothing left to do),
 * then saves the current key as master.key.old and renames master.key.new to master.key.
 * A crash at any point leaves every tenant key readable; running the rotation again finishes
 * it. Only one rotation runs at a time (flock on master.key.lock: -EBUSY for the second).
 * This handle keeps its master key in memory; lookups by key id find the new one on disk, so
 * open handles keep working (restart them to stop the extra file read). 0 and *out (may be
 * NULL); -ENOKEY if a tenant file is wrapped under a master key no file holds (that tenant
 * then stays as it was and nothing is installed); -errno for I/O. */
int ds_keystore_rotate_master(ds_keystore_t *ks, ds_keystore_rotation_t *out);

/* OPENSSL_cleanse()s *k. */
void ds_keystore_key_wipe(ds_tenant_key_t *k);
