/* fuzz_blob: the blob store's reader (transports/blob/blob.h) over damaged and hostile object
 * files.
 *
 * Keys are random per key store, so raw files would never authenticate. At the first input a
 * scratch store is made under /dev/shm (else /tmp; removed at exit, left behind by a crash): a
 * key store and a blob store with 4 KiB chunks holding four valid objects of one tenant
 * (empty, 1 byte, one chunk, 3.5 chunks), each with a twin of the same size under another
 * name. An input is a mutation script for one of those files, written over the object so that
 * the real reader opens it:
 *
 *    0  flags: bits 0-1 the object, bit 2 resize, bit 3 after open, bit 7 raw mode (below)
 *    1  u32 new length (with bit 2): the file cut, or grown with the input's bytes from 19 on
 *    5  u16 piece size of the sequential read
 *    7  3 x (u16 offset, u16 length): Range reads
 *   19  up to 64 records of 6 bytes: op, u32 a, u8 b
 *         op 0, 1  byte a ^= b
 *         op 2     swap sealed chunks a and b (their common length)
 *         op 3     copy 16 * (b + 1) bytes at a from the twin's file (b = 255: the whole file)
 *
 * Invariants. The unchanged file opens and reads back its plaintext exactly. A changed one
 * fails, in stat and open alike or in some read of the whole object, with -EBADMSG (or
 * -EKEYREVOKED for a changed key id); every read that succeeds returns exactly the original
 * bytes of its range, and an open that succeeds reports the original size, chunk size and
 * digest (the header is authenticated). Failed calls leave their out-parameters unwritten; a
 * failed read leaves in its buffer only original bytes; no read writes past its count (the
 * buffers have the exact size, so ASan sees any byte past them). The empty object's one
 * (empty) chunk, which no read loads, is authenticated at open: a change to its tag fails
 * stat and open too.
 *
 * After open (bit 3): the reader opens the intact file, then the mutated bytes replace it in
 * place (same inode, as damage or a truncation while a reader holds the file open). The open
 * succeeds; the reads obey the same rules, and a change in the chunks (or a cut) must fail
 * some read.
 *
 * Raw mode (bit 7): bytes 1.. are the whole file of an object no one wrote; with bit 6 the
 * tenant's real key id is first written at offset 24, so the input reaches the data key's
 * unwrap. It must fail with -EBADMSG or -EKEYREVOKED (success would need a forged tag, and
 * would have to report a size that fits the file).
 *
 * A broken invariant calls __builtin_trap(); a failure of the scratch store itself aborts.
 * The original file is put back after each input. */
#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "transports/blob/blob.h"
#include "transports/blob/keystore.h"

#define CHECK(cond)           \
    do {                      \
        if (!(cond)) {        \
            __builtin_trap(); \
        }                     \
    } while (0)

enum {
    CS = DS_BLOB_CHUNK_MIN,
    TAG_LEN = 16,
    SEALED = CS + TAG_LEN, /* a full chunk on disk */
    OBJECTS = 4,
    OFF_CHUNK = 8, /* header fields (blob.h) */
    OFF_SIZE = 16,
    OFF_TKID = 24,
    /* the input */
    IN_FLAGS = 0,
    IN_LEN = 1,
    IN_PIECE = 5,
    IN_RANGES = 7,
    RANGES = 3,
    IN_OPS = 19,
    OP_LEN = 6,
    OPS_MAX = 64,
    PIECE_MAX = 9000,
    F_OBJECT = 0x03,
    F_RESIZE = 0x04,
    F_AFTER = 0x08,
    F_GRAFT = 0x40,
    F_RAW = 0x80,
};

static const char tenant[] = "f022f022-0000-4000-8000-00000000f022";
static const char raw_name[] = "fz/raw";
static const size_t sizes[OBJECTS] = {0, 1, CS, 3 * CS + CS / 2};

