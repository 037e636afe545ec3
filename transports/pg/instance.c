/* instance: the private PostgreSQL cluster of a data directory. See transports/pg/instance.h.
 *
 * Every step is a child process (initdb, pg_ctl) or a short synchronous libpq session as the
 * superuser (roles and the database). When we run as root the children drop to the `postgres`
 * user before exec, because PostgreSQL refuses to run as root; the cluster's directories are
 * chowned to that user and every path the server needs must be reachable by it, which
 * instance_check_reachable() proves up front instead of leaving it to a cryptic initdb error. */
#include "transports/pg/instance.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "runtime/log.h"
#include "runtime/mem.h"

enum {
    INSTANCE_PORT = 5432,     /* only names the socket: there is no TCP listener */
    INSTANCE_SOCK_MAX = 107,  /* sun_path holds 108 bytes, NUL included */
    INSTANCE_PW_BYTES = 24,   /* random bytes per password: 32 base64url characters */
    INSTANCE_PW_MAX = 64,     /* longest password line value we accept from the file */
    INSTANCE_START_WAIT = 60, /* seconds pg_ctl waits for the server */
};

static const char *const instance_role_names[] = {
    [DS_PG_ROLE_SUPER] = "postgres",
    [DS_PG_ROLE_OWNER] = "dossier_owner",
    [DS_PG_ROLE_APP] = "dossier_app",
};
static const char *const instance_pw_keys[] = {
    [DS_PG_ROLE_SUPER] = "super",
    [DS_PG_ROLE_OWNER] = "owner",
    [DS_PG_ROLE_APP] = "app",
};

struct ds_pg_instance {
    char *data_dir;
    char *bindir;
    char *pg_dir;     /* DATA_DIR/pg */
    char *pg_new;     /* DATA_DIR/pg.new: initdb works here, renamed to pg/ when complete */
    char *sock_dir;   /* DATA_DIR/run or /tmp/dossier-pg-<hash> */
    char *secrets;    /* DATA_DIR/secrets/pg.passwords */
    char *lock_path;  /* DATA_DIR/dossier.lock */
    char *users_path; /* DATA_DIR/pg.users */
    char *pin_path;   /* DATA_DIR/pg.pinned: `db start` keeps the cluster up until `db stop` */
    char *ctl_log;    /* DATA_DIR/pg-ctl.log: output of initdb and pg_ctl */
    int users_fd;     /* our shared lock on pg.users, or -1 */
    bool as_postgres; /* root: children run as the postgres user */
    uid_t uid;
    gid_t gid;
};

/* --- small helpers ---------------------------------------------------------------------------- */

/* mkdir, the mode exact (not cut by the umask) when it makes the directory. */
static int instance_mkdir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0) {
        return chmod(path, mode) == 0 ? 0 : -errno;
    }
    return errno == EEXIST ? 0 : -errno;
}

/* mkdir -p for the data directory itself: parents 0755, the last one `mode`. */
static int instance_mkdirs(const char *path, mode_t mode)
{
    char *p = ds_xstrdup(path);
    int rc = 0;
    for (char *s = p + 1; *s != '\0' && rc == 0; s++) {
        if (*s == '/') {
            *s = '\0';
            rc = instance_mkdir(p, 0755);
            *s = '/';
        }
    }
    if (rc == 0) {
        rc = instance_mkdir(p, mode);
    }
    free(p);
    return rc;
}

/* Refuses a directory that is a link, is not ours, or that others may write into: the data
 * directory and secrets/ hold the role passwords and files root writes. 0, -EPERM (logged),
 * or -errno. */
static int instance_check_private(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        ds_log_error("cannot open a directory (a symbolic link?)", DS_LOG_STR("path", path),
                     DS_LOG_END);
        return rc;
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    (void)close(fd);
    if (rc == 0 && (st.st_uid != geteuid() || (st.st_mode & 022) != 0)) {
        ds_log_error("refusing a directory that is not ours alone (owner, or group/other write)",
                     DS_LOG_STR("path", path), DS_LOG_U64("uid", st.st_uid),
                     DS_LOG_U64("mode", st.st_mode & 07777), DS_LOG_END);
        rc = -EPERM;
    }
    return rc;
}

