/* bench blob: the encrypted object store against plain files on the same disk.
 *
 *   blob [--dir DIR] [--mb N] [--chunk KIB] [--runs R] [--ranges K] [--range-kib KIB]
 *
 * Each run, on the same bytes (N MiB of random data, fed in 1 MiB pieces):
 *   - plain write: open, write, fsync, close of a plain file in DIR;
 *   - encrypted write: ds_blob writer (AES-256-GCM chunks, SHA-256, temporary, fsync, rename,
 *     directory fsync) into a store under DIR;
 *   - Range reads: K ranges of KIB at seeded random offsets, from the plain file with pread()
 *     and from the object with a ds_blob reader, once cold (both files dropped from the page
 *     cache with posix_fadvise) and once warm.
 * Prints one raw line per run and per measure, then the medians and the ratios
 * encrypted/plain. No figure is asserted (STYLE.md): tests/bench/storage_blob.sh adds the
 * ratio to `openssl speed`. Every loop is bounded by the arguments (runs <= 20, N <= 2047). */
#include "transports/blob/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "runtime/err.h"
#include "transports/blob/keystore.h"

static const char tenant[] = "b0000000-0000-4000-8000-000000000001";

enum {
    PIECE = 1 << 20,
    RUNS_MAX = 20,
    MB_MAX = 2047, /* RAND_bytes fills at most INT_MAX bytes */
    RANGES_MAX = 100000,
};

typedef struct opts {
    const char *dir;
    unsigned mb;
    unsigned chunk_kib;
    unsigned runs;
    unsigned ranges;
    unsigned range_kib;
} opts_t;

typedef struct run {
    double plain_w, enc_w;           /* MB/s */
    double plain_cold, enc_cold;     /* Range reads, MB/s */
    double plain_warm, enc_warm;     /* Range reads, MB/s */
    uint64_t chunks_cold, bytes_out; /* work of the cold encrypted Range reads */
    double plain_w_cpu, enc_w_cpu;   /* CPU seconds (user + system) of each write */
} run_t;

static double now_s(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    (void)fprintf(stderr, "bench blob: %s failed: %s\n", what, ds_strerror(rc));
    _exit(1); /* a single-threaded program: nothing to flush but stderr, which is unbuffered */
}

static double cpu_s(void)
{
    struct rusage ru;
    (void)getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double mbps(uint64_t bytes, double secs)
{
    return secs > 0 ? (double)bytes / 1e6 / secs : 0;
}

static double plain_write(const char *path, const uint8_t *data, size_t n)
{
    double t0 = now_s();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        die("open plain", -errno);
    }
    for (size_t off = 0; off < n; off += PIECE) {
        size_t k = n - off < PIECE ? n - off : PIECE;
        if (write(fd, data + off, k) != (ssize_t)k) {
            die("write plain", -errno);
        }
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        die("fsync plain", -errno);
    }
    return mbps(n, now_s() - t0);
}

static double enc_write(ds_blob_store_t *s, const uint8_t *data, size_t n)
{
    double t0 = now_s();
    ds_blob_writer_t *w = NULL;
    int rc = ds_blob_writer_open(s, tenant, "bench/object", &w);
    if (rc < 0) {
        die("writer open", rc);
    }
    for (size_t off = 0; off < n; off += PIECE) {
        rc = ds_blob_writer_write(w, data + off, n - off < PIECE ? n - off : PIECE);
        if (rc < 0) {
            die("writer write", rc);
        }
    }
    rc = ds_blob_writer_commit(&w, NULL);
    if (rc < 0) {
        die("commit", rc);
    }
    return mbps(n, now_s() - t0);
}

static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        (void)close(fd);
    }
}

/* The offsets of the run's ranges (the same for both files). */
static uint64_t *range_offsets(const opts_t *o, size_t n, unsigned seed)
{
    uint64_t *off = calloc(o->ranges, sizeof(*off));
    if (off == NULL) {
        die("calloc", -ENOMEM);
    }
    size_t len = (size_t)o->range_kib * 1024;
    uint64_t x = 0x9E3779B97F4A7C15ull * (seed + 1);
    for (unsigned i = 0; i < o->ranges; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        off[i] = n > len ? x % (n - len) : 0;
    }
    return off;
}

