/* gen_seeds: writes the seed corpora of fuzz_wire and fuzz_mpack. Run once from the
 * repository root after a format change, and commit what it writes:
 *   clang -std=gnu11 -I. tests/fuzz/tools/gen_seeds.c runtime/{wire,mpack,catalog,msg,mem}.c \
 *       -o /tmp/gen_seeds && /tmp/gen_seeds tests/fuzz/corpus
 * Not part of the build: the build globs only the files directly in tests/fuzz, on purpose. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "runtime/catalog.h"
#include "runtime/id.h"
#include "runtime/mpack.h"
#include "runtime/msg.h"
#include "runtime/wire.h"

#define DS_CATALOG_FILE    "tests/unit/test_catalog.msgs.h"
#define DS_CATALOG_PREFIX  test_
#define DS_CATALOG_UPREFIX TEST_
#include "runtime/catalog_decl.inc"

#define DS_CATALOG_FILE    "tests/unit/test_catalog.msgs.h"
#define DS_CATALOG_PREFIX  test_
#define DS_CATALOG_UPREFIX TEST_
#define DS_CATALOG_SYMBOL  seed_catalog
#define DS_CATALOG_NAME    "test"
#include "runtime/catalog_def.inc"

static const char *root;
static bool failed; /* set by any step that could not do its part; main() reports it */

static void save(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/%s/%s", root, dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        (void)fprintf(stderr, "cannot open %s\n", path);
        failed = true;
        return;
    }
    bool ok = fwrite(p, 1, n, f) == n;
    if (fclose(f) != 0 || !ok) {
        (void)fprintf(stderr, "cannot write %s\n", path);
        failed = true;
    }
}

/* Frames *mp (flags, ids, a deadline 1 ms ahead of the fuzzer's clock), saves the frame and frees
 * the message. */
static void frame(const char *name, ds_msg_t **mp, uint16_t flags, bool deadline)
{
    static const int64_t now = 1000000000; /* fuzz_wire's clock */
    uint8_t buf[1024];
    size_t len;
    ds_msg_t *m = *mp;
    if (m == NULL) {
        failed = true; /* its ds_*_new() failed */
        return;
    }
    m->flags = flags;
    m->from = ds_id_make(1, 7, 42);
    m->to = ds_id_make(2, 1, 9);
    m->corr = flags != 0 ? 77 : 0;
    m->deadline = deadline ? now + 1000000 : 0;
    m->group = 3;
    if (ds_wire_encode(m, now, buf, sizeof(buf), &len) == 0) {
        save("wire", name, buf, len);
    } else {
        failed = true;
    }
    ds_msg_free(mp);
}

static void wire_seeds(void)
{
    ds_msg_t *m = NULL;
    ds_exit_new(&(ds_exit_t){.who = ds_id_make(1, 2, 3), .reason = -5007}, &m);
    frame("exit", &m, DS_MSG_F_SYSTEM, false);
    ds_down_new(&(ds_down_t){.ref = 300, .who = ds_id_make(9, 9, 9), .reason = 1}, &m);
    frame("down", &m, DS_MSG_F_SYSTEM, false);
    ds_timeout_new(NULL, &m);
    frame("timeout", &m, DS_MSG_F_REPLY, false);
    ds_error_new(&(ds_error_t){.code = -5001}, &m);
    frame("error_reply", &m, DS_MSG_F_REPLY | DS_MSG_F_ERROR, false);
    ds_stop_new(&(ds_stop_t){.reason = 1}, &m);
    frame("stop", &m, DS_MSG_F_SYSTEM, false);
    ds_monitor_new(&(ds_monitor_t){.ref = UINT64_MAX}, &m);
    frame("monitor", &m, DS_MSG_F_SYSTEM, false);
    ds_node_down_new(&(ds_node_down_t){.node = 65535}, &m);
    frame("node_down", &m, 0, false);
    ds_tick_new(&(ds_tick_t){.seq = 1}, &m);
    frame("tick_deadline", &m, DS_MSG_F_ASK, true);
    ds_test_note_new(&(ds_test_note_t){.title = {"d\xc3\xa9j\xc3\xa0", 6},
                                       .blob = {(const uint8_t *)"\x01\x02", 2},
                                       .flag = true,
                                       .ratio = 0.5,
                                       .delta = -70000,
                                       .count = 70000},
                     &m);
    frame("note", &m, DS_MSG_F_ASK, true);
    ds_test_empty_new(NULL, &m);
    frame("empty", &m, 0, false);
    char text[300];
    memset(text, 'w', sizeof(text));
    ds_test_wide_new(
        &(ds_test_wide_t){
            .a = UINT64_MAX, .b = INT64_MIN, .c = ds_id_make(65535, 1, 1), .text = {text, 300}},
        &m);
    frame("wide", &m, 0, true);

    /* refused frames, as starting points */
    uint8_t bad[64] = {'D', 'S', 1, 0};
    save("wire", "header_only", bad, 48);
    save("wire", "short", bad, 10);
    bad[4] = 0x39; /* an unknown type with an empty payload */
    bad[5] = 0x30;
    save("wire", "unknown_type", bad, 48);
}

