/* The cluster tests' messages (types from 4000), expanded with the prefix ct_ by
 * tests/unit/cluster_fixture.[ch]. Format: schema/runtime.msgs.h. PING, PONG and SEQ cross
 * nodes; the CMD_ messages drive the client actor from the test thread. */

/* An ask to the echo actor; pad makes frames as large as a test needs. */
DS_MSG(PING, 4000, ping, DS_F(U64, seq) DS_BIN(pad, 1048576))
/* The echo's reply, with the ask's seq. */
DS_MSG(PONG, 4001, pong, DS_F(U64, seq))
/* One message of an ordered stream: the echo checks that seq is the next one. */
DS_MSG(SEQ, 4002, seq, DS_F(U64, seq))
/* Client commands: ask target, monitor target, stream n SEQ messages to target. */
DS_MSG(CMD_ASK, 4010, cmd_ask, DS_F(ID, target) DS_F(U64, seq))
DS_MSG(CMD_MONITOR, 4011, cmd_monitor, DS_F(ID, target))
DS_MSG(CMD_STREAM, 4012, cmd_stream, DS_F(ID, target) DS_F(U64, n))
/* The client's own tick to resume a stream after a full link queue. */
DS_MSG0(CONT, 4013, cont)
