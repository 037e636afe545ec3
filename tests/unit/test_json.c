/* Unit tests for actors/identity/json.c: strict request bodies against field tables, with the
 * login ({email, password}) and refresh ({refresh_token}) tables the auth routes will use, and
 * a table with every field type. Each refusal is checked for what the client would be told:
 * the field and the reason. No threads. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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
static const ds_json_field_t refresh_fields[] = {
    {.name = "refresh_token",
     .type = DS_JSON_STRING,
     .required = true,
     .secret = true,
     .min_len = 1,
     .max_len = 128},
};
static const ds_json_field_t all_fields[] = {
    {.name = "name", .type = DS_JSON_STRING, .max_len = 5},
    {.name = "count", .type = DS_JSON_INTEGER, .min = 1, .max = 10},
    {.name = "big", .type = DS_JSON_INTEGER},
    {.name = "flag", .type = DS_JSON_BOOLEAN},
    {.name = "tags", .type = DS_JSON_STRING_ARRAY, .max_len = 3, .item_max_len = 4},
    {.name = "id", .type = DS_JSON_UUID},
};
#define N(t) (sizeof(t) / sizeof((t)[0]))

/* Decodes s (strlen) with the table and expects -EBADMSG with one problem (field, reason). */
static void refused(const ds_json_field_t *f, size_t n, const char *s, size_t len,
                    const char *field, const char *reason)
{
    ds_json_body_t *b = NULL;
    ds_json_error_t err;
    int rc = ds_json_decode(s, len, NULL, f, n, &b, &err);
    if (rc != -EBADMSG || err.count != 1 || strcmp(err.problems[0].field, field) != 0 ||
        strcmp(err.problems[0].reason, reason) != 0) {
        (void)fprintf(stderr, "input %s: rc %d count %zu field '%s' reason '%s'\n", s, rc,
                      err.count, rc == 0 ? "" : err.problems[0].field,
                      rc == 0 ? "" : err.problems[0].reason);
        fail();
    }
    assert_null(b);
}

#define REFUSED(table, s, field, reason) refused(table, N(table), s, strlen(s), field, reason)

static void test_login_ok(void **state)
{
    (void)state;
    const char s[] = "{\"email\":\"Admin@Demo.localhost\",\"password\":\"correct horse\"}";
    ds_json_body_t *b = NULL;
    assert_int_equal(ds_json_decode(s, strlen(s), NULL, login_fields, N(login_fields), &b, NULL),
                     0);
    const char *v = NULL;
    size_t len = 0;
    assert_true(ds_json_get_string(b, "email", &v, &len));
    assert_string_equal(v, "Admin@Demo.localhost");
    assert_int_equal(len, 20);
    assert_true(ds_json_get_string(b, "password", &v, NULL));
    assert_string_equal(v, "correct horse");
    ds_json_body_free(&b);
    assert_null(b);
    ds_json_body_free(&b);
    ds_json_body_free(NULL);

    const char r[] = "{\"refresh_token\":\"dsr_abc\"}";
    assert_int_equal(
        ds_json_decode(r, strlen(r), NULL, refresh_fields, N(refresh_fields), &b, NULL), 0);
    assert_true(ds_json_get_string(b, "refresh_token", &v, NULL));
    assert_string_equal(v, "dsr_abc");
    ds_json_body_free(&b);
}

static void test_login_refused(void **state)
{
    (void)state;
    REFUSED(login_fields, "{\"email\":\"a@b.c\"}", "password", "is required");
    REFUSED(login_fields, "{\"password\":\"x\"}", "email", "is required");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":\"x\",\"tenant\":\"acme\"}", "tenant",
            "is not a known field");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":\"x\",\"password\":\"y\"}", "",
            "has a duplicate key");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":123}", "password", "must be a string");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":null}", "password",
            "must be a string");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":[\"x\"]}", "password",
            "must be a string");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":\"\"}", "password",
            "must not be empty");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":\"a\\u0000b\"}", "password",
            "must not contain NUL characters");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"pass\\u0000word\":\"x\"}", "",
            "has a NUL character in a key");
    REFUSED(login_fields, "[\"a@b.c\",\"x\"]", "", "must be a JSON object");
    REFUSED(login_fields, "\"a@b.c\"", "", "is not valid JSON");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":\"x\"", "",
            "ends before the JSON value does");
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":\"x\"} {}", "",
            "has data after the JSON value");
    REFUSED(login_fields, "{'email':'a@b.c'}", "", "is not valid JSON");
    REFUSED(refresh_fields, "{\"refresh_token\":true}", "refresh_token", "must be a string");
    REFUSED(refresh_fields, "{}", "refresh_token", "is required");
    /* Two problems at once: both are reported, in order. */
    ds_json_body_t *b = NULL;
    ds_json_error_t err;
    const char two[] = "{\"x\":1,\"password\":2}";
    assert_int_equal(
        ds_json_decode(two, strlen(two), NULL, login_fields, N(login_fields), &b, &err), -EBADMSG);
    assert_int_equal(err.count, 3);
    assert_string_equal(err.problems[0].field, "x");
    assert_string_equal(err.problems[1].field, "password");
    assert_string_equal(err.problems[2].field, "email");
    char text[128];
    ds_json_problem_text(&err.problems[2], text, sizeof(text));
    assert_string_equal(text, "email: is required");
}