/* A directory owned by the cluster's user with `mode`. The socket directory may be a short
 * name under /tmp, where another local user could have made it first, or put a symbolic link
 * there: it is opened without following links and taken over only if it belongs to us or to
 * the cluster's user already (fchown/fchmod act on what was opened, not on the name). */
static int instance_own_dir(const ds_pg_instance_t *inst, const char *path, mode_t mode)
{
    int rc = instance_mkdir(path, mode);
    if (rc < 0) {
        return rc;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        ds_log_error("cannot use a directory (a symbolic link, or not a directory?)",
                     DS_LOG_STR("path", path), DS_LOG_END);
        return rc;
    }
    struct stat st;
    uid_t owner = inst->as_postgres ? inst->uid : geteuid();
    rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && st.st_uid != geteuid() && st.st_uid != owner) {
        ds_log_error("refusing a directory that belongs to another user", DS_LOG_STR("path", path),
                     DS_LOG_U64("uid", st.st_uid), DS_LOG_END);
        rc = -EPERM;
    }
    if (rc == 0 && inst->as_postgres && fchown(fd, inst->uid, inst->gid) < 0) {
        rc = -errno;
    }
    if (rc == 0 && fchmod(fd, mode) < 0) {
        rc = -errno;
    }
    (void)close(fd);
    return rc;
}

static bool instance_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The binaries of the cluster's own major version (DATA_DIR/pg/PG_VERSION) when it exists and
 * they are installed (pg_ctl refuses a data directory of another version); else the newest
 * /usr/lib/postgresql/N/bin that holds initdb. */
static int instance_find_bindir(const char *data_dir, char **out)
{
    char *vfile = ds_xasprintf("%s/pg/PG_VERSION", data_dir);
    FILE *f = fopen(vfile, "re");
    free(vfile);
    char ver[16] = {0};
    if (f != NULL) {
        if (fgets(ver, sizeof(ver), f) == NULL) {
            ver[0] = '\0';
        }
        (void)fclose(f);
        ver[strspn(ver, "0123456789")] = '\0';
    }
    if (ver[0] != '\0') {
        char *dir = ds_xasprintf("/usr/lib/postgresql/%s/bin", ver);
        char *ctl = ds_xasprintf("%s/pg_ctl", dir);
        bool ok = access(ctl, X_OK) == 0;
        free(ctl);
        if (ok) {
            *out = dir;
            return 0;
        }
        free(dir);
    }
    glob_t g;
    // NOLINTNEXTLINE(concurrency-mt-unsafe): commands and start-up only, before threads
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0) {
        return -ENOENT;
    }
    const char *best = NULL;
    long best_ver = -1;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *v = g.gl_pathv[i] + strlen("/usr/lib/postgresql/");
        long n = strtol(v, NULL, 10);
        if (n > best_ver) {
            best_ver = n;
            best = g.gl_pathv[i];
        }
    }
    int rc = -ENOENT;
    if (best != NULL) {
        *out = ds_xstrdup(best);
        (*out)[strlen(*out) - strlen("/initdb")] = '\0';
        rc = 0;
    }
    globfree(&g);
    return rc;
}

/* DATA_DIR/run when its socket path fits, else a short directory under /tmp named by a hash of
 * the data directory (the same for every process that opens this data directory). */
static char *instance_pick_sock_dir(const char *data_dir)
{
    char *dir = ds_xasprintf("%s/run", data_dir);
    if (strlen(dir) + strlen("/.s.PGSQL.5432") <= INSTANCE_SOCK_MAX) {
        return dir;
    }
    free(dir);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data_dir, strlen(data_dir), md, &len, EVP_sha256(), NULL) != 1) {
        len = 0; /* cannot happen with a built-in digest; the name stays unique enough */
    }
    return ds_xasprintf("/tmp/dossier-pg-%02x%02x%02x%02x%02x%02x", len > 0 ? md[0] : 0,
                        len > 1 ? md[1] : 0, len > 2 ? md[2] : 0, len > 3 ? md[3] : 0,
                        len > 4 ? md[4] : 0, len > 5 ? md[5] : 0);
}

/* --- child processes ------------------------------------------------------------------------ */

