/* tools/cli_net.c, whole, with its argument parsers reachable from
 * fuzz_cli_args.c (fuzz_cli.h). */
#include "cli_net.c"
#include "fuzz_cli.h"

int fuzz_parse_listen_args(int argc, char **argv, const char **addr, size_t *threads)
{
    enum listen_mode mode;
    size_t loops;
    int rc = parse_listen_args(argc, argv, addr, &mode, threads, &loops);

    /* listen checks its TLS flags next, as a server. */
    return rc ? rc : cli_check_tls_flags(*addr, true);
}

int fuzz_parse_connect_args(int argc, char **argv, const char **addr, bool *sync)
{
    return parse_connect_args(argc, argv, addr, sync);
}