typedef struct object {
    char name[16];
    char *path;
    uint8_t *plain; /* plain_len bytes (and one more, so never NULL) */
    size_t plain_len;
    uint8_t *file; /* the object's file as written */
    size_t file_len;
    uint8_t *twin; /* the twin's file: as long, other name, data and keys */
    ds_blob_info_t info;
} object_t;

static struct fixture {
    char dir[64];
    ds_keystore_t *ks;
    ds_blob_store_t *s;
    object_t obj[OBJECTS];
    char *raw_path;
    uint8_t tkid[DS_KEYSTORE_KEY_ID_LEN];
} fx;

/* ---- the scratch store ---- */

static char *path_of(const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/blobs/fz/%s/%s", fx.dir, tenant, name) < 0) {
        abort();
    }
    return p;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        abort();
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    if (buf == NULL || read(fd, buf, n) != (ssize_t)n || close(fd) != 0) {
        abort();
    }
    *len = n;
    return buf;
}

static void write_file(const char *path, const uint8_t *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        abort();
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) != 0) {
        abort();
    }
}

static uint8_t *pattern(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n + 1);
    if (p == NULL) {
        abort();
    }
    uint32_t x = seed * 2654435761U + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245U + 12345U;
        p[i] = (uint8_t)(x >> 16);
    }
    return p;
}

