/* err: the error codes every Dossier call returns.
 * A call that can fail returns 0 or a negative code: -errno where one fits, or one of the DS_E*
 * codes below, all under -4096 so they never collide with errno values.
 * Threads: everything here is pure and safe from any thread. */
#pragma once

enum {
    DS_EFULL = -5001,     /* the receiver's mailbox is at its limit (HTTP 503 + Retry-After) */
    DS_ECAP = -5002,      /* the group's cap on bytes in flight is reached (503 + Retry-After) */
    DS_ETIMEDOUT = -5003, /* an ask's deadline passed before a reply came */
    DS_EDECODE = -5004,   /* bytes from outside are malformed, truncated or of the wrong shape */
    DS_EUNKNOWN = -5005,  /* a message type that is not in the catalog */
    DS_ENODEDOWN = -5006, /* the link to the peer node is down */
    DS_ECRASHED = -5007,  /* the actor that held a request stopped before it replied */
    DS_ESHUTDOWN = -5008, /* the runtime is draining and takes no new work */
    DS_EPRECOND = -5009,  /* a precondition of the call does not hold (If-Match and the like) */
    DS_ELIMIT = -5010,    /* a restart intensity or another configured limit was exceeded */
    DS_ENOACTOR = -5011,  /* the actor id names no live actor (dead, stale or never spawned) */
};

/* A static, lower-case description of code (0, -errno or DS_E*). Never NULL, never freed.
 * Unlike strerror() it is safe on every thread. */
const char *ds_strerror(int code);

/* The stable short name of code ("efull", "enoent", ...), for logs and problem types. */
const char *ds_errname(int code);
