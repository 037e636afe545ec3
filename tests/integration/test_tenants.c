/* Tenants on the control plane, against the suite's PostgreSQL: `dossier tenant` actions
 * (actors/control.h) with their audit rows, effective plans with per-tenant overrides and the
 * runtime groups they configure (actors/tenants.h), and the demo tenant (actors/demo.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "actors/control.h"
#include "actors/demo.h"
#include "actors/password.h"
#include "actors/tenants.h"
#include "config/config.h"
#include "runtime/rt.h"
#include "tests/integration/pgtest.h"

static pgtest_env_t env;

static PGconn *owner_conn(void)
{
    PGconn *c = PQconnectdb(env.owner_dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void unique_slug(char *out, size_t n, const char *stem)
{
    static unsigned seq;
    (void)snprintf(out, n, "%s-%d-%u", stem, (int)getpid(), ++seq);
}

static int count_audit(PGconn *c, const char *tenant_id)
{
    const char *p[] = {tenant_id};
    PGresult *r = PQexecParams(c, "SELECT count(*) FROM dossier.control_audit WHERE tenant_id = $1",
                               1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int n = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

static void test_create_override_and_plan(void **state)
{
    (void)state;
    PGconn *c = owner_conn();
    ds_config_t *cfg = NULL;
    assert_int_equal(ds_config_load(NULL, NULL, &cfg, NULL), 0);
    char slug[64];
    unique_slug(slug, sizeof(slug), "plan");
    ds_control_actor_t who = {.who = "test"};
    ds_tenant_spec_t spec = {
        .slug = slug, .name = "Plan Test", .plan = "professional", .region = "local"};
    char id[37];
    char *why = NULL;
    assert_int_equal(ds_control_tenant_create(c, &who, &spec, id, &why), 0);
    assert_int_equal(ds_control_tenant_create(c, &who, &spec, id, &why), -EEXIST);
    free(why);
    why = NULL;
    assert_int_equal(
        ds_control_tenant_override(c, &who, slug, "scheduler_weight", DS_OVERRIDE_SET, 7, &why), 0);
    assert_int_equal(
        ds_control_tenant_override(c, &who, slug, "max_users", DS_OVERRIDE_UNLIMITED, 0, &why), 0);
    assert_int_equal(ds_control_tenant_set_status(c, &who, slug, "suspended", &why), 0);
    assert_int_equal(ds_control_tenant_set_status(c, &who, "no-such-tenant", "active", &why),
                     -ENOENT);
    free(why);
    why = NULL;
    /* create, two overrides, suspend: one audit row each, in the same transactions */
    assert_int_equal(count_audit(c, id), 4);

    ds_tenants_t *ts = NULL;
    assert_int_equal(ds_tenants_load(c, cfg, &ts, &why), 0);
    const ds_tenant_entry_t *e = ds_tenants_find(ts, slug);
    assert_non_null(e);
    assert_string_equal(e->id, id);
    assert_string_equal(e->status, "suspended");
    assert_int_equal(e->kind, DS_PLAN_PROFESSIONAL);
    const ds_plan_t *pro = ds_config_plan(cfg, DS_PLAN_PROFESSIONAL);
    assert_int_equal(e->plan.scheduler_weight, 7);
    assert_true(e->plan.max_users == DS_PLAN_UNLIMITED);
    assert_int_equal(e->plan.mailbox_limit, pro->mailbox_limit);
    ds_group_cfg_t g = ds_tenant_group_cfg(&e->plan);
    assert_int_equal(g.weight, 7);
    assert_int_equal(g.mailbox_limit, pro->mailbox_limit);
    assert_true(g.bytes_cap == pro->bytes_in_flight);

    /* Removing the override brings the plan's weight back. */
    assert_int_equal(
        ds_control_tenant_override(c, &who, slug, "scheduler_weight", DS_OVERRIDE_REMOVE, 0, &why),
        0);
    ds_tenants_free(&ts);
    assert_int_equal(ds_tenants_load(c, cfg, &ts, &why), 0);
    e = ds_tenants_find(ts, slug);
    assert_non_null(e);
    assert_int_equal(e->plan.scheduler_weight, pro->scheduler_weight);

    /* Every tenant gets a runtime group weighted by its plan. */
    ds_rt_cfg_t rc = {.node = 1, .workers = 1};
    ds_rt_t *rt = NULL;
    assert_int_equal(ds_rt_new(&rc, &rt), 0);
    assert_int_equal(ds_tenants_make_groups(ts, rt), 0);
    for (size_t i = 1; i < ts->count; i++) {
        assert_int_not_equal(ts->items[i].group, ts->items[i - 1].group);
    }
    ds_rt_free(&rt);
    ds_tenants_free(&ts);
    ds_config_free(&cfg);
    PQfinish(c);
}

