/* minicrit's <criterion/logging.h>: cr_log_info prints to stderr. */
#ifndef MINICRIT_LOGGING_H
#define MINICRIT_LOGGING_H

#include "criterion.h"

#define cr_log_info(...) mc_log_info(" " __VA_ARGS__)

#endif
