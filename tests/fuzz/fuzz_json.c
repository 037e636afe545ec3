/* fuzz_json: arbitrary bytes as a login request body through ds_json_decode() with the login
 * table ({email, password}). It must never crash or leak; an accepted body must give back values
 * that meet the table (an email with one '@', a password of 1..1024 characters without NUL); a
 * refused one must say why (-EBADMSG or -EMSGSIZE, at least one problem with a reason). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actors/identity/json.h"

static const ds_json_field_t login_fields[] = {
    {.name = "email", .type = DS_JSON_EMAIL, .required = true},
    {.name = "password",
     .type = DS_JSON_STRING,
     .required = true,
     .secret = true,
     .min_len = 1,
     .max_len = 1024},
};
static const ds_json_limits_t limits = {.max_bytes = 8192, .max_depth = 8};

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ds_json_body_t *body = NULL;
    ds_json_error_t err;
    int rc = ds_json_decode((const char *)data, size, &limits, login_fields, 2, &body, &err);
    if (rc != 0) {
        if (body != NULL || (rc != -EBADMSG && rc != -EMSGSIZE) || err.count == 0 ||
            err.problems[0].reason == NULL) {
            abort();
        }
        char text[256];
        ds_json_problem_text(&err.problems[0], text, sizeof(text));
        return 0;
    }
    const char *email = NULL;
    const char *password = NULL;
    size_t email_len = 0;
    size_t password_len = 0;
    if (!ds_json_get_string(body, "email", &email, &email_len) ||
        !ds_json_get_string(body, "password", &password, &password_len) ||
        memchr(email, '@', email_len) == NULL || memchr(email, '\0', email_len) != NULL ||
        password_len == 0 || password_len > (size_t)4 * 1024 ||
        memchr(password, '\0', password_len) != NULL) {
        abort();
    }
    ds_json_body_free(&body);
    return 0;
}
