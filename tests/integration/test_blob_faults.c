/* test_blob_faults: the object store against real crashes and a real full disk.
 *
 * - kill -9 in the middle of a write: a fork()ed child streams a large object slowly and is
 *   SIGKILLed half-way; the object is then absent (or its old version intact), the leftover
 *   temporary is never read and ds_blob_gc_temp() removes it.
 * - ENOSPC: the store's root on a 1 MiB tmpfs mounted by the test (we run as root); a put that
 *   does not fit fails with -ENOSPC, leaves no partial object and no temporary, the object
 *   already there stays intact, and later puts that fit work. Where mounting is not allowed
 *   the same checks run through the fault hook (and the test says so).
 * - Processes starting at once on an empty key directory agree on one master key and one
 *   tenant key (O_EXCL temporaries published with link()). */
#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "transports/blob/blob.h"
#include "transports/blob/blob_int.h"
#include "transports/blob/keystore.h"

static const char tenant_a[] = "0b000000-0000-4000-8000-0000000000aa";

enum {
    PIECE = 64 * 1024,
    KILL_AFTER = 16,     /* pieces written before the child tells the parent */
    CHILD_PIECES = 4096, /* 256 MiB: far more than it gets to write before the kill */
    NPROC = 8,
};

typedef struct fx {
    char dir[64];
    char blobs[160];
    char mnt[160]; /* a tmpfs mounted by the test, unmounted by the teardown if still there */
    bool mounted;
    ds_keystore_t *ks;
    ds_blob_store_t *s;
} fx_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

static void open_all(fx_t *f, const char *blobs)
{
    char master[160];
    char tenants[160];
    (void)snprintf(master, sizeof(master), "%s/keys/master.key", f->dir);
    (void)snprintf(tenants, sizeof(tenants), "%s/keys/tenants", f->dir);
    ds_keystore_cfg_t kc = {.master_path = master, .tenant_dir = tenants, .create_master = true};
    assert_int_equal(ds_keystore_open(&kc, &f->ks), 0);
    (void)snprintf(f->blobs, sizeof(f->blobs), "%s", blobs);
    ds_blob_cfg_t bc = {.root = f->blobs, .region = "r", .keys = f->ks};
    assert_int_equal(ds_blob_open(&bc, &f->s), 0);
}

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    (void)snprintf(f->dir, sizeof(f->dir), "/tmp/ds-blobf-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    ds_blob_set_fault_hook(NULL, NULL);
    ds_blob_free(&f->s);
    ds_keystore_free(&f->ks);
    if (f->mounted) {
        (void)umount2(f->mnt, MNT_DETACH);
    }
    (void)nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static uint8_t *pattern(size_t n, uint8_t seed)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 31 + seed + (i >> 12));
    }
    return p;
}

static size_t temps_under(const char *root)
{
    size_t n = 0;
    const char *pats[] = {"%s/r/*/.*.tmp-*", "%s/r/*/*/.*.tmp-*"};
    for (size_t i = 0; i < 2; i++) {
        char pat[400];
        (void)snprintf(pat, sizeof(pat), pats[i], root);
        glob_t g;
        // NOLINTNEXTLINE(concurrency-mt-unsafe): only the test thread walks the tree
        if (glob(pat, GLOB_NOSORT, NULL, &g) == 0) {
            n += g.gl_pathc;
        }
        globfree(&g);
    }
    return n;
}

static void expect_content(fx_t *f, const char *name, const uint8_t *d, size_t n)
{
    ds_blob_reader_t *r = NULL;
    assert_int_equal(ds_blob_reader_open(f->s, tenant_a, name, &r), 0);
    ds_blob_info_t info;
    ds_blob_reader_info(r, &info);
    assert_int_equal(info.size, n);
    uint8_t *buf = malloc(n + 1);
    assert_non_null(buf);
    size_t got = 0;
    assert_int_equal(ds_blob_reader_read(r, 0, buf, n + 1, &got), 0);
    assert_int_equal(got, n);
    assert_memory_equal(buf, d, n);
    free(buf);
    ds_blob_reader_free(&r);
}

/* ---- kill -9 ---- */