/* In the child: become the cluster's user. Returns false on failure (the child then exits). */
static bool instance_drop_privileges(const ds_pg_instance_t *inst)
{
    if (!inst->as_postgres) {
        return true;
    }
    return setgroups(1, &inst->gid) == 0 && setgid(inst->gid) == 0 && setuid(inst->uid) == 0;
}

/* Runs argv (argv[0] a full path) as the cluster's user, output appended to the ctl log,
 * stdin from /dev/null. Returns the exit status (0..255), or -errno if it could not run. */
static int instance_run(const ds_pg_instance_t *inst, char *const argv[])
{
    int log_fd = open(inst->ctl_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) {
        return -errno;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int err = -errno;
        (void)close(log_fd);
        return err;
    }
    if (pid == 0) {
        /* A node blocks SIGTERM/SIGINT for sigwait(); the mask survives exec, and the server
         * must not start with its shutdown signals blocked. */
        sigset_t none;
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL); // NOLINT(concurrency-mt-unsafe): child
        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
            dup2(log_fd, STDERR_FILENO) < 0 || !instance_drop_privileges(inst) ||
            chdir(inst->data_dir) < 0) {
            _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    (void)close(log_fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Writes len bytes of data to path as the cluster's user (truncating, or appending), from a
 * child that dropped privileges first: pg/ and the socket directory belong to that user, and
 * root must never write through a name that user controls (a planted link would aim root's
 * write anywhere). 0, or -EIO. */
static int instance_write_as(const ds_pg_instance_t *inst, const char *path, const char *data,
                             size_t len, bool append)
{
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
        int fd = instance_drop_privileges(inst) ? open(path, flags, 0600) : -1;
        _exit(fd >= 0 && write(fd, data, len) == (ssize_t)len && close(fd) == 0 ? 0 : 1);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Proves the cluster's user has access `mode` (access(2) bits) to dir: 0, or -EACCES. */
static int instance_check_reachable(const ds_pg_instance_t *inst, const char *dir, int mode)
{
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        _exit(instance_drop_privileges(inst) && access(dir, mode) == 0 ? 0 : 1);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EACCES;
}

/* --- passwords ------------------------------------------------------------------------------ */

static void instance_random_password(char out[INSTANCE_PW_MAX])
{
    unsigned char raw[INSTANCE_PW_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        ds_log_error("could not get random bytes for a password", DS_LOG_END);
        abort();
    }
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i + 2 < sizeof(raw); i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 3; k >= 0; k--) {
            out[o++] = alphabet[(v >> (6 * k)) & 63];
        }
    }
    out[o] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
}

/* Creates the passwords file unless it exists: written to a temporary, fsynced, then published
 * with link(2), so it is either absent or whole, and two creators agree on one. */
static int instance_ensure_secrets(const ds_pg_instance_t *inst)
{
    char *dir = ds_xasprintf("%s/secrets", inst->data_dir);
    int rc = instance_mkdir(dir, 0700);
    if (rc == 0) {
        rc = instance_check_private(dir);
    }
    if (rc < 0 || instance_exists(inst->secrets)) {
        free(dir);
        return rc;
    }
    char *tmp = ds_xasprintf("%s/pg.passwords.%d", dir, (int)getpid());
    free(dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        free(tmp);
        return rc;
    }
    char buf[3 * (INSTANCE_PW_MAX + 8)];
    char pw[3][INSTANCE_PW_MAX];
    for (int r = 0; r < 3; r++) {
        instance_random_password(pw[r]);
    }
    int n = snprintf(buf, sizeof(buf), "super=%s\nowner=%s\napp=%s\n", pw[0], pw[1], pw[2]);
    OPENSSL_cleanse(pw, sizeof(pw));
    if (n < 0 || write(fd, buf, (size_t)n) != n || fsync(fd) < 0) {
        rc = -EIO;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    (void)close(fd);
    if (rc == 0 && link(tmp, inst->secrets) < 0 && errno != EEXIST) {
        rc = -errno;
    }
    (void)unlink(tmp);
    free(tmp);
    return rc;
}

/* The password of role from the passwords file, into out. */
static int instance_password(const ds_pg_instance_t *inst, ds_pg_role_t role,
                             char out[INSTANCE_PW_MAX])
{
    FILE *f = fopen(inst->secrets, "re");
    if (f == NULL) {
        return -errno;
    }
    char line[INSTANCE_PW_MAX + 16];
    const char *key = instance_pw_keys[role];
    size_t klen = strlen(key);
    int rc = -ENOENT;
    while (rc == -ENOENT && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            const char *v = line + klen + 1;
            size_t vlen = strcspn(v, "\n");
            if (vlen > 0 && vlen < INSTANCE_PW_MAX &&
                strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "abcdefghijklmnopqrstuvwxyz"
                          "0123456789-_") == vlen) {
                memcpy(out, v, vlen);
                out[vlen] = '\0';
                rc = 0;
            } else {
                rc = -EINVAL;
            }
        }
    }
    OPENSSL_cleanse(line, sizeof(line));
    (void)fclose(f);
    return rc;
}

