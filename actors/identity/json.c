/* json: strict JSON request bodies against a field table. See actors/identity/json.h. */
#include "actors/identity/json.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "runtime/mem.h"

struct ds_json_body {
    json_t *root;
    const ds_json_field_t *fields;
    size_t n;
};

static const ds_json_limits_t default_limits = {
    .max_bytes = DS_JSON_DEFAULT_MAX_BYTES,
    .max_depth = DS_JSON_DEFAULT_MAX_DEPTH,
};

/* --- errors ------------------------------------------------------------------------------- */

/* Copies at most DS_JSON_NAME_MAX bytes of name, cut at a UTF-8 character boundary (jansson has
 * checked that keys are valid UTF-8). */
static void copy_name(char *out, const char *name, size_t len)
{
    if (len > DS_JSON_NAME_MAX) {
        len = DS_JSON_NAME_MAX;
        while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80) {
            len--;
        }
    }
    memcpy(out, name, len);
    out[len] = '\0';
}

static void add_problem(ds_json_error_t *err, const char *field, size_t len, const char *reason)
{
    if (err->count < DS_JSON_MAX_ERRORS) {
        ds_json_problem_t *p = &err->problems[err->count];
        copy_name(p->field, field, len);
        p->reason = reason;
    }
    err->count++;
}

void ds_json_problem_text(const ds_json_problem_t *p, char *out, size_t cap)
{
    if (cap == 0) {
        return;
    }
    if (p->field[0] == '\0') {
        (void)snprintf(out, cap, "%s", p->reason);
    } else {
        (void)snprintf(out, cap, "%s: %s", p->field, p->reason);
    }
}

/* jansson's error codes as fixed phrases: its own texts quote the input near the error, which
 * may be a password. */
static const char *syntax_reason(enum json_error_code code)
{
    switch (code) {
    case json_error_invalid_utf8:
        return "is not valid UTF-8";
    case json_error_premature_end_of_input:
        return "ends before the JSON value does";
    case json_error_end_of_input_expected:
        return "has data after the JSON value";
    case json_error_duplicate_key:
        return "has a duplicate key";
    case json_error_null_byte_in_key:
        return "has a NUL character in a key";
    case json_error_numeric_overflow:
        return "has a number out of range";
    case json_error_wrong_type:
        return "must be a JSON object";
    default:
        return "is not valid JSON";
    }
}

/* --- depth -------------------------------------------------------------------------------- */

/* The deepest nesting of arrays and objects in body, counted outside strings, stopping as soon
 * as max is exceeded. Malformed input gives some number; jansson rejects it afterwards. */
static size_t max_depth_of(const char *body, size_t len, size_t max)
{
    size_t depth = 0;
    size_t deepest = 0;
    bool in_string = false;
    for (size_t i = 0; i < len && deepest <= max; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\') {
                i++; /* the escaped character cannot end the string */
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
            deepest = depth > deepest ? depth : deepest;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return deepest;
}

/* --- values ------------------------------------------------------------------------------- */

/* Code points in a valid UTF-8 string. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    }
    return n;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool uuid_ok(const char *s, size_t len)
{
    if (len != DS_JSON_UUID_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i])) {
            return false;
        }
    }
    return true;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A domain: labels of 1..63 letters, digits and inner hyphens, separated by single dots. */
static bool domain_ok(const char *d, size_t len)
{
    if (len < 1 || len > 253) {
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? d[i] : '.';
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-') {
                return false;
            }
            label = 0;
        } else if (is_alnum(c) || (c == '-' && label > 0)) {
            if (++label > 63) {
                return false;
            }
        } else {
            return false;
        }
    }
    return true;
}

static bool email_ok(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (at == NULL || utf8_chars(s, len) < 3 || utf8_chars(s, len) > DS_JSON_EMAIL_MAX) {
        return false;
    }
    size_t local = (size_t)(at - s);
    if (local < 1 || local > 64 || s[0] == '.' || s[local - 1] == '.') {
        return false;
    }
    for (size_t i = 0; i < local; i++) {
        unsigned char c = (unsigned char)s[i];
        /* UTF-8 (RFC 6531) is allowed; controls, space and RFC 5322 specials are not. */
        if (c <= 0x20 || c == 0x7f || strchr("\"(),:;<>@[\\]", c) != NULL ||
            (c == '.' && s[i + 1] == '.')) {
            return false;
        }
    }
    return domain_ok(at + 1, len - local - 1);
}

