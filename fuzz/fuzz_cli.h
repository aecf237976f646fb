/*
 * The CLI's argument parsers that are static in tools/cli_net.c and
 * tools/cli_sync.c, reached through fuzz_cli_net.c and fuzz_cli_sync.c,
 * which compile those files whole.  For fuzz_cli_args.c only.
 */
#ifndef GN_FUZZ_CLI_H
#define GN_FUZZ_CLI_H

#include <stdbool.h>
#include <stddef.h>

int fuzz_parse_listen_args(int argc, char **argv, const char **addr, size_t *threads);
int fuzz_parse_connect_args(int argc, char **argv, const char **addr, bool *sync);
int fuzz_parse_send_args(int *argc, char **argv, bool *quiet, bool *hash);
int fuzz_parse_recv_args(int *argc, char **argv, bool *quiet, bool *hash, const char **path);

#endif
