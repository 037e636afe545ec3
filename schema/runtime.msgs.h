/* The runtime's messages: type numbers 1..255 (below DS_MSG_USER_BASE).
 *
 * A catalog def file, expanded by runtime/catalog_decl.inc and runtime/catalog_def.inc (see
 * runtime/catalog.h); not a header of its own. One line per message:
 *   DS_MSG(NAME, number, name, fields)   a message with fields, listed without commas
 *   DS_MSG0(NAME, number, name)          a message without fields
 * Fields, encoded in order as a msgpack array:
 *   DS_F(kind, name)     kind: BOOL U32 U64 I32 I64 F64 ID (an actor id, sent as its u64)
 *   DS_STR(name, max)    text: at most max bytes of valid UTF-8
 *   DS_BIN(name, max)    bytes: at most max of them
 * NAME, name and field names are pasted into C names (DS_MT_NAME, ds_name_t, ds_name_new): they
 * must not be macros. Numbers travel between nodes: never renumber or reuse one, and never
 * change a message's fields in place; declare a new message instead. */

/* An exit signal, delivered to an actor that traps exits: `who` stopped with `reason`. */
DS_MSG(EXIT, 1, exit, DS_F(ID, who) DS_F(I64, reason))
/* A monitor fired: the monitor `ref` watched `who`, which stopped with `reason`. */
DS_MSG(DOWN, 2, down, DS_F(U64, ref) DS_F(ID, who) DS_F(I64, reason))
/* An ask timed out; the header's corr names the ask. */
DS_MSG0(TIMEOUT, 3, timeout)
/* The error reply to an ask (flags REPLY|ERROR): a negative error code. */
DS_MSG(ERROR, 4, error, DS_F(I64, code))
/* A request to stop with `reason`. */
DS_MSG(STOP, 5, stop, DS_F(I64, reason))
/* Link and unlink the sender and the receiver. */
DS_MSG0(LINK, 6, link)
DS_MSG0(UNLINK, 7, unlink)
/* Monitor the receiver for the sender, under reference `ref`; and cancel that. */
DS_MSG(MONITOR, 8, monitor, DS_F(U64, ref))
DS_MSG(DEMONITOR, 9, demonitor, DS_F(U64, ref))
/* A virtual actor is asked to save its state and stop. */
DS_MSG0(PASSIVATE, 10, passivate)
/* The link to node `node` is down. */
DS_MSG(NODE_DOWN, 11, node_down, DS_F(U32, node))
/* A generic timer tick, numbered. */
DS_MSG(TICK, 12, tick, DS_F(U64, seq))
