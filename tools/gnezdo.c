/*
 * gnezdo - the command-line tool: look up ports, inspect addresses,
 * listen, connect, and a live demo.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 usage error (with a one-line
 * hint).  Output is plain text for people; --json gives one JSON object
 * per line for scripts.  Errors always go to stderr as text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_sys.h"
#include "gnezdo.h"

#define MAX_RESULTS       16384
#define MAX_RESOLVED      64
#define PORT_OUT_OF_RANGE (-1000) /* not a GN_E code: a usage error here */

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("gnezdo: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("; see 'gnezdo --help'\n", stderr);
    return CLI_USAGE;
}

int cli_open_error(int rc, const char *err)
{
    /* The address or the flags were wrong: the person typing can fix it. */
    if (rc == GN_EBADADDR || rc == GN_ENOSERVICE || rc == GN_ETOOLONG || rc == GN_EFAMILY ||
        rc == GN_EINVAL)
        return cli_usage_error("%s", err);
    return cli_fail("%s", err);
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("gnezdo: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_FAILURE;
}

/* ---- JSON ----------------------------------------------------------- */

static void cli_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out); /* UTF-8 passes through */
    }
    fputc('"', out);
}

/* ---- ports ---------------------------------------------------------- */

struct ports_args {
    const char *query;
    gn_proto proto;
    bool search, json;
};

static void print_service_text(const gn_service *s)
{
    char port[32] = "-";

    if (s->has_port && s->port_lo == s->port_hi)
        snprintf(port, sizeof(port), "%u", (unsigned)s->port_lo);
    else if (s->has_port)
        snprintf(port, sizeof(port), "%u-%u", (unsigned)s->port_lo, (unsigned)s->port_hi);
    if (s->proto != GN_PROTO_ANY) {
        size_t n = strlen(port);
        snprintf(port + n, sizeof(port) - n, "/%s", gn_proto_name(s->proto));
    }
    printf("%-16s %-12s %s\n", s->name[0] ? s->name : "(unnamed)", port, s->description);
}

static void print_service_json(const gn_service *s)
{
    fputs("{\"name\":", stdout);
    cli_json_string(stdout, s->name);
    if (s->has_port)
        printf(",\"port\":%u,\"port_hi\":%u", (unsigned)s->port_lo, (unsigned)s->port_hi);
    else
        fputs(",\"port\":null,\"port_hi\":null", stdout);
    fputs(",\"proto\":", stdout);
    if (s->proto == GN_PROTO_ANY)
        fputs("null", stdout);
    else
        cli_json_string(stdout, gn_proto_name(s->proto));
    fputs(",\"description\":", stdout);
    cli_json_string(stdout, s->description);
    fputs("}\n", stdout);
}

