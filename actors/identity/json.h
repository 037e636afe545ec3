/* json: strict decoding of JSON request bodies (jansson), checked against a declarative table of
 * the fields a route accepts, with errors that name the field and say what is wrong in words a
 * client can act on (problem+json `detail`, and one `errors` entry per problem).
 *
 * Strictness (issue 5 §1: "duplicate keys, wrong types and unknown fields are 400s"):
 *   - the length is checked against the limit before anything is parsed (-EMSGSIZE, 413);
 *   - the nesting depth is checked by one pass over the bytes, before jansson (whose parser
 *     recurses) sees them: a 100 000-deep `[[[[...` costs a counter, not a stack;
 *   - the body must be one JSON object; duplicate keys, invalid UTF-8 and trailing garbage are
 *     syntax errors (jansson: JSON_REJECT_DUPLICATES, UTF-8 checked on input);
 *   - every key must be a field of the table, of its type, within its bounds; required fields
 *     must be present; null is a wrong type (no field is nullable yet);
 *   - strings may not contain NUL (\u0000), which C code downstream would silently cut.
 * Field types: string, integer (an integer literal, never 1.0), boolean, array of strings, uuid
 * (8-4-4-4-12 hex, either case), email (a pragmatic subset of RFC 5321: one '@', a non-empty
 * local part of at most 64 bytes without spaces, quotes or controls, a domain of letters, digits
 * and hyphens in dot-separated labels; 3..254 characters, as users_email_format checks).
 * Lengths are in characters (code points), as PostgreSQL's char_length counts them.
 *
 * Ownership: ds_json_decode() returns a ds_json_body_t that owns the parsed values; strings
 * returned by the getters live until ds_json_body_free(), which wipes the values of fields
 * marked secret (passwords, tokens) before freeing them. The field table is the caller's and
 * must outlive the body (tables are static const).
 *
 * Errors carry no input bytes except an unknown field's name (truncated, valid UTF-8): never a
 * value, since values may be passwords. Threads: any; a body belongs to one thread at a time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    DS_JSON_MAX_ERRORS = 8, /* problems reported per body; the rest are counted */
    DS_JSON_NAME_MAX = 64,  /* bytes of a field name in an error */
    DS_JSON_DEFAULT_MAX_BYTES = 65536,
    DS_JSON_DEFAULT_MAX_DEPTH = 8,
    DS_JSON_EMAIL_MAX = 254,
    DS_JSON_UUID_LEN = 36,
};

typedef enum ds_json_type {
    DS_JSON_STRING = 1,
    DS_JSON_INTEGER,
    DS_JSON_BOOLEAN,
    DS_JSON_STRING_ARRAY,
    DS_JSON_UUID,
    DS_JSON_EMAIL,
} ds_json_type_t;

/* One accepted field. Zero bounds mean "no bound" except where noted. */
typedef struct ds_json_field {
    const char *name; /* the key, ASCII */
    ds_json_type_t type;
    bool required;
    bool secret;         /* wiped on free (passwords, tokens) */
    size_t min_len;      /* string: characters; array: items */
    size_t max_len;      /* string: characters; array: items; 0: no bound but the body's */
    size_t item_max_len; /* array of strings: characters per item; 0: no bound */
    int64_t min;         /* integer range, inclusive, used when min < max */
    int64_t max;
} ds_json_field_t;

typedef struct ds_json_limits {
    size_t max_bytes; /* body length; over it: -EMSGSIZE (HTTP 413) */
    size_t max_depth; /* nesting of arrays and objects, the top object being 1 */
} ds_json_limits_t;

/* What is wrong, for the client. reason is a static English phrase ("is required", "must be a
 * string", "is not a valid email address"); field is "" for the body as a whole. */
typedef struct ds_json_problem {
    char field[DS_JSON_NAME_MAX + 1];
    const char *reason;
} ds_json_problem_t;

typedef struct ds_json_error {
    size_t count; /* problems found (may exceed DS_JSON_MAX_ERRORS) */
    ds_json_problem_t problems[DS_JSON_MAX_ERRORS];
    int line; /* for a syntax error: 1-based position from jansson, else 0 */
    int column;
    size_t offset; /* byte offset of a syntax error */
} ds_json_error_t;

typedef struct ds_json_body ds_json_body_t;

/* Decodes body (len bytes, need not be NUL terminated) under limits (NULL: the defaults) and
 * checks it against fields (n entries). 0 and the body in *out (free with ds_json_body_free);
 * -EMSGSIZE if len > max_bytes (nothing parsed; err says so); -EBADMSG with err filled for any
 * other problem (HTTP 400 with the problems as `errors`). err may be NULL; it is written on
 * failure only. */
int ds_json_decode(const char *body, size_t len, const ds_json_limits_t *limits,
                   const ds_json_field_t *fields, size_t n, ds_json_body_t **out,
                   ds_json_error_t *err);
/* Wipes secret fields and frees the body; sets *body to NULL. Accepts NULL. */
void ds_json_body_free(ds_json_body_t **body);

/* Getters: name must be a field of the table, of the getter's type (anything else is a bug,
 * asserted). False when the optional field is absent, true and the value otherwise. */
bool ds_json_has(const ds_json_body_t *body, const char *name);
/* string, uuid or email: the NUL-terminated value and its length in bytes (len may be NULL);
 * owned by the body. */
bool ds_json_get_string(const ds_json_body_t *body, const char *name, const char **value,
                        size_t *len);
/* uuid: the canonical lower-case form into out. */
bool ds_json_get_uuid(const ds_json_body_t *body, const char *name, char out[DS_JSON_UUID_LEN + 1]);
bool ds_json_get_int(const ds_json_body_t *body, const char *name, int64_t *value);
bool ds_json_get_bool(const ds_json_body_t *body, const char *name, bool *value);
/* Array of strings: the item count, and item i with ds_json_get_item (NULL past the end). */
bool ds_json_get_count(const ds_json_body_t *body, const char *name, size_t *count);
const char *ds_json_get_item(const ds_json_body_t *body, const char *name, size_t i);

/* One problem as text for problem+json `detail`: "email: is not a valid email address", or
 * the reason alone for the whole body. Into out (cap bytes), truncated, NUL terminated. */
void ds_json_problem_text(const ds_json_problem_t *p, char *out, size_t cap);