/* The child: streams an object slowly, says "started" after KILL_AFTER pieces, and would
 * commit only after CHILD_PIECES (it never gets there). */
static void child_write(fx_t *f, const char *name, int tell)
{
    uint8_t *piece = pattern(PIECE, 99);
    ds_blob_writer_t *w = NULL;
    if (ds_blob_writer_open(f->s, tenant_a, name, &w) != 0) {
        _exit(3);
    }
    for (int i = 0; i < CHILD_PIECES; i++) {
        if (ds_blob_writer_write(w, piece, PIECE) != 0) {
            _exit(4);
        }
        if (i == KILL_AFTER && write(tell, "s", 1) != 1) {
            _exit(5);
        }
        (void)usleep(2000);
    }
    (void)ds_blob_writer_commit(&w, NULL);
    _exit(6);
}

static void kill_mid_write(fx_t *f, const char *name, const uint8_t *old, size_t old_len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)close(p[0]);
        child_write(f, name, p[1]);
    }
    (void)close(p[1]);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 60000), 1);
    char c = 0;
    assert_int_equal(read(p[0], &c, 1), 1);
    /* Mid-write: readers see the old state. */
    if (old == NULL) {
        ds_blob_info_t info;
        assert_int_equal(ds_blob_stat(f->s, tenant_a, name, &info), -ENOENT);
    } else {
        expect_content(f, name, old, old_len);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    (void)close(p[0]);
}

