/* fuzz_password: arbitrary bytes as a new password through ds_password_policy_check(). It must
 * never crash or read past the input; a refusal must say why, and an accepted password must
 * meet the policy's length bounds in bytes (12..1024: 12..256 characters of 1..4 bytes) and
 * hold no NUL. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actors/password.h"

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan catches any read past the end. */
    char *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(copy, data, size);
    }
    const char *why = NULL;
    int rc = ds_password_policy_check(copy, size, &why);
    if (rc != 0 && (why == NULL || why[0] == '\0')) {
        abort();
    }
    if (rc == 0 && (size < DS_PASSWORD_MIN_CHARS || size > DS_PASSWORD_MAX_BYTES ||
                    memchr(copy, '\0', size) != NULL)) {
        abort();
    }
    free(copy);
    return 0;
}
