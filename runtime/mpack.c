/* mpack: msgpack writer and reader. See runtime/mpack.h.
 *
 * The reader decodes every tag through one function, mp_head(), which reads the tag byte and
 * its fixed-size fields (length, count or value) and checks that those bytes are present. The
 * getters and the iterative skipper build on it, so there is one place that knows the format. */
#include "runtime/mpack.h"

#include <errno.h>
#include <string.h>

#include "runtime/err.h"

/* How the bytes after a tag in 0xc0..0xdf are read. K_BAD (zero) marks tags we refuse: 0xc1,
 * which the spec never uses, and the extension types. */
enum mp_kind {
    K_BAD = 0,
    K_NIL,
    K_FALSE,
    K_TRUE,
    K_LEN,   /* a big-endian length (str, bin) or count (array, map) of `width` bytes */
    K_UINT,  /* a big-endian unsigned value of `width` bytes */
    K_SINT,  /* a big-endian two's complement value of `width` bytes */
    K_FLOAT, /* IEEE 754 bits, 4 or 8 bytes */
};

typedef struct mp_tag {
    uint8_t kind;
    uint8_t type;
    uint8_t width;
} mp_tag_t;

static const mp_tag_t mp_tags[32] = {
    [0x00] = {K_NIL, DS_MP_NIL, 0},     [0x02] = {K_FALSE, DS_MP_BOOL, 0},
    [0x03] = {K_TRUE, DS_MP_BOOL, 0},   [0x04] = {K_LEN, DS_MP_BIN, 1},
    [0x05] = {K_LEN, DS_MP_BIN, 2},     [0x06] = {K_LEN, DS_MP_BIN, 4},
    [0x0a] = {K_FLOAT, DS_MP_FLOAT, 4}, [0x0b] = {K_FLOAT, DS_MP_FLOAT, 8},
    [0x0c] = {K_UINT, DS_MP_UINT, 1},   [0x0d] = {K_UINT, DS_MP_UINT, 2},
    [0x0e] = {K_UINT, DS_MP_UINT, 4},   [0x0f] = {K_UINT, DS_MP_UINT, 8},
    [0x10] = {K_SINT, DS_MP_INT, 1},    [0x11] = {K_SINT, DS_MP_INT, 2},
    [0x12] = {K_SINT, DS_MP_INT, 4},    [0x13] = {K_SINT, DS_MP_INT, 8},
    [0x19] = {K_LEN, DS_MP_STR, 1},     [0x1a] = {K_LEN, DS_MP_STR, 2},
    [0x1b] = {K_LEN, DS_MP_STR, 4},     [0x1c] = {K_LEN, DS_MP_ARRAY, 2},
    [0x1d] = {K_LEN, DS_MP_ARRAY, 4},   [0x1e] = {K_LEN, DS_MP_MAP, 2},
    [0x1f] = {K_LEN, DS_MP_MAP, 4},
};

/* One decoded tag. */
typedef struct mp_head {
    ds_mp_type_t type;
    size_t hdr;   /* bytes of the tag and its fixed fields */
    uint64_t len; /* str/bin: data bytes that follow; array: elements; map: pairs */
    uint64_t u;   /* UINT: the value; BOOL: 0 or 1; FLOAT: the raw bits */
    int64_t i;    /* INT: the (negative) value */
} mp_head_t;

static uint64_t be_read(const uint8_t *p, unsigned width)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < width; k++) {
        v = (v << 8) | p[k];
    }
    return v;
}

static int64_t sign_extend(uint64_t v, unsigned width)
{
    switch (width) {
    case 1:
        return (int8_t)(uint8_t)v;
    case 2:
        return (int16_t)(uint16_t)v;
    case 4:
        return (int32_t)(uint32_t)v;
    default:
        return (int64_t)v;
    }
}

static void head_int(mp_head_t *h, int64_t v)
{
    if (v >= 0) {
        h->type = DS_MP_UINT;
        h->u = (uint64_t)v;
    } else {
        h->type = DS_MP_INT;
        h->i = v;
    }
}

/* Decodes the tag at base[pos..end) and its fixed fields into *h. 0, or DS_EDECODE when the
 * bytes are too few for them or the tag is refused. The data of a str or bin is not checked
 * here. (base may be NULL when end is 0, so no arithmetic on it happens before the check.) */
