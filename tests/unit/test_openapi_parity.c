/* Parity of docs/openapi.yaml with the route table (actors/api/routes.def): every route is in
 * the file under its method and path with its name camel-cased as operationId (users_get ->
 * usersGet), and the file has no operation the router lacks, but for the gateway's GET /healthz
 * and GET /readyz, which it must have. Each documented route must also agree with the route's
 * flags: login and refresh take no bearer credential (security: []) and the others do, creates
 * answer 201 and take Idempotency-Key, deletes answer 204, PATCH takes If-Match.
 *
 * The file is read with libyaml's event parser (as config/load.c does), keeping a stack of the
 * mappings and sequences it is in; only paths -> <path> -> <method> -> {operationId, security,
 * responses, parameters} is looked at. A self-test checks a doctored copy of the file, so the
 * checker is shown to find what it should. No threads. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <yaml.h>

#include "actors/api/router.h"

enum {
    OA_OPS_MAX = 128,      /* operations in the file */
    OA_DEPTH_MAX = 32,     /* nesting of mappings and sequences */
    OA_TEXT_MAX = 128,     /* bytes kept of a key or value (longer ones are cut) */
    OA_FILE_MAX = 1 << 20, /* bytes of the file */
    OA_R200 = 1u << 0,     /* responses seen */
    OA_R201 = 1u << 1,
    OA_R204 = 1u << 2,
};

typedef struct oa_op {
    char method[8]; /* upper case */
    char path[OA_TEXT_MAX];
    char opid[OA_TEXT_MAX];
    unsigned responses;   /* OA_R* */
    bool security_empty;  /* security: [] */
    bool idempotency_key; /* a parameter $ref .../IdempotencyKey */
    bool if_match;        /* a parameter $ref .../IfMatch */
} oa_op_t;

typedef struct oa_frame {
    bool map;              /* a mapping, else a sequence */
    bool want_key;         /* mapping: the next scalar is a key */
    size_t nitems;         /* values read so far */
    char key[OA_TEXT_MAX]; /* mapping: the key whose value is being read */
} oa_frame_t;

/* stack[0] is the root mapping; under paths: stack[1] the paths mapping, stack[2] a path item,
 * stack[3] an operation, stack[4] one of its values, stack[5] an item of that. */
typedef struct oa_doc {
    oa_op_t ops[OA_OPS_MAX];
    size_t nops;
    oa_frame_t stack[OA_DEPTH_MAX];
    size_t depth;
    oa_op_t *op; /* the operation being read, or NULL */
} oa_doc_t;