static void test_kill9_mid_write(void **state)
{
    fx_t *f = *state;
    char blobs[160];
    (void)snprintf(blobs, sizeof(blobs), "%s/blobs", f->dir);
    open_all(f, blobs);

    /* A new object: absent after the kill. */
    kill_mid_write(f, "new/obj", NULL, 0);
    ds_blob_info_t info;
    assert_int_equal(ds_blob_stat(f->s, tenant_a, "new/obj", &info), -ENOENT);
    assert_int_equal(temps_under(f->blobs), 1);

    /* A replaced object: the old version intact after the kill. */
    uint8_t *v1 = pattern(300000, 1);
    assert_int_equal(ds_blob_put(f->s, tenant_a, "old/obj", v1, 300000, NULL), 0);
    kill_mid_write(f, "old/obj", v1, 300000);
    expect_content(f, "old/obj", v1, 300000);
    assert_int_equal(temps_under(f->blobs), 2);

    /* The leftovers are big (the child wrote megabytes), never read, and collected. */
    uint64_t removed = 0;
    assert_int_equal(ds_blob_gc_temp(f->s, 3600, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(ds_blob_gc_temp(f->s, 0, &removed), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(temps_under(f->blobs), 0);
    expect_content(f, "old/obj", v1, 300000);
    /* The names work normally afterwards. */
    assert_int_equal(ds_blob_put(f->s, tenant_a, "new/obj", v1, 1000, NULL), 0);
    expect_content(f, "new/obj", v1, 1000);
    free(v1);
}

/* ---- ENOSPC ---- */

typedef struct enospc_hook {
    int budget; /* writes to temporaries allowed before the "disk" is full */
} enospc_hook_t;

static int enospc_fn(ds_blob_fault_op_t op, const char *path, void *arg)
{
    enospc_hook_t *h = arg;
    if (op != DS_BLOB_FAULT_WRITE || strstr(path, ".tmp-") == NULL) {
        return 0;
    }
    return h->budget-- > 0 ? 0 : -ENOSPC;
}

/* Streams n bytes into name; returns the first error (write or commit). */
static int put_streamed(fx_t *f, const char *name, const uint8_t *d, size_t n)
{
    ds_blob_writer_t *w = NULL;
    int rc = ds_blob_writer_open(f->s, tenant_a, name, &w);
    if (rc < 0) {
        return rc;
    }
    for (size_t off = 0; off < n && rc == 0; off += PIECE) {
        rc = ds_blob_writer_write(w, d + off, n - off < PIECE ? n - off : PIECE);
    }
    if (rc < 0) {
        ds_blob_writer_abort(&w);
        return rc;
    }
    return ds_blob_writer_commit(&w, NULL);
}

static void test_enospc(void **state)
{
    fx_t *f = *state;
    char *mnt = f->mnt;
    (void)snprintf(mnt, sizeof(f->mnt), "%s/mnt", f->dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    bool mounted = mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700") == 0;
    f->mounted = mounted;
    enospc_hook_t hook = {.budget = 6};
    if (!mounted) {
        int err = errno;
        (void)printf("# cannot mount a tmpfs (%s): ENOSPC through the fault hook instead\n",
                     err == EPERM ? "not permitted" : "mount failed");
    }
    open_all(f, mnt);
    size_t small = (size_t)200 * 1024;
    size_t big = (size_t)2 * 1024 * 1024;
    uint8_t *v1 = pattern(small, 7);
    uint8_t *v2 = pattern(big, 8);
    assert_int_equal(put_streamed(f, "doc", v1, small), 0);
    if (!mounted) {
        ds_blob_set_fault_hook(enospc_fn, &hook);
    }
    /* A new object and a replacement, both too big: -ENOSPC, nothing left behind. */
    assert_int_equal(put_streamed(f, "doc2", v2, big), -ENOSPC);
    if (!mounted) {
        hook.budget = 6;
    }
    assert_int_equal(put_streamed(f, "doc", v2, big), -ENOSPC);
    ds_blob_set_fault_hook(NULL, NULL);
    ds_blob_info_t info;
    assert_int_equal(ds_blob_stat(f->s, tenant_a, "doc2", &info), -ENOENT);
    expect_content(f, "doc", v1, small);
    assert_int_equal(temps_under(mnt), 0);
    /* The space came back: a put that fits works, the old object is still fine. */
    assert_int_equal(put_streamed(f, "doc3", v2, small), 0);
    expect_content(f, "doc3", v2, small);
    expect_content(f, "doc", v1, small);
    free(v1);
    free(v2);
    ds_blob_free(&f->s);
    if (mounted) {
        assert_int_equal(umount(mnt), 0);
        f->mounted = false;
    }
}

/* ---- processes racing for the master key ---- */

static void test_master_race_processes(void **state)
{
    fx_t *f = *state;
    char master[160];
    char tenants[160];
    (void)snprintf(master, sizeof(master), "%s/keys/master.key", f->dir);
    (void)snprintf(tenants, sizeof(tenants), "%s/keys/tenants", f->dir);
    int go[2];
    int out[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char c;
            (void)close(go[1]);
            (void)close(out[0]);
            (void)read(go[0], &c, 1); /* returns at EOF: everyone starts together */
            ds_keystore_cfg_t kc = {
                .master_path = master, .tenant_dir = tenants, .create_master = true};
            ds_keystore_t *ks = NULL;
            uint8_t rec[16 + sizeof(ds_tenant_key_t)];
            ds_tenant_key_t k;
            if (ds_keystore_open(&kc, &ks) != 0 ||
                ds_keystore_tenant_key(ks, tenant_a, true, &k) != 0) {
                _exit(2);
            }
            ds_keystore_master_id(ks, rec);
            memcpy(rec + 16, &k, sizeof(k));
            _exit(write(out[1], rec, sizeof(rec)) == (ssize_t)sizeof(rec) ? 0 : 3);
        }
    }
    (void)close(go[0]);
    (void)close(out[1]);
    (void)close(go[1]); /* go */
    uint8_t first[16 + sizeof(ds_tenant_key_t)];
    for (int i = 0; i < NPROC; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    for (int i = 0; i < NPROC; i++) {
        uint8_t rec[sizeof(first)];
        assert_int_equal(read(out[0], rec, sizeof(rec)), (ssize_t)sizeof(rec));
        if (i == 0) {
            memcpy(first, rec, sizeof(rec));
        }
        assert_memory_equal(rec, first, sizeof(rec));
    }
    (void)close(out[0]);
    ds_keystore_cfg_t kc = {.master_path = master, .tenant_dir = tenants};
    assert_int_equal(ds_keystore_open(&kc, &f->ks), 0);
    uint8_t id[16];
    ds_keystore_master_id(f->ks, id);
    assert_memory_equal(id, first, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_mid_write, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_enospc, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_master_race_processes, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