static void test_bad_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"email\":\"a@b.c\",\"password\":\"\xff\"}",         /* never valid */
        "{\"email\":\"a@b.c\",\"password\":\"\xc0\xaf\"}",     /* overlong '/' */
        "{\"email\":\"a@b.c\",\"password\":\"\xed\xa0\x80\"}", /* a surrogate */
        "{\"email\":\"a@b.c\",\"password\":\"\xe2\x82\"}",     /* truncated */
        "{\"email\":\"a@b.c\",\"p\xe9\":\"x\"}",               /* latin-1 key */
    };
    for (size_t i = 0; i < N(bad); i++) {
        REFUSED(login_fields, bad[i], "", "is not valid UTF-8");
    }
    /* A lone surrogate escape is refused too. */
    REFUSED(login_fields, "{\"email\":\"a@b.c\",\"password\":\"\\ud800\"}", "",
            "is not valid JSON");
    /* Valid UTF-8 counts in characters: 5 two-byte characters fit max_len 5. */
    ds_json_body_t *b = NULL;
    const char ok[] = "{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}";
    assert_int_equal(ds_json_decode(ok, strlen(ok), NULL, all_fields, N(all_fields), &b, NULL), 0);
    ds_json_body_free(&b);
    REFUSED(all_fields, "{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x\"}", "name",
            "is too long");
}

static void test_sizes(void **state)
{
    (void)state;
    ds_json_limits_t lim = {.max_bytes = 64, .max_depth = 3};
    ds_json_body_t *b = NULL;
    ds_json_error_t err;
    char big[65];
    memset(big, ' ', sizeof(big));
    big[0] = '{';
    big[63] = '}';
    assert_int_equal(ds_json_decode(big, 64, &lim, login_fields, N(login_fields), &b, &err),
                     -EBADMSG); /* 64 bytes: parsed, then refused for missing fields */
    assert_int_equal(ds_json_decode(big, 65, &lim, login_fields, N(login_fields), &b, &err),
                     -EMSGSIZE);
    assert_int_equal(err.count, 1);
    assert_string_equal(err.problems[0].reason, "request body is too large");
    /* The length is checked before a byte is read. */
    assert_int_equal(ds_json_decode(NULL, SIZE_MAX, &lim, login_fields, N(login_fields), &b, &err),
                     -EMSGSIZE);
    assert_int_equal(ds_json_decode("", 0, &lim, login_fields, N(login_fields), &b, &err),
                     -EBADMSG);
    assert_string_equal(err.problems[0].reason, "request body is empty");
    /* Depth: the object is 1, an array in it 2, ... */
    const char d3[] = "{\"tags\":[[]]}";
    assert_int_equal(ds_json_decode(d3, strlen(d3), &lim, all_fields, N(all_fields), &b, &err),
                     -EBADMSG);
    assert_string_equal(err.problems[0].reason, "must be an array of strings");
    const char d4[] = "{\"tags\":[[[]]]}";
    assert_int_equal(ds_json_decode(d4, strlen(d4), &lim, all_fields, N(all_fields), &b, &err),
                     -EBADMSG);
    assert_string_equal(err.problems[0].reason, "request body is nested too deeply");
    /* Brackets inside strings do not count, escaped quotes do not end them. */
    const char s[] = "{\"name\":\"[[[[\\\"[[\"}";
    assert_int_equal(ds_json_decode(s, strlen(s), &lim, all_fields, N(all_fields), &b, &err),
                     -EBADMSG);
    assert_string_equal(err.problems[0].reason, "is too long");
    /* A very deep body with the default limits: refused cheaply, not by jansson. */
    size_t n = 60000;
    char *deep = malloc(n);
    assert_non_null(deep);
    memset(deep, '[', n);
    assert_int_equal(ds_json_decode(deep, n, NULL, all_fields, N(all_fields), &b, &err), -EBADMSG);
    assert_string_equal(err.problems[0].reason, "request body is nested too deeply");
    free(deep);
}

