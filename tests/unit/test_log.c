/* Unit tests for runtime/log.c: the lines on stderr (captured through a pipe), their fields,
 * escaping, truncation and the level threshold. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/log.h"

enum {
    CAP_MAX = 1 << 20,
};

typedef struct capture {
    int saved; /* the real stderr */
    int rd;    /* read end of the pipe now on fd 2 */
    char *buf;
    size_t len;
} capture_t;

static void cap_begin(capture_t *c)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(p[1], STDERR_FILENO) >= 0);
    assert_int_equal(close(p[1]), 0);
    c->rd = p[0];
    c->buf = calloc(1, CAP_MAX + 1);
    assert_non_null(c->buf);
    c->len = 0;
}

/* Reads the pipe until every write end is closed. */
static void cap_drain(capture_t *c)
{
    for (;;) {
        ssize_t n = read(c->rd, c->buf + c->len, CAP_MAX - c->len);
        if (n <= 0) {
            break;
        }
        c->len += (size_t)n;
    }
    c->buf[c->len] = '\0';
}

static void cap_restore(capture_t *c)
{
    assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
    assert_int_equal(close(c->saved), 0);
}

/* Restores stderr and returns what was written meanwhile (free it with cap_free). */
static const char *cap_end(capture_t *c)
{
    cap_restore(c);
    cap_drain(c);
    assert_int_equal(close(c->rd), 0);
    return c->buf;
}

static void cap_free(capture_t *c)
{
    free(c->buf);
    c->buf = NULL;
}

/* The line after its "ts" field: {"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ", checked, then the rest. */
static const char *after_ts(const char *line)
{
    static const char pre[] = "{\"ts\":\"";
    assert_memory_equal(line, pre, sizeof(pre) - 1);
    const char *ts = line + sizeof(pre) - 1;
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd') {
            assert_true(ts[i] >= '0' && ts[i] <= '9');
        } else {
            assert_int_equal(ts[i], shape[i]);
        }
    }
    assert_int_equal(ts[sizeof(shape) - 1], '"');
    return ts + sizeof(shape);
}

/* The text at p, up to its newline included, is want. */
static void assert_line_is(const char *p, const char *want)
{
    const char *nl = strchr(p, '\n');
    assert_non_null(nl);
    assert_int_equal((size_t)(nl + 1 - p), strlen(want));
    assert_memory_equal(p, want, strlen(want));
}

static void test_env_level_read_once(void **state)
{
    (void)state;
    /* main() set DOSSIER_LOG_LEVEL=error before the first log call. */
    assert_int_equal(ds_log_get_level(), DS_LOG_ERROR);
    ds_log_set_level(DS_LOG_DEBUG);
    assert_int_equal(ds_log_get_level(), DS_LOG_DEBUG);
}

static void test_fields(void **state)
{
    (void)state;
    ds_log_set_level(DS_LOG_DEBUG);
    capture_t c;
    cap_begin(&c);
    ds_log_info("heartbeat", DS_LOG_U64("actors", 3), DS_LOG_STR("tenant", "t1"),
                DS_LOG_I64("delta", -42), DS_LOG_BOOL("ok", true), DS_LOG_BOOL("bad", false),
                DS_LOG_F64("ratio", 1.5), DS_LOG_F64("nan", NAN), DS_LOG_STR("none", NULL),
                DS_LOG_U64("big", UINT64_MAX), DS_LOG_I64("small", INT64_MIN), DS_LOG_END);
    const char *out = cap_end(&c);
    assert_string_equal(after_ts(out),
                        ",\"level\":\"info\",\"msg\":\"heartbeat\",\"actors\":3,\"tenant\":\"t1\","
                        "\"delta\":-42,\"ok\":true,\"bad\":false,\"ratio\":1.5,\"nan\":null,"
                        "\"none\":null,\"big\":18446744073709551615,"
                        "\"small\":-9223372036854775808}\n");
    cap_free(&c);
}

static void test_levels_and_array_form(void **state)
{
    (void)state;
    capture_t c;
    ds_log_set_level(DS_LOG_WARN);
    cap_begin(&c);
    ds_log_debug("hidden", DS_LOG_END);
    ds_log_info("hidden", DS_LOG_END);
    ds_log_warn("shown", DS_LOG_END);
    ds_log(DS_LOG_ERROR, "also shown", DS_LOG_U64("n", 1), DS_LOG_END);
    ds_log_field_t f[] = {DS_LOG_STR("k", "v"), DS_LOG_U64("n", 2)};
    ds_log_fields(DS_LOG_ERROR, "array", f, 2);
    const char *out = cap_end(&c);
    assert_null(strstr(out, "hidden"));
    const char *l2 = strchr(out, '\n') + 1;
    const char *l3 = strchr(l2, '\n') + 1;
    assert_string_equal(strchr(l3, '\n') + 1, "");
    assert_line_is(after_ts(out), ",\"level\":\"warn\",\"msg\":\"shown\"}\n");
    assert_line_is(after_ts(l2), ",\"level\":\"error\",\"msg\":\"also shown\",\"n\":1}\n");
    assert_string_equal(after_ts(l3),
                        ",\"level\":\"error\",\"msg\":\"array\",\"k\":\"v\",\"n\":2}\n");
    cap_free(&c);

    ds_log_set_level(DS_LOG_OFF);
    assert_false(ds_log_enabled(DS_LOG_ERROR));
    ds_log_set_level(DS_LOG_DEBUG);
    assert_true(ds_log_enabled(DS_LOG_DEBUG));
}