/* --- open / free ---------------------------------------------------------------------------- */

int ds_pg_instance_open(const char *data_dir, const char *bindir, ds_pg_instance_t **out)
{
    /* The path goes into libpq conninfo and postgresql.conf values: keep it to characters
     * neither needs quoted. */
    if (data_dir == NULL || data_dir[0] != '/' || strpbrk(data_dir, " \t\n'\"\\") != NULL) {
        ds_log_error("the data directory must be an absolute path without spaces or quotes",
                     DS_LOG_STR("path", data_dir != NULL ? data_dir : ""), DS_LOG_END);
        return -EINVAL;
    }
    ds_pg_instance_t *inst = ds_xcalloc(1, sizeof(*inst));
    inst->users_fd = -1;
    inst->data_dir = ds_xstrdup(data_dir);
    size_t len = strlen(inst->data_dir);
    while (len > 1 && inst->data_dir[len - 1] == '/') {
        inst->data_dir[--len] = '\0';
    }
    int rc = bindir != NULL ? 0 : instance_find_bindir(inst->data_dir, &inst->bindir);
    if (bindir != NULL) {
        inst->bindir = ds_xstrdup(bindir);
    }
    if (rc == 0 && geteuid() == 0) {
        const struct passwd *pw = getpwnam("postgres"); // NOLINT(concurrency-mt-unsafe): CLI
        if (pw == NULL) {
            ds_log_error("cannot run PostgreSQL as root and there is no postgres user",
                         DS_LOG_STR("hint", "install postgresql-15"), DS_LOG_END);
            rc = -ENOENT;
        } else {
            inst->as_postgres = true;
            inst->uid = pw->pw_uid;
            inst->gid = pw->pw_gid;
        }
    }
    if (rc == 0) {
        rc = instance_mkdirs(inst->data_dir, 0711);
    }
    if (rc == 0) {
        rc = instance_check_private(inst->data_dir);
    }
    if (rc < 0) {
        ds_pg_instance_free(&inst);
        return rc;
    }
    inst->pg_dir = ds_xasprintf("%s/pg", inst->data_dir);
    inst->pg_new = ds_xasprintf("%s/pg.new", inst->data_dir);
    inst->sock_dir = instance_pick_sock_dir(inst->data_dir);
    inst->secrets = ds_xasprintf("%s/secrets/pg.passwords", inst->data_dir);
    inst->lock_path = ds_xasprintf("%s/dossier.lock", inst->data_dir);
    inst->users_path = ds_xasprintf("%s/pg.users", inst->data_dir);
    inst->pin_path = ds_xasprintf("%s/pg.pinned", inst->data_dir);
    inst->ctl_log = ds_xasprintf("%s/pg-ctl.log", inst->data_dir);
    *out = inst;
    return 0;
}

void ds_pg_instance_free(ds_pg_instance_t **instp)
{
    ds_pg_instance_t *inst = *instp;
    if (inst == NULL) {
        return;
    }
    (void)ds_pg_instance_release(inst, NULL);
    free(inst->data_dir);
    free(inst->bindir);
    free(inst->pg_dir);
    free(inst->pg_new);
    free(inst->sock_dir);
    free(inst->secrets);
    free(inst->lock_path);
    free(inst->users_path);
    free(inst->pin_path);
    free(inst->ctl_log);
    free(inst);
    *instp = NULL;
}

const char *ds_pg_instance_socket_dir(const ds_pg_instance_t *inst)
{
    return inst->sock_dir;
}

const char *ds_pg_instance_bindir(const ds_pg_instance_t *inst)
{
    return inst->bindir;
}

