/* test_cluster_proc: a link between two real processes. This program is node 1; it runs
 * itself again (/proc/self/exe --echo-node) as node 2, an echo service, over ipc. Node 1 asks
 * node 2's echo by id, monitors it, kills node 2 with SIGKILL and sees the monitor fire with
 * DS_ENODEDOWN, starts node 2 again and asks the new echo. Waits are bounded only to catch a
 * hang (CT_HANG), never to time anything. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/clock.h"
#include "runtime/err.h"
#include "runtime/id.h"
#include "runtime/log.h"
#include "runtime/rt.h"
#include "tests/unit/cluster_fixture.h"
#include "transports/nng/cluster.h"

static ds_cluster_cfg_t link_cfg(void)
{
    return (ds_cluster_cfg_t){
        .heartbeat_ms = 100,
        .timeout_ms = 5000, /* generous: sanitizers slow everything */
        .reconnect_min_ms = 20,
        .reconnect_max_ms = 200,
    };
}

/* ---- node 2: the child ---- */

static int echo_node(const char *listen_url, const char *peer_url)
{
    if (ct_msgs_register() != 0) {
        return 2;
    }
    ds_rt_t *rt;
    ds_cluster_t *c;
    ds_actor_id_t echo;
    ds_cluster_peer_t peer = {.node = 1, .url = peer_url};
    ds_cluster_cfg_t cfg = link_cfg();
    cfg.listen_url = listen_url;
    cfg.peers = &peer;
    cfg.npeers = 1;
    if (ds_rt_new(&(ds_rt_cfg_t){.node = 2, .workers = 2}, &rt) != 0 ||
        ds_cluster_new(rt, &cfg, &c) != 0 || ds_rt_start(rt) != 0 || ds_cluster_start(c) != 0 ||
        ds_spawn(rt, &ct_echo, NULL, NULL, &echo) != 0) {
        return 3;
    }
    (void)printf("READY %" PRIx64 "\n", echo.v);
    (void)fflush(stdout);
    char buf[64];
    while (read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
        /* runs until the parent closes our stdin (or kills us) */
    }
    (void)ds_rt_drain(rt, 10 * CT_SEC);
    ds_cluster_free(&c);
    ds_rt_free(&rt);
    return 0;
}

/* ---- node 1: the test ---- */

typedef struct child {
    pid_t pid;
    int in;  /* its stdin, ours to write */
    int out; /* its stdout, ours to read */
    ds_actor_id_t echo;
} child_t;

static char url1[128], url2[128], path1[96], path2[96];

static void child_start(child_t *ch)
{
    int to[2], from[2];
    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    (void)unlink(path2); /* a killed node leaves its socket file behind */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)dup2(to[0], STDIN_FILENO);
        (void)dup2(from[1], STDOUT_FILENO);
        (void)close(to[0]);
        (void)close(to[1]);
        (void)close(from[0]);
        (void)close(from[1]);
        execl("/proc/self/exe", "test_cluster_proc", "--echo-node", url2, url1, (char *)NULL);
        _exit(127);
    }
    (void)close(to[0]);
    (void)close(from[1]);
    ch->pid = pid;
    ch->in = to[1];
    ch->out = from[0];
    /* Read "READY <id>\n", waiting at most CT_HANG. */
    char line[64];
    size_t n = 0;
    int64_t end = ds_clock_now() + CT_HANG;
    while (n < sizeof(line) - 1 && (n == 0 || line[n - 1] != '\n')) {
        int64_t left_ms = (end - ds_clock_now()) / 1000000;
        assert_true(left_ms > 0);
        struct pollfd p = {.fd = ch->out, .events = POLLIN};
        int rc = poll(&p, 1, (int)left_ms);
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        assert_true(rc > 0);
        ssize_t r = read(ch->out, line + n, 1);
        assert_true(r == 1);
        n++;
    }
    line[n] = '\0';
    assert_true(strncmp(line, "READY ", 6) == 0);
    char *endp = NULL;
    ch->echo.v = (uint64_t)strtoull(line + 6, &endp, 16);
    assert_true(endp != line + 6 && *endp == '\n');
    assert_int_equal(ds_id_node(ch->echo), 2);
}

static bool child_wait(child_t *ch, int64_t timeout_ns, int *status)
{
    int64_t end = ds_clock_now() + timeout_ns;
    for (;;) {
        pid_t r = waitpid(ch->pid, status, WNOHANG);
        if (r == ch->pid) {
            return true;
        }
        if (ds_clock_now() >= end) {
            return false;
        }
        ct_sleep_ms(10);
    }
}

static void child_close_fds(child_t *ch)
{
    (void)close(ch->in);
    (void)close(ch->out);
}

