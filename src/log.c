/*
 * The library's one logging hook: silent until the application sets it,
 * and nothing is formatted while it is silent.
 */
#include <stdarg.h>
#include <stdio.h>

#include "loop.h"

static gn_log_fn log_fn;
static gn_log_level log_max = GN_LOG_INFO;
static void *log_arg;

void gn_log_set(gn_log_fn fn, gn_log_level max_level, void *arg)
{
    log_fn = fn;
    log_max = max_level;
    log_arg = arg;
}

bool gn__log_enabled(gn_log_level level)
{
    return log_fn && level <= log_max;
}

void gn__log(gn_log_level level, const char *fmt, ...)
{
    char message[512];
    va_list ap;

    if (!gn__log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    log_fn(level, message, log_arg);
}
