/* mem: allocation helpers for small internal allocations.
 * ds_xmalloc and friends abort the process with a message on OOM, so callers never test for
 * NULL (Redis's zmalloc). Sizes a peer controls are never passed here unchecked: check them
 * against a configured limit first and fail with -EMSGSIZE (STYLE.md, "Memory").
 * Threads: safe from any thread. Free what they return with free(). */
#pragma once

#include <stddef.h>

void *ds_xmalloc(size_t size);
void *ds_xcalloc(size_t n, size_t size);
void *ds_xrealloc(void *p, size_t size);
char *ds_xstrdup(const char *s);
/* printf into a new string (free() it). A format error aborts like OOM: formats are ours. */
char *ds_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Aligned allocation (align a power of two >= sizeof(void *)); free with free(). */
void *ds_xaligned(size_t align, size_t size);
