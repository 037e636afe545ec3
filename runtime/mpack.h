/* mpack: a small, allocation-free msgpack writer and reader (https://msgpack.org spec).
 *
 * Writer: encodes into a caller's buffer. Every value takes its smallest encoding (positive or
 * negative fixint, then uint8..64 / int8..64; fixstr, str8..32; bin8..32; fixarray, array16/32;
 * fixmap, map16/32); floats are always float64. Running out of room is sticky: the first put
 * that does not fit returns -EMSGSIZE, writes nothing, and every later put fails the same way,
 * so a caller may check once at the end with ds_mp_writer_err().
 *
 * Reader: a cursor over const bytes. Each ds_mp_get_* reads one value of the asked type and
 * advances the cursor only on success; on failure (wrong type, truncated input, a value that
 * does not fit the target) it returns DS_EDECODE and leaves the cursor and the out-params
 * untouched. An integer read accepts any integer encoding whose value fits the target type.
 * Strings and binaries are returned as pointers into the input (zero copy): they live as long
 * as the input bytes. Extension types (fixext, ext8..32) and the unused tag 0xc1 are never
 * accepted. Strings are not checked for UTF-8 here; ds_mp_get_text() and ds_mp_utf8_valid()
 * do that where text is required.
 *
 * Threads: writers and readers are plain values used by one thread; nothing is shared.
 * Nothing here allocates, so nothing is freed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    DS_MP_DEPTH_MAX = 64, /* ds_mp_skip() nests at most this deep, whatever it is asked */
};

/* The type of the next value, as ds_mp_peek() reports it. */
typedef enum ds_mp_type {
    DS_MP_NIL = 1,
    DS_MP_BOOL,
    DS_MP_UINT,  /* a non-negative integer, whatever its encoding */
    DS_MP_INT,   /* a negative integer */
    DS_MP_FLOAT, /* float32 or float64 */
    DS_MP_STR,
    DS_MP_BIN,
    DS_MP_ARRAY,
    DS_MP_MAP,
} ds_mp_type_t;

/* A writer; callers embed it (usually on the stack). The fields are private. */
typedef struct ds_mp_writer {
    uint8_t *ds__buf;
    size_t ds__cap;
    size_t ds__len;
    int ds__err;
} ds_mp_writer_t;

/* A reader; callers embed it. The fields are private. */
typedef struct ds_mp_reader {
    const uint8_t *ds__p;
    size_t ds__n;
    size_t ds__pos;
} ds_mp_reader_t;

/* Writer. buf may be NULL when cap is 0. */
void ds_mp_writer_init(ds_mp_writer_t *w, uint8_t *buf, size_t cap);
/* Bytes written so far (all of them valid, even after an error). */
size_t ds_mp_writer_len(const ds_mp_writer_t *w);
/* 0, or -EMSGSIZE if any put did not fit. */
int ds_mp_writer_err(const ds_mp_writer_t *w);

/* Each returns 0, or -EMSGSIZE (sticky) when the value does not fit in what is left, or when a
 * length does not fit in 32 bits. */
int ds_mp_put_nil(ds_mp_writer_t *w);
int ds_mp_put_bool(ds_mp_writer_t *w, bool v);
int ds_mp_put_u64(ds_mp_writer_t *w, uint64_t v);
/* Non-negative values take the unsigned encodings, as the spec asks for the smallest. */
int ds_mp_put_i64(ds_mp_writer_t *w, int64_t v);
int ds_mp_put_f64(ds_mp_writer_t *w, double v);
/* s may be NULL when len is 0. */
int ds_mp_put_str(ds_mp_writer_t *w, const char *s, size_t len);
int ds_mp_put_bin(ds_mp_writer_t *w, const void *p, size_t len);
/* Headers: the caller then puts n values (an array) or n key/value pairs (a map). */
int ds_mp_put_array(ds_mp_writer_t *w, uint32_t n);
int ds_mp_put_map(ds_mp_writer_t *w, uint32_t n);

/* Encoded sizes, in bytes, of what the puts above write. */
size_t ds_mp_size_u64(uint64_t v);
size_t ds_mp_size_i64(int64_t v);
/* str, bin: header and data; SIZE_MAX when len does not fit in 32 bits. */
size_t ds_mp_size_str(size_t len);
size_t ds_mp_size_bin(size_t len);
/* array, map: the header only. */
size_t ds_mp_size_array(uint32_t n);

/* Reader over p[0..n); p may be NULL when n is 0. */
void ds_mp_reader_init(ds_mp_reader_t *r, const void *p, size_t n);
/* Bytes not yet read. */
size_t ds_mp_reader_left(const ds_mp_reader_t *r);
/* Bytes read so far. */
size_t ds_mp_reader_pos(const ds_mp_reader_t *r);

/* 0 and the next value's type in *out without consuming it; DS_EDECODE at the end of input or
 * for a tag that is never valid here (extension types, 0xc1). */
int ds_mp_peek(const ds_mp_reader_t *r, ds_mp_type_t *out);

/* Each returns 0 and the value, or DS_EDECODE (see the file comment). */
int ds_mp_get_nil(ds_mp_reader_t *r);
int ds_mp_get_bool(ds_mp_reader_t *r, bool *out);
int ds_mp_get_u64(ds_mp_reader_t *r, uint64_t *out);
int ds_mp_get_u32(ds_mp_reader_t *r, uint32_t *out);
int ds_mp_get_i64(ds_mp_reader_t *r, int64_t *out);
int ds_mp_get_i32(ds_mp_reader_t *r, int32_t *out);
/* Accepts float32 (widened exactly) and float64; integers are not floats. */
int ds_mp_get_f64(ds_mp_reader_t *r, double *out);
/* *ptr points into the input (*len bytes, not NUL-terminated), even for an empty string. */
int ds_mp_get_str(ds_mp_reader_t *r, const char **ptr, uint32_t *len);
/* As ds_mp_get_str(), and the bytes must be valid UTF-8 (DS_EDECODE otherwise). */
int ds_mp_get_text(ds_mp_reader_t *r, const char **ptr, uint32_t *len);
int ds_mp_get_bin(ds_mp_reader_t *r, const uint8_t **ptr, uint32_t *len);
/* Element count of an array; pair count of a map. The elements follow. */
int ds_mp_get_array(ds_mp_reader_t *r, uint32_t *n);
int ds_mp_get_map(ds_mp_reader_t *r, uint32_t *n);

/* Skips one value of any type, containers included, without recursion. Containers may nest at
 * most max_depth deep (a top-level array is depth 1; max_depth is clamped to DS_MP_DEPTH_MAX).
 * 0, or DS_EDECODE for truncated or malformed input, an extension type, or nesting too deep;
 * the cursor moves only on success. */
int ds_mp_skip(ds_mp_reader_t *r, unsigned max_depth);

/* True when p[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF). NUL bytes are valid UTF-8 and accepted. */
bool ds_mp_utf8_valid(const void *p, size_t n);