static void oa_copy(char *dst, const char *src, size_t len)
{
    size_t n = len < OA_TEXT_MAX - 1 ? len : OA_TEXT_MAX - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool oa_method(const char *key)
{
    static const char *const methods[] = {"get",     "put",  "post",  "delete",
                                          "options", "head", "patch", "trace"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(key, methods[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool oa_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* True when the frames up to the operation are paths -> <path> -> <method>. */
static bool oa_under_paths(const oa_doc_t *d)
{
    return d->depth >= 1 && d->stack[0].map && strcmp(d->stack[0].key, "paths") == 0;
}

/* A mapping or sequence opens: is it a new operation? */
static int oa_open(oa_doc_t *d, bool map)
{
    if (d->depth == OA_DEPTH_MAX) {
        return -E2BIG;
    }
    if (map && d->depth == 3 && oa_under_paths(d) && oa_method(d->stack[2].key)) {
        if (d->nops == OA_OPS_MAX) {
            return -E2BIG;
        }
        oa_op_t *op = &d->ops[d->nops++];
        memset(op, 0, sizeof(*op));
        for (size_t i = 0; d->stack[2].key[i] != '\0' && i < sizeof(op->method) - 1; i++) {
            op->method[i] = (char)(d->stack[2].key[i] - 'a' + 'A');
        }
        (void)snprintf(op->path, sizeof(op->path), "%s", d->stack[1].key);
        d->op = op;
    }
    if (d->depth > 0) {
        oa_frame_t *top = &d->stack[d->depth - 1];
        top->nitems++;
        top->want_key = top->map;
    }
    d->stack[d->depth++] = (oa_frame_t){.map = map, .want_key = map};
    return 0;
}

static int oa_close(oa_doc_t *d)
{
    if (d->depth == 0) {
        return -EINVAL;
    }
    const oa_frame_t *top = &d->stack[--d->depth];
    if (d->op != NULL && d->depth == 4 && !top->map && top->nitems == 0 &&
        strcmp(d->stack[3].key, "security") == 0) {
        d->op->security_empty = true;
    }
    if (d->depth == 3) {
        d->op = NULL; /* no-op when an operation did not open here */
    }
    return 0;
}

/* A key of the mapping on top. */
static void oa_key(oa_doc_t *d, const char *text, size_t len)
{
    oa_frame_t *top = &d->stack[d->depth - 1];
    oa_copy(top->key, text, len);
    top->want_key = false;
    if (d->op != NULL && d->depth == 5 && strcmp(d->stack[3].key, "responses") == 0) {
        d->op->responses |= strcmp(top->key, "200") == 0 ? OA_R200 : 0;
        d->op->responses |= strcmp(top->key, "201") == 0 ? OA_R201 : 0;
        d->op->responses |= strcmp(top->key, "204") == 0 ? OA_R204 : 0;
    }
}

/* A scalar value in the mapping or sequence on top. */
static void oa_value(oa_doc_t *d, const char *text, size_t len)
{
    oa_frame_t *top = &d->stack[d->depth - 1];
    top->nitems++;
    top->want_key = top->map;
    if (d->op == NULL || !top->map) {
        return;
    }
    char v[OA_TEXT_MAX];
    oa_copy(v, text, len);
    if (d->depth == 4 && strcmp(top->key, "operationId") == 0) {
        (void)snprintf(d->op->opid, sizeof(d->op->opid), "%s", v);
    } else if (d->depth == 6 && strcmp(d->stack[3].key, "parameters") == 0 &&
               strcmp(top->key, "$ref") == 0) {
        d->op->idempotency_key |= oa_ends_with(v, "/IdempotencyKey");
        d->op->if_match |= oa_ends_with(v, "/IfMatch");
    }
}

static int oa_event(oa_doc_t *d, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT:
        return oa_open(d, true);
    case YAML_SEQUENCE_START_EVENT:
        return oa_open(d, false);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        return oa_close(d);
    case YAML_SCALAR_EVENT: {
        if (d->depth == 0) {
            return -EINVAL; /* a bare scalar document */
        }
        const char *text = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        if (d->stack[d->depth - 1].want_key) {
            oa_key(d, text, len);
        } else {
            oa_value(d, text, len);
        }
        return 0;
    }
    case YAML_ALIAS_EVENT:
        return -ENOTSUP; /* anchors would hide operations from this walk */
    default:
        return 0;
    }
}

/* Parses text into *d: 0, or -EINVAL for bad YAML, -ENOTSUP for aliases, -E2BIG. */
static int oa_parse(const char *text, size_t len, oa_doc_t *d)
{
    memset(d, 0, sizeof(*d));
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0;
    bool done = false;
    while (rc == 0 && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            print_error("yaml: %s at line %zu\n", parser.problem != NULL ? parser.problem : "?",
                        parser.problem_mark.line + 1);
            rc = -EINVAL;
            break;
        }
        rc = oa_event(d, &ev);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* docs/openapi.yaml's bytes, NUL-terminated; free() them. */
static char *oa_read_file(size_t *len)
{
    const char *src = getenv("DS_SOURCE_DIR"); /* set by ctest; main thread only */
    char path[PATH_MAX];
    if (src != NULL) {
        (void)snprintf(path, sizeof(path), "%s/docs/openapi.yaml", src);
    } else {
        /* Run by hand: this file's own path (absolute in CMake builds) leads to the tree. */
        const char *at = strstr(__FILE__, "tests/unit/");
        assert_non_null(at);
        (void)snprintf(path, sizeof(path), "%.*sdocs/openapi.yaml", (int)(at - __FILE__), __FILE__);
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        print_error("cannot open %s\n", path);
        fail();
    }
    char *buf = malloc(OA_FILE_MAX + 1);
    assert_non_null(buf);
    size_t n = fread(buf, 1, OA_FILE_MAX + 1, f);
    assert_int_equal(ferror(f), 0);
    (void)fclose(f);
    assert_true(n <= OA_FILE_MAX);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* users_get -> usersGet. */
static void oa_camel(const char *name, char *out, size_t cap)
{
    size_t o = 0;
    bool upper = false;
    for (size_t i = 0; name[i] != '\0' && o + 1 < cap; i++) {
        if (name[i] == '_') {
            upper = true;
            continue;
        }
        char c = name[i];
        out[o++] = upper && c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
        upper = false;
    }
    out[o] = '\0';
}

static const oa_op_t *oa_find(const oa_doc_t *d, const char *method, const char *path)
{
    for (size_t i = 0; i < d->nops; i++) {
        if (strcasecmp(d->ops[i].method, method) == 0 && strcmp(d->ops[i].path, path) == 0) {
            return &d->ops[i];
        }
    }
    return NULL;
}

static bool oa_is_gateway(const char *method, const char *path)
{
    return strcmp(method, "GET") == 0 &&
           (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0);
}

#define OA_PROBLEM(...) (problems++, print_message(__VA_ARGS__))

/* How the operation differs from what the route's flags call for; prints each difference. */
static size_t oa_check_route(const ds_api_route_t *r, const oa_op_t *op)
{
    size_t problems = 0;
    char want[OA_TEXT_MAX];
    oa_camel(r->name, want, sizeof(want));
    if (strcmp(op->opid, want) != 0) {
        OA_PROBLEM("%s %s: operationId '%s', want '%s'\n", r->method, r->pattern, op->opid, want);
    }
    bool bearer = (r->flags & DS_API_BEARER) != 0;
    if (op->security_empty == bearer) {
        OA_PROBLEM("%s %s: security: [] %s\n", r->method, r->pattern,
                   bearer ? "on a bearer route" : "missing on a route without bearer");
    }
    bool create = (r->flags & DS_API_CREATE) == DS_API_CREATE;
    if (create && (!(op->responses & OA_R201) || !op->idempotency_key)) {
        OA_PROBLEM("%s %s: a create needs a 201 response and Idempotency-Key\n", r->method,
                   r->pattern);
    }
    if (!create && op->idempotency_key) {
        OA_PROBLEM("%s %s: Idempotency-Key on a route that does not create\n", r->method,
                   r->pattern);
    }
    if (strcmp(r->method, "DELETE") == 0 && !(op->responses & OA_R204)) {
        OA_PROBLEM("%s %s: a delete answers 204\n", r->method, r->pattern);
    }
    if (strcmp(r->method, "PATCH") == 0 && (!op->if_match || !(op->responses & OA_R200))) {
        OA_PROBLEM("%s %s: a PATCH takes If-Match and answers 200\n", r->method, r->pattern);
    }
    return problems;
}

/* Every difference between the file and the route table, printed; their number. */
static size_t oa_check(const oa_doc_t *d)
{
    size_t problems = 0;
    for (size_t r = 0; r < DS_API_ROUTE_COUNT; r++) {
        const ds_api_route_t *route = &ds_api_routes[r];
        const oa_op_t *op = oa_find(d, route->method, route->pattern);
        if (op == NULL) {
            OA_PROBLEM("%s %s (%s): in the router, not in docs/openapi.yaml\n", route->method,
                       route->pattern, route->name);
        } else {
            problems += oa_check_route(route, op);
        }
    }
    size_t gateway = 0;
    for (size_t i = 0; i < d->nops; i++) {
        const oa_op_t *op = &d->ops[i];
        bool known = false;
        for (size_t r = 0; r < DS_API_ROUTE_COUNT && !known; r++) {
            known = strcasecmp(ds_api_routes[r].method, op->method) == 0 &&
                    strcmp(ds_api_routes[r].pattern, op->path) == 0;
        }
        if (oa_is_gateway(op->method, op->path)) {
            gateway++;
        } else if (!known) {
            OA_PROBLEM("%s %s (%s): in docs/openapi.yaml, not in the router\n", op->method,
                       op->path, op->opid);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->ops[j].opid, op->opid) == 0) {
                OA_PROBLEM("operationId '%s' appears twice\n", op->opid);
            }
        }
    }
    if (gateway != 2) {
        OA_PROBLEM("docs/openapi.yaml must describe GET /healthz and GET /readyz\n");
    }
    return problems;
}

/* Replaces the first `from` in *text (*len bytes) by `to`: a new buffer in *text (free()). */
static void oa_replace(char **text, size_t *len, const char *from, const char *to)
{
    const char *at = strstr(*text, from);
    assert_non_null(at);
    size_t cap = *len - strlen(from) + strlen(to) + 1;
    char *out = malloc(cap);
    assert_non_null(out);
    int n = snprintf(out, cap, "%.*s%s%s", (int)(at - *text), *text, to, at + strlen(from));
    assert_int_equal(n, cap - 1);
    free(*text);
    *text = out;
    *len = cap - 1;
}

static void test_file_matches_routes(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = oa_read_file(&len);
    oa_doc_t *d = malloc(sizeof(*d));
    assert_non_null(d);
    assert_int_equal(oa_parse(text, len, d), 0);
    /* Every route plus the two gateway paths, and nothing else. */
    assert_int_equal(oa_check(d), 0);
    assert_int_equal(d->nops, DS_API_ROUTE_COUNT + 2);
    free(d);
    free(text);
}

/* The router does not serve the gateway's paths; the file has them as public GETs. */
static void test_gateway_paths(void **state)
{
    (void)state;
    for (size_t r = 0; r < DS_API_ROUTE_COUNT; r++) {
        assert_false(oa_is_gateway(ds_api_routes[r].method, ds_api_routes[r].pattern));
    }
    size_t len = 0;
    char *text = oa_read_file(&len);
    oa_doc_t *d = malloc(sizeof(*d));
    assert_non_null(d);
    assert_int_equal(oa_parse(text, len, d), 0);
    const char *paths[] = {"/healthz", "/readyz"};
    for (size_t i = 0; i < 2; i++) {
        const oa_op_t *op = oa_find(d, "GET", paths[i]);
        assert_non_null(op);
        assert_true(op->security_empty);
        assert_true(op->responses & OA_R200);
    }
    free(d);
    free(text);
}

static void test_camel_case(void **state)
{
    (void)state;
    char out[OA_TEXT_MAX];
    oa_camel("users_get", out, sizeof(out));
    assert_string_equal(out, "usersGet");
    oa_camel("auth_login", out, sizeof(out));
    assert_string_equal(out, "authLogin");
    oa_camel("service_accounts_key_create", out, sizeof(out));
    assert_string_equal(out, "serviceAccountsKeyCreate");
    oa_camel("audit", out, sizeof(out));
    assert_string_equal(out, "audit");
}

/* The checker finds what it should: a doctored copy of the file, each change one problem. */
static void test_checker_finds_differences(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = oa_read_file(&len);
    oa_doc_t *d = malloc(sizeof(*d));
    assert_non_null(d);
    /* A path renamed: one route missing from the file and one operation not in the router. */
    oa_replace(&text, &len, "\n  /v1/audit:\n", "\n  /v1/audits:\n");
    /* A wrong operationId. */
    oa_replace(&text, &len, "operationId: usersGet\n", "operationId: usersFetch\n");
    /* Login without security: [] (its operation has the first one). */
    oa_replace(&text, &len, "      security: []\n", "");
    /* A create without Idempotency-Key (usersCreate has the first one). */
    oa_replace(&text, &len, "        - $ref: '#/components/parameters/IdempotencyKey'\n", "");
    assert_int_equal(oa_parse(text, len, d), 0);
    assert_int_equal(oa_check(d), 5);
    /* /readyz gone: the gateway check fails too. */
    oa_replace(&text, &len, "\n  /readyz:\n", "\n  /v1/readyz:\n");
    assert_int_equal(oa_parse(text, len, d), 0);
    assert_int_equal(oa_check(d), 7);
    free(d);
    free(text);
}

static void test_parse_refuses(void **state)
{
    (void)state;
    oa_doc_t *d = malloc(sizeof(*d));
    assert_non_null(d);
    const char bad[] = "paths:\n  /v1/users: {get: [\n";
    assert_int_equal(oa_parse(bad, sizeof(bad) - 1, d), -EINVAL);
    const char alias[] = "x: &a {operationId: usersList}\npaths:\n  /v1/users:\n    get: *a\n";
    assert_int_equal(oa_parse(alias, sizeof(alias) - 1, d), -ENOTSUP);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_matches_routes),
        cmocka_unit_test(test_gateway_paths),
        cmocka_unit_test(test_camel_case),
        cmocka_unit_test(test_checker_finds_differences),
        cmocka_unit_test(test_parse_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