static int mp_head(const uint8_t *base, size_t end, size_t pos, mp_head_t *h)
{
    if (pos >= end) {
        return DS_EDECODE;
    }
    const uint8_t *p = base + pos;
    size_t n = end - pos;
    uint8_t c = p[0];
    memset(h, 0, sizeof(*h));
    h->hdr = 1;
    if (c <= 0x7f) {
        h->type = DS_MP_UINT;
        h->u = c;
    } else if (c <= 0x8f) {
        h->type = DS_MP_MAP;
        h->len = c & 0x0fU;
    } else if (c <= 0x9f) {
        h->type = DS_MP_ARRAY;
        h->len = c & 0x0fU;
    } else if (c <= 0xbf) {
        h->type = DS_MP_STR;
        h->len = c & 0x1fU;
    } else if (c >= 0xe0) {
        h->type = DS_MP_INT;
        h->i = (int64_t)c - 256; /* negative fixint: 111xxxxx */
    } else {
        const mp_tag_t *t = &mp_tags[c - 0xc0];
        if (t->kind == K_BAD || n - 1 < t->width) {
            return DS_EDECODE;
        }
        uint64_t v = be_read(p + 1, t->width);
        h->type = (ds_mp_type_t)t->type;
        h->hdr = 1U + t->width;
        switch (t->kind) {
        case K_FALSE:
        case K_TRUE:
            h->u = t->kind == K_TRUE;
            break;
        case K_LEN:
            h->len = v;
            break;
        case K_UINT:
        case K_FLOAT:
            h->u = v;
            break;
        case K_SINT:
            head_int(h, sign_extend(v, t->width));
            break;
        default:
            break;
        }
    }
    return 0;
}

/* Writer. */

void ds_mp_writer_init(ds_mp_writer_t *w, uint8_t *buf, size_t cap)
{
    w->ds__buf = buf;
    w->ds__cap = buf == NULL ? 0 : cap;
    w->ds__len = 0;
    w->ds__err = 0;
}

size_t ds_mp_writer_len(const ds_mp_writer_t *w)
{
    return w->ds__len;
}

int ds_mp_writer_err(const ds_mp_writer_t *w)
{
    return w->ds__err;
}

/* Room for k more bytes: a pointer to them, or NULL (and the sticky error) when they do not
 * fit. Nothing is written on failure, so a put is all or nothing. */
static uint8_t *w_reserve(ds_mp_writer_t *w, size_t k)
{
    if (w->ds__err != 0 || w->ds__cap - w->ds__len < k) {
        w->ds__err = -EMSGSIZE;
        return NULL;
    }
    uint8_t *p = w->ds__buf + w->ds__len;
    w->ds__len += k;
    return p;
}

static void be_write(uint8_t *p, uint64_t v, unsigned width)
{
    for (unsigned k = width; k > 0; k--) {
        p[k - 1] = (uint8_t)v;
        v >>= 8;
    }
}

/* A tag, a big-endian field of width bytes, then extra bytes of data. */
static int w_tagged(ds_mp_writer_t *w, uint8_t tag, uint64_t v, unsigned width, const void *data,
                    size_t extra)
{
    if (extra > SIZE_MAX - 1U - width) {
        w->ds__err = -EMSGSIZE;
        return -EMSGSIZE;
    }
    uint8_t *p = w_reserve(w, 1U + width + extra);
    if (p == NULL) {
        return -EMSGSIZE;
    }
    p[0] = tag;
    be_write(p + 1, v, width);
    if (extra > 0) {
        memcpy(p + 1 + width, data, extra);
    }
    return 0;
}

int ds_mp_put_nil(ds_mp_writer_t *w)
{
    return w_tagged(w, 0xc0, 0, 0, NULL, 0);
}

int ds_mp_put_bool(ds_mp_writer_t *w, bool v)
{
    return w_tagged(w, v ? 0xc3 : 0xc2, 0, 0, NULL, 0);
}

int ds_mp_put_u64(ds_mp_writer_t *w, uint64_t v)
{
    if (v <= 0x7f) {
        return w_tagged(w, (uint8_t)v, 0, 0, NULL, 0);
    }
    if (v <= UINT8_MAX) {
        return w_tagged(w, 0xcc, v, 1, NULL, 0);
    }
    if (v <= UINT16_MAX) {
        return w_tagged(w, 0xcd, v, 2, NULL, 0);
    }
    if (v <= UINT32_MAX) {
        return w_tagged(w, 0xce, v, 4, NULL, 0);
    }
    return w_tagged(w, 0xcf, v, 8, NULL, 0);
}