static int parse_ports_args(int argc, char **argv, struct ports_args *a)
{
    static const char *const protos[] = {"--tcp", "--udp", "--sctp", "--dccp"};

    *a = (struct ports_args){0};
    for (int i = 0; i < argc; i++) {
        bool matched = false;
        for (int p = 0; p < 4; p++)
            if (strcmp(argv[i], protos[p]) == 0) {
                a->proto = (gn_proto)(GN_PROTO_TCP + p);
                matched = true;
            }
        if (matched)
            continue;
        if (strcmp(argv[i], "--search") == 0)
            a->search = true;
        else if (strcmp(argv[i], "--json") == 0)
            a->json = true;
        else if (argv[i][0] == '-' && argv[i][1] != '\0' &&
                 !(argv[i][1] >= '0' && argv[i][1] <= '9'))
            return cli_usage_error("unknown option '%s' for ports", argv[i]);
        else if (a->query)
            return cli_usage_error("ports takes one name, port or word, got '%s' and '%s'",
                                   a->query, argv[i]);
        else
            a->query = argv[i];
    }
    if (!a->query)
        return cli_usage_error("ports needs a service name, a port or --search WORD");
    return 0;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int lookup_ports(const struct ports_args *a, const gn_service **out)
{
    if (a->search)
        return gn_services_search(a->query, a->proto, out, MAX_RESULTS);
    if (all_digits(a->query)) {
        if (strlen(a->query) > 5 || atol(a->query) > 65535)
            return PORT_OUT_OF_RANGE;
        return gn_services_by_port((unsigned)atol(a->query), a->proto, out, MAX_RESULTS);
    }
    return gn_services_by_name(a->query, a->proto, out, MAX_RESULTS);
}

static int cmd_ports(int argc, char **argv)
{
    static const gn_service *found[MAX_RESULTS];
    struct ports_args a;
    int rc = parse_ports_args(argc, argv, &a), n;

    if (rc)
        return rc;
    if (a.search && !a.query[0])
        return cli_usage_error("--search needs a non-empty word");
    n = lookup_ports(&a, found);
    if (n == PORT_OUT_OF_RANGE || (a.query[0] == '-' && !a.search))
        return cli_usage_error("port %s is out of range 0-65535", a.query);
    if (n < 0)
        return cli_fail("'%s': %s", a.query, gn_strerror(n));
    if (n == 0)
        return cli_fail(a.search              ? "no service name or description contains '%s'"
                        : all_digits(a.query) ? "no service registered on port %s%s%s"
                                              : "no service named '%s'%s%s in the IANA registry",
                        a.query, a.proto ? " for " : "", a.proto ? gn_proto_name(a.proto) : "");
    for (int i = 0; i < n && i < MAX_RESULTS; i++) {
        if (a.json)
            print_service_json(found[i]);
        else
            print_service_text(found[i]);
    }
    return 0;
}

/* ---- addr ----------------------------------------------------------- */

struct addr_fields {
    char text[GN_ENDPOINT_STRLEN];
    char host[GN_ENDPOINT_STRLEN];
    char path[GN_ENDPOINT_STRLEN];
    const char *service;
};

static void collect_fields(const gn_endpoint *ep, struct addr_fields *f)
{
    const gn_service *s;
    gn_proto proto = gn_endpoint_transport(ep) == GN_TRANSPORT_UDP ? GN_PROTO_UDP : GN_PROTO_TCP;

    gn_endpoint_format(ep, f->text, sizeof(f->text));
    gn_endpoint_host(ep, f->host, sizeof(f->host));
    f->path[0] = '\0';
    if (gn_endpoint_family(ep) == GN_FAMILY_UNIX) {
        /* The formatted text holds the path escaped: skip the scheme. */
        const char *colon = strchr(f->text, ':');
        snprintf(f->path, sizeof(f->path), "%s", colon ? colon + 1 : "");
    }
    f->service = NULL;
    if (gn_endpoint_family(ep) != GN_FAMILY_UNIX &&
        gn_services_by_port(gn_endpoint_port(ep), proto, &s, 1) > 0 && s->name[0])
        f->service = s->name;
}

static void print_addr_text(const gn_endpoint *ep, const struct addr_fields *f,
                            const gn_endpoint *resolved, int n)
{
    char text[GN_ENDPOINT_STRLEN];

    printf("address    %s\n", f->text);
    printf("transport  %s\n", gn_transport_name(gn_endpoint_transport(ep)));
    printf("family     %s\n", gn_endpoint_family_name(gn_endpoint_family(ep)));
    if (gn_endpoint_family(ep) == GN_FAMILY_UNIX) {
        printf("path       %s%s\n", f->path, gn_endpoint_is_abstract(ep) ? " (abstract)" : "");
    } else {
        if (f->host[0])
            printf("host       %s\n", f->host);
        printf("port       %u%s%s%s\n", (unsigned)gn_endpoint_port(ep), f->service ? " (" : "",
               f->service ? f->service : "", f->service ? ")" : "");
    }
    if (gn_endpoint_scope_id(ep))
        printf("scope id   %u\n", (unsigned)gn_endpoint_scope_id(ep));
    for (int i = 0; i < n && i < MAX_RESOLVED; i++) {
        gn_endpoint_format(&resolved[i], text, sizeof(text));
        printf("resolved   %s\n", text);
    }
}

static void print_addr_json(const gn_endpoint *ep, const struct addr_fields *f,
                            const gn_endpoint *resolved, int n)
{
    char text[GN_ENDPOINT_STRLEN];

    fputs("{\"address\":", stdout);
    cli_json_string(stdout, f->text);
    printf(",\"transport\":\"%s\",\"family\":\"%s\"", gn_transport_name(gn_endpoint_transport(ep)),
           gn_endpoint_family_name(gn_endpoint_family(ep)));
    fputs(",\"host\":", stdout);
    cli_json_string(stdout, f->host);
    printf(",\"port\":%u,\"service\":", (unsigned)gn_endpoint_port(ep));
    if (f->service)
        cli_json_string(stdout, f->service);
    else
        fputs("null", stdout);
    fputs(",\"path\":", stdout);
    cli_json_string(stdout, f->path);
    printf(",\"abstract\":%s,\"scope_id\":%u,\"resolved\":[",
           gn_endpoint_is_abstract(ep) ? "true" : "false", (unsigned)gn_endpoint_scope_id(ep));
    for (int i = 0; i < n && i < MAX_RESOLVED; i++) {
        gn_endpoint_format(&resolved[i], text, sizeof(text));
        if (i)
            fputc(',', stdout);
        cli_json_string(stdout, text);
    }
    fputs("]}\n", stdout);
}

/* addr's arguments (fuzz/fuzz_cli_args.c calls this too). */
static int parse_addr_args(int argc, char **argv, const char **text, bool *json, bool *listen)
{
    *text = NULL;
    *json = *listen = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            *json = true;
        else if (strcmp(argv[i], "--listen") == 0)
            *listen = true;
        else if (*text)
            return cli_usage_error("addr takes one address, got '%s' and '%s'", *text, argv[i]);
        else
            *text = argv[i];
    }
    if (!*text)
        return cli_usage_error("addr needs an address, e.g. 'gnezdo addr [::1]:http'");
    return 0;
}