int ds_pg_instance_conninfo(const ds_pg_instance_t *inst, ds_pg_role_t role, char **out)
{
    char pw[INSTANCE_PW_MAX];
    int rc = instance_password(inst, role, pw);
    if (rc < 0) {
        return rc;
    }
    *out = ds_xasprintf("host=%s port=%d dbname=%s user=%s password=%s connect_timeout=10",
                        inst->sock_dir, INSTANCE_PORT,
                        role == DS_PG_ROLE_SUPER ? "postgres" : "dossier",
                        instance_role_names[role], pw);
    OPENSSL_cleanse(pw, sizeof(pw));
    return 0;
}

/* --- locks ---------------------------------------------------------------------------------- */

/* Takes dossier.lock exclusively: the fd to pass to instance_unlock(), or -errno. */
static int instance_lock(const ds_pg_instance_t *inst)
{
    int fd = open(inst->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int err = -errno;
            (void)close(fd);
            return err;
        }
    }
    return fd;
}

static void instance_unlock(int fd)
{
    (void)close(fd); /* closing the only descriptor drops the flock */
}

/* --- init, start, stop ---------------------------------------------------------------------- */

bool ds_pg_instance_running(ds_pg_instance_t *inst)
{
    char *ctl = ds_xasprintf("%s/pg_ctl", inst->bindir);
    char *argv[] = {ctl, "status", "-s", "-D", inst->pg_dir, NULL};
    int rc = instance_exists(inst->pg_dir) ? instance_run(inst, argv) : 3;
    free(ctl);
    return rc == 0;
}

