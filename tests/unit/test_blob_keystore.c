/* test_blob_keystore: the master key and tenant keys (transports/blob/keystore.h) on real
 * files: generation (0600, stable, one winner when threads race), damaged files, tenant keys
 * bound to their tenant, master key rotation (complete, crashed in the middle and resumed,
 * crashed at the install step, refused while another runs) with objects of the store still
 * readable at every step, and the shred's clean-up. Processes racing are in
 * tests/integration/test_blob_faults.c. */
#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "transports/blob/blob.h"
#include "transports/blob/blob_int.h"
#include "transports/blob/keystore.h"

enum {
    NT = 5, /* tenants in the rotation tests */
    NTHREADS = 8,
};

typedef struct fx {
    char dir[64];
    char master[128];
    char tenants[128];
    char blobs[128];
    ds_keystore_t *ks;
} fx_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

static ds_keystore_cfg_t cfg_of(fx_t *f, bool create)
{
    return (ds_keystore_cfg_t){
        .master_path = f->master, .tenant_dir = f->tenants, .create_master = create};
}

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    (void)snprintf(f->dir, sizeof(f->dir), "/tmp/ds-keys-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    (void)snprintf(f->master, sizeof(f->master), "%s/keys/master.key", f->dir);
    (void)snprintf(f->tenants, sizeof(f->tenants), "%s/keys/tenants", f->dir);
    (void)snprintf(f->blobs, sizeof(f->blobs), "%s/blobs", f->dir);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    ds_blob_set_fault_hook(NULL, NULL);
    ds_keystore_free(&f->ks);
    (void)nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void ks_open(fx_t *f)
{
    ds_keystore_cfg_t c = cfg_of(f, true);
    assert_int_equal(ds_keystore_open(&c, &f->ks), 0);
}

static void tenant_name(int i, char out[DS_TENANT_ID_LEN + 1])
{
    (void)snprintf(out, DS_TENANT_ID_LEN + 1, "00000000-0000-4000-8000-%012d", i);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void master_id_on_disk(const char *path, uint8_t id[16])
{
    uint8_t buf[64];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf)), 64);
    (void)close(fd);
    memcpy(id, buf + 8, 16);
}

/* ---- master key ---- */

