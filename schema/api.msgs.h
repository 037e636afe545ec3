/* The HTTP API's own messages (actors/api): type numbers 1300..1399. Expanded with the prefix
 * api_ by actors/api/api_msgs.[ch]. The format is that of schema/runtime.msgs.h. */

/* Send, work pool to a session actor: the off-scheduler work of call (an argon2id hash or
 * verification) has finished with status (0, or -ECANCELED when the loop stopped first). */
DS_MSG(WORK_DONE, 1300, work_done, DS_F(U64, call) DS_F(I32, status))
/* Send, gateway directory to a session actor: the tenant's effective plan changed (an operator
 * set a limit, or the plan): the limits the session enforces itself. UINT64_MAX: unlimited. */
DS_MSG(LIMITS, 1301, limits, DS_F(U64, max_users))
/* Timer, to a session actor every few seconds while it has requests in flight: reclaims a
 * request whose work item never reported back (its WORK_DONE was refused by a full mailbox). */
DS_MSG0(TICK, 1302, tick)