/* Removes the files of a directory tree (an initdb that failed half way). */
static void instance_rmtree(const char *path)
{
    char *cmd[] = {"/bin/rm", "-rf", "--one-file-system", (char *)path, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execv(cmd[0], cmd);
        _exit(127);
    }
    if (pid > 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

/* Our settings, rewritten at each start (the socket directory may change with the path). */
static int instance_write_conf(const ds_pg_instance_t *inst, const char *dir)
{
    char *path = ds_xasprintf("%s/dossier.conf", dir);
    char *text = ds_xasprintf("# Written by dossier at every start; edit postgresql.conf instead.\n"
                              "listen_addresses = ''\n"
                              "port = %d\n"
                              "unix_socket_directories = '%s'\n"
                              "unix_socket_permissions = 0700\n"
                              "password_encryption = 'scram-sha-256'\n",
                              INSTANCE_PORT, inst->sock_dir);
    int rc = instance_write_as(inst, path, text, strlen(text), false);
    free(text);
    free(path);
    return rc;
}

/* After initdb, in dir: only Unix-socket logins with scram-sha-256, and our settings. */
static int instance_configure(const ds_pg_instance_t *inst, const char *dir)
{
    static const char hba_text[] = "# Written by dossier: Unix socket only, passwords only.\n"
                                   "local all all scram-sha-256\n";
    static const char include[] = "\ninclude 'dossier.conf'\n";
    char *hba = ds_xasprintf("%s/pg_hba.conf", dir);
    char *conf = ds_xasprintf("%s/postgresql.conf", dir);
    int rc = instance_write_as(inst, hba, hba_text, sizeof(hba_text) - 1, false);
    if (rc == 0) {
        rc = instance_write_as(inst, conf, include, sizeof(include) - 1, true);
    }
    if (rc == 0) {
        rc = instance_write_conf(inst, dir);
    }
    free(hba);
    free(conf);
    return rc;
}

/* initdb and our configuration into pg.new, then one rename to pg/: a cluster directory is
 * either complete or absent, and a failure never touches an existing pg/. */
static int instance_initdb(const ds_pg_instance_t *inst)
{
    if (instance_exists(inst->pg_new)) {
        ds_log_warn("removing a cluster directory that initdb did not finish",
                    DS_LOG_STR("dir", inst->pg_new), DS_LOG_END);
        instance_rmtree(inst->pg_new);
    }
    int rc = instance_own_dir(inst, inst->pg_new, 0700);
    /* initdb reads the superuser's password from a file: the cluster's user writes it into
     * the socket directory, which only that user can enter, and it is removed at once. */
    char *pwfile = ds_xasprintf("%s/initdb.pw", inst->sock_dir);
    char pw[INSTANCE_PW_MAX];
    if (rc == 0) {
        rc = instance_password(inst, DS_PG_ROLE_SUPER, pw);
        if (rc == 0) {
            rc = instance_write_as(inst, pwfile, pw, strlen(pw), false);
        }
        OPENSSL_cleanse(pw, sizeof(pw));
    }
    if (rc == 0) {
        char *initdb = ds_xasprintf("%s/initdb", inst->bindir);
        char *pwopt = ds_xasprintf("--pwfile=%s", pwfile);
        char *argv[] = {initdb,
                        "-D",
                        inst->pg_new,
                        "-U",
                        "postgres",
                        "--auth=scram-sha-256",
                        pwopt,
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                        "--no-instructions",
                        NULL};
        int st = instance_run(inst, argv);
        if (st != 0) {
            ds_log_error("could not initialize the PostgreSQL cluster", DS_LOG_I64("status", st),
                         DS_LOG_STR("log", inst->ctl_log), DS_LOG_END);
            rc = -EIO;
        }
        free(initdb);
        free(pwopt);
    }
    char *rm[] = {"/bin/rm", "-f", pwfile, NULL};
    (void)instance_run(inst, rm); /* as its owner, like every write there */
    free(pwfile);
    if (rc == 0) {
        rc = instance_configure(inst, inst->pg_new);
    }
    if (rc == 0 && rename(inst->pg_new, inst->pg_dir) < 0) {
        rc = -errno;
    }
    return rc;
}

static int instance_pg_start(const ds_pg_instance_t *inst)
{
    int rc = instance_own_dir(inst, inst->sock_dir, 0700);
    if (rc == 0) {
        rc = instance_write_conf(inst, inst->pg_dir);
    }
    if (rc < 0) {
        return rc;
    }
    char *ctl = ds_xasprintf("%s/pg_ctl", inst->bindir);
    char *log = ds_xasprintf("%s/server.log", inst->pg_dir);
    char wait[16];
    (void)snprintf(wait, sizeof(wait), "%d", INSTANCE_START_WAIT);
    char *argv[] = {ctl, "start", "-w", "-s", "-t", wait, "-D", inst->pg_dir, "-l", log, NULL};
    int st = instance_run(inst, argv);
    if (st != 0) {
        ds_log_error("could not start PostgreSQL", DS_LOG_I64("status", st), DS_LOG_STR("log", log),
                     DS_LOG_END);
        rc = -EIO;
    } else {
        ds_log_info("postgres started", DS_LOG_STR("socket_dir", inst->sock_dir), DS_LOG_END);
    }
    free(ctl);
    free(log);
    return rc;
}

static int instance_pg_stop(const ds_pg_instance_t *inst)
{
    char *ctl = ds_xasprintf("%s/pg_ctl", inst->bindir);
    char *argv[] = {ctl, "stop", "-w", "-s", "-m", "fast", "-D", inst->pg_dir, NULL};
    int st = instance_run(inst, argv);
    free(ctl);
    if (st != 0) {
        ds_log_error("could not stop PostgreSQL", DS_LOG_I64("status", st), DS_LOG_END);
        return -EIO;
    }
    ds_log_info("postgres stopped", DS_LOG_END);
    return 0;
}

/* --- bootstrap: roles and the database ------------------------------------------------------ */

static int instance_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        ds_log_error("bootstrap statement failed", DS_LOG_STR("error", PQresultErrorMessage(res)),
                     DS_LOG_END);
        rc = -EIO;
    }
    PQclear(res);
    return rc;
}

/* Creates or updates one role with its password (sent as a SCRAM verifier, so the plain
 * password never reaches the server or its logs). */
