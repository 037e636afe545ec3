/* demo: the demo tenant a fresh node creates so that it can be tried at once: tenant `demo`
 * with one admin, admin@demo.localhost, whose generated password is printed once on the
 * console (standard output, not the JSON log) and stored only as an argon2id hash.
 * Synchronous libpq as the owner role: node start-up only. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "actors/password.h"

/* Creates the demo tenant and its admin unless a tenant `demo` exists, in one transaction
 * (with a control_audit row). On creation prints the login to console. 0 and *created; -EIO
 * (*why: the reason). */
int ds_demo_ensure(PGconn *conn, const char *region, const ds_password_cost_t *cost, FILE *console,
                   bool *created, char **why);