int ds_mp_put_i64(ds_mp_writer_t *w, int64_t v)
{
    if (v >= 0) {
        return ds_mp_put_u64(w, (uint64_t)v);
    }
    if (v >= -32) {
        return w_tagged(w, (uint8_t)(int8_t)v, 0, 0, NULL, 0);
    }
    if (v >= INT8_MIN) {
        return w_tagged(w, 0xd0, (uint64_t)v, 1, NULL, 0);
    }
    if (v >= INT16_MIN) {
        return w_tagged(w, 0xd1, (uint64_t)v, 2, NULL, 0);
    }
    if (v >= INT32_MIN) {
        return w_tagged(w, 0xd2, (uint64_t)v, 4, NULL, 0);
    }
    return w_tagged(w, 0xd3, (uint64_t)v, 8, NULL, 0);
}

int ds_mp_put_f64(ds_mp_writer_t *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    return w_tagged(w, 0xcb, bits, 8, NULL, 0);
}

int ds_mp_put_str(ds_mp_writer_t *w, const char *s, size_t len)
{
    if (len <= 31) {
        return w_tagged(w, (uint8_t)(0xa0U | len), 0, 0, s, len);
    }
    if (len <= UINT8_MAX) {
        return w_tagged(w, 0xd9, len, 1, s, len);
    }
    if (len <= UINT16_MAX) {
        return w_tagged(w, 0xda, len, 2, s, len);
    }
    if (len <= UINT32_MAX) {
        return w_tagged(w, 0xdb, len, 4, s, len);
    }
    w->ds__err = -EMSGSIZE;
    return -EMSGSIZE;
}

int ds_mp_put_bin(ds_mp_writer_t *w, const void *p, size_t len)
{
    if (len <= UINT8_MAX) {
        return w_tagged(w, 0xc4, len, 1, p, len);
    }
    if (len <= UINT16_MAX) {
        return w_tagged(w, 0xc5, len, 2, p, len);
    }
    if (len <= UINT32_MAX) {
        return w_tagged(w, 0xc6, len, 4, p, len);
    }
    w->ds__err = -EMSGSIZE;
    return -EMSGSIZE;
}

int ds_mp_put_array(ds_mp_writer_t *w, uint32_t n)
{
    if (n <= 15) {
        return w_tagged(w, (uint8_t)(0x90U | n), 0, 0, NULL, 0);
    }
    if (n <= UINT16_MAX) {
        return w_tagged(w, 0xdc, n, 2, NULL, 0);
    }
    return w_tagged(w, 0xdd, n, 4, NULL, 0);
}

int ds_mp_put_map(ds_mp_writer_t *w, uint32_t n)
{
    if (n <= 15) {
        return w_tagged(w, (uint8_t)(0x80U | n), 0, 0, NULL, 0);
    }
    if (n <= UINT16_MAX) {
        return w_tagged(w, 0xde, n, 2, NULL, 0);
    }
    return w_tagged(w, 0xdf, n, 4, NULL, 0);
}

size_t ds_mp_size_u64(uint64_t v)
{
    if (v <= 0x7f) {
        return 1;
    }
    if (v <= UINT8_MAX) {
        return 2;
    }
    if (v <= UINT16_MAX) {
        return 3;
    }
    return v <= UINT32_MAX ? 5 : 9;
}

size_t ds_mp_size_i64(int64_t v)
{
    if (v >= 0) {
        return ds_mp_size_u64((uint64_t)v);
    }
    if (v >= -32) {
        return 1;
    }
    if (v >= INT8_MIN) {
        return 2;
    }
    if (v >= INT16_MIN) {
        return 3;
    }
    return v >= INT32_MIN ? 5 : 9;
}

static size_t size_data(size_t len, size_t hdr)
{
    return len > UINT32_MAX || len > SIZE_MAX - hdr ? SIZE_MAX : len + hdr;
}

size_t ds_mp_size_str(size_t len)
{
    if (len <= 31) {
        return len + 1;
    }
    if (len <= UINT8_MAX) {
        return len + 2;
    }
    return size_data(len, len <= UINT16_MAX ? 3 : 5);
}