static double plain_ranges(const char *path, const uint64_t *off, const opts_t *o, uint8_t *buf)
{
    size_t len = (size_t)o->range_kib * 1024;
    double t0 = now_s();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        die("open plain for reading", -errno);
    }
    for (unsigned i = 0; i < o->ranges; i++) {
        if (pread(fd, buf, len, (off_t)off[i]) != (ssize_t)len) {
            die("pread", -errno);
        }
    }
    (void)close(fd);
    return mbps((uint64_t)len * o->ranges, now_s() - t0);
}

static double enc_ranges(ds_blob_store_t *s, const uint64_t *off, const opts_t *o, uint8_t *buf,
                         ds_blob_reader_stats_t *st)
{
    size_t len = (size_t)o->range_kib * 1024;
    double t0 = now_s();
    ds_blob_reader_t *r = NULL;
    int rc = ds_blob_reader_open(s, tenant, "bench/object", &r);
    if (rc < 0) {
        die("reader open", rc);
    }
    for (unsigned i = 0; i < o->ranges; i++) {
        size_t got = 0;
        rc = ds_blob_reader_read(r, off[i], buf, len, &got);
        if (rc < 0 || got != len) {
            die("range read", rc);
        }
    }
    ds_blob_reader_stats(r, st);
    ds_blob_reader_free(&r);
    return mbps((uint64_t)len * o->ranges, now_s() - t0);
}

static run_t one_run(const opts_t *o, ds_blob_store_t *s, const uint8_t *data, size_t n, unsigned i)
{
    char plain[600];
    char object[600];
    (void)snprintf(plain, sizeof(plain), "%s/plain.bin", o->dir);
    (void)snprintf(object, sizeof(object), "%s/blobs/bench/%s/bench/object", o->dir, tenant);
    run_t r = {0};
    /* Alternate the order so neither side always gets the fresher disk. */
    for (unsigned k = 0; k < 2; k++) {
        double c0 = cpu_s();
        if ((i + k) % 2 == 0) {
            r.plain_w = plain_write(plain, data, n);
            r.plain_w_cpu = cpu_s() - c0;
        } else {
            r.enc_w = enc_write(s, data, n);
            r.enc_w_cpu = cpu_s() - c0;
        }
    }
    uint64_t *off = range_offsets(o, n, i);
    uint8_t *buf = malloc((size_t)o->range_kib * 1024);
    if (buf == NULL) {
        die("malloc", -ENOMEM);
    }
    ds_blob_reader_stats_t st;
    drop_cache(plain);
    drop_cache(object);
    r.plain_cold = plain_ranges(plain, off, o, buf);
    r.enc_cold = enc_ranges(s, off, o, buf, &st);
    r.chunks_cold = st.chunks_decrypted;
    r.bytes_out = st.bytes_out;
    r.plain_warm = plain_ranges(plain, off, o, buf);
    r.enc_warm = enc_ranges(s, off, o, buf, &st);
    free(buf);
    free(off);
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const run_t *runs, unsigned n, size_t field)
{
    double v[RUNS_MAX];
    for (unsigned i = 0; i < n; i++) {
        memcpy(&v[i], (const char *)&runs[i] + field, sizeof(double));
    }
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static bool parse_args(int argc, char **argv, opts_t *o)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        const char *v = argv[i + 1];
        bool ok = true;
        if (strcmp(k, "--dir") == 0) {
            o->dir = v;
        } else if (strcmp(k, "--mb") == 0) {
            ok = parse_uint(v, 1, MB_MAX, &o->mb);
        } else if (strcmp(k, "--chunk") == 0) {
            ok = parse_uint(v, DS_BLOB_CHUNK_MIN / 1024, DS_BLOB_CHUNK_MAX / 1024, &o->chunk_kib);
        } else if (strcmp(k, "--runs") == 0) {
            ok = parse_uint(v, 1, RUNS_MAX, &o->runs);
        } else if (strcmp(k, "--ranges") == 0) {
            ok = parse_uint(v, 1, RANGES_MAX, &o->ranges);
        } else if (strcmp(k, "--range-kib") == 0) {
            ok = parse_uint(v, 1, 65536, &o->range_kib);
        } else {
            ok = false;
        }
        if (!ok) {
            return false;
        }
    }
    return argc % 2 == 1 && (uint64_t)o->range_kib * 1024 < (uint64_t)o->mb * 1024 * 1024;
}

