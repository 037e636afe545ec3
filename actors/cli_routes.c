/* cli_routes: `dossier routes [--json]`, the HTTP API's route table (actors/api/routes.def).
 * The JSON form feeds the OpenAPI parity test and the cross-tenant attack suite. */
#include <stdio.h>
#include <string.h>

#include "actors/api/router.h"
#include "actors/cli.h"

static const char routes_help[] =
    "Usage: dossier routes [--json]\n"
    "\n"
    "List the routes of the HTTP API: method, path and what the caller needs.\n"
    "\n"
    "Options:\n"
    "  --json             the whole table as JSON (flags, parameter kinds, attack bodies)\n"
    "  -h, --help         show this help\n";

static void routes_print_text(void)
{
    for (size_t r = 0; r < DS_API_ROUTE_COUNT; r++) {
        const ds_api_route_t *rt = &ds_api_routes[r];
        const char *who = "bearer";
        if (rt->flags & DS_API_LOGIN) {
            who = "login (tenant from Host)";
        } else if (rt->flags & DS_API_REFRESH) {
            who = "refresh token";
        } else if (rt->flags & DS_API_PUBLIC) {
            who = "public";
        } else if (rt->flags & DS_API_ADMIN) {
            who = "bearer, admin";
        }
        (void)printf("%-7s %-44s %s\n", rt->method, rt->pattern, who);
    }
}

int ds_cli_routes(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            (void)fputs(routes_help, stdout);
            return DS_CLI_OK;
        } else {
            return ds_cli_usage_error("routes", "unexpected argument", argv[i]);
        }
    }
    if (json) {
        return ds_api_routes_dump_json(stdout) == 0 ? DS_CLI_OK : DS_CLI_FAIL;
    }
    routes_print_text();
    return DS_CLI_OK;
}
