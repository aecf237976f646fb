/* tools/cli_sync.c, whole, with its argument parsers reachable from
 * fuzz_cli_args.c (fuzz_cli.h). */
#include "cli_sync.c"
#include "fuzz_cli.h"

int fuzz_parse_send_args(int *argc, char **argv, bool *quiet, bool *hash)
{
    return parse_send_args(argc, argv, quiet, hash);
}

int fuzz_parse_recv_args(int *argc, char **argv, bool *quiet, bool *hash, const char **path)
{
    return parse_recv_args(argc, argv, quiet, hash, path);
}
