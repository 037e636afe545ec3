/* mem: allocation helpers that abort on OOM. See runtime/mem.h.
 * The message goes out with one write(2): no stdio, no allocation, safe when memory is gone. */
#include "runtime/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Noreturn void mem_oom(void)
{
    static const char line[] = "{\"level\":\"error\",\"msg\":\"out of memory, aborting\"}\n";
    /* Nothing useful can be done if this write fails: the abort follows either way. */
    ssize_t n = write(STDERR_FILENO, line, sizeof(line) - 1);
    (void)n;
    abort();
}

void *ds_xmalloc(size_t size)
{
    void *p = malloc(size == 0 ? 1 : size);
    if (p == NULL) {
        mem_oom();
    }
    return p;
}

void *ds_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL) {
        mem_oom();
    }
    return p;
}

void *ds_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size == 0 ? 1 : size);
    if (q == NULL) {
        mem_oom();
    }
    return q;
}

char *ds_xstrdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *d = ds_xmalloc(len);
    memcpy(d, s, len);
    return d;
}

void *ds_xaligned(size_t align, size_t size)
{
    void *p = NULL;
    /* posix_memalign wants align a power of two multiple of sizeof(void *): a caller bug
     * otherwise (EINVAL), reported like OOM rather than returned, as the header promises. */
    if (posix_memalign(&p, align, size == 0 ? 1 : size) != 0) {
        mem_oom();
    }
    return p;
}

/* vsnprintf into a new string; ap is consumed. */
static char *mem_vformat(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    /* clang-tidy 14's valist checker keeps state across the files of one run and flags
     * these calls after runtime/log.c; each va_list here is initialized. */
    int n = vsnprintf(NULL, 0, fmt, again); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(again);
    if (n < 0) {
        mem_oom();
    }
    char *out = ds_xmalloc((size_t)n + 1);
    int m = vsnprintf(out, (size_t)n + 1, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    if (m != n) {
        mem_oom();
    }
    return out;
}

char *ds_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = mem_vformat(fmt, ap);
    va_end(ap);
    return out;
}
