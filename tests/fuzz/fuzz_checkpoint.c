/* fuzz_checkpoint: arbitrary bytes as a stored audit checkpoint (actors/audit/checkpoint.h), the
 * one format the checkpoint files in the blob store may hold. The parser must never crash and
 * must accept only the exact spelling the signer writes; the verifier must accept only what
 * this key signed: Ed25519 is deterministic, so an accepted input must be byte for byte what
 * signing its parsed fields again gives. The seeds in tests/fuzz/corpus/checkpoint/ are signed
 * with the fixed key below (made with `openssl genpkey -algorithm ed25519`; test only). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actors/audit/checkpoint.h"
#include "runtime/err.h"

static const char fuzz_key[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MC4CAQAwBQYDK2VwBCIEIIi200gv/G6sZHlf+6ENmZEZ/M49tMziJeijtL0GVFg6\n"
                               "-----END PRIVATE KEY-----\n";

static ds_audit_signer_t *signer_once(void)
{
    static ds_audit_signer_t *signer; /* libFuzzer runs inputs on one thread */
    if (signer != NULL) {
        return signer;
    }
    char dir[] = "/tmp/ds-fuzz-checkpoint-XXXXXX";
    char path[96];
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    (void)snprintf(path, sizeof(path), "%s/%s", dir, DS_AUDIT_KEY_FILE);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(fuzz_key, f) < 0 || fclose(f) != 0 || chmod(path, 0600) != 0 ||
        ds_audit_signer_open(dir, false, &signer) != 0) {
        abort();
    }
    (void)unlink(path);
    (void)rmdir(dir);
    return signer;
}

static bool same(const ds_audit_checkpoint_t *a, const ds_audit_checkpoint_t *b)
{
    return a->seq == b->seq && memcmp(a->hash, b->hash, sizeof(a->hash)) == 0 &&
           strcmp(a->tenant_id, b->tenant_id) == 0 && strcmp(a->signed_at, b->signed_at) == 0 &&
           strcmp(a->key_id, b->key_id) == 0;
}

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ds_audit_signer_t *s = signer_once();
    ds_audit_checkpoint_t parsed;
    uint8_t sig[DS_AUDIT_SIG_LEN];
    int prc = ds_audit_checkpoint_parse(data, size, &parsed, sig);
    if (prc != 0 && prc != DS_EDECODE) {
        abort(); /* an undocumented code */
    }
    ds_audit_checkpoint_t cp;
    int rc = ds_audit_checkpoint_open(s, data, size, &cp);
    if (rc != 0 && rc != DS_EDECODE && rc != -EKEYREJECTED) {
        abort();
    }
    if (rc == 0) {
        char *again = NULL;
        size_t len = 0;
        if (prc != 0 || !same(&cp, &parsed) ||
            ds_audit_checkpoint_sign(s, &cp, &again, &len) != 0 || len != size ||
            memcmp(again, data, size) != 0) {
            abort(); /* accepted something this key did not sign, or in another spelling */
        }
        free(again);
    }
    return 0;
}