static int cmd_addr(int argc, char **argv)
{
    static gn_endpoint resolved[MAX_RESOLVED];
    char err[GN_ERRBUF_SIZE];
    const char *text;
    bool json, listen;
    struct addr_fields f;
    gn_endpoint ep;
    int n = 0, rc = parse_addr_args(argc, argv, &text, &json, &listen);

    if (rc)
        return rc;
    rc = gn_endpoint_parse(text, listen ? GN_PARSE_LISTEN : 0, &ep, err, sizeof(err));
    if (rc < 0)
        return cli_usage_error("%s", err);
    if (!gn_endpoint_is_resolved(&ep)) {
        n = gn_resolve(&ep, resolved, MAX_RESOLVED, err, sizeof(err));
        if (n < 0)
            return cli_fail("%s", err);
    }
    collect_fields(&ep, &f);
    if (json)
        print_addr_json(&ep, &f, resolved, n);
    else
        print_addr_text(&ep, &f, resolved, n);
    return 0;
}

/* ---- help, version, dispatch ---------------------------------------- */

static const char usage[] =
    "usage: gnezdo COMMAND [ARGS]\n"
    "\n"
    "  ports NAME|PORT [--tcp|--udp|--sctp|--dccp] [--json]\n"
    "                           look up the IANA registry: 'ports http', 'ports 80'\n"
    "  ports --search WORD      names or descriptions containing WORD\n"
    "  addr ADDRESS [--listen] [--json]\n"
    "                           parse an address, show its fields, resolve host names\n"
    "  listen ADDRESS [--echo|--chat|--discard] [--threads N] [--loops N]\n"
    "         [--limit RATE]\n"
    "                           a server socket; prints what clients send unless told\n"
    "                           otherwise; logs connects and disconnects to stderr;\n"
    "                           --threads: blocking handlers on up to N threads;\n"
    "                           more clients wait (see 'gnezdo listen --help');\n"
    "                           --loops: N event loops, each on its own thread\n"
    "  connect ADDRESS [--sync] a client socket: stdin to the peer, the peer to stdout\n"
    "                           (--sync: the blocking client)\n"
    "  connect ADDRESS --retry  reconnect after a refused or lost connection, with\n"
    "                           growing pauses (1 s, x1.6, up to 2 min), told on stderr\n"
    "  send FILE ADDRESS [--quiet] [--no-hash] [--limit RATE]\n"
    "                           send a file, with progress, time, rate and SHA-256\n"
    "  recv ADDRESS [FILE|-] [--quiet] [--no-hash] [--limit RATE]\n"
    "                           accept one sender and write what it sends to FILE\n"
    "  bench ADDRESS [-c CONNS] [-s SIZE] [-d DEPTH] [-t SECONDS] [-w SECONDS]\n"
    "        [--conn-rate close|reset] [--tls] [--pid PID] [--json]\n"
    "                           load an echo server: CONNS connections (10) with DEPTH\n"
    "                           SIZE-byte messages (1, 64) in flight, every byte checked;\n"
    "                           msgs/s, MB/s, latency p50/p99/p99.9 over SECONDS (5)\n"
    "                           after a warm-up (-w, 1); --conn-rate: connect, one echo,\n"
    "                           close or reset; --pid: the server's CPU too\n"
    "  --limit RATE             at most RATE bytes per second each way on each\n"
    "                           connection: 500K, 10M, 1G (K = 1024)\n"
    "  demo                     a server and three clients in one process\n"
    "\n"
    "  --help, --version\n"
    "\n"
    "TLS (tls://host:port), for every command:\n"
    "  --cert FILE --key FILE   a server's certificate chain and key (PEM), or a\n"
    "                           client's certificate\n"
    "  --ca FILE                verify the peer against these CAs instead of the\n"
    "                           system's (with --cert: a server requiring client\n"
    "                           certificates)\n"
    "  --insecure               client: accept any certificate (dangerous)\n"
    "  --alpn LIST              protocols to offer or accept, e.g. h2,http/1.1\n"
    "  --servername NAME        client: the name to send and verify\n"
    "  --ciphers LIST           the TLS 1.2 suites allowed (OpenSSL cipher list);\n"
    "                           default: forward-secret AEAD suites only\n"
    "\n"
    "Proxies, for connect and send (else ALL_PROXY, https_proxy for tls://, NO_PROXY):\n"
    "  --proxy URL              socks5://, socks5h:// or http:// [user:pass@]host[:port];\n"
    "                           '' for none\n"
    "  --noproxy LIST           hosts reached directly, e.g. localhost,.internal\n"
    "\n"
    "Addresses: 194.106.118.30:80  [::1]:8080  localhost:http  tcp://host:port\n"
    "           udp://host:port  tls://host:port  unix:/path  unix:@abstract\n"
    "           unixgram:/path  :8080\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage error.\n";

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs(usage, stdout);
    return 0;
}