static int instance_ensure_role(const ds_pg_instance_t *inst, PGconn *conn, ds_pg_role_t role,
                                const char *attrs)
{
    char pw[INSTANCE_PW_MAX];
    int rc = instance_password(inst, role, pw);
    if (rc < 0) {
        return rc;
    }
    const char *name = instance_role_names[role];
    char *verifier = PQencryptPasswordConn(conn, pw, name, "scram-sha-256");
    OPENSSL_cleanse(pw, sizeof(pw));
    if (verifier == NULL) {
        return -EIO;
    }
    char *quoted = PQescapeLiteral(conn, verifier, strlen(verifier));
    PQfreemem(verifier);
    if (quoted == NULL) {
        return -EIO;
    }
    /* Role names are ours (constants), the verifier is quoted: CREATE ROLE takes no
     * parameters, so it is built as text inside a DO block. */
    char *sql = ds_xasprintf("DO $b$ BEGIN "
                             "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%s') THEN "
                             "CREATE ROLE %s; END IF; "
                             "ALTER ROLE %s %s PASSWORD %s; END $b$",
                             name, name, name, attrs, quoted);
    PQfreemem(quoted);
    rc = instance_exec(conn, sql, 0, NULL);
    OPENSSL_cleanse(sql, strlen(sql));
    free(sql);
    return rc;
}

static int instance_bootstrap(const ds_pg_instance_t *inst)
{
    char *conninfo = NULL;
    int rc = ds_pg_instance_conninfo(inst, DS_PG_ROLE_SUPER, &conninfo);
    if (rc < 0) {
        return rc;
    }
    PGconn *conn = PQconnectdb(conninfo);
    OPENSSL_cleanse(conninfo, strlen(conninfo));
    free(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        ds_log_error("could not connect to PostgreSQL as the superuser",
                     DS_LOG_STR("error", PQerrorMessage(conn)), DS_LOG_END);
        PQfinish(conn);
        return -EIO;
    }
    rc = instance_ensure_role(inst, conn, DS_PG_ROLE_OWNER,
                              "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS");
    if (rc == 0) {
        rc = instance_ensure_role(inst, conn, DS_PG_ROLE_APP,
                                  "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS");
    }
    PGresult *res =
        rc == 0 ? PQexec(conn, "SELECT 1 FROM pg_database WHERE datname = 'dossier'") : NULL;
    bool have_db = res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    PQclear(res);
    static const char *const setup[] = {
        "ALTER ROLE dossier_owner SET search_path = dossier",
        "ALTER ROLE dossier_app SET search_path = dossier",
        "REVOKE ALL ON DATABASE dossier FROM PUBLIC",
        "GRANT CONNECT, TEMPORARY ON DATABASE dossier TO dossier_owner",
        "GRANT CONNECT ON DATABASE dossier TO dossier_app",
    };
    if (rc == 0 && !have_db) {
        rc = instance_exec(conn, "CREATE DATABASE dossier OWNER dossier_owner ENCODING 'UTF8'", 0,
                           NULL);
    }
    for (size_t i = 0; rc == 0 && i < sizeof(setup) / sizeof(setup[0]); i++) {
        rc = instance_exec(conn, setup[i], 0, NULL);
    }
    PQfinish(conn);
    return rc;
}

/* --- start / release ------------------------------------------------------------------------ */

/* The checks before anything starts: the cluster's user can reach the directories, and an
 * existing cluster still has its passwords. */
static int instance_preflight(ds_pg_instance_t *inst, bool initialized)
{
    if (initialized && !instance_exists(inst->secrets)) {
        ds_log_error("the cluster exists but its passwords file is gone; restore it from a backup "
                     "(new passwords would lock dossier out of its own cluster)",
                     DS_LOG_STR("file", inst->secrets), DS_LOG_END);
        return -ENOENT;
    }
    if (!initialized && instance_exists(inst->pg_dir)) {
        ds_log_error("the cluster directory exists but holds no cluster (no PG_VERSION); "
                     "move it away",
                     DS_LOG_STR("dir", inst->pg_dir), DS_LOG_END);
        return -EEXIST;
    }
    int rc = instance_ensure_secrets(inst);
    if (rc == 0) {
        rc = instance_own_dir(inst, inst->sock_dir, 0700);
    }
    if (rc == 0 && inst->as_postgres) {
        rc = instance_check_reachable(inst, inst->sock_dir, R_OK | W_OK | X_OK);
        if (rc == 0) {
            rc = instance_check_reachable(inst, inst->data_dir, X_OK);
        }
        if (rc == -EACCES) {
            ds_log_error("cannot run PostgreSQL in this data directory: the postgres user cannot "
                         "reach it",
                         DS_LOG_STR("data_dir", inst->data_dir),
                         DS_LOG_STR("hint", "choose --data-dir outside /root"), DS_LOG_END);
        }
    }
    return rc;
}

