/* log: JSON-lines logging. See runtime/log.h.
 *
 * A line is built in a stack buffer of DS_LOG_LINE_MAX bytes and written with one write(2).
 * The buffer keeps room for the longest ending (,"truncated":true}\n), so whatever the fields,
 * the line is valid JSON: a field that does not fit is left out whole, a string value is cut
 * between two characters (never inside an escape or a UTF-8 sequence). */
#include "runtime/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char log_tail_cut[] = ",\"truncated\":true}\n";

enum {
    DS_LOG_TAIL = sizeof(log_tail_cut) - 1,
    DS_LOG_ENV_MAX = 64,
};

typedef struct log_buf {
    char b[DS_LOG_LINE_MAX];
    size_t len;
    size_t cap; /* bytes usable before the reserved ending */
    bool full;  /* a field or a string did not fit: add nothing more */
    bool cut;   /* something was left out: the line says so */
} log_buf_t;

/* Relaxed everywhere: the threshold is a lone value, no other data hangs on it. */
static atomic_int log_level = DS_LOG_INFO;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
/* Set inside pthread_once with the bad value saved in log_bad_value; the exchange in
 * ds_log_init (ordered after the once by pthread_once) reports it exactly once. */
static atomic_bool log_bad_env;
static char log_bad_value[DS_LOG_ENV_MAX];

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

int ds_log_level_parse(const char *s, ds_log_level_t *out)
{
    static const struct {
        const char *name;
        ds_log_level_t level;
    } names[] = {
        {"debug", DS_LOG_DEBUG},  {"info", DS_LOG_INFO},   {"warn", DS_LOG_WARN},
        {"warning", DS_LOG_WARN}, {"error", DS_LOG_ERROR}, {"off", DS_LOG_OFF},
    };
    if (s == NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

static bool log_put(log_buf_t *lb, const char *s, size_t n)
{
    if (lb->len + n > lb->cap) {
        return false;
    }
    memcpy(lb->b + lb->len, s, n);
    lb->len += n;
    return true;
}

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 if p does not start one: overlong
 * forms, surrogates and code points past U+10FFFF are invalid (RFC 3629). p is NUL-terminated,
 * and a NUL is never a continuation byte, so the scan stops there. */
static size_t log_utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n;
    uint32_t cp;
    uint32_t min;
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

/* The escape for byte c as a two-character sequence (\n...), or 0 if it has none. */
static char log_short_escape(unsigned c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    default:
        return 0;
    }
}

/* The JSON form of the character at p into out (up to 6 bytes); *adv gets the bytes of p it
 * stands for. Returns the length written to out. */
static size_t log_escape_one(const unsigned char *p, char out[6], size_t *adv)
{
    static const char hex[] = "0123456789abcdef";
    unsigned c = p[0];
    *adv = 1;
    char e = log_short_escape(c);
    if (e != 0) {
        out[0] = '\\';
        out[1] = e;
        return 2;
    }
    size_t n = c < 0x20 ? 0 : log_utf8_len(p);
    if (n == 0) {
        /* A control character as \u00XX, an invalid byte as U+FFFD. */
        unsigned cp = c < 0x20 ? c : 0xFFFD;
        out[0] = '\\';
        out[1] = 'u';
        out[2] = hex[(cp >> 12) & 0xF];
        out[3] = hex[(cp >> 8) & 0xF];
        out[4] = hex[(cp >> 4) & 0xF];
        out[5] = hex[cp & 0xF];
        return 6;
    }
    memcpy(out, p, n);
    *adv = n;
    return n;
}

/* Writes s as a JSON string. A key (cuttable false) fits whole or fails; a value is cut at a
 * character boundary when space runs out, and then the buffer is marked full. */
static bool log_str(log_buf_t *lb, const char *s, bool cuttable)
{
    size_t mark = lb->len;
    if (!log_put(lb, "\"", 1)) {
        return false;
    }
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        /* A run of printable ASCII other than the quote and the backslash goes as it is. */
        size_t run = 0;
        while (p[run] >= 0x20 && p[run] < 0x7F && p[run] != '"' && p[run] != '\\') {
            run++;
        }
        if (run > 0) {
            size_t room = lb->cap - lb->len - 1; /* one byte for the closing quote */
            if (run > room) {
                if (!cuttable) {
                    lb->len = mark;
                    return false;
                }
                memcpy(lb->b + lb->len, p, room);
                lb->len += room;
                lb->full = true;
                lb->cut = true;
                break;
            }
            memcpy(lb->b + lb->len, p, run);
            lb->len += run;
            p += run;
            continue;
        }
        char unit[6];
        size_t adv;
        size_t n = log_escape_one(p, unit, &adv);
        /* Keep one byte for the closing quote. */
        if (lb->len + n + 1 > lb->cap) {
            if (!cuttable) {
                lb->len = mark;
                return false;
            }
            lb->full = true;
            lb->cut = true;
            break;
        }
        memcpy(lb->b + lb->len, unit, n);
        lb->len += n;
        p += adv;
    }
    return log_put(lb, "\"", 1);
}

