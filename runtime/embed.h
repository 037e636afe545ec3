/* embed: files compiled into the binary by CMake's ds_embed() (scripts/embed.cmake): the
 * default config and the SQL migrations, so one binary carries everything it needs.
 * Each file's bytes are followed by a NUL (not counted in size), so text can be used as a C
 * string. The arrays are immutable and live for the whole process. */
#pragma once

#include <stddef.h>

typedef struct ds_embed_file {
    const char *name; /* the file's base name, e.g. "0001_base.sql" */
    const char *data; /* size bytes, then a NUL */
    size_t size;
} ds_embed_file_t;

/* Declares `extern const ds_embed_file_t sym[]; extern const size_t sym_count;`: use it in the
 * module that reads the embedded files. The array ends with an entry whose name is NULL. */
#define DS_EMBED_DECLARE(sym)           \
    extern const ds_embed_file_t sym[]; \
    extern const size_t sym##_count