static void mpack_seed(const char *name, uint8_t depth, void (*fill)(ds_mp_writer_t *))
{
    uint8_t buf[2048];
    buf[0] = depth;
    ds_mp_writer_t w;
    ds_mp_writer_init(&w, buf + 1, sizeof(buf) - 1);
    fill(&w);
    if (ds_mp_writer_err(&w) == 0) {
        save("mpack", name, buf, ds_mp_writer_len(&w) + 1);
    } else {
        failed = true;
    }
}

static void fill_ints(ds_mp_writer_t *w)
{
    static const uint64_t u[] = {0, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, UINT64_MAX};
    static const int64_t i[] = {-1, -32, -33, -128, -129, -32769, INT32_MIN, INT64_MIN};
    for (size_t k = 0; k < sizeof(u) / sizeof(u[0]); k++) {
        ds_mp_put_u64(w, u[k]);
    }
    for (size_t k = 0; k < sizeof(i) / sizeof(i[0]); k++) {
        ds_mp_put_i64(w, i[k]);
    }
}

static void fill_scalars(ds_mp_writer_t *w)
{
    ds_mp_put_nil(w);
    ds_mp_put_bool(w, true);
    ds_mp_put_bool(w, false);
    ds_mp_put_f64(w, -1.5);
}

static void fill_strings(ds_mp_writer_t *w)
{
    char s[300];
    memset(s, 'a', sizeof(s));
    ds_mp_put_str(w, "", 0);
    ds_mp_put_str(w, "h\xc3\xa9llo \xf0\x9f\x98\x80", 11);
    ds_mp_put_str(w, s, 31);
    ds_mp_put_str(w, s, 32);
    ds_mp_put_str(w, s, 256);
    ds_mp_put_str(w, "\xc0\x80\xed\xa0\x80", 5); /* not UTF-8 */
}

static void fill_bins(ds_mp_writer_t *w)
{
    uint8_t b[300] = {0};
    ds_mp_put_bin(w, b, 0);
    ds_mp_put_bin(w, b, 255);
    ds_mp_put_bin(w, b, 256);
}

static void fill_nested(ds_mp_writer_t *w)
{
    ds_mp_put_map(w, 2);
    ds_mp_put_str(w, "list", 4);
    ds_mp_put_array(w, 3);
    ds_mp_put_u64(w, 1);
    ds_mp_put_array(w, 0);
    ds_mp_put_map(w, 1);
    ds_mp_put_i64(w, -1);
    ds_mp_put_nil(w);
    ds_mp_put_str(w, "n", 1);
    ds_mp_put_array(w, 1);
    ds_mp_put_array(w, 1);
    ds_mp_put_array(w, 1);
    ds_mp_put_bool(w, true);
}

static void fill_deep(ds_mp_writer_t *w)
{
    for (int k = 0; k < 40; k++) {
        ds_mp_put_array(w, 1);
    }
    ds_mp_put_u64(w, 7);
}

static void fill_wide_headers(ds_mp_writer_t *w)
{
    ds_mp_put_array(w, 16);
    for (int k = 0; k < 16; k++) {
        ds_mp_put_u64(w, (uint64_t)k);
    }
    ds_mp_put_map(w, 16);
    for (int k = 0; k < 16; k++) {
        ds_mp_put_u64(w, (uint64_t)k);
        ds_mp_put_nil(w);
    }
}

static void mpack_seeds(void)
{
    mpack_seed("ints", 8, fill_ints);
    mpack_seed("scalars", 8, fill_scalars);
    mpack_seed("strings", 8, fill_strings);
    mpack_seed("bins", 8, fill_bins);
    mpack_seed("nested", 8, fill_nested);
    mpack_seed("nested_shallow", 2, fill_nested);
    mpack_seed("deep", 32, fill_deep);
    mpack_seed("wide_headers", 4, fill_wide_headers);

    /* forms our writer never makes: non-minimal ints, float32, ext (refused), 0xc1 */
    static const uint8_t odd[] = {8,    0xcf, 0,    0,    0, 0, 0,    0,    0,    5,
                                  0xd3, 0,    0,    0,    0, 0, 0,    0,    7,    0xd0,
                                  0x05, 0xca, 0x3f, 0x80, 0, 0, 0xdc, 0x00, 0x01, 0xc0};
    save("mpack", "non_minimal", odd, sizeof(odd));
    static const uint8_t ext[] = {8, 0x92, 0x01, 0xd4, 0x01, 0x02};
    save("mpack", "ext", ext, sizeof(ext));
    static const uint8_t c1[] = {8, 0x91, 0xc1};
    save("mpack", "c1", c1, sizeof(c1));
    static const uint8_t huge[] = {8, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    save("mpack", "huge_count", huge, sizeof(huge));
    static const uint8_t trunc[] = {8, 0xdb, 0x00, 0x00, 0x01, 0x00, 'a', 'b'};
    save("mpack", "truncated_str", trunc, sizeof(trunc));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        (void)fprintf(stderr, "usage: gen_seeds <corpus dir>\n");
        return 2;
    }
    root = argv[1];
    if (ds_catalog_register(&seed_catalog) != 0) {
        return 1;
    }
    wire_seeds();
    mpack_seeds();
    return failed ? 1 : 0;
}