/* v in decimal, after a minus sign when neg, into lb. */
static bool log_decimal(log_buf_t *lb, uint64_t v, bool neg)
{
    char num[24];
    size_t i = sizeof(num);
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (neg) {
        num[--i] = '-';
    }
    return log_put(lb, num + i, sizeof(num) - i);
}

static bool log_value(log_buf_t *lb, const ds_log_field_t *f)
{
    char num[40];
    int n;
    switch (f->kind) {
    case DS_LOG_K_STR:
        return f->v.s == NULL ? log_put(lb, "null", 4) : log_str(lb, f->v.s, true);
    case DS_LOG_K_I64:
        return log_decimal(lb, f->v.i < 0 ? 0 - (uint64_t)f->v.i : (uint64_t)f->v.i, f->v.i < 0);
    case DS_LOG_K_U64:
        return log_decimal(lb, f->v.u, false);
    case DS_LOG_K_F64:
        if (!isfinite(f->v.f)) {
            return log_put(lb, "null", 4);
        }
        n = snprintf(num, sizeof(num), "%.15g", f->v.f);
        break;
    case DS_LOG_K_BOOL:
        return f->v.b ? log_put(lb, "true", 4) : log_put(lb, "false", 5);
    default:
        return log_put(lb, "null", 4);
    }
    return n > 0 && (size_t)n < sizeof(num) && log_put(lb, num, (size_t)n);
}

static void log_field(log_buf_t *lb, const ds_log_field_t *f)
{
    if (lb->full) {
        return;
    }
    size_t mark = lb->len;
    bool ok = log_put(lb, ",", 1) && log_str(lb, f->key != NULL ? f->key : "", false) &&
              log_put(lb, ":", 1) && log_value(lb, f);
    if (!ok) {
        lb->len = mark;
        lb->full = true;
        lb->cut = true;
    }
}

static void log_begin(log_buf_t *lb, ds_log_level_t level, const char *msg)
{
    lb->len = 0;
    lb->cap = sizeof(lb->b) - DS_LOG_TAIL;
    lb->full = false;
    lb->cut = false;

    /* The date and time to the second, formatted once a second per thread. */
    static _Thread_local time_t sec_cached = -1;
    static _Thread_local char sec_text[24];
    struct timespec ts = {0, 0};
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != sec_cached) {
        struct tm tm;
        if (gmtime_r(&ts.tv_sec, &tm) == NULL) {
            memset(&tm, 0, sizeof(tm));
        }
        (void)snprintf(sec_text, sizeof(sec_text), "%04d-%02d-%02dT%02d:%02d:%02d",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec);
        sec_cached = ts.tv_sec;
    }
    /* The prefix is under 80 bytes: it always fits. */
    int ms = (int)(ts.tv_nsec / 1000000);
    char frac[6] = {
        '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"'};
    const char *level_name = log_level_names[level];
    (void)log_put(lb, "{\"ts\":\"", 7);
    (void)log_put(lb, sec_text, strlen(sec_text));
    (void)log_put(lb, frac, sizeof(frac));
    (void)log_put(lb, ",\"level\":\"", 10);
    (void)log_put(lb, level_name, strlen(level_name));
    (void)log_put(lb, "\",\"msg\":", 8);
    (void)log_str(lb, msg != NULL ? msg : "", true);
}

/* Ends the line in lb: "}\n", or the truncation mark when something was left out. */
static void log_close(log_buf_t *lb)
{
    if (lb->cut) {
        memcpy(lb->b + lb->len, log_tail_cut, DS_LOG_TAIL);
        lb->len += DS_LOG_TAIL;
    } else {
        memcpy(lb->b + lb->len, "}\n", 2);
        lb->len += 2;
    }
}

static void log_write(const char *p, size_t left)
{
    while (left > 0) {
        ssize_t w = write(STDERR_FILENO, p, left);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* nowhere left to report a failing stderr */
        }
        p += w;
        left -= (size_t)w;
    }
}

static void log_end(log_buf_t *lb)
{
    log_close(lb);
    log_write(lb->b, lb->len);
}

