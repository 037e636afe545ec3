/* A test catalog (types from 1000) with every field kind, for tests/unit/test_catalog.c and
 * tests/fuzz/fuzz_wire.c. Expanded with the prefix test_. Format: schema/runtime.msgs.h. */

DS_MSG(NOTE, 1000, note,
       DS_STR(title, 8) DS_BIN(blob, 4) DS_F(BOOL, flag) DS_F(F64, ratio) DS_F(I32, delta)
           DS_F(U32, count))
DS_MSG0(EMPTY, 1001, empty)
DS_MSG(WIDE, 1002, wide, DS_F(U64, a) DS_F(I64, b) DS_F(ID, c) DS_STR(text, 300))