static void test_escaping(void **state)
{
    (void)state;
    ds_log_set_level(DS_LOG_DEBUG);
    capture_t c;
    cap_begin(&c);
    ds_log_info("esc", DS_LOG_STR("s", "a\"b\\c/\n\r\t\x01\x1f\x7f"), DS_LOG_STR("key \"q\"", "v"),
                DS_LOG_END);
    const char *out = cap_end(&c);
    assert_string_equal(after_ts(out), ",\"level\":\"info\",\"msg\":\"esc\","
                                       "\"s\":\"a\\\"b\\\\c/\\n\\r\\t\\u0001\\u001f\x7f\","
                                       "\"key \\\"q\\\"\":\"v\"}\n");
    cap_free(&c);
}

static void test_utf8(void **state)
{
    (void)state;
    capture_t c;
    cap_begin(&c);
    /* Valid: é (2 bytes), € (3), 😀 (4). Invalid: a lone 0xff, an overlong '/', a surrogate,
     * a cut 3-byte sequence followed by 'x', a code point past U+10FFFF. */
    ds_log_info("utf8", DS_LOG_STR("ok", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
                DS_LOG_STR("bad", "\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x82x|\xf4\x90\x80\x80"),
                DS_LOG_END);
    const char *out = cap_end(&c);
    assert_string_equal(after_ts(out),
                        ",\"level\":\"info\",\"msg\":\"utf8\","
                        "\"ok\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
                        "\"bad\":\"\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffdx|"
                        "\\ufffd\\ufffd\\ufffd\\ufffd\"}\n");
    cap_free(&c);
}

static void check_one_truncated_line(const char *out)
{
    size_t len = strlen(out);
    assert_true(len <= DS_LOG_LINE_MAX);
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    static const char tail[] = ",\"truncated\":true}\n";
    assert_true(len > sizeof(tail));
    assert_string_equal(out + len - (sizeof(tail) - 1), tail);
}

static void test_truncation(void **state)
{
    (void)state;
    enum {
        BIG = 10000
    };
    char *big = malloc(BIG + 1);
    assert_non_null(big);
    /* "é" repeated: a cut must fall between two characters. */
    for (size_t i = 0; i + 1 < BIG; i += 2) {
        big[i] = '\xc3';
        big[i + 1] = '\xa9';
    }
    big[BIG] = '\0';
    capture_t c;
    cap_begin(&c);
    ds_log_info("long", DS_LOG_STR("before", "x"), DS_LOG_STR("body", big), DS_LOG_U64("after", 1),
                DS_LOG_END);
    const char *out = cap_end(&c);
    check_one_truncated_line(out);
    assert_non_null(strstr(out, "\"before\":\"x\",\"body\":\"\xc3\xa9"));
    assert_null(strstr(out, "\"after\""));
    assert_non_null(strstr(out, "\xc3\xa9\",\"truncated\""));
    cap_free(&c);

    /* Escapes that do not fit are left out whole. */
    memset(big, '\n', BIG);
    cap_begin(&c);
    ds_log_info("long", DS_LOG_STR("body", big), DS_LOG_END);
    out = cap_end(&c);
    check_one_truncated_line(out);
    assert_non_null(strstr(out, "\\n\",\"truncated\""));
    cap_free(&c);

    /* Many fields: those that do not fit are dropped whole. */
    ds_log_field_t *f = calloc(1000, sizeof(*f));
    assert_non_null(f);
    for (size_t i = 0; i < 1000; i++) {
        f[i] = DS_LOG_U64("counter", i);
    }
    cap_begin(&c);
    ds_log_fields(DS_LOG_INFO, "many", f, 1000);
    out = cap_end(&c);
    check_one_truncated_line(out);
    const char *last = strstr(out, ",\"truncated\"");
    assert_true(last[-1] >= '0' && last[-1] <= '9');
    cap_free(&c);
    free(f);
    free(big);
}

static void test_level_parse(void **state)
{
    (void)state;
    ds_log_level_t l = DS_LOG_INFO;
    assert_int_equal(ds_log_level_parse("debug", &l), 0);
    assert_int_equal(l, DS_LOG_DEBUG);
    assert_int_equal(ds_log_level_parse("warning", &l), 0);
    assert_int_equal(l, DS_LOG_WARN);
    assert_int_equal(ds_log_level_parse("off", &l), 0);
    assert_int_equal(l, DS_LOG_OFF);
    assert_true(ds_log_level_parse("INFO", &l) < 0);
    assert_true(ds_log_level_parse("", &l) < 0);
    assert_true(ds_log_level_parse(NULL, &l) < 0);
}

enum {
    THREADS = 4,
    LINES = 500,
};

static void *writer(void *arg)
{
    for (int i = 0; i < LINES; i++) {
        ds_log_info("concurrent", DS_LOG_U64("thread", (uintptr_t)arg), DS_LOG_I64("i", i),
                    DS_LOG_STR("pad", "0123456789012345678901234567890123456789"), DS_LOG_END);
    }
    return NULL;
}

/* A batch writes nothing until flushed (or full), then the same lines as ds_log_fields(),
 * whole, in order; a line under the threshold is not kept. */
static void test_batch(void **state)
{
    (void)state;
    ds_log_set_level(DS_LOG_INFO);
    capture_t c;
    cap_begin(&c);
    ds_log_batch_t b = {0};
    ds_log_field_t f[] = {DS_LOG_STR("path", "/healthz"), DS_LOG_U64("status", 200), DS_LOG_END};
    ds_log_batch_add(&b, DS_LOG_INFO, "http request", f, 3);
    ds_log_batch_add(&b, DS_LOG_DEBUG, "hidden", f, 2);
    ds_log_batch_add(&b, DS_LOG_WARN, "second", f, 1);
    ds_log_warn("direct", DS_LOG_END);
    ds_log_batch_flush(&b);
    assert_int_equal(b.len, 0);
    ds_log_batch_flush(&b); /* empty: writes nothing */
    const char *out = cap_end(&c);
    const char *l2 = strchr(out, '\n') + 1;
    const char *l3 = strchr(l2, '\n') + 1;
    assert_line_is(after_ts(out), ",\"level\":\"warn\",\"msg\":\"direct\"}\n");
    assert_line_is(after_ts(l2), ",\"level\":\"info\",\"msg\":\"http request\","
                                 "\"path\":\"/healthz\",\"status\":200}\n");
    assert_string_equal(after_ts(l3),
                        ",\"level\":\"warn\",\"msg\":\"second\",\"path\":\"/healthz\"}\n");
    cap_free(&c);

    /* Many lines (under the pipe's 64 KiB: nobody reads it meanwhile): each write is whole
     * lines, none is lost or cut. */
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    cap_begin(&c);
    ds_log_field_t g[] = {DS_LOG_STR("v", big)};
    for (int i = 0; i < 50; i++) {
        ds_log_batch_add(&b, DS_LOG_INFO, "many", g, 1);
        assert_true(b.len <= sizeof(b.buf));
    }
    ds_log_batch_flush(&b);
    out = cap_end(&c);
    size_t lines = 0;
    for (const char *p = out; *p != '\0'; lines++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_memory_equal(p, "{\"ts\":", 6);
        assert_memory_equal(nl - 606, "\"v\":\"x", 6);
        assert_memory_equal(nl - 2, "\"}", 2);
        p = nl + 1;
    }
    assert_int_equal(lines, 50);
    cap_free(&c);
    ds_log_set_level(DS_LOG_DEBUG);
}

static void *reader(void *arg)
{
    cap_drain(arg);
    return NULL;
}

/* Lines from many threads come out whole, even when they fill the pipe. */
static void test_concurrent_lines_whole(void **state)
{
    (void)state;
    ds_log_set_level(DS_LOG_DEBUG);
    capture_t c;
    cap_begin(&c);
    pthread_t r;
    pthread_t w[THREADS];
    assert_int_equal(pthread_create(&r, NULL, reader, &c), 0);
    for (uintptr_t i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&w[i], NULL, writer, (void *)i), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(w[i], NULL), 0);
    }
    cap_restore(&c);
    assert_int_equal(pthread_join(r, NULL), 0);
    assert_int_equal(close(c.rd), 0);
    size_t lines = 0;
    for (const char *p = c.buf; *p != '\0'; lines++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_memory_equal(p, "{\"ts\":", 6);
        assert_memory_equal(nl - 2, "\"}", 2);
        p = nl + 1;
    }
    assert_int_equal(lines, THREADS * LINES);
    cap_free(&c);
}

int main(void)
{
    /* Before any thread and any log call: the level is read from here at the first call. */
    // NOLINTNEXTLINE(concurrency-mt-unsafe): single-threaded at this point
    if (setenv("DOSSIER_LOG_LEVEL", "error", 1) != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_level_read_once),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_levels_and_array_form),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_concurrent_lines_whole),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
