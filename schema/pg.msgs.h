/* The PostgreSQL pool's messages (transports/pg/pool.h): type numbers 1000..1099. Expanded with
 * the prefix pg_ by transports/pg/pg_msgs.[ch]: DS_MT_PG_TX, ds_pg_tx_t, ds_pg_tx_new()...
 * The format is that of schema/runtime.msgs.h. Build requests with ds_pg_req_*() and read
 * replies with ds_pg_reply_decode() rather than filling the BIN fields by hand: their msgpack
 * layout is described in transports/pg/pool.h. */

/* Ask: a tenant transaction. tenant is a UUID in text (8-4-4-4-12 hex); timeout_ms the
 * statement timeout asked for (0: the tenant's; never above it); max_bytes the largest reply
 * wanted (0: the pool's); stmts the statements (ds_pg_req_t). Reply: RESULT or FAIL. */
DS_MSG(TX, 1000, tx,
       DS_STR(tenant, 36) DS_F(U32, timeout_ms) DS_F(U32, max_bytes) DS_BIN(stmts, 1048576))
/* Ask: a system request, without tenant (control-plane SECURITY DEFINER functions). Same
 * fields and replies as TX. */
DS_MSG(SYSTEM, 1001, system, DS_F(U32, timeout_ms) DS_F(U32, max_bytes) DS_BIN(stmts, 1048576))
/* Reply: every statement's result, in order (layout in transports/pg/pool.h). */
DS_MSG(RESULT, 1002, result, DS_BIN(results, 8388640))
/* Reply: the request failed and nothing of it was committed (but see -ECONNRESET and -EMSGSIZE
 * in transports/pg/pool.h). code is a negative error code; sqlstate PostgreSQL's (empty when
 * the error is not the server's); message its primary message; stmt the index of the failing
 * statement, or DS_PG_STMT_NONE. */
DS_MSG(FAIL, 1003, fail, DS_F(I32, code) DS_STR(sqlstate, 5) DS_STR(message, 512) DS_F(U32, stmt))
/* Send: registers a tenant's limits (its plan, with overrides). Zero fields take the pool's
 * defaults for tenants. */
DS_MSG(TENANT, 1004, tenant,
       DS_STR(tenant, 36) DS_F(U32, weight) DS_F(U32, max_conns) DS_F(U32, max_waiting)
           DS_F(U32, timeout_ms))
/* Ask: the pool's metrics, and those of one tenant ("" for none, "system" for system
 * requests). Reply: STATS. */
DS_MSG(STATS_GET, 1005, stats_get, DS_STR(tenant, 36))
/* Reply: the pool's metrics (see ds_pg_stats_t in transports/pg/pool.h). */
DS_MSG(STATS, 1006, stats,
       DS_F(U32, size) DS_F(U32, open) DS_F(U32, connecting) DS_F(U32, busy) DS_F(U32, waiting)
           DS_F(U64, served) DS_F(U64, errors) DS_F(U64, connects) DS_F(U64, reconnects)
               DS_F(U64, disconnects) DS_F(U64, connect_failures) DS_F(U64, refused)
                   DS_F(U64, expired) DS_F(U32, tenant_active) DS_F(U32, tenant_waiting)
                       DS_F(U32, tenant_peak) DS_F(U64, tenant_served)
                           DS_F(U32, tenant_peak_inflight))
/* Send: a local start signal for the pool's clients in tests and benchmarks (never sent to the
 * pool, which ignores it). */
DS_MSG0(GO, 1099, go)