/* The reason a string value breaks f, or NULL. */
static const char *check_string(const ds_json_field_t *f, const json_t *v)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (memchr(s, '\0', len) != NULL) {
        return "must not contain NUL characters";
    }
    if (f->type == DS_JSON_UUID) {
        return uuid_ok(s, len) ? NULL : "must be a UUID";
    }
    if (f->type == DS_JSON_EMAIL) {
        return email_ok(s, len) ? NULL : "is not a valid email address";
    }
    size_t chars = utf8_chars(s, len);
    if (chars < f->min_len) {
        return f->min_len == 1 ? "must not be empty" : "is too short";
    }
    if (f->max_len != 0 && chars > f->max_len) {
        return "is too long";
    }
    return NULL;
}

static const char *check_array(const ds_json_field_t *f, const json_t *v)
{
    size_t count = json_array_size(v);
    if (count < f->min_len) {
        return "has too few items";
    }
    if (f->max_len != 0 && count > f->max_len) {
        return "has too many items";
    }
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_array_get(v, i);
        if (!json_is_string(item)) {
            return "must be an array of strings";
        }
        const char *s = json_string_value(item);
        size_t len = json_string_length(item);
        if (memchr(s, '\0', len) != NULL) {
            return "must not contain NUL characters";
        }
        if (f->item_max_len != 0 && utf8_chars(s, len) > f->item_max_len) {
            return "has an item that is too long";
        }
    }
    return NULL;
}

static const char *check_value(const ds_json_field_t *f, const json_t *v)
{
    switch (f->type) {
    case DS_JSON_STRING:
    case DS_JSON_UUID:
    case DS_JSON_EMAIL:
        return json_is_string(v) ? check_string(f, v) : "must be a string";
    case DS_JSON_INTEGER:
        if (!json_is_integer(v)) {
            return "must be an integer";
        }
        if (f->min < f->max && (json_integer_value(v) < f->min || json_integer_value(v) > f->max)) {
            return "is out of range";
        }
        return NULL;
    case DS_JSON_BOOLEAN:
        return json_is_boolean(v) ? NULL : "must be true or false";
    case DS_JSON_STRING_ARRAY:
        return json_is_array(v) ? check_array(f, v) : "must be an array of strings";
    }
    return "has an unsupported type";
}

static const ds_json_field_t *find_field(const ds_json_field_t *fields, size_t n, const char *key,
                                         size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(fields[i].name) == len && memcmp(fields[i].name, key, len) == 0) {
            return &fields[i];
        }
    }
    return NULL;
}

static void validate(const json_t *obj, const ds_json_field_t *fields, size_t n,
                     ds_json_error_t *err)
{
    const char *key = NULL;
    const json_t *v = NULL;
    json_object_foreach((json_t *)obj, key, v)
    {
        size_t klen = strlen(key); /* jansson refuses NUL in keys */
        const ds_json_field_t *f = find_field(fields, n, key, klen);
        const char *why = f == NULL ? "is not a known field" : check_value(f, v);
        if (why != NULL) {
            add_problem(err, key, klen, why);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (fields[i].required && json_object_get(obj, fields[i].name) == NULL) {
            add_problem(err, fields[i].name, strlen(fields[i].name), "is required");
        }
    }
}

/* --- decode ------------------------------------------------------------------------------- */

/* Wipes the string bytes of a value, in place (jansson owns them). */
static void wipe_value(const json_t *v)
{
    if (json_is_string(v)) {
        OPENSSL_cleanse((void *)(uintptr_t)json_string_value(v), json_string_length(v));
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            const json_t *item = json_array_get(v, i);
            if (json_is_string(item)) {
                OPENSSL_cleanse((void *)(uintptr_t)json_string_value(item),
                                json_string_length(item));
            }
        }
    }
}

/* Wipes the fields marked secret (whatever their shape) and drops root. */
static void release(json_t *root, const ds_json_field_t *fields, size_t n)
{
    if (root == NULL) {
        return;
    }
    for (size_t i = 0; i < n && json_is_object(root); i++) {
        if (fields[i].secret) {
            wipe_value(json_object_get(root, fields[i].name));
        }
    }
    json_decref(root);
}

static int fail_whole(ds_json_error_t *err, const char *reason, int rc)
{
    add_problem(err, "", 0, reason);
    return rc;
}