static void test_types(void **state)
{
    (void)state;
    const char s[] = "{\"name\":\"ab\",\"count\":10,\"big\":-9223372036854775808,\"flag\":false,"
                     "\"tags\":[\"a\",\"bcde\"],\"id\":\"0190F1C2-7A4B-7C3D-8E9F-0A1B2C3D4E5F\"}";
    ds_json_body_t *b = NULL;
    ds_json_error_t err;
    assert_int_equal(ds_json_decode(s, strlen(s), NULL, all_fields, N(all_fields), &b, &err), 0);
    int64_t i = 0;
    assert_true(ds_json_get_int(b, "count", &i));
    assert_int_equal(i, 10);
    assert_true(ds_json_get_int(b, "big", &i));
    assert_true(i == INT64_MIN);
    bool flag = true;
    assert_true(ds_json_get_bool(b, "flag", &flag));
    assert_false(flag);
    size_t count = 0;
    assert_true(ds_json_get_count(b, "tags", &count));
    assert_int_equal(count, 2);
    assert_string_equal(ds_json_get_item(b, "tags", 1), "bcde");
    assert_null(ds_json_get_item(b, "tags", 2));
    char uuid[DS_JSON_UUID_LEN + 1];
    assert_true(ds_json_get_uuid(b, "id", uuid));
    assert_string_equal(uuid, "0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e5f");
    assert_true(ds_json_has(b, "name"));
    ds_json_body_free(&b);
    /* Optional fields may be absent. */
    assert_int_equal(ds_json_decode("{}", 2, NULL, all_fields, N(all_fields), &b, &err), 0);
    assert_false(ds_json_has(b, "name"));
    assert_false(ds_json_get_int(b, "count", &i));
    assert_false(ds_json_get_uuid(b, "id", uuid));
    assert_false(ds_json_get_count(b, "tags", &count));
    ds_json_body_free(&b);

    REFUSED(all_fields, "{\"count\":1.0}", "count", "must be an integer");
    REFUSED(all_fields, "{\"count\":\"1\"}", "count", "must be an integer");
    REFUSED(all_fields, "{\"count\":0}", "count", "is out of range");
    REFUSED(all_fields, "{\"count\":11}", "count", "is out of range");
    REFUSED(all_fields, "{\"big\":9223372036854775808}", "", "has a number out of range");
    REFUSED(all_fields, "{\"flag\":1}", "flag", "must be true or false");
    REFUSED(all_fields, "{\"flag\":\"true\"}", "flag", "must be true or false");
    REFUSED(all_fields, "{\"tags\":\"a\"}", "tags", "must be an array of strings");
    REFUSED(all_fields, "{\"tags\":[1]}", "tags", "must be an array of strings");
    REFUSED(all_fields, "{\"tags\":[\"a\",\"b\",\"c\",\"d\"]}", "tags", "has too many items");
    REFUSED(all_fields, "{\"tags\":[\"abcde\"]}", "tags", "has an item that is too long");
    REFUSED(all_fields, "{\"tags\":[\"a\\u0000\"]}", "tags", "must not contain NUL characters");
    REFUSED(all_fields, "{\"name\":{}}", "name", "must be a string");
    static const char *const bad_uuids[] = {
        "0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e5",  "0190f1c27a4b7c3d8e9f0a1b2c3d4e5f",
        "0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e5g", "{0190f1c2-7a4b-7c3d-8e9f-0a1b2c3d4e}",
        "0190f1c2-7a4b-7c3d-8e9f_0a1b2c3d4e5f", "",
    };
    for (size_t k = 0; k < N(bad_uuids); k++) {
        char body[128];
        (void)snprintf(body, sizeof(body), "{\"id\":\"%s\"}", bad_uuids[k]);
        REFUSED(all_fields, body, "id", "must be a UUID");
    }
}

