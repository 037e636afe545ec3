/* log: JSON-lines logging on stderr (STYLE.md, "Logging and metrics").
 *
 * One call writes one line, {"ts":...,"level":...,"msg":...,<fields>}, with one write(2), so
 * lines from many threads never interleave (a pipe keeps writes under PIPE_BUF whole; the line
 * is capped at DS_LOG_LINE_MAX bytes, which is PIPE_BUF on Linux). A line that would be longer
 * keeps the fields that fit, a long string value is cut at a character boundary, and the line
 * ends with "truncated":true. Strings are JSON-escaped; bytes that are not valid UTF-8 become
 * U+FFFD.
 *
 * Fields are typed values built with the DS_LOG_* macros and ended by DS_LOG_END:
 *
 *     ds_log_info("heartbeat", DS_LOG_U64("actors", n), DS_LOG_STR("tenant", "t1"), DS_LOG_END);
 *
 * msg is a fixed, lower-case string without a final period; facts go in fields. Keys and string
 * values are borrowed for the duration of the call only. Never log secrets or content.
 *
 * Level: messages under the threshold cost one relaxed load. The threshold starts at info, or
 * at DOSSIER_LOG_LEVEL (debug, info, warn, error, off) read once at the first log call or
 * ds_log_init(); ds_log_set_level() overrides both.
 *
 * Batches. A thread that logs many lines (the HTTP access log: a line per request) collects them
 * in a ds_log_batch_t of its own with ds_log_batch_add() and writes them with
 * ds_log_batch_flush(): one write(2) for up to DS_LOG_LINE_MAX bytes of whole lines, so a batch
 * is as atomic on a pipe as a single line. The lines are the ones ds_log_fields() would write
 * (the same "ts": the time of the add), only later; lines written directly meanwhile (by this
 * thread or another) may come before them.
 *
 * Threads: every function is safe from any thread, except that a ds_log_batch_t belongs to one
 * thread at a time. Nothing here allocates. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    DS_LOG_LINE_MAX = 4096, /* bytes of a line, newline included */
};

typedef enum ds_log_level {
    DS_LOG_DEBUG = 0,
    DS_LOG_INFO = 1,
    DS_LOG_WARN = 2,
    DS_LOG_ERROR = 3,
    DS_LOG_OFF = 4, /* as a threshold only: nothing is written */
} ds_log_level_t;

typedef enum ds_log_kind {
    DS_LOG_K_END = 0, /* ends a field list */
    DS_LOG_K_STR,
    DS_LOG_K_I64,
    DS_LOG_K_U64,
    DS_LOG_K_F64, /* NaN and infinities are written as null */
    DS_LOG_K_BOOL,
} ds_log_kind_t;

/* One key/value pair of a log line. Build it with the macros below. */
typedef struct ds_log_field {
    ds_log_kind_t kind;
    const char *key;
    union {
        const char *s; /* NULL is written as null */
        int64_t i;
        uint64_t u;
        double f;
        bool b;
    } v;
} ds_log_field_t;

#define DS_LOG_STR(k, x)  ((ds_log_field_t){.kind = DS_LOG_K_STR, .key = (k), .v.s = (x)})
#define DS_LOG_I64(k, x)  ((ds_log_field_t){.kind = DS_LOG_K_I64, .key = (k), .v.i = (int64_t)(x)})
#define DS_LOG_U64(k, x)  ((ds_log_field_t){.kind = DS_LOG_K_U64, .key = (k), .v.u = (uint64_t)(x)})
#define DS_LOG_F64(k, x)  ((ds_log_field_t){.kind = DS_LOG_K_F64, .key = (k), .v.f = (double)(x)})
#define DS_LOG_BOOL(k, x) ((ds_log_field_t){.kind = DS_LOG_K_BOOL, .key = (k), .v.b = (x)})
#define DS_LOG_END        ((ds_log_field_t){.kind = DS_LOG_K_END})

/* Reads DOSSIER_LOG_LEVEL, once per process; later calls do nothing. Optional: the first log
 * call runs it too. An unknown value leaves the threshold at info and logs a warning. */
void ds_log_init(void);
/* Sets the threshold: lines under level are dropped. DS_LOG_OFF silences everything. */
void ds_log_set_level(ds_log_level_t level);
ds_log_level_t ds_log_get_level(void);
/* True if a line at level would be written. */
bool ds_log_enabled(ds_log_level_t level);
/* Parses "debug", "info", "warn" (or "warning"), "error" or "off" into *out: 0, or -EINVAL. */
int ds_log_level_parse(const char *s, ds_log_level_t *out);

/* Writes one line. The variadic arguments are ds_log_field_t values ended by DS_LOG_END. */
void ds_log(ds_log_level_t level, const char *msg, ...);
void ds_logv(ds_log_level_t level, const char *msg, va_list ap);
/* The same with the fields in an array of n (no DS_LOG_END needed). */
void ds_log_fields(ds_log_level_t level, const char *msg, const ds_log_field_t *fields, size_t n);

/* Lines collected to be written together (see "Batches" above); zero it to start. */
typedef struct ds_log_batch {
    char buf[DS_LOG_LINE_MAX];
    size_t len; /* bytes of whole lines waiting */
} ds_log_batch_t;

/* Adds the line ds_log_fields() would write to b (nothing under the threshold), first writing
 * what b holds if the line does not fit beside it. */
void ds_log_batch_add(ds_log_batch_t *b, ds_log_level_t level, const char *msg,
                      const ds_log_field_t *fields, size_t n);
/* Writes the lines b holds (one write(2)) and empties it. Nothing to write: no system call. */
void ds_log_batch_flush(ds_log_batch_t *b);

void ds_log_debug(const char *msg, ...);
void ds_log_info(const char *msg, ...);
void ds_log_warn(const char *msg, ...);
void ds_log_error(const char *msg, ...);
