/* Unit tests: the password policy (actors/password.h, ds_password_policy_check), which the
 * operator CLI and the HTTP API share. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "actors/password.h"

/* Checks s (n bytes) and expects rc; when refused, the reason must contain want. */
static void expect(const char *s, size_t n, int rc, const char *want)
{
    const char *why = NULL;
    int got = ds_password_policy_check(s, n, &why);
    if (got != rc) {
        fail_msg("policy(%.*s) = %d, want %d (%s)", (int)n, s, got, rc, why ? why : "-");
    }
    if (rc != 0 && (why == NULL || strstr(why, want) == NULL)) {
        fail_msg("policy(%.*s): reason '%s', want '%s'", (int)n, s, why ? why : "(none)", want);
    }
}

static void expect_str(const char *s, int rc, const char *want)
{
    expect(s, strlen(s), rc, want);
}

static void test_accepts(void **state)
{
    (void)state;
    expect_str("correct horse battery", 0, NULL); /* lower-case and spaces */
    expect_str("abcdefghijk1", 0, NULL);          /* exactly 12 */
    expect_str("ABCDEFGHIJKLMNOp", 0, NULL);
    expect_str("123456789012!", 0, NULL);
    expect_str("pässwörterbuch", 0, NULL); /* non-ASCII counts as "other" */
    expect_str("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x91\xe3\x82\xb9"
               "\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89\xe3\x81\xa7\xe3\x81\x99x",
               0, NULL); /* 12 CJK characters and an x: 13 characters, 37 bytes */
    char max[DS_PASSWORD_MAX_CHARS + 1];
    memset(max, 'a', sizeof(max));
    max[0] = 'B';
    expect(max, DS_PASSWORD_MAX_CHARS, 0, NULL);
}

static void test_refuses(void **state)
{
    (void)state;
    expect_str("", -EINVAL, "at least 12");
    expect_str("Short1!", -EINVAL, "at least 12");
    expect_str("abcdefghij1", -EINVAL, "at least 12"); /* 11 */
    /* 11 characters but 22 bytes: characters count, not bytes. */
    expect_str("\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"
               "\xc3\xa4x",
               -EINVAL, "at least 12");
    char max[DS_PASSWORD_MAX_BYTES + 2];
    memset(max, 'a', sizeof(max));
    max[0] = 'B';
    expect(max, DS_PASSWORD_MAX_CHARS + 1, -EINVAL, "at most 256");
    expect(max, sizeof(max), -EINVAL, "at most 256");
    expect_str("alllowercaseletters", -EINVAL, "two kinds");
    expect_str("ALLUPPERCASELETTERS", -EINVAL, "two kinds");
    expect_str("123456789012345", -EINVAL, "two kinds");
    expect_str("!!!!!!!!!!!!!!!!", -EINVAL, "two kinds");
    expect_str("\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"
               "\xc3\xa4\xc3\xa4",
               -EINVAL, "two kinds");
    expect("abcdefghijk\0"
           "1",
           13, -EINVAL, "control");
    expect_str("abcdefghijk\n1", -EINVAL, "control");
    expect_str("abcdefghijk\x7f"
               "1",
               -EINVAL, "control");
    expect_str("abcdefghijk\xc2\x85"
               "1",
               -EINVAL, "control"); /* U+0085 */
    expect_str("abcdefghijk\xc0\xaf"
               "1",
               -EINVAL, "UTF-8"); /* overlong '/' */
    expect_str("abcdefghijk\xed\xa0\x80"
               "1",
               -EINVAL, "UTF-8"); /* a surrogate */
    expect_str("abcdefghijk\xf4\x90\x80\x80"
               "1",
               -EINVAL, "UTF-8"); /* past U+10FFFF */
    expect_str("abcdefghijk\xff"
               "1",
               -EINVAL, "UTF-8");
    expect_str("abcdefghijk1\xe2\x82", -EINVAL, "UTF-8"); /* truncated at the end */
    /* why may be NULL. */
    assert_int_equal(ds_password_policy_check("short", 5, NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