static bool log_level_valid(ds_log_level_t level)
{
    return level >= DS_LOG_DEBUG && level <= DS_LOG_ERROR;
}

static void log_init_once(void)
{
    /* Read once, before the caller's threads could change the environment; we never setenv. */
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once under pthread_once; nothing calls setenv
    const char *s = getenv("DOSSIER_LOG_LEVEL");
    if (s == NULL || *s == '\0') {
        return;
    }
    ds_log_level_t level;
    if (ds_log_level_parse(s, &level) == 0) {
        atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
        return;
    }
    size_t n = strnlen(s, sizeof(log_bad_value) - 1);
    memcpy(log_bad_value, s, n);
    log_bad_value[n] = '\0';
    atomic_store_explicit(&log_bad_env, true, memory_order_relaxed);
}

void ds_log_init(void)
{
    (void)pthread_once(&log_once, log_init_once);
    /* Relaxed: pthread_once already ordered log_bad_value's writing before this point. */
    if (atomic_exchange_explicit(&log_bad_env, false, memory_order_relaxed)) {
        log_buf_t lb;
        log_begin(&lb, DS_LOG_WARN, "unknown log level, using info");
        ds_log_field_t f = DS_LOG_STR("DOSSIER_LOG_LEVEL", log_bad_value);
        log_field(&lb, &f);
        log_end(&lb);
    }
}

void ds_log_set_level(ds_log_level_t level)
{
    ds_log_init(); /* so that the environment cannot override this later */
    if (level < DS_LOG_DEBUG || level > DS_LOG_OFF) {
        return;
    }
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

ds_log_level_t ds_log_get_level(void)
{
    ds_log_init();
    return (ds_log_level_t)atomic_load_explicit(&log_level, memory_order_relaxed);
}

bool ds_log_enabled(ds_log_level_t level)
{
    ds_log_init();
    return log_level_valid(level) &&
           (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void ds_logv(ds_log_level_t level, const char *msg, va_list ap)
{
    if (!ds_log_enabled(level)) {
        return;
    }
    log_buf_t lb;
    log_begin(&lb, level, msg);
    va_list aq;
    va_copy(aq, ap); /* our own copy: the caller's ap stays as it was */
    for (;;) {
        /* The analyzer loses a va_list handed to a function (clang 14); aq is va_copy'd. */
        // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): initialized by va_copy above
        ds_log_field_t f = va_arg(aq, ds_log_field_t);
        if (f.kind == DS_LOG_K_END) {
            break;
        }
        log_field(&lb, &f);
    }
    va_end(aq);
    log_end(&lb);
}

/* The line of msg and fields (up to n, or the first DS_LOG_K_END) into lb, not yet closed. */
static void log_format(log_buf_t *lb, ds_log_level_t level, const char *msg,
                       const ds_log_field_t *fields, size_t n)
{
    log_begin(lb, level, msg);
    for (size_t i = 0; i < n && fields[i].kind != DS_LOG_K_END; i++) {
        log_field(lb, &fields[i]);
    }
}

void ds_log_fields(ds_log_level_t level, const char *msg, const ds_log_field_t *fields, size_t n)
{
    if (!ds_log_enabled(level)) {
        return;
    }
    log_buf_t lb;
    log_format(&lb, level, msg, fields, n);
    log_end(&lb);
}

void ds_log_batch_add(ds_log_batch_t *b, ds_log_level_t level, const char *msg,
                      const ds_log_field_t *fields, size_t n)
{
    if (!ds_log_enabled(level)) {
        return;
    }
    log_buf_t lb;
    log_format(&lb, level, msg, fields, n);
    log_close(&lb);
    if (b->len + lb.len > sizeof(b->buf)) {
        ds_log_batch_flush(b);
    }
    memcpy(b->buf + b->len, lb.b, lb.len); /* a line is at most DS_LOG_LINE_MAX bytes: it fits */
    b->len += lb.len;
}

void ds_log_batch_flush(ds_log_batch_t *b)
{
    if (b->len > 0) {
        log_write(b->buf, b->len);
        b->len = 0;
    }
}

void ds_log(ds_log_level_t level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    ds_logv(level, msg, ap);
    va_end(ap);
}

void ds_log_debug(const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    ds_logv(DS_LOG_DEBUG, msg, ap);
    va_end(ap);
}

void ds_log_info(const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    ds_logv(DS_LOG_INFO, msg, ap);
    va_end(ap);
}

void ds_log_warn(const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    ds_logv(DS_LOG_WARN, msg, ap);
    va_end(ap);
}

void ds_log_error(const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    ds_logv(DS_LOG_ERROR, msg, ap);
    va_end(ap);
}