/* Stores name with n pattern bytes; their file into *file (*file_len). */
static void put(const char *name, const uint8_t *plain, size_t n, ds_blob_info_t *info,
                uint8_t **file, size_t *file_len)
{
    if (ds_blob_put(fx.s, tenant, name, plain, n, info) != 0) {
        abort();
    }
    char *path = path_of(name);
    *file = read_file(path, file_len);
    free(path);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

static void fixture_free(void)
{
    ds_blob_free(&fx.s);
    ds_keystore_free(&fx.ks);
    for (int i = 0; i < OBJECTS; i++) {
        object_t *o = &fx.obj[i];
        free(o->path);
        free(o->plain);
        free(o->file);
        free(o->twin);
    }
    free(fx.raw_path);
    (void)nftw(fx.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void fixture_init(void)
{
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    (void)snprintf(fx.dir, sizeof(fx.dir), "%s/ds-fuzz-blob-XXXXXX", base);
    if (mkdtemp(fx.dir) == NULL || atexit(fixture_free) != 0) {
        abort();
    }
    char master[128];
    char tenants[128];
    char blobs[128];
    (void)snprintf(master, sizeof(master), "%s/keys/master.key", fx.dir);
    (void)snprintf(tenants, sizeof(tenants), "%s/keys/tenants", fx.dir);
    (void)snprintf(blobs, sizeof(blobs), "%s/blobs", fx.dir);
    ds_keystore_cfg_t kc = {.master_path = master, .tenant_dir = tenants, .create_master = true};
    ds_blob_cfg_t bc = {.root = blobs, .region = "fz", .chunk_size = CS};
    if (ds_keystore_open(&kc, &fx.ks) != 0) {
        abort();
    }
    bc.keys = fx.ks;
    if (ds_blob_open(&bc, &fx.s) != 0) {
        abort();
    }
    for (int i = 0; i < OBJECTS; i++) {
        object_t *o = &fx.obj[i];
        char twin_name[16];
        (void)snprintf(o->name, sizeof(o->name), "fz/o%d", i);
        (void)snprintf(twin_name, sizeof(twin_name), "fz/t%d", i);
        o->path = path_of(o->name);
        o->plain_len = sizes[i];
        o->plain = pattern(o->plain_len, (uint32_t)i + 1);
        put(o->name, o->plain, o->plain_len, &o->info, &o->file, &o->file_len);
        uint8_t *other = pattern(o->plain_len, (uint32_t)i + 100);
        ds_blob_info_t twin_info;
        size_t twin_len = 0;
        put(twin_name, other, o->plain_len, &twin_info, &o->twin, &twin_len);
        free(other);
        if (twin_len != o->file_len || o->info.size != o->plain_len || o->info.chunk_size != CS) {
            abort();
        }
    }
    memcpy(fx.tkid, fx.obj[0].file + OFF_TKID, sizeof(fx.tkid));
    fx.raw_path = path_of(raw_name);
}

/* ---- the input ---- */

static uint8_t byte_at(const uint8_t *d, size_t n, size_t i)
{
    return i < n ? d[i] : 0;
}

static uint16_t le16_at(const uint8_t *d, size_t n, size_t i)
{
    return (uint16_t)(byte_at(d, n, i) | (byte_at(d, n, i + 1) << 8));
}

static uint32_t le32_at(const uint8_t *d, size_t n, size_t i)
{
    return (uint32_t)le16_at(d, n, i) | ((uint32_t)le16_at(d, n, i + 2) << 16);
}

static uint64_t le64_at(const uint8_t *d, size_t n, size_t i)
{
    return (uint64_t)le32_at(d, n, i) | ((uint64_t)le32_at(d, n, i + 4) << 32);
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static size_t chunks_of(uint64_t size, uint64_t cs)
{
    return (size_t)(size == 0 ? 1 : size / cs + (size % cs != 0));
}

/* Bytes of sealed chunk k present in a file of len bytes. */
static size_t slot_len(size_t len, size_t k)
{
    size_t off = DS_BLOB_HEADER_LEN + k * SEALED;
    return off < len ? min_size(SEALED, len - off) : 0;
}

static void swap_chunks(const object_t *o, uint8_t *f, size_t len, uint32_t a, uint8_t b)
{
    size_t slots = chunks_of(o->plain_len, CS);
    size_t i = a % slots;
    size_t j = b % slots;
    size_t n = min_size(slot_len(len, i), slot_len(len, j));
    if (i != j && n > 0) { /* both slots start inside the file */
        uint8_t tmp[SEALED];
        uint8_t *p = f + DS_BLOB_HEADER_LEN + i * SEALED;
        uint8_t *q = f + DS_BLOB_HEADER_LEN + j * SEALED;
        memcpy(tmp, p, n);
        memcpy(p, q, n);
        memcpy(q, tmp, n);
    }
}

static void copy_twin(const object_t *o, uint8_t *f, size_t len, uint32_t a, uint8_t b)
{
    size_t end = min_size(len, o->file_len);
    size_t start = b == 255 ? 0 : a % len;
    size_t n = b == 255 ? end : 16 * ((size_t)b + 1);
    if (start < end) {
        n = min_size(n, end - start);
        memcpy(f + start, o->twin + start, n);
    }
}

/* The mutated file (free() it) and its length in *len. */
static uint8_t *mutate(const object_t *o, const uint8_t *d, size_t n, size_t *len)
{
    size_t flen = o->file_len;
    if (byte_at(d, n, IN_FLAGS) & F_RESIZE) {
        flen = le32_at(d, n, IN_LEN) % (2 * o->file_len + 64);
    }
    uint8_t *f = malloc(flen + 1);
    if (f == NULL) {
        abort();
    }
    size_t keep = min_size(flen, o->file_len);
    memcpy(f, o->file, keep);
    size_t tail = n > IN_OPS ? n - IN_OPS : 0;
    for (size_t i = keep; i < flen; i++) {
        f[i] = tail > 0 ? d[IN_OPS + (i - keep) % tail] : 0;
    }
    size_t ops = min_size(tail / OP_LEN, OPS_MAX);
    for (size_t k = 0; k < ops && flen > 0; k++) {
        const uint8_t *r = d + IN_OPS + k * OP_LEN;
        uint32_t a = le32_at(r, OP_LEN, 1);
        uint8_t b = r[5];
        switch (r[0] & 3) {
        case 2:
            swap_chunks(o, f, flen, a, b);
            break;
        case 3:
            copy_twin(o, f, flen, a, b);
            break;
        default:
            f[a % flen] ^= b;
            break;
        }
    }
    *len = flen;
    return f;
}

/* ---- the checks ---- */

static uint8_t sentinel(size_t i)
{
    return (uint8_t)(0x5a + 7 * i);
}

static bool info_equal(const ds_blob_info_t *a, const ds_blob_info_t *b)
{
    return a->size == b->size && a->chunk_size == b->chunk_size &&
           memcmp(a->sha256, b->sha256, sizeof(a->sha256)) == 0;
}

static bool untouched(const void *p, size_t n, uint8_t v)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != v) {
            return false;
        }
    }
    return true;
}

/* Reads len bytes at off and checks them against plain (plain_len bytes; NULL for an object
 * whose plaintext is unknown). 0, or the read's error. */
static int check_read(ds_blob_reader_t *r, const uint8_t *plain, uint64_t plain_len, uint64_t off,
                      size_t len, uint64_t *total)
{
    uint8_t *buf = malloc(len > 0 ? len : 1); /* exactly len: ASan sees a byte past it */
    if (buf == NULL) {
        abort();
    }
    for (size_t i = 0; i < len; i++) {
        buf[i] = sentinel(i);
    }
    size_t want = off >= plain_len ? 0 : (size_t)min_size(len, (size_t)(plain_len - off));
    size_t got = SIZE_MAX;
    int rc = ds_blob_reader_read(r, off, buf, len, &got);
    if (rc == 0) {
        CHECK(got == want);
        CHECK(plain == NULL || got == 0 || memcmp(buf, plain + off, got) == 0);
        for (size_t i = got; i < len; i++) {
            CHECK(buf[i] == sentinel(i));
        }
        *total += got;
    } else {
        CHECK(rc == -EBADMSG && got == SIZE_MAX);
        /* Only authenticated bytes: each one still the sentinel or the original. */
        for (size_t i = 0; i < len; i++) {
            CHECK(plain == NULL || buf[i] == sentinel(i) || (i < want && buf[i] == plain[off + i]));
        }
    }
    free(buf);
    return rc;
}

/* Range reads, one far past the end, then the whole object in pieces (every chunk, also past
 * a damaged one) of a reader with chunk size cs. The count of failed reads. */
static int read_object(ds_blob_reader_t *r, const uint8_t *plain, uint64_t plain_len, uint64_t cs,
                       const uint8_t *d, size_t n)
{
    uint64_t total = 0;
    int errors = 0;
    uint64_t span = plain_len + 32;
    for (size_t k = 0; k < RANGES; k++) {
        uint64_t off = le16_at(d, n, IN_RANGES + 4 * k) % span;
        size_t len = (size_t)(le16_at(d, n, IN_RANGES + 4 * k + 2) % (span + 1));
        errors += check_read(r, plain, plain_len, off, len, &total) < 0;
    }
    errors += check_read(r, plain, plain_len, UINT64_MAX - 3, 16, &total) < 0;
    size_t piece = 1 + (size_t)le16_at(d, n, IN_PIECE) % PIECE_MAX;
    uint64_t off = 0;
    for (;;) {
        int rc = check_read(r, plain, plain_len, off, piece, &total);
        if (off >= plain_len) {
            break;
        }
        errors += rc < 0;
        /* Past a damaged chunk at once: small pieces would decrypt it again for each. */
        off = rc < 0 ? (off / cs + 1) * cs : off + piece;
    }
    ds_blob_reader_stats_t st;
    ds_blob_reader_stats(r, &st);
    CHECK(st.bytes_out == total);
    return errors;
}

/* True when f differs from o's file where a reader must notice: anywhere; with after, only in
 * the chunks (a reader that opened the original file never reads its header again, nor bytes
 * past its end), and never for the empty object (its chunk was checked at open). */
static bool must_fail(const object_t *o, const uint8_t *f, size_t len, bool after)
{
    if (o->plain_len == 0 && after) {
        return false;
    }
    if (after) {
        return len < o->file_len || memcmp(f + DS_BLOB_HEADER_LEN, o->file + DS_BLOB_HEADER_LEN,
                                           o->file_len - DS_BLOB_HEADER_LEN) != 0;
    }
    if (len != o->file_len) {
        return true;
    }
    return memcmp(f, o->file, len) != 0;
}

/* Stat and open agree; a failure writes no out-parameter and is one of the file errors. */
static int open_both(const char *name, ds_blob_info_t *info, ds_blob_reader_t **r)
{
    memset(info, 0xa5, sizeof(*info));
    int rc = ds_blob_stat(fx.s, tenant, name, info);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -EKEYREVOKED);
    CHECK(rc == 0 || untouched(info, sizeof(*info), 0xa5));
    *r = NULL;
    int orc = ds_blob_reader_open(fx.s, tenant, name, r);
    CHECK(orc == rc && (orc == 0) == (*r != NULL));
    if (orc == 0) {
        ds_blob_info_t again;
        ds_blob_reader_info(*r, &again);
        CHECK(info_equal(info, &again));
    }
    return rc;
}