size_t ds_mp_size_bin(size_t len)
{
    if (len <= UINT8_MAX) {
        return len + 2;
    }
    return size_data(len, len <= UINT16_MAX ? 3 : 5);
}

size_t ds_mp_size_array(uint32_t n)
{
    if (n <= 15) {
        return 1;
    }
    return n <= UINT16_MAX ? 3 : 5;
}

/* Reader. */

void ds_mp_reader_init(ds_mp_reader_t *r, const void *p, size_t n)
{
    r->ds__p = p;
    r->ds__n = p == NULL ? 0 : n;
    r->ds__pos = 0;
}

size_t ds_mp_reader_left(const ds_mp_reader_t *r)
{
    return r->ds__n - r->ds__pos;
}

size_t ds_mp_reader_pos(const ds_mp_reader_t *r)
{
    return r->ds__pos;
}

static int r_head(const ds_mp_reader_t *r, mp_head_t *h)
{
    return mp_head(r->ds__p, r->ds__n, r->ds__pos, h);
}

int ds_mp_peek(const ds_mp_reader_t *r, ds_mp_type_t *out)
{
    mp_head_t h;
    int rc = r_head(r, &h);
    if (rc == 0) {
        *out = h.type;
    }
    return rc;
}

/* Reads the head of a value that must be of type want. */
static int r_expect(ds_mp_reader_t *r, ds_mp_type_t want, mp_head_t *h)
{
    int rc = r_head(r, h);
    if (rc == 0 && h->type != want) {
        rc = DS_EDECODE;
    }
    return rc;
}

int ds_mp_get_nil(ds_mp_reader_t *r)
{
    mp_head_t h;
    int rc = r_expect(r, DS_MP_NIL, &h);
    if (rc == 0) {
        r->ds__pos += h.hdr;
    }
    return rc;
}

int ds_mp_get_bool(ds_mp_reader_t *r, bool *out)
{
    mp_head_t h;
    int rc = r_expect(r, DS_MP_BOOL, &h);
    if (rc == 0) {
        *out = h.u != 0;
        r->ds__pos += h.hdr;
    }
    return rc;
}

/* Any integer, as a value in [lo, hi] given as a signed lower bound and an unsigned upper one. */
static int r_int(ds_mp_reader_t *r, int64_t lo, uint64_t hi, mp_head_t *h)
{
    int rc = r_head(r, h);
    if (rc != 0) {
        return rc;
    }
    if (h->type == DS_MP_UINT) {
        rc = h->u <= hi ? 0 : DS_EDECODE;
    } else if (h->type == DS_MP_INT) {
        rc = h->i >= lo ? 0 : DS_EDECODE;
    } else {
        rc = DS_EDECODE;
    }
    if (rc == 0) {
        r->ds__pos += h->hdr;
    }
    return rc;
}

int ds_mp_get_u64(ds_mp_reader_t *r, uint64_t *out)
{
    mp_head_t h;
    int rc = r_int(r, 0, UINT64_MAX, &h);
    if (rc == 0) {
        *out = h.u;
    }
    return rc;
}

int ds_mp_get_u32(ds_mp_reader_t *r, uint32_t *out)
{
    mp_head_t h;
    int rc = r_int(r, 0, UINT32_MAX, &h);
    if (rc == 0) {
        *out = (uint32_t)h.u;
    }
    return rc;
}

int ds_mp_get_i64(ds_mp_reader_t *r, int64_t *out)
{
    mp_head_t h;
    int rc = r_int(r, INT64_MIN, INT64_MAX, &h);
    if (rc == 0) {
        *out = h.type == DS_MP_UINT ? (int64_t)h.u : h.i;
    }
    return rc;
}

int ds_mp_get_i32(ds_mp_reader_t *r, int32_t *out)
{
    mp_head_t h;
    int rc = r_int(r, INT32_MIN, INT32_MAX, &h);
    if (rc == 0) {
        *out = h.type == DS_MP_UINT ? (int32_t)h.u : (int32_t)h.i;
    }
    return rc;
}

int ds_mp_get_f64(ds_mp_reader_t *r, double *out)
{
    mp_head_t h;
    int rc = r_expect(r, DS_MP_FLOAT, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.hdr == 5) {
        uint32_t bits = (uint32_t)h.u;
        float f;
        memcpy(&f, &bits, sizeof(f));
        *out = (double)f;
    } else {
        memcpy(out, &h.u, sizeof(*out));
    }
    r->ds__pos += h.hdr;
    return 0;
}

