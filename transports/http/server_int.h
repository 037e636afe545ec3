/* server_int: what the files of transports/http share and nobody else uses. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transports/http/reader.h"

enum {
    DS_HTTP_HEADER_LIST_MAX = 65536, /* the headers BIN of REQUEST and RESPONSE */
};

/* Encodes n headers as name NUL value NUL pairs into a new buffer (*out, free() it). With
 * check, refuses (-EINVAL) an empty name or CR, LF or NUL in a name or value. -EMSGSIZE past
 * DS_HTTP_HEADER_LIST_MAX. */
int ds__http_headers_encode(const ds_http_header_t *h, size_t n, bool check, uint8_t **out,
                            size_t *out_len);