/* Writes the mutated file, before the reader opens it or (after) once it has (in place, as
 * a file damaged while a reader holds it open), and checks the reads. */
static void fuzz_mutation(const object_t *o, const uint8_t *d, size_t n)
{
    bool after = (byte_at(d, n, IN_FLAGS) & F_AFTER) != 0;
    size_t len = 0;
    uint8_t *f = mutate(o, d, n, &len);
    bool same = len == o->file_len && memcmp(f, o->file, len) == 0;
    bool fail = must_fail(o, f, len, after);
    if (!after) {
        write_file(o->path, f, len);
    }

    ds_blob_info_t info;
    ds_blob_reader_t *r = NULL;
    int rc = open_both(o->name, &info, &r);
    CHECK(rc == 0 || (!same && !after));
    if (after) {
        write_file(o->path, f, len);
    }
    free(f);
    int errors = 0;
    if (rc == 0) {
        CHECK(info_equal(&info, &o->info)); /* the header is authenticated */
        errors = read_object(r, o->plain, o->plain_len, CS, d, n);
    }
    CHECK(!same || errors == 0);
    CHECK(!fail || rc < 0 || errors > 0);
    ds_blob_reader_free(&r);
    CHECK(r == NULL);
    write_file(o->path, o->file, o->file_len);
}