static void test_bad_input(void **state)
{
    (void)state;
    PGconn *c = owner_conn();
    ds_control_actor_t who = {.who = "test"};
    char id[37];
    char *why = NULL;
    static const char *const bad_slugs[] = {"", "A", "-x", "x-", "has space", "ÿ-utf8"};
    for (size_t i = 0; i < sizeof(bad_slugs) / sizeof(bad_slugs[0]); i++) {
        ds_tenant_spec_t spec = {
            .slug = bad_slugs[i], .name = "n", .plan = "standard", .region = "local"};
        assert_int_equal(ds_control_tenant_create(c, &who, &spec, id, &why), -EINVAL);
        free(why);
        why = NULL;
    }
    char slug[64];
    unique_slug(slug, sizeof(slug), "bad");
    ds_tenant_spec_t spec = {.slug = slug, .name = "n", .plan = "platinum", .region = "local"};
    assert_int_equal(ds_control_tenant_create(c, &who, &spec, id, &why), -EINVAL);
    free(why);
    why = NULL;
    spec.plan = "standard";
    spec.region = "Not A Region";
    assert_int_equal(ds_control_tenant_create(c, &who, &spec, id, &why), -EINVAL);
    free(why);
    PQfinish(c);
}

/* The password printed on the console, from the demo's message. */
static void demo_password(const char *console, char out[DS_PASSWORD_GEN_LEN + 1])
{
    const char *p = strstr(console, "password\n\n    ");
    assert_non_null(p);
    p += strlen("password\n\n    ");
    memcpy(out, p, DS_PASSWORD_GEN_LEN);
    out[DS_PASSWORD_GEN_LEN] = '\0';
}

static void test_demo_once(void **state)
{
    (void)state;
    PGconn *c = owner_conn();
    char buf[1024] = {0};
    FILE *console = fmemopen(buf, sizeof(buf) - 1, "w");
    assert_non_null(console);
    bool created = false;
    char *why = NULL;
    assert_int_equal(ds_demo_ensure(c, "local", NULL, console, &created, &why), 0);
    (void)fflush(console);
    if (created) {
        /* The printed password is the one whose argon2id hash is stored. */
        char pw[DS_PASSWORD_GEN_LEN + 1];
        demo_password(buf, pw);
        PGresult *r = PQexec(c, "BEGIN");
        PQclear(r);
        r = PQexec(c, "SELECT set_config('app.tenant_id', (SELECT id::text FROM dossier.tenants"
                      " WHERE slug = 'demo'), true)");
        PQclear(r);
        r = PQexec(c, "SELECT password_hash, roles FROM dossier.users"
                      " WHERE email = 'admin@demo.localhost'");
        assert_int_equal(PQntuples(r), 1);
        assert_true(strncmp(PQgetvalue(r, 0, 0), "$argon2id$", 10) == 0);
        assert_true(ds_password_verify(PQgetvalue(r, 0, 0), pw, strlen(pw)));
        assert_false(ds_password_verify(PQgetvalue(r, 0, 0), "wrong", 5));
        assert_string_equal(PQgetvalue(r, 0, 1), "{admin}");
        PQclear(r);
        r = PQexec(c, "COMMIT");
        PQclear(r);
    }
    /* A second start finds it and prints nothing. */
    (void)fclose(console);
    memset(buf, 0, sizeof(buf));
    console = fmemopen(buf, sizeof(buf) - 1, "w");
    assert_int_equal(ds_demo_ensure(c, "local", NULL, console, &created, &why), 0);
    (void)fflush(console);
    assert_false(created);
    assert_int_equal(buf[0], '\0');
    (void)fclose(console);
    PQfinish(c);
}

int main(void)
{
    pgtest_env_or_skip(&env);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_override_and_plan),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_demo_once),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pgtest_env_fini(&env);
    return rc;
}
