/* keys: the table of config keys shared by the files of config/ (the loader, the environment
 * pass, per-tenant plan overrides, the dump): each key's path, type, place in ds_config_t and
 * range, and the one function that parses and checks a value, so every source is held to the
 * same rules.
 *
 * Keys are numbered: ids [0, DS__NCFG) are the entries of the top table (sections and leaves
 * outside plans, "plans" last); then one id per plan section (plans.<kind>); then one per plan
 * field of each kind. DS__NKEYS counts them all.
 * Threads: the tables are immutable; the functions touch only what they are given. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

typedef enum ds__ktype {
    DS__K_SECTION = 0, /* a mapping of more keys */
    DS__K_UINT,        /* an unsigned integer of size 2, 4 or 8 */
    DS__K_BYTES,       /* the same, with an optional KiB/MiB/GiB/TiB suffix */
    DS__K_STR,         /* any string (UTF-8, no control characters) */
    DS__K_PATH,        /* "" or an absolute path */
    DS__K_REGION,      /* [a-z0-9-]{1,32}, no '-' at either end */
    DS__K_LOGLEVEL,    /* a ds_log_level_t by name */
    DS__K_ORIGINS,     /* a ds_config_list_t of CORS origins; max = entries */
    DS__K_ADDRS,       /* a ds_config_list_t of IP literals (canonical); max = entries */
} ds__ktype_t;

enum {
    DS__F_UNLIMITED = 1 << 0, /* `unlimited` is allowed (DS_PLAN_UNLIMITED) */
    DS__F_POW2 = 1 << 1,      /* the value must be a power of two */
    DS__F_SECRET = 1 << 2,    /* never echoed; wiped when replaced or freed */
};

typedef struct ds__field {
    const char *name; /* the full path in the top table ("database.pool_size"), the field
                         name in the plan table ("max_users") */
    ds__ktype_t type;
    size_t offset; /* in ds_config_t (top table) or ds_plan_t (plan table) */
    size_t size;   /* of the member */
    uint64_t min;
    uint64_t max;
    unsigned flags;
} ds__field_t;

enum {
    DS__NCFG = 51,         /* entries of the top table */
    DS__NPLAN_FIELDS = 14, /* fields of ds_plan_t */
    DS__NKEYS = DS__NCFG + DS_PLAN_COUNT + DS_PLAN_COUNT * DS__NPLAN_FIELDS,
    DS__PATH_MAX = 160, /* bytes of a key path, NUL included */
};

extern const ds__field_t ds__cfg_fields[DS__NCFG];
extern const ds__field_t ds__plan_fields[DS__NPLAN_FIELDS];

/* A key found by path: its id, its field (NULL for a plans.<kind> section) and where its
 * member lives: at base + field->offset in ds_config_t. */
typedef struct ds__key {
    int id;
    ds__ktype_t type;
    const ds__field_t *field;
    size_t base; /* offset of the ds_plan_t holding the field, 0 for the top table */
} ds__key_t;

/* Finds the key at the dotted path (len bytes, exact case): 0 and *out, or -ENOENT. */
int ds__key_lookup(const char *path, size_t len, ds__key_t *out);

/* The dotted path of key id into buf (cut short if it does not fit); returns buf. */
const char *ds__key_path(int id, char *buf, size_t size);

/* The key of id (its path is ds__key_path()). */
void ds__key_by_id(int id, ds__key_t *out);

/* Parses text (len bytes; it may hold NULs, which are refused) for field f and stores it in
 * the member at base + f->offset. plain: the text was a plain (unquoted) scalar; integers
 * must be. 0; -EINVAL (not of the type) or -ERANGE (out of range) with msg set, the member
 * unchanged. A string member is replaced by a new malloc()ed copy, the old one freed (wiped if
 * secret). A list member is replaced by the comma-separated entries of text (blanks around an
 * entry are dropped; "" is the empty list), each checked as by ds__list_add(). */
int ds__field_set(void *base, const ds__field_t *f, const char *text, size_t len, bool plain,
                  char *msg, size_t msgsize);

/* True for the list types (DS__K_ORIGINS, DS__K_ADDRS): a ds_config_list_t member. */
bool ds__is_list(ds__ktype_t type);

/* Empties the list member at base + f->offset (a YAML source that sets it starts over). */
void ds__list_clear(void *base, const ds__field_t *f);

/* Appends one entry (text, len bytes; plain as for ds__field_set(), a plain null is refused as
 * empty) to the list member at base + f->offset, checked and canonicalised for f's type.
 * 0; -EINVAL (not an entry of the type, a duplicate) or -ERANGE (too long, one entry more
 * than f->max) with msg set, the list unchanged. */
int ds__list_add(void *base, const ds__field_t *f, const char *text, size_t len, bool plain,
                 char *msg, size_t msgsize);

/* Frees the entries of *list and empties it. */
void ds__list_free(ds_config_list_t *list);

/* Writes the member's value as YAML (integers plain, strings double-quoted, lists as a flow
 * sequence of double-quoted strings). 0, or -EIO if writing failed. */
int ds__field_write(const void *base, const ds__field_t *f, FILE *out);

/* True for the text of a YAML null plain scalar: "", "~", "null", "Null", "NULL". */
bool ds__is_null(const char *text, size_t len);

/* snprintf into buf, never failing: a format or size problem leaves buf cut short or "". */
void ds__fmt(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