static int instance_start_locked(ds_pg_instance_t *inst, bool *started)
{
    char *version = ds_xasprintf("%s/PG_VERSION", inst->pg_dir);
    bool initialized = instance_exists(version);
    free(version);
    int rc = instance_preflight(inst, initialized);
    if (rc == 0 && !initialized) {
        ds_log_info("initializing PostgreSQL cluster", DS_LOG_STR("dir", inst->pg_dir), DS_LOG_END);
        rc = instance_initdb(inst);
    }
    if (rc == 0 && !ds_pg_instance_running(inst)) {
        /* A pin outlives a crash or a reboot; it holds only for the server `db start` ran. */
        if (unlink(inst->pin_path) < 0 && errno != ENOENT) {
            rc = -errno;
        }
        if (rc == 0) {
            rc = instance_pg_start(inst);
        }
        *started = rc == 0;
    }
    if (rc == 0) {
        rc = instance_bootstrap(inst);
    }
    return rc;
}

int ds_pg_instance_start(ds_pg_instance_t *inst, bool *started)
{
    bool did_start = false;
    if (inst->users_fd >= 0) {
        if (started != NULL) {
            *started = false;
        }
        return 0;
    }
    int lock = instance_lock(inst);
    if (lock < 0) {
        return lock;
    }
    int users = open(inst->users_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int rc = users < 0 ? -errno : 0;
    if (rc == 0 && flock(users, LOCK_SH) < 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = instance_start_locked(inst, &did_start);
    }
    if (rc < 0 && did_start) {
        /* Started here, then the bootstrap failed: nobody else can have joined (we hold
         * dossier.lock), so stop it rather than leave a server without users. */
        (void)instance_pg_stop(inst);
        did_start = false;
    }
    if (rc == 0) {
        inst->users_fd = users;
    } else if (users >= 0) {
        (void)close(users);
    }
    instance_unlock(lock);
    if (rc == 0 && started != NULL) {
        *started = did_start;
    }
    return rc;
}

int ds_pg_instance_release(ds_pg_instance_t *inst, bool *stopped)
{
    bool did_stop = false;
    int rc = 0;
    if (inst->users_fd >= 0) {
        int lock = instance_lock(inst);
        if (lock < 0) {
            (void)close(inst->users_fd); /* drop our share at least */
            inst->users_fd = -1;
            return lock;
        }
        /* Converting our shared lock to an exclusive one succeeds only if no other process
         * holds pg.users: then we are the last user and stop the server. */
        if (!instance_exists(inst->pin_path) && flock(inst->users_fd, LOCK_EX | LOCK_NB) == 0 &&
            ds_pg_instance_running(inst)) {
            rc = instance_pg_stop(inst);
            did_stop = rc == 0;
        }
        (void)close(inst->users_fd);
        inst->users_fd = -1;
        instance_unlock(lock);
    }
    if (stopped != NULL) {
        *stopped = did_stop;
    }
    return rc;
}

int ds_pg_instance_pin(ds_pg_instance_t *inst)
{
    int lock = instance_lock(inst);
    if (lock < 0) {
        return lock;
    }
    int rc = 0;
    if (!ds_pg_instance_running(inst)) {
        rc = -ESRCH; /* a `db stop` came in between: nothing to pin */
    } else {
        int fd = open(inst->pin_path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        rc = fd < 0 ? -errno : 0;
        if (fd >= 0) {
            (void)close(fd);
        }
    }
    if (inst->users_fd >= 0) {
        (void)close(inst->users_fd);
        inst->users_fd = -1;
    }
    instance_unlock(lock);
    return rc;
}

int ds_pg_instance_stop(ds_pg_instance_t *inst)
{
    int lock = instance_lock(inst);
    if (lock < 0) {
        return lock;
    }
    int rc = ds_pg_instance_running(inst) ? instance_pg_stop(inst) : 0;
    if (rc == 0 && unlink(inst->pin_path) < 0 && errno != ENOENT) {
        rc = -errno;
    }
    if (inst->users_fd >= 0) {
        (void)close(inst->users_fd);
        inst->users_fd = -1;
    }
    instance_unlock(lock);
    return rc;
}