/* The backend a default loop gets here: io_uring may be built in yet
 * refused by this kernel or container, and then epoll is what runs. */
static const char *default_backend(void)
{
    gn_loop *loop;
    const char *name;

    if (gn_loop_new(&loop) < 0)
        return "none (no loop could be created)";
    name = gn_loop_backend(loop); /* a static string: outlives the loop */
    gn_loop_free(loop);
    return name;
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("gnezdo %s (port registry: IANA %s, %zu entries)\n", gn_version(), gn_services_date(),
           gn_services_count());
    printf("event loop backend: %s\n", default_backend());
    return 0;
}

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"ports", cmd_ports}, {"addr", cmd_addr}, {"listen", cli_listen},     {"connect", cli_connect},
    {"demo", cli_demo},   {"send", cli_send}, {"recv", cli_recv},         {"help", cmd_help},
    {"bench", cli_bench},
    {"--help", cmd_help}, {"-h", cmd_help},   {"--version", cmd_version}, {"version", cmd_version},
};

/* stdout may be a full disk or a closed pipe: say so, and fail. */
static int finish(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_output_failed(); /* says so once, with the reason */
        return rc ? rc : CLI_FAILURE;
    }
    return rc;
}

/* ---- TLS options, taken out of argv before the command sees it --------- */

