/* config: what callers do with a loaded config (config.h) — its plans, the directories it
 * implies, and writing it back out as YAML. Loading is in load.c, the key table in keys.c. */
#include "config/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/keys.h"
#include "runtime/mem.h"

const ds_plan_t *ds_config_plan(const ds_config_t *cfg, ds_plan_kind_t kind)
{
    if (cfg == NULL || (unsigned)kind >= DS_PLAN_COUNT) {
        return NULL;
    }
    return &cfg->plans[kind];
}

int ds_config_resolve_data_dir(const ds_config_t *cfg, unsigned euid, const char *xdg_data_home,
                               const char *home, char **out)
{
    if (cfg != NULL && cfg->data_dir != NULL && cfg->data_dir[0] != '\0') {
        *out = ds_xstrdup(cfg->data_dir);
    } else if (euid == 0) {
        *out = ds_xstrdup("/var/lib/dossier");
    } else if (xdg_data_home != NULL && xdg_data_home[0] == '/') {
        *out = ds_xasprintf("%s/dossier", xdg_data_home);
    } else if (home != NULL && home[0] == '/') {
        /* "/" as HOME would give "//.local": join without doubling the slash. */
        *out = ds_xasprintf("%s%s.local/share/dossier", home,
                            home[strlen(home) - 1] == '/' ? "" : "/");
    } else {
        return -ENOENT;
    }
    return 0;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    return ds_xasprintf("%s%s%s", dir, n > 0 && dir[n - 1] == '/' ? "" : "/", name);
}

int ds_config_resolve_paths(const ds_config_t *cfg, const char *data_dir, ds_config_paths_t *out)
{
    if (cfg == NULL || data_dir == NULL || data_dir[0] != '/') {
        return -EINVAL;
    }
    ds_config_paths_t p;
    p.blob_dir = cfg->blob.dir[0] != '\0' ? ds_xstrdup(cfg->blob.dir) : join(data_dir, "blobs");
    p.keys_dir =
        cfg->blob.keys_dir[0] != '\0' ? ds_xstrdup(cfg->blob.keys_dir) : join(data_dir, "keys");
    p.master_key_file = cfg->blob.master_key_file[0] != '\0' ? ds_xstrdup(cfg->blob.master_key_file)
                                                             : join(p.keys_dir, "master.key");
    *out = p;
    return 0;
}

void ds_config_paths_fini(ds_config_paths_t *p)
{
    if (p == NULL) {
        return;
    }
    free(p->blob_dir);
    free(p->keys_dir);
    free(p->master_key_file);
    *p = (ds_config_paths_t){.blob_dir = NULL};
}

/* ---- dump --------------------------------------------------------------------------------- */

/* One "name: value" line at indent, or the comment standing for a hidden secret. */
static int dump_field(const void *base, const ds__field_t *f, const char *name, int indent,
                      unsigned flags, FILE *out)
{
    if ((f->flags & DS__F_SECRET) && !(flags & DS_CONFIG_DUMP_SECRETS)) {
        const char *s = NULL;
        memcpy(&s, (const char *)base + f->offset, sizeof(s));
        if (s != NULL && s[0] != '\0') {
            return fprintf(out, "%*s# %s: set, not shown\n", indent, "", name) < 0 ? -EIO : 0;
        }
    }
    if (fprintf(out, "%*s%s: ", indent, "", name) < 0 || ds__field_write(base, f, out) < 0 ||
        fputc('\n', out) == EOF) {
        return -EIO;
    }
    return 0;
}

static int dump_plans(const ds_config_t *cfg, FILE *out)
{
    for (int k = 0; k < DS_PLAN_COUNT; k++) {
        if (fprintf(out, "  %s:\n", ds_plan_kind_name((ds_plan_kind_t)k)) < 0) {
            return -EIO;
        }
        for (int i = 0; i < DS__NPLAN_FIELDS; i++) {
            const ds__field_t *f = &ds__plan_fields[i];
            int rc = dump_field(&cfg->plans[k], f, f->name, 4, 0, out);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

int ds_config_dump(const ds_config_t *cfg, unsigned flags, FILE *out)
{
    if (fprintf(out, "# Dossier: the effective configuration\n") < 0) {
        return -EIO;
    }
    for (int i = 0; i < DS__NCFG; i++) {
        /* The table lists each section before its keys, and a nested section (http.limits)
         * after its parent's own keys, so indenting by depth gives valid YAML. */
        const ds__field_t *f = &ds__cfg_fields[i];
        const char *name = strrchr(f->name, '.');
        name = name != NULL ? name + 1 : f->name;
        int indent = 0;
        for (const char *p = f->name; *p != '\0'; p++) {
            indent += *p == '.' ? 2 : 0;
        }
        int rc;
        if (f->type == DS__K_SECTION) {
            rc = fprintf(out, "%*s%s:\n", indent, "", name) < 0 ? -EIO : 0;
            if (rc == 0 && strcmp(f->name, "plans") == 0) {
                rc = dump_plans(cfg, out);
            }
        } else {
            rc = dump_field(cfg, f, name, indent, flags, out);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return fflush(out) == EOF ? -EIO : 0;
}