static void fuzz_raw(const uint8_t *d, size_t n)
{
    size_t len = n - 1;
    uint8_t *f = malloc(len + 1);
    if (f == NULL) {
        abort();
    }
    memcpy(f, d + 1, len);
    if ((d[0] & F_GRAFT) && len >= OFF_TKID + sizeof(fx.tkid)) {
        memcpy(f + OFF_TKID, fx.tkid, sizeof(fx.tkid));
    }
    write_file(fx.raw_path, f, len);

    ds_blob_info_t info;
    ds_blob_reader_t *r = NULL;
    if (open_both(raw_name, &info, &r) == 0) {
        /* Impossible without a forged tag; then at least a size that fits the file. */
        CHECK(info.size == le64_at(f, len, OFF_SIZE) &&
              info.chunk_size == le32_at(f, len, OFF_CHUNK));
        CHECK(info.chunk_size >= DS_BLOB_CHUNK_MIN && info.chunk_size <= DS_BLOB_CHUNK_MAX);
        CHECK(info.size <= len &&
              DS_BLOB_HEADER_LEN + info.size + TAG_LEN * chunks_of(info.size, info.chunk_size) ==
                  len);
        (void)read_object(r, NULL, info.size, info.chunk_size, d, n);
    }
    ds_blob_reader_free(&r);
    free(f);
    if (unlink(fx.raw_path) != 0) {
        abort();
    }
}

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// NOLINTNEXTLINE(readability-identifier-naming): the entry point libFuzzer calls
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready; /* libFuzzer runs inputs on one thread */
    if (!ready) {
        fixture_init();
        ready = true;
    }
    uint8_t flags = byte_at(data, size, IN_FLAGS);
    if (flags & F_RAW) {
        fuzz_raw(data, size);
    } else {
        fuzz_mutation(&fx.obj[flags & F_OBJECT], data, size);
    }
    return 0;
}