int ds_json_decode(const char *body, size_t len, const ds_json_limits_t *limits,
                   const ds_json_field_t *fields, size_t n, ds_json_body_t **out,
                   ds_json_error_t *err)
{
    const ds_json_limits_t *lim = limits == NULL ? &default_limits : limits;
    ds_json_error_t e;
    memset(&e, 0, sizeof(e));
    int rc = 0;
    if (len > lim->max_bytes) {
        rc = fail_whole(&e, "request body is too large", -EMSGSIZE);
    } else if (body == NULL || len == 0) {
        rc = fail_whole(&e, "request body is empty", -EBADMSG);
    } else if (max_depth_of(body, len, lim->max_depth) > lim->max_depth) {
        rc = fail_whole(&e, "request body is nested too deeply", -EBADMSG);
    }
    json_t *root = NULL;
    if (rc == 0) {
        /* NUL is let through the parser so that the check below can name the field. */
        json_error_t jerr;
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (root == NULL) {
            rc = fail_whole(&e, syntax_reason(json_error_code(&jerr)), -EBADMSG);
            e.line = jerr.line;
            e.column = jerr.column;
            e.offset = (size_t)jerr.position;
        } else if (!json_is_object(root)) {
            rc = fail_whole(&e, "must be a JSON object", -EBADMSG);
        } else {
            validate(root, fields, n, &e);
            rc = e.count == 0 ? 0 : -EBADMSG;
        }
    }
    if (rc != 0) {
        release(root, fields, n);
        if (err != NULL) {
            *err = e;
        }
        return rc;
    }
    ds_json_body_t *b = ds_xmalloc(sizeof(*b));
    b->root = root;
    b->fields = fields;
    b->n = n;
    *out = b;
    return 0;
}

void ds_json_body_free(ds_json_body_t **body)
{
    if (body == NULL || *body == NULL) {
        return;
    }
    release((*body)->root, (*body)->fields, (*body)->n);
    free(*body);
    *body = NULL;
}

/* --- getters ------------------------------------------------------------------------------ */

/* The value of field name, NULL if absent; asserts that name is in the table with a type
 * accepted by the getter (a mismatch is a bug in the route, not bad input). */
static const json_t *lookup(const ds_json_body_t *body, const char *name, unsigned types)
{
    const ds_json_field_t *f = find_field(body->fields, body->n, name, strlen(name));
    assert(f != NULL && (types & (1u << f->type)) != 0);
    if (f == NULL) {
        return NULL;
    }
    return json_object_get(body->root, name);
}

enum {
    ANY = ~0u,
    STRINGS = 1u << DS_JSON_STRING | 1u << DS_JSON_UUID | 1u << DS_JSON_EMAIL,
};

bool ds_json_has(const ds_json_body_t *body, const char *name)
{
    return lookup(body, name, ANY) != NULL;
}

bool ds_json_get_string(const ds_json_body_t *body, const char *name, const char **value,
                        size_t *len)
{
    const json_t *v = lookup(body, name, STRINGS);
    if (v == NULL) {
        return false;
    }
    *value = json_string_value(v);
    if (len != NULL) {
        *len = json_string_length(v);
    }
    return true;
}

bool ds_json_get_uuid(const ds_json_body_t *body, const char *name, char out[DS_JSON_UUID_LEN + 1])
{
    const json_t *v = lookup(body, name, 1u << DS_JSON_UUID);
    if (v == NULL) {
        return false;
    }
    const char *s = json_string_value(v);
    for (size_t i = 0; i < DS_JSON_UUID_LEN; i++) {
        out[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char)(s[i] - 'A' + 'a') : s[i];
    }
    out[DS_JSON_UUID_LEN] = '\0';
    return true;
}

bool ds_json_get_int(const ds_json_body_t *body, const char *name, int64_t *value)
{
    const json_t *v = lookup(body, name, 1u << DS_JSON_INTEGER);
    if (v == NULL) {
        return false;
    }
    *value = (int64_t)json_integer_value(v);
    return true;
}

bool ds_json_get_bool(const ds_json_body_t *body, const char *name, bool *value)
{
    const json_t *v = lookup(body, name, 1u << DS_JSON_BOOLEAN);
    if (v == NULL) {
        return false;
    }
    *value = json_is_true(v);
    return true;
}

bool ds_json_get_count(const ds_json_body_t *body, const char *name, size_t *count)
{
    const json_t *v = lookup(body, name, 1u << DS_JSON_STRING_ARRAY);
    if (v == NULL) {
        return false;
    }
    *count = json_array_size(v);
    return true;
}

const char *ds_json_get_item(const ds_json_body_t *body, const char *name, size_t i)
{
    const json_t *v = lookup(body, name, 1u << DS_JSON_STRING_ARRAY);
    return v == NULL ? NULL : json_string_value(json_array_get(v, i));
}