static void print_results(const opts_t *o, const run_t *runs)
{
    for (unsigned i = 0; i < o->runs; i++) {
        const run_t *r = &runs[i];
        (void)printf("RUN %u plain_write_fsync_MBps=%.1f enc_write_MBps=%.1f "
                     "plain_range_cold_MBps=%.1f enc_range_cold_MBps=%.1f "
                     "plain_range_warm_MBps=%.1f enc_range_warm_MBps=%.1f "
                     "enc_range_chunks_decrypted=%llu enc_range_bytes=%llu "
                     "plain_write_cpu_s=%.3f enc_write_cpu_s=%.3f\n",
                     i + 1, r->plain_w, r->enc_w, r->plain_cold, r->enc_cold, r->plain_warm,
                     r->enc_warm, (unsigned long long)r->chunks_cold,
                     (unsigned long long)r->bytes_out, r->plain_w_cpu, r->enc_w_cpu);
    }
    double pw = median(runs, o->runs, offsetof(run_t, plain_w));
    double ew = median(runs, o->runs, offsetof(run_t, enc_w));
    double pc = median(runs, o->runs, offsetof(run_t, plain_cold));
    double ec = median(runs, o->runs, offsetof(run_t, enc_cold));
    double pwm = median(runs, o->runs, offsetof(run_t, plain_warm));
    double ewm = median(runs, o->runs, offsetof(run_t, enc_warm));
    (void)printf("MEDIAN plain_write_fsync_MBps=%.1f enc_write_MBps=%.1f write_ratio=%.3f\n", pw,
                 ew, pw > 0 ? ew / pw : 0);
    (void)printf("MEDIAN plain_range_cold_MBps=%.1f enc_range_cold_MBps=%.1f "
                 "range_cold_ratio=%.3f\n",
                 pc, ec, pc > 0 ? ec / pc : 0);
    (void)printf("MEDIAN plain_range_warm_MBps=%.1f enc_range_warm_MBps=%.1f "
                 "range_warm_ratio=%.3f\n",
                 pwm, ewm, pwm > 0 ? ewm / pwm : 0);
}

int main(int argc, char **argv)
{
    opts_t o = {.dir = ".", .mb = 128, .chunk_kib = 64, .runs = 3, .ranges = 512, .range_kib = 256};
    if (!parse_args(argc, argv, &o)) {
        (void)fprintf(stderr, "usage: blob [--dir DIR] [--mb N] [--chunk KIB] [--runs R] "
                              "[--ranges K] [--range-kib KIB]\n");
        return 2;
    }
    size_t n = (size_t)o.mb * 1024 * 1024;
    uint8_t *data = malloc(n);
    if (data == NULL || RAND_bytes(data, (int)n) != 1) {
        die("random data", -ENOMEM);
    }
    char master[600];
    char tenants[600];
    char blobs[600];
    (void)snprintf(master, sizeof(master), "%s/keys/master.key", o.dir);
    (void)snprintf(tenants, sizeof(tenants), "%s/keys/tenants", o.dir);
    (void)snprintf(blobs, sizeof(blobs), "%s/blobs", o.dir);
    ds_keystore_cfg_t kc = {.master_path = master, .tenant_dir = tenants, .create_master = true};
    ds_keystore_t *ks = NULL;
    int rc = ds_keystore_open(&kc, &ks);
    if (rc < 0) {
        die("keystore open", rc);
    }
    ds_blob_cfg_t bc = {
        .root = blobs, .region = "bench", .keys = ks, .chunk_size = o.chunk_kib * 1024};
    ds_blob_store_t *s = NULL;
    rc = ds_blob_open(&bc, &s);
    if (rc < 0) {
        die("store open", rc);
    }
    (void)printf("# blob bench: dir=%s size=%uMiB chunk=%uKiB piece=1MiB runs=%u ranges=%ux%uKiB\n",
                 o.dir, o.mb, o.chunk_kib, o.runs, o.ranges, o.range_kib);
    run_t runs[RUNS_MAX];
    for (unsigned i = 0; i < o.runs; i++) {
        runs[i] = one_run(&o, s, data, n, i);
    }
    print_results(&o, runs);
    char plain[600];
    (void)snprintf(plain, sizeof(plain), "%s/plain.bin", o.dir);
    (void)unlink(plain);
    (void)ds_blob_delete(s, tenant, "bench/object");
    ds_blob_free(&s);
    ds_keystore_free(&ks);
    free(data);
    return 0;
}
