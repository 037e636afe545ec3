/* The HTTP gateway's messages (transports/http/server.h): type numbers 1200..1299. Expanded
 * with the prefix http_ by transports/http/http_msgs.[ch]: DS_MT_HTTP_REQUEST,
 * ds_http_request_t, ds_http_request_new()... The format is that of schema/runtime.msgs.h.
 * Header lists travel as a BIN of name NUL value NUL pairs (llhttp refuses NUL in a header,
 * so the encoding is unambiguous): read them with ds_http_header_next() or ds_http_header_get()
 * and answer with ds_http_respond() rather than filling fields by hand. */

/* Send, gateway to the handler actor: one complete request. reply_to is the gateway's port;
 * conn and seq name the connection and the request on it (copy both into the RESPONSE);
 * request_id is the X-Request-Id the gateway assigned; path and query are the request target
 * split at the first '?' (query without it, "" when absent); version is major * 10 + minor;
 * peer is the client address (the socket peer, or X-Forwarded-For from a trusted proxy). */
DS_MSG(REQUEST, 1200, request,
       DS_F(ID, reply_to) DS_F(U64, conn) DS_F(U64, seq) DS_STR(request_id, 64) DS_STR(method, 32)
           DS_STR(path, 8192) DS_STR(query, 8192) DS_BIN(headers, 65536) DS_BIN(body, 16777216)
               DS_STR(peer, 64) DS_F(U32, version))
/* Send, handler to the gateway's port: the response to request (conn, seq). The gateway adds
 * Content-Length, Connection and X-Request-Id itself (a handler's own are dropped). */
DS_MSG(RESPONSE, 1201, response,
       DS_F(U64, conn) DS_F(U64, seq) DS_F(U32, status) DS_BIN(headers, 65536)
           DS_BIN(body, 16777216))

/* Streamed responses (transports/http/server.h, "Streaming"). Send, handler to the gateway's
 * port: the head of a response whose body follows in RESPONSE_BODY pieces. The gateway frames
 * the body itself (chunked for HTTP/1.1, close-delimited for HTTP/1.0) and drops a handler's
 * Content-Length, Transfer-Encoding, Connection and X-Request-Id. */
DS_MSG(RESPONSE_START, 1202, response_start,
       DS_F(U64, conn) DS_F(U64, seq) DS_F(U32, status) DS_BIN(headers, 65536))
/* Send, handler to the gateway's port: the next piece of a streamed response's body; last
 * ends it (data may then be empty). Each piece is acknowledged by a RESPONSE_ACK to its
 * sender once written to the socket; at most stream_window pieces may be unacknowledged. */
DS_MSG(RESPONSE_BODY, 1203, response_body,
       DS_F(U64, conn) DS_F(U64, seq) DS_BIN(data, 1048576) DS_F(BOOL, last))
/* Send, gateway's port to the sender of RESPONSE_START / RESPONSE_BODY: pieces of response
 * (conn, seq) written (each frees a place in the window); or, with error < 0, the response
 * cannot go on (the client is gone, the request timed out, a window overrun): send no more. */
DS_MSG(RESPONSE_ACK, 1204, response_ack,
       DS_F(U64, conn) DS_F(U64, seq) DS_F(U32, pieces) DS_F(I32, error))
/* Send, gateway to the handler actor: the head of a request whose body is longer than
 * stream_threshold. Fields as REQUEST without the body; content_length is the declared length,
 * or -1 (chunked). The body follows in REQUEST_BODY pieces once credit is granted. */
DS_MSG(REQUEST_START, 1205, request_start,
       DS_F(ID, reply_to) DS_F(U64, conn) DS_F(U64, seq) DS_STR(request_id, 64) DS_STR(method, 32)
           DS_STR(path, 8192) DS_STR(query, 8192) DS_BIN(headers, 65536) DS_STR(peer, 64)
               DS_F(U32, version) DS_F(I64, content_length))
/* Send, gateway to the actor that granted credit last (the handler until then): the next piece
 * of a streamed request body; last ends it. error < 0 with last: the body will not come (the
 * client is gone, a limit tripped, the request was answered before its body was read). */
DS_MSG(REQUEST_BODY, 1206, request_body,
       DS_F(U64, conn) DS_F(U64, seq) DS_BIN(data, 1048576) DS_F(BOOL, last) DS_F(I32, error))
/* Send, any actor to the gateway's port: it may take `pieces` more REQUEST_BODY pieces of
 * request (conn, seq); the pieces go to this message's sender from now on. */
DS_MSG(REQUEST_CREDIT, 1207, request_credit, DS_F(U64, conn) DS_F(U64, seq) DS_F(U32, pieces))
