/* err: names and descriptions of error codes. See runtime/err.h.
 * A switch over constants, so every string is static and the call is safe on any thread
 * (strerror() is not: it may write a shared buffer). */
#include "runtime/err.h"

#include <errno.h>

typedef struct err_entry {
    const char *name;
    const char *text;
} err_entry_t;

/* X-macro: code, short name, description. The -errno values are the ones our calls return or
 * pass through from the system (sockets, files, threads). */
#define DS_ERR_TABLE(X)                                                       \
    X(0, "ok", "success")                                                     \
    X(DS_EFULL, "efull", "mailbox full")                                      \
    X(DS_ECAP, "ecap", "group byte cap reached")                              \
    X(DS_ETIMEDOUT, "etimeout", "timed out")                                  \
    X(DS_EDECODE, "edecode", "malformed input")                               \
    X(DS_EUNKNOWN, "eunknown", "unknown message type")                        \
    X(DS_ENODEDOWN, "enodedown", "peer node down")                            \
    X(DS_ECRASHED, "ecrashed", "actor stopped before replying")               \
    X(DS_ESHUTDOWN, "eshutdown", "runtime shutting down")                     \
    X(DS_EPRECOND, "eprecond", "precondition failed")                         \
    X(DS_ELIMIT, "elimit", "limit exceeded")                                  \
    X(DS_ENOACTOR, "enoactor", "no such actor")                               \
    X(-EPERM, "eperm", "operation not permitted")                             \
    X(-ENOENT, "enoent", "no such file or directory")                         \
    X(-ESRCH, "esrch", "no such process")                                     \
    X(-EINTR, "eintr", "interrupted system call")                             \
    X(-EIO, "eio", "input/output error")                                      \
    X(-ENXIO, "enxio", "no such device or address")                           \
    X(-E2BIG, "e2big", "argument list too long")                              \
    X(-EBADF, "ebadf", "bad file descriptor")                                 \
    X(-ECHILD, "echild", "no child processes")                                \
    X(-EAGAIN, "eagain", "resource temporarily unavailable")                  \
    X(-ENOMEM, "enomem", "out of memory")                                     \
    X(-EACCES, "eacces", "permission denied")                                 \
    X(-EFAULT, "efault", "bad address")                                       \
    X(-EBUSY, "ebusy", "resource busy")                                       \
    X(-EEXIST, "eexist", "file exists")                                       \
    X(-EXDEV, "exdev", "cross-device link")                                   \
    X(-ENODEV, "enodev", "no such device")                                    \
    X(-ENOTDIR, "enotdir", "not a directory")                                 \
    X(-EISDIR, "eisdir", "is a directory")                                    \
    X(-EINVAL, "einval", "invalid argument")                                  \
    X(-ENFILE, "enfile", "too many open files in system")                     \
    X(-EMFILE, "emfile", "too many open files")                               \
    X(-EFBIG, "efbig", "file too large")                                      \
    X(-ENOSPC, "enospc", "no space left")                                     \
    X(-ESPIPE, "espipe", "illegal seek")                                      \
    X(-EROFS, "erofs", "read-only file system")                               \
    X(-EMLINK, "emlink", "too many links")                                    \
    X(-EPIPE, "epipe", "broken pipe")                                         \
    X(-EDOM, "edom", "argument out of domain")                                \
    X(-ERANGE, "erange", "result out of range")                               \
    X(-EDEADLK, "edeadlk", "resource deadlock avoided")                       \
    X(-ENAMETOOLONG, "enametoolong", "name too long")                         \
    X(-ENOSYS, "enosys", "function not implemented")                          \
    X(-ENOTEMPTY, "enotempty", "directory not empty")                         \
    X(-ELOOP, "eloop", "too many levels of symbolic links")                   \
    X(-ENODATA, "enodata", "no data available")                               \
    X(-ETIME, "etime", "timer expired")                                       \
    X(-EOVERFLOW, "eoverflow", "value too large for data type")               \
    X(-EILSEQ, "eilseq", "invalid or incomplete multibyte or wide character") \
    X(-ENOTSOCK, "enotsock", "socket operation on non-socket")                \
    X(-EDESTADDRREQ, "edestaddrreq", "destination address required")          \
    X(-EMSGSIZE, "emsgsize", "message too long")                              \
    X(-EPROTOTYPE, "eprototype", "protocol wrong type for socket")            \
    X(-ENOPROTOOPT, "enoprotoopt", "protocol not available")                  \
    X(-EPROTONOSUPPORT, "eprotonosupport", "protocol not supported")          \
    X(-ENOTSUP, "enotsup", "operation not supported")                         \
    X(-EAFNOSUPPORT, "eafnosupport", "address family not supported")          \
    X(-EADDRINUSE, "eaddrinuse", "address already in use")                    \
    X(-EADDRNOTAVAIL, "eaddrnotavail", "address not available")               \
    X(-ENETDOWN, "enetdown", "network is down")                               \
    X(-ENETUNREACH, "enetunreach", "network is unreachable")                  \
    X(-ECONNABORTED, "econnaborted", "connection aborted")                    \
    X(-ECONNRESET, "econnreset", "connection reset by peer")                  \
    X(-ENOBUFS, "enobufs", "no buffer space available")                       \
    X(-EISCONN, "eisconn", "socket is already connected")                     \
    X(-ENOTCONN, "enotconn", "socket is not connected")                       \
    X(-ETIMEDOUT, "etimedout", "connection timed out")                        \
    X(-ECONNREFUSED, "econnrefused", "connection refused")                    \
    X(-EHOSTUNREACH, "ehostunreach", "no route to host")                      \
    X(-EALREADY, "ealready", "operation already in progress")                 \
    X(-EINPROGRESS, "einprogress", "operation in progress")                   \
    X(-ECANCELED, "ecanceled", "operation canceled")                          \
    X(-EPROTO, "eproto", "protocol error")                                    \
    X(-EBADMSG, "ebadmsg", "bad message")                                     \
    X(-ENOKEY, "enokey", "required key not available")                        \
    X(-EKEYREVOKED, "ekeyrevoked", "key has been revoked")                    \
    X(-EOWNERDEAD, "eownerdead", "owner died")

/* A switch: the compiler rejects a duplicate case, so two names for one code (EAGAIN and
 * EWOULDBLOCK, ENOTSUP and EOPNOTSUPP on Linux) cannot slip in. */
static err_entry_t err_lookup(int code)
{
#define DS_ERR_CASE(c, n, t) \
    case (c):                \
        return (err_entry_t){(n), (t)};
    switch (code) {
        DS_ERR_TABLE(DS_ERR_CASE)
    default:
        return (err_entry_t){"unknown", "unknown error"};
    }
#undef DS_ERR_CASE
}

const char *ds_strerror(int code)
{
    return err_lookup(code).text;
}

const char *ds_errname(int code)
{
    return err_lookup(code).name;
}