/* A str or bin: its data must be present in full. */
static int r_data(ds_mp_reader_t *r, ds_mp_type_t want, const uint8_t **ptr, uint32_t *len)
{
    mp_head_t h;
    int rc = r_expect(r, want, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.len > r->ds__n - r->ds__pos - h.hdr) {
        return DS_EDECODE;
    }
    *ptr = r->ds__p + r->ds__pos + h.hdr;
    *len = (uint32_t)h.len;
    r->ds__pos += h.hdr + (size_t)h.len;
    return 0;
}

int ds_mp_get_str(ds_mp_reader_t *r, const char **ptr, uint32_t *len)
{
    const uint8_t *p;
    uint32_t n;
    int rc = r_data(r, DS_MP_STR, &p, &n);
    if (rc == 0) {
        *ptr = (const char *)p;
        *len = n;
    }
    return rc;
}

int ds_mp_get_text(ds_mp_reader_t *r, const char **ptr, uint32_t *len)
{
    ds_mp_reader_t probe = *r;
    const char *p;
    uint32_t n;
    int rc = ds_mp_get_str(&probe, &p, &n);
    if (rc == 0 && !ds_mp_utf8_valid(p, n)) {
        rc = DS_EDECODE;
    }
    if (rc == 0) {
        *r = probe;
        *ptr = p;
        *len = n;
    }
    return rc;
}

int ds_mp_get_bin(ds_mp_reader_t *r, const uint8_t **ptr, uint32_t *len)
{
    return r_data(r, DS_MP_BIN, ptr, len);
}

static int r_count(ds_mp_reader_t *r, ds_mp_type_t want, uint32_t *n)
{
    mp_head_t h;
    int rc = r_expect(r, want, &h);
    if (rc == 0) {
        *n = (uint32_t)h.len;
        r->ds__pos += h.hdr;
    }
    return rc;
}

int ds_mp_get_array(ds_mp_reader_t *r, uint32_t *n)
{
    return r_count(r, DS_MP_ARRAY, n);
}

int ds_mp_get_map(ds_mp_reader_t *r, uint32_t *n)
{
    return r_count(r, DS_MP_MAP, n);
}

/* Skipping without recursion: left[d] counts the values still to skip at nesting level d
 * (level 0 holds the one value asked for). Each step takes one value off the innermost level
 * with work left; a container pushes a level holding its element count (twice the pair count
 * for a map). Every value takes at least one byte, so a count larger than the bytes left is
 * malformed and refused before any loop runs over it. */
int ds_mp_skip(ds_mp_reader_t *r, unsigned max_depth)
{
    uint64_t left[DS_MP_DEPTH_MAX + 1];
    unsigned depth = 0;
    size_t pos = r->ds__pos;
    const size_t n = r->ds__n;
    if (max_depth > DS_MP_DEPTH_MAX) {
        max_depth = DS_MP_DEPTH_MAX;
    }
    left[0] = 1;
    for (;;) {
        while (left[depth] == 0 && depth > 0) {
            depth--;
        }
        if (left[depth] == 0) {
            break;
        }
        left[depth]--;
        mp_head_t h;
        if (mp_head(r->ds__p, n, pos, &h) != 0) {
            return DS_EDECODE;
        }
        pos += h.hdr;
        if (h.type == DS_MP_ARRAY || h.type == DS_MP_MAP) {
            uint64_t count = h.type == DS_MP_MAP ? h.len * 2 : h.len;
            if (depth >= max_depth || count > n - pos) {
                return DS_EDECODE;
            }
            left[++depth] = count;
        } else if (h.type == DS_MP_STR || h.type == DS_MP_BIN) {
            if (h.len > n - pos) {
                return DS_EDECODE;
            }
            pos += (size_t)h.len;
        }
    }
    r->ds__pos = pos;
    return 0;
}

bool ds_mp_utf8_valid(const void *p, size_t n)
{
    const uint8_t *s = p;
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t more;
        uint32_t cp;
        uint32_t min;
        if ((c & 0xe0) == 0xc0) {
            more = 1;
            cp = c & 0x1fU;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2;
            cp = c & 0x0fU;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3;
            cp = c & 0x07U;
            min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < more) {
            return false;
        }
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3fU);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += more + 1;
    }
    return true;
}