static void test_emails(void **state)
{
    (void)state;
    static const char *const good[] = {
        "a@b",
        "admin@demo.localhost",
        "first.last+tag@example.co.uk",
        "o'neil@x-y.example",
        "\xc3\xa9lodie@example.fr",
        "user@123.example",
    };
    for (size_t i = 0; i < N(good); i++) {
        char body[400];
        (void)snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"x\"}", good[i]);
        ds_json_body_t *b = NULL;
        ds_json_error_t err;
        int rc = ds_json_decode(body, strlen(body), NULL, login_fields, N(login_fields), &b, &err);
        if (rc != 0) {
            (void)fprintf(stderr, "refused %s: %s\n", good[i], err.problems[0].reason);
        }
        assert_int_equal(rc, 0);
        ds_json_body_free(&b);
    }
    char long_local[80];
    memset(long_local, 'a', 65);
    (void)snprintf(long_local + 65, sizeof(long_local) - 65, "@b.c");
    char long_all[300];
    memset(long_all, 'b', 260);
    memcpy(long_all, "a@", 2);
    long_all[260] = '\0';
    static const char *const bad[] = {
        "",         "a",       "@b.c",    "a@",      "a@b@c",       "a b@c.d",  "a@b c",
        "a@-b.c",   "a@b-.c",  "a@b..c",  "a@.b",    "a@b.",        ".a@b.c",   "a.@b.c",
        "a..b@c.d", "a\\\"@b", "a@b_c.d", "<a>@b.c", "a@[1.2.3.4]", "a\\t@b.c", "ab",
    };
    for (size_t i = 0; i < N(bad) + 2; i++) {
        const char *e = i < N(bad) ? bad[i] : i == N(bad) ? long_local : long_all;
        char body[400];
        (void)snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"x\"}", e);
        REFUSED(login_fields, body, "email", "is not a valid email address");
    }
}

static void test_unknown_field_names(void **state)
{
    (void)state;
    /* A long unknown key is cut to DS_JSON_NAME_MAX bytes at a character boundary. */
    char body[512];
    char key[200];
    size_t o = 0;
    while (o + 2 <= 150) {
        key[o++] = '\xc3';
        key[o++] = '\xa9';
    }
    key[o] = '\0';
    (void)snprintf(body, sizeof(body), "{\"%s\":1}", key);
    ds_json_body_t *b = NULL;
    ds_json_error_t err;
    assert_int_equal(
        ds_json_decode(body, strlen(body), NULL, login_fields, N(login_fields), &b, &err),
        -EBADMSG);
    assert_int_equal(strlen(err.problems[0].field), DS_JSON_NAME_MAX);
    assert_memory_equal(err.problems[0].field, key, DS_JSON_NAME_MAX);
    /* Many unknown fields: the first DS_JSON_MAX_ERRORS are kept, all are counted. */
    o = (size_t)snprintf(body, sizeof(body), "{");
    for (int i = 0; i < 20; i++) {
        o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"f%d\":%d", i ? "," : "", i, i);
    }
    (void)snprintf(body + o, sizeof(body) - o, "}");
    assert_int_equal(
        ds_json_decode(body, strlen(body), NULL, login_fields, N(login_fields), &b, &err),
        -EBADMSG);
    assert_int_equal(err.count, 22);
    assert_string_equal(err.problems[7].field, "f7");
    /* Case matters: "Email" is not "email". */
    REFUSED(login_fields, "{\"Email\":\"a@b.c\",\"email\":\"a@b.c\",\"password\":\"x\"}", "Email",
            "is not a known field");
}

static void test_problem_text(void **state)
{
    (void)state;
    ds_json_problem_t p = {.field = "", .reason = "is not valid JSON"};
    char out[16];
    ds_json_problem_text(&p, out, sizeof(out));
    assert_string_equal(out, "is not valid JS"); /* truncated */
    (void)snprintf(p.field, sizeof(p.field), "%s", "email");
    p.reason = "is required";
    char full[64];
    ds_json_problem_text(&p, full, sizeof(full));
    assert_string_equal(full, "email: is required");
    ds_json_problem_text(&p, full, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_ok),
        cmocka_unit_test(test_login_refused),
        cmocka_unit_test(test_bad_utf8),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_emails),
        cmocka_unit_test(test_unknown_field_names),
        cmocka_unit_test(test_problem_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