static void ask(ds_rt_t *rt, ct_probe_t *pr, ds_actor_id_t client, ds_actor_id_t echo, uint64_t seq)
{
    uint64_t before = ct_get(pr, &pr->replies);
    assert_int_equal(ct_cmd_ask(rt, client, echo, seq), 0);
    assert_true(ct_wait(pr, &pr->replies, before + 1, CT_HANG));
    assert_int_equal(ct_get(pr, &pr->bad_replies), 0);
    assert_int_equal(ct_get(pr, &pr->errors), 0);
}

static void test_two_processes(void **state)
{
    (void)state;
    int pid = (int)getpid();
    (void)snprintf(path1, sizeof(path1), "/tmp/ds-ctp-%d-1.sock", pid);
    (void)snprintf(path2, sizeof(path2), "/tmp/ds-ctp-%d-2.sock", pid);
    (void)snprintf(url1, sizeof(url1), "ipc://%s", path1);
    (void)snprintf(url2, sizeof(url2), "ipc://%s", path2);
    (void)unlink(path1);

    ct_probe_t pr;
    ct_probe_init(&pr);
    ds_rt_t *rt;
    ds_cluster_t *c;
    ds_actor_id_t client;
    ds_cluster_peer_t peer = {.node = 2, .url = url2};
    ds_cluster_cfg_t cfg = link_cfg();
    cfg.listen_url = url1;
    cfg.peers = &peer;
    cfg.npeers = 1;
    assert_int_equal(ds_rt_new(&(ds_rt_cfg_t){.node = 1, .workers = 2}, &rt), 0);
    assert_int_equal(ds_cluster_new(rt, &cfg, &c), 0);
    assert_int_equal(ds_rt_start(rt), 0);
    assert_int_equal(ds_cluster_start(c), 0);
    assert_int_equal(ds_spawn(rt, &ct_client, &pr, NULL, &client), 0);

    child_t ch;
    child_start(&ch);
    assert_true(ct_wait_peer(c, 2, true, CT_HANG));
    ask(rt, &pr, client, ch.echo, 1);

    /* Monitor node 2's echo; the ask after it makes sure the MONITOR got there first. */
    assert_int_equal(ct_cmd_monitor(rt, client, ch.echo), 0);
    assert_true(ct_wait(&pr, &pr.monitors, 1, CT_HANG));
    ask(rt, &pr, client, ch.echo, 2);

    assert_int_equal(kill(ch.pid, SIGKILL), 0);
    int status = 0;
    assert_true(child_wait(&ch, CT_HANG, &status));
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    child_close_fds(&ch);
    assert_true(ct_wait(&pr, &pr.downs, 1, CT_HANG));
    assert_int_equal(pr.last_down_reason, DS_ENODEDOWN);
    assert_true(ct_wait_peer(c, 2, false, CT_HANG));
    ds_cluster_stats_t s;
    ds_cluster_stats(c, &s);
    assert_int_equal(s.node_down, 1);

    /* Node 2 again: node 1 redials it, and the new echo answers. */
    child_start(&ch);
    assert_true(ct_wait_peer(c, 2, true, CT_HANG));
    ask(rt, &pr, client, ch.echo, 3);
    ds_cluster_stats(c, &s);
    assert_int_equal(s.node_up, 2);
    assert_int_equal(s.frames_bad, 0);
    assert_int_equal(ct_get(&pr, &pr.downs), 1);

    /* A clean stop of node 2: EOF on its stdin. */
    (void)close(ch.in);
    bool exited = child_wait(&ch, CT_HANG, &status);
    if (!exited) {
        (void)kill(ch.pid, SIGKILL);
        (void)child_wait(&ch, CT_HANG, &status);
    }
    (void)close(ch.out);
    assert_true(exited);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    (void)ds_rt_drain(rt, 10 * CT_SEC);
    ds_cluster_free(&c);
    ds_rt_free(&rt);
    ct_probe_fini(&pr);
    (void)unlink(path1);
    (void)unlink(path2);
}

int main(int argc, char **argv)
{
    if (getenv("DOSSIER_LOG_LEVEL") == NULL) {
        ds_log_set_level(DS_LOG_ERROR); /* the links' info and warnings are expected here */
    }
    if (argc == 4 && strcmp(argv[1], "--echo-node") == 0) {
        return echo_node(argv[2], argv[3]);
    }
    if (access("/proc/self/exe", X_OK) != 0) {
        (void)printf("skip: /proc/self/exe is not available to run node 2\n");
        return 77;
    }
    if (ct_msgs_register() != 0) {
        return 1;
    }
    (void)signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
