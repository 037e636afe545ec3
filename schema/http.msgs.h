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
