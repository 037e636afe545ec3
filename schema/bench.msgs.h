/* The benchmarks' messages: type numbers from 256 (DS_MSG_USER_BASE). Expanded with the prefix
 * bench_ by tests/bench/bench_msgs.[ch]: DS_MT_BENCH_PING, ds_bench_ping_t, ds_bench_ping_new().
 * The format is that of schema/runtime.msgs.h. */

DS_MSG(START, 256, start, DS_F(U64, n))
DS_MSG(PING, 257, ping, DS_F(U64, k))
DS_MSG(PONG, 258, pong, DS_F(U64, k))
DS_MSG(NEXT, 259, next, DS_F(ID, who))
DS_MSG(TOKEN, 260, token, DS_F(U64, h))
DS_MSG(DONE, 261, done, DS_F(U64, sum))
DS_MSG(WORK, 262, work, DS_F(U64, x))
DS_MSG(REPLY, 263, reply, DS_F(U64, x))
DS_MSG0(GO, 264, go)
DS_MSG0(BATCH, 265, batch)
DS_MSG(MSG, 266, msg, DS_F(U64, x))
DS_MSG(NOISE, 267, noise, DS_F(U64, i))
DS_MSG0(FLOOD, 268, flood)
DS_MSG(SPIN, 269, spin, DS_F(U64, ns))