static gn_tls_options cli_tls;
static bool cli_tls_given;

gn_options cli_options(void)
{
    gn_options opts = {0};

    if (cli_tls_given)
        opts.tls = &cli_tls;
    opts.read_rate_limit = cli_rate_limit;
    opts.write_rate_limit = cli_rate_limit;
    return opts;
}

int cli_check_tls_flags(const char *addr, bool server)
{
    gn_endpoint ep;
    bool tls = gn_endpoint_parse(addr, GN_PARSE_LISTEN, &ep, NULL, 0) == 0 &&
               gn_endpoint_transport(&ep) == GN_TRANSPORT_TLS;

    /* Quietly serving plaintext to someone who asked for TLS would be
     * the worst outcome: say so instead. */
    if (cli_tls_given && !tls)
        return cli_usage_error("--cert, --key, --ca, --alpn, --servername and --insecure are for "
                               "tls:// addresses, not '%s'",
                               addr);
    if (tls && server && (!cli_tls.cert_file || !cli_tls.key_file))
        return cli_usage_error("a tls:// server needs --cert FILE and --key FILE");
    return 0;
}

/* Remove --cert F, --key F, --ca F, --alpn L, --servername N and
 * --insecure from argv (from index 2 on); 0 or a usage error's code. */
static int take_tls_options(int *argc, char **argv)
{
    static const struct {
        const char *flag;
        size_t offset;
    } with_value[] = {
        {"--cert", offsetof(gn_tls_options, cert_file)},
        {"--key", offsetof(gn_tls_options, key_file)},
        {"--ca", offsetof(gn_tls_options, ca_file)},
        {"--alpn", offsetof(gn_tls_options, alpn)},
        {"--servername", offsetof(gn_tls_options, server_name)},
        {"--ciphers", offsetof(gn_tls_options, ciphers)},
    };
    int kept = 2;

    cli_tls = (gn_tls_options){0}; /* as new: fuzz_cli_args calls this again and again */
    cli_tls_given = false;
    for (int i = 2; i < *argc; i++) {
        bool taken = false;
        if (strcmp(argv[i], "--insecure") == 0)
            cli_tls.insecure = taken = true;
        for (size_t f = 0; !taken && f < sizeof(with_value) / sizeof(with_value[0]); f++) {
            if (strcmp(argv[i], with_value[f].flag) != 0)
                continue;
            if (i + 1 >= *argc)
                return cli_usage_error("%s needs a value", argv[i]);
            *(const char **)((char *)&cli_tls + with_value[f].offset) = argv[++i];
            taken = true;
        }
        if (taken)
            cli_tls_given = true;
        else
            argv[kept++] = argv[i];
    }
    if (cli_tls.ca_file && cli_tls.cert_file)
        cli_tls.verify_client = true; /* a server with --ca checks its clients */
    *argc = kept;
    return 0;
}

/* The library's warnings (refused clients, failed handshakes, insecure
 * TLS) are for the person at the terminal. */
static void print_log(gn_log_level level, const char *message, void *arg)
{
    (void)arg;
    fprintf(stderr, "gnezdo: %s: %s\n", level == GN_LOG_ERROR ? "error" : "warning", message);
}

int main(int argc, char **argv)
{
    int rc;

    gn_log_set(print_log, GN_LOG_WARN, NULL);
    cli_sys_init(); /* SIGPIPE ignored; binary stdin and stdout on Windows */
    if (argc < 2)
        return cli_usage_error("no command given");
    rc = take_tls_options(&argc, argv);
    if (rc == 0)
        rc = cli_take_proxy_options(&argc, argv);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return finish(commands[i].run(argc - 2, argv + 2));
    return cli_usage_error("unknown command '%s'", argv[1]);
}