static void test_master_created_once(void **state)
{
    fx_t *f = *state;
    ds_keystore_t *ks = NULL;
    ds_keystore_cfg_t c = cfg_of(f, false);
    assert_int_equal(ds_keystore_open(&c, &ks), -ENOENT);
    assert_null(ks);
    ks_open(f);
    struct stat st;
    assert_int_equal(stat(f->master, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 64);
    assert_int_equal(stat(f->tenants, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    uint8_t id1[16];
    uint8_t id2[16];
    ds_keystore_master_id(f->ks, id1);
    /* Reopening, with or without create, loads the same key. */
    c = cfg_of(f, false);
    assert_int_equal(ds_keystore_open(&c, &ks), 0);
    ds_keystore_master_id(ks, id2);
    assert_memory_equal(id1, id2, 16);
    ds_keystore_free(&ks);
    assert_null(ks);
    ds_keystore_free(&ks);

    ds_keystore_cfg_t bad = {.master_path = NULL, .tenant_dir = f->tenants};
    assert_int_equal(ds_keystore_open(&bad, &ks), -EINVAL);
    bad = (ds_keystore_cfg_t){.master_path = f->master, .tenant_dir = ""};
    assert_int_equal(ds_keystore_open(&bad, &ks), -EINVAL);
    assert_int_equal(ds_keystore_open(NULL, &ks), -EINVAL);
}

static void test_master_damaged(void **state)
{
    fx_t *f = *state;
    ks_open(f);
    ds_keystore_free(&f->ks);
    uint8_t buf[64];
    int fd = open(f->master, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, 64, 0), 64);
    ds_keystore_cfg_t c = cfg_of(f, true);
    ds_keystore_t *ks = NULL;
    for (size_t i = 0; i < 64; i += 7) {
        buf[i] ^= 0x10;
        assert_int_equal(pwrite(fd, buf, 64, 0), 64);
        assert_int_equal(ds_keystore_open(&c, &ks), -EBADMSG); /* never replaced silently */
        buf[i] ^= 0x10;
    }
    assert_int_equal(ftruncate(fd, 63), 0);
    assert_int_equal(ds_keystore_open(&c, &ks), -EBADMSG);
    assert_int_equal(pwrite(fd, buf, 64, 0), 64);
    assert_int_equal(ds_keystore_open(&c, &ks), 0);
    ds_keystore_free(&ks);
    (void)close(fd);
}

typedef struct racer {
    pthread_t th;
    fx_t *f;
    const char *tenant;
    int rc;
    uint8_t id[16];
    ds_tenant_key_t key;
} racer_t;

static void *open_racer(void *arg)
{
    racer_t *r = arg;
    ds_keystore_cfg_t c = cfg_of(r->f, true);
    ds_keystore_t *ks = NULL;
    r->rc = ds_keystore_open(&c, &ks);
    if (r->rc == 0) {
        ds_keystore_master_id(ks, r->id);
        r->rc = ds_keystore_tenant_key(ks, r->tenant, true, &r->key);
    }
    ds_keystore_free(&ks);
    return NULL;
}

/* Threads starting at once on an empty directory all end up with one master key and, for one
 * tenant, one tenant key. */
static void test_creation_race_threads(void **state)
{
    fx_t *f = *state;
    racer_t r[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        r[i] = (racer_t){.f = f, .tenant = "0000000a-0000-4000-8000-000000000001"};
        assert_int_equal(pthread_create(&r[i].th, NULL, open_racer, &r[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(r[i].th, NULL), 0);
        assert_int_equal(r[i].rc, 0);
        assert_memory_equal(r[i].id, r[0].id, 16);
        assert_memory_equal(&r[i].key, &r[0].key, sizeof(r[0].key));
    }
    for (int i = 0; i < NTHREADS; i++) {
        ds_keystore_key_wipe(&r[i].key);
    }
}

/* ---- tenant keys ---- */

static void test_tenant_keys(void **state)
{
    fx_t *f = *state;
    ks_open(f);
    char a[DS_TENANT_ID_LEN + 1];
    char b[DS_TENANT_ID_LEN + 1];
    tenant_name(1, a);
    tenant_name(2, b);
    ds_tenant_key_t ka;
    ds_tenant_key_t kb;
    ds_tenant_key_t k;
    assert_int_equal(ds_keystore_tenant_key(f->ks, a, false, &k), -ENOKEY);
    assert_int_equal(ds_keystore_tenant_key(f->ks, a, true, &ka), 0);
    assert_int_equal(ds_keystore_tenant_key(f->ks, b, true, &kb), 0);
    assert_memory_not_equal(ka.key, kb.key, 32);
    assert_memory_not_equal(ka.id, kb.id, 16);
    assert_int_equal(ds_keystore_tenant_key(f->ks, a, false, &k), 0);
    assert_memory_equal(&k, &ka, sizeof(k));
    assert_int_equal(ds_keystore_tenant_key(f->ks, "A", true, &k), -EINVAL);
    assert_int_equal(ds_keystore_tenant_key(f->ks, NULL, true, &k), -EINVAL);

    /* The file is 0600 and holds no key in clear. */
    char pa[256];
    char pb[256];
    (void)snprintf(pa, sizeof(pa), "%s/%s.key", f->tenants, a);
    (void)snprintf(pb, sizeof(pb), "%s/%s.key", f->tenants, b);
    struct stat st;
    assert_int_equal(stat(pa, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint8_t file[100];
    int fd = open(pa, O_RDONLY);
    assert_int_equal(read(fd, file, sizeof(file)), 100);
    (void)close(fd);
    assert_null(memmem(file, sizeof(file), ka.key, 8));

    /* A's key file put under B's name does not pass for B's key (the tenant is in the AAD). */
    assert_int_equal(rename(pa, pb), 0);
    assert_int_equal(ds_keystore_tenant_key(f->ks, b, false, &k), -EBADMSG);
    /* A damaged file, a short one. */
    file[60] ^= 1;
    fd = open(pa, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(write(fd, file, sizeof(file)), 100);
    (void)close(fd);
    assert_int_equal(ds_keystore_tenant_key(f->ks, a, false, &k), -EBADMSG);
    assert_int_equal(truncate(pa, 50), 0);
    assert_int_equal(ds_keystore_tenant_key(f->ks, a, true, &k), -EBADMSG);
    ds_keystore_key_wipe(&ka);
    ds_keystore_key_wipe(&kb);
    ds_keystore_key_wipe(&k);
    uint8_t zero[sizeof(k)] = {0};
    assert_memory_equal(&k, zero, sizeof(k));
}

/* An object whose tenant key vanished without a shred: -ENOKEY, distinct from a shred. */
static void test_missing_key_is_enokey(void **state)
{
    fx_t *f = *state;
    ks_open(f);
    ds_blob_store_t *s = NULL;
    ds_blob_cfg_t bc = {.root = f->blobs, .region = "r1", .keys = f->ks};
    assert_int_equal(ds_blob_open(&bc, &s), 0);
    char a[DS_TENANT_ID_LEN + 1];
    tenant_name(7, a);
    assert_int_equal(ds_blob_put(s, a, "x", "hello", 5, NULL), 0);
    char pa[256];
    (void)snprintf(pa, sizeof(pa), "%s/%s.key", f->tenants, a);
    assert_int_equal(unlink(pa), 0);
    ds_blob_info_t info;
    assert_int_equal(ds_blob_stat(s, a, "x", &info), -ENOKEY);
    /* A writer makes a new key; the old object stays unreadable (another key id). */
    assert_int_equal(ds_blob_put(s, a, "y", "hello", 5, NULL), 0);
    assert_int_equal(ds_blob_stat(s, a, "x", &info), -EKEYREVOKED);
    assert_int_equal(ds_blob_stat(s, a, "y", &info), 0);
    ds_blob_free(&s);
}

/* ---- rotation ---- */

typedef struct world {
    char t[NT][DS_TENANT_ID_LEN + 1];
    ds_tenant_key_t k[NT];
    ds_blob_store_t *s;
} world_t;

static void world_up(fx_t *f, world_t *w)
{
    ds_blob_cfg_t bc = {.root = f->blobs, .region = "r1", .keys = f->ks};
    assert_int_equal(ds_blob_open(&bc, &w->s), 0);
    for (int i = 0; i < NT; i++) {
        tenant_name(100 + i, w->t[i]);
        char body[32];
        (void)snprintf(body, sizeof(body), "body of %d", i);
        assert_int_equal(ds_blob_put(w->s, w->t[i], "doc", body, strlen(body), NULL), 0);
        assert_int_equal(ds_keystore_tenant_key(f->ks, w->t[i], false, &w->k[i]), 0);
    }
}

static void world_down(world_t *w)
{
    ds_blob_free(&w->s);
    for (int i = 0; i < NT; i++) {
        ds_keystore_key_wipe(&w->k[i]);
    }
}

/* Every tenant key and object is readable through ks, with a store over it. */
static void world_check(fx_t *f, world_t *w, ds_keystore_t *ks)
{
    ds_blob_store_t *s = NULL;
    ds_blob_cfg_t bc = {.root = f->blobs, .region = "r1", .keys = ks};
    assert_int_equal(ds_blob_open(&bc, &s), 0);
    for (int i = 0; i < NT; i++) {
        ds_tenant_key_t k;
        assert_int_equal(ds_keystore_tenant_key(ks, w->t[i], false, &k), 0);
        assert_memory_equal(&k, &w->k[i], sizeof(k));
        ds_keystore_key_wipe(&k);
        ds_blob_reader_t *r = NULL;
        assert_int_equal(ds_blob_reader_open(s, w->t[i], "doc", &r), 0);
        char buf[32] = {0};
        size_t n = 0;
        assert_int_equal(ds_blob_reader_read(r, 0, buf, sizeof(buf) - 1, &n), 0);
        char want[32];
        (void)snprintf(want, sizeof(want), "body of %d", i);
        assert_string_equal(buf, want);
        ds_blob_reader_free(&r);
    }
    ds_blob_free(&s);
}

/* world_check through a fresh handle too (what a restarted node sees). */
static void world_check_both(fx_t *f, world_t *w)
{
    world_check(f, w, f->ks);
    ds_keystore_t *fresh = NULL;
    ds_keystore_cfg_t c = cfg_of(f, false);
    assert_int_equal(ds_keystore_open(&c, &fresh), 0);
    world_check(f, w, fresh);
    ds_keystore_free(&fresh);
}

static void test_rotate(void **state)
{
    fx_t *f = *state;
    ks_open(f);
    world_t w;
    world_up(f, &w);
    uint8_t id0[16];
    ds_keystore_master_id(f->ks, id0);

    ds_keystore_rotation_t r;
    assert_int_equal(ds_keystore_rotate_master(f->ks, &r), 0);
    assert_int_equal(r.rewrapped, NT);
    assert_int_equal(r.unchanged, 0);
    assert_int_equal(r.passes, 2); /* the second finds nothing left */
    uint8_t id1[16];
    master_id_on_disk(f->master, id1);
    assert_memory_equal(id1, r.new_id, 16);
    assert_memory_not_equal(id1, id0, 16);
    char old_path[200];
    char new_path[200];
    (void)snprintf(old_path, sizeof(old_path), "%s.old", f->master);
    (void)snprintf(new_path, sizeof(new_path), "%s.new", f->master);
    uint8_t old_id[16];
    master_id_on_disk(old_path, old_id);
    assert_memory_equal(old_id, id0, 16);
    assert_false(exists(new_path));
    struct stat st;
    assert_int_equal(stat(f->master, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    world_check_both(f, &w);

    /* A tenant created by the old handle after the rotation is wrapped under the new key (the
     * creator reads master.key afresh). */
    char late[DS_TENANT_ID_LEN + 1];
    tenant_name(999, late);
    ds_tenant_key_t lk;
    assert_int_equal(ds_keystore_tenant_key(f->ks, late, true, &lk), 0);
    ds_keystore_key_wipe(&lk);
    char lpath[256];
    (void)snprintf(lpath, sizeof(lpath), "%s/%s.key", f->tenants, late);
    uint8_t lfile[100];
    int fd = open(lpath, O_RDONLY);
    assert_int_equal(read(fd, lfile, sizeof(lfile)), 100);
    (void)close(fd);
    assert_memory_equal(lfile + 8, id1, 16);

    /* Twice more: two generations on, the first master key is gone from every file and the
     * keys still open. */
    assert_int_equal(ds_keystore_rotate_master(f->ks, &r), 0);
    assert_int_equal(r.rewrapped, NT + 1);
    assert_int_equal(ds_keystore_rotate_master(f->ks, NULL), 0);
    master_id_on_disk(old_path, old_id);
    assert_memory_not_equal(old_id, id0, 16);
    assert_memory_not_equal(old_id, id1, 16);
    world_check_both(f, &w);
    world_down(&w);
}

typedef struct crash {
    const char *match; /* substring of the path whose publication fails */
    int after;         /* matching renames let through first */
    int seen;
} crash_t;

static int crash_fn(ds_blob_fault_op_t op, const char *path, void *arg)
{
    crash_t *c = arg;
    if (op != DS_BLOB_FAULT_RENAME || strstr(path, c->match) == NULL) {
        return 0;
    }
    return c->seen++ >= c->after ? -EIO : 0;
}

/* A rotation that stops after re-wrapping two tenant files (a crash, as far as the files can
 * tell): every key stays readable, and a second run finishes the job with the same staged
 * key. */
static void test_rotate_crash_mid_rewrap(void **state)
{
    fx_t *f = *state;
    ks_open(f);
    world_t w;
    world_up(f, &w);
    char new_path[200];
    (void)snprintf(new_path, sizeof(new_path), "%s.new", f->master);

    crash_t c = {.match = "/tenants/", .after = 2};
    ds_blob_set_fault_hook(crash_fn, &c);
    assert_int_equal(ds_keystore_rotate_master(f->ks, NULL), -EIO);
    ds_blob_set_fault_hook(NULL, NULL);
    assert_true(exists(new_path));
    uint8_t staged[16];
    master_id_on_disk(new_path, staged);
    world_check_both(f, &w);

    ds_keystore_rotation_t r;
    assert_int_equal(ds_keystore_rotate_master(f->ks, &r), 0);
    assert_int_equal(r.unchanged, 2);
    assert_int_equal(r.rewrapped, NT - 2);
    assert_memory_equal(r.new_id, staged, 16);
    assert_false(exists(new_path));
    world_check_both(f, &w);
    world_down(&w);
}

/* The crash between saving master.key.old and renaming master.key.new into place. */
static void test_rotate_crash_at_install(void **state)
{
    fx_t *f = *state;
    ks_open(f);
    world_t w;
    world_up(f, &w);
    uint8_t id0[16];
    ds_keystore_master_id(f->ks, id0);
    crash_t c = {.match = "master.key", .after = 2}; /* .new and .old pass, master.key fails */
    ds_blob_set_fault_hook(crash_fn, &c);
    assert_int_equal(ds_keystore_rotate_master(f->ks, NULL), -EIO);
    ds_blob_set_fault_hook(NULL, NULL);
    uint8_t cur[16];
    master_id_on_disk(f->master, cur);
    assert_memory_equal(cur, id0, 16); /* not installed yet */
    world_check_both(f, &w);
    ds_keystore_rotation_t r;
    assert_int_equal(ds_keystore_rotate_master(f->ks, &r), 0);
    assert_int_equal(r.rewrapped, 0);
    assert_int_equal(r.unchanged, NT);
    master_id_on_disk(f->master, cur);
    assert_memory_equal(cur, r.new_id, 16);
    world_check_both(f, &w);
    world_down(&w);
}

static void test_rotate_busy_and_unknown_master(void **state)
{
    fx_t *f = *state;
    ks_open(f);
    world_t w;
    world_up(f, &w);
    char lock_path[200];
    (void)snprintf(lock_path, sizeof(lock_path), "%s.lock", f->master);
    int fd = open(lock_path, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    assert_int_equal(ds_keystore_rotate_master(f->ks, NULL), -EBUSY);
    (void)close(fd);
    /* Two rotations, then the first .old overwritten: a file still under a master key that no
     * file holds stops the rotation with -ENOKEY before anything is installed. */
    char pa[256];
    char saved[256];
    (void)snprintf(pa, sizeof(pa), "%s/%s.key", f->tenants, w.t[0]);
    (void)snprintf(saved, sizeof(saved), "%s/saved", f->dir);
    assert_int_equal(link(pa, saved), 0); /* the file as wrapped by the first master key */
    assert_int_equal(ds_keystore_rotate_master(f->ks, NULL), 0);
    assert_int_equal(ds_keystore_rotate_master(f->ks, NULL), 0);
    ds_keystore_free(&f->ks);
    ks_open(f);
    assert_int_equal(rename(saved, pa), 0);
    uint8_t before[16];
    master_id_on_disk(f->master, before);
    assert_int_equal(ds_keystore_rotate_master(f->ks, NULL), -ENOKEY);
    uint8_t after[16];
    master_id_on_disk(f->master, after);
    assert_memory_equal(before, after, 16);
    ds_tenant_key_t k;
    assert_int_equal(ds_keystore_tenant_key(f->ks, w.t[0], false, &k), -ENOKEY);
    world_down(&w);
}

/* ---- shred and temporaries ---- */

static void test_shred_and_temporaries(void **state)
{
    fx_t *f = *state;
    ks_open(f);
    char a[DS_TENANT_ID_LEN + 1];
    tenant_name(5, a);
    ds_tenant_key_t k;
    assert_int_equal(ds_keystore_tenant_key(f->ks, a, true, &k), 0);
    ds_keystore_key_wipe(&k);
    /* A crashed creator's copy of the key (after link, before unlink) and a young and an old
     * temporary of another file. */
    char kpath[256];
    char copy[256];
    char young[256];
    char old[256];
    (void)snprintf(kpath, sizeof(kpath), "%s/%s.key", f->tenants, a);
    (void)snprintf(copy, sizeof(copy), "%s/.%s.key.tmp-00000000aaaaaaaa", f->tenants, a);
    (void)snprintf(young, sizeof(young), "%s/.x.key.tmp-00000000bbbbbbbb", f->tenants);
    (void)snprintf(old, sizeof(old), "%s/.y.key.tmp-00000000cccccccc", f->tenants);
    assert_int_equal(link(kpath, copy), 0);
    for (int i = 0; i < 2; i++) {
        int fd = open(i == 0 ? young : old, O_WRONLY | O_CREAT, 0600);
        assert_int_equal(write(fd, "x", 1), 1);
        (void)close(fd);
    }
    struct timespec t[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};
    assert_int_equal(utimensat(AT_FDCWD, old, t, 0), 0);

    assert_int_equal(ds_keystore_shred_tenant(f->ks, a), 0);
    assert_false(exists(kpath));
    assert_false(exists(copy));
    assert_true(exists(young));
    char ts[256];
    (void)snprintf(ts, sizeof(ts), "%s/%s.shredded", f->tenants, a);
    assert_true(exists(ts));
    assert_int_equal(ds_keystore_tenant_key(f->ks, a, false, &k), -EKEYREVOKED);
    /* Opening cleans old temporaries only. */
    ds_keystore_free(&f->ks);
    ks_open(f);
    assert_true(exists(young));
    assert_false(exists(old));
    /* A tenant that never had a key can be shredded too (and gets none after). */
    char b[DS_TENANT_ID_LEN + 1];
    tenant_name(6, b);
    assert_false(ds_keystore_tenant_shredded(f->ks, b));
    assert_int_equal(ds_keystore_shred_tenant(f->ks, b), 0);
    assert_true(ds_keystore_tenant_shredded(f->ks, b));
    assert_int_equal(ds_keystore_tenant_key(f->ks, b, true, &k), -EKEYREVOKED);
    assert_false(ds_keystore_tenant_shredded(f->ks, "bad"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_master_created_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_master_damaged, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_creation_race_threads, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tenant_keys, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_missing_key_is_enokey, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rotate, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_crash_mid_rewrap, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_crash_at_install, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rotate_busy_and_unknown_master, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_shred_and_temporaries, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
