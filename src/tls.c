/*
 * TLS with OpenSSL 3, as a stream transport.
 *
 * The SSL object never touches the socket: it reads ciphertext from one
 * memory BIO that we fill from the socket and writes ciphertext into
 * another that we drain into it.  So reads and writes stay non-blocking,
 * MSG_NOSIGNAL still guards against SIGPIPE, and back-pressure works as
 * for TCP: a write encrypts only when the previous ciphertext has gone
 * out, so the ciphertext waiting is bounded by one batch.
 *
 * Errors are kept with their reason: OpenSSL's text for protocol errors,
 * the verification result for certificates ("certificate has expired",
 * "hostname mismatch"), so on_error can say why a peer was refused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faults.h"
#include "tls.h"

#define DEFAULT_HANDSHAKE_MS 10000
#define WRITE_BATCH          (64u << 10) /* plaintext encrypted per write */
#define RECV_CHUNK           16384

/* TLS 1.2 suites by default: Mozilla's "intermediate" profile (v5.7),
 * forward-secret key exchange (ECDHE, DHE) with AEAD ciphers (AES-GCM,
 * ChaCha20-Poly1305) only, strongest first.  No RSA key exchange, no CBC
 * (LUCKY13 and its kin).  TLS 1.3 has its own list, all of it AEAD and
 * forward-secret.  gn_tls_options.ciphers replaces this. */
#define DEFAULT_TLS12_CIPHERS                                                                      \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

struct gn__tls_config {
    SSL_CTX *ctx;
    bool server, insecure;
    char server_name[GN_HOST_MAX + 1]; /* client: SNI and verified name */
    char session_key[2 * 32 + 1];      /* client: SHA-256 of what a session is for */
    unsigned char alpn[256];           /* wire format: length-prefixed */
    size_t alpn_len;
    uint32_t handshake_ms;
};

struct gn__tls {
    SSL *ssl;
    BIO *in, *out; /* socket -> SSL, SSL -> socket */
    struct gn__tls_config *cfg;
    bool owns_cfg;
    bool notify_sent;  /* close_notify is in `out` */
    size_t ooff, olen; /* obuf[ooff..olen) waits for the socket */
    char obuf[RECV_CHUNK + 1024];
};

/* ---- errors ------------------------------------------------------------ */

/* A peer that speaks only TLS 1.1 or older: a server of ours hears an
 * old ClientHello ("unsupported protocol"), a client of ours an old
 * ServerHello (the same) or the alert an old server sends when it cannot
 * meet our minimum ("tlsv1 alert protocol version"). */
static bool too_old(unsigned long e)
{
    int r = ERR_GET_REASON(e);

    return ERR_GET_LIB(e) == ERR_LIB_SSL &&
           (r == SSL_R_UNSUPPORTED_PROTOCOL || r == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
}

/* The reason of the last failure into the connection's error; returns the code. */
static int tls_failed(gn_conn *conn, const char *what)
{
    long verify = SSL_get_verify_result(conn->ext->tls->ssl);
    unsigned long e = ERR_peek_error();
    char reason[160] = "";
    int code = GN_ETLS;

    if (verify != X509_V_OK && !conn->ext->tls->cfg->insecure) {
        snprintf(reason, sizeof(reason), "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        code = GN_ECERT;
    } else if (e && too_old(e)) {
        snprintf(reason, sizeof(reason),
                 "peer offers TLS 1.1 or older; gnezdo needs TLS 1.2 or later (%s)",
                 ERR_reason_error_string(e));
    } else if (e) {
        const char *r = ERR_reason_error_string(e);
        snprintf(reason, sizeof(reason), "%s", r ? r : "unknown OpenSSL error");
    } else {
        snprintf(reason, sizeof(reason), "%s", "the peer closed the connection");
    }
    ERR_clear_error();
    gn__conn_set_error(conn, "%s: %s", what, reason);
    return code;
}

/* ---- moving ciphertext ------------------------------------------------- */

static bool tls_pending(const gn_conn *conn)
{
    const struct gn__tls *t = conn->ext->tls;

    return t && (t->olen > t->ooff || BIO_ctrl_pending(t->out) > 0);
}

/* Drain the ciphertext into the socket, through obuf: a memory BIO
 * cannot give back what a short send did not take. */
static int tls_flush(gn_conn *conn)
{
    struct gn__tls *t = conn->ext->tls;

    for (;;) {
        ssize_t n;

        if (t->ooff == t->olen) {
            int got = BIO_read(t->out, t->obuf, (int)sizeof(t->obuf));
            t->ooff = t->olen = 0;
            if (got <= 0)
                return 0;
            t->olen = (size_t)got;
        }
        n = gn__send(conn->io.fd, t->obuf + t->ooff, t->olen - t->ooff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? GN__AGAIN : gn_error_from_errno(errno);
        t->ooff += (size_t)n;
    }
}

/* Feed `in` from the socket: bytes read, 0 at EOF, GN__AGAIN or a code. */
static ssize_t tls_fill(gn_conn *conn)
{
    char buf[RECV_CHUNK];

    for (;;) {
        ssize_t n = gn__recv(conn->io.fd, buf, sizeof(buf), 0);
        if (n > 0) {
            BIO_write(conn->ext->tls->in, buf, (int)n);
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? GN__AGAIN : gn_error_from_errno(errno);
    }
}

/* After an SSL call returned rc <= 0: fetch ciphertext it wants, or say
 * why it cannot go on.  Returns 1 to call again, or GN__AGAIN, 0 (EOF)
 * or a code. */
static int need_more(gn_conn *conn, int rc, const char *what)
{
    int err = SSL_get_error(conn->ext->tls->ssl, rc);
    ssize_t n;

    if (err == SSL_ERROR_WANT_READ) {
        tls_flush(conn); /* the peer may be waiting for our part first */
        n = tls_fill(conn);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        return (int)n;
    }
    if (err == SSL_ERROR_WANT_WRITE) /* not with a memory BIO, but cheap */
        return tls_flush(conn) == 0 ? 1 : GN__AGAIN;
    if (err == SSL_ERROR_ZERO_RETURN)
        return 0; /* close_notify */
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return 0;
    return tls_failed(conn, what);
}

/* ---- the transport ----------------------------------------------------- */

static int tls_handshake(gn_conn *conn)
{
    for (;;) {
        int rc;

        ERR_clear_error();
        rc = SSL_do_handshake(conn->ext->tls->ssl);
        if (rc == 1) {
            rc = tls_flush(conn);
            return rc == GN__AGAIN ? 0 : rc; /* the rest goes out with the next write */
        }
        rc = need_more(conn, rc, "TLS handshake");
        if (rc == 1)
            continue;
        if (rc == 0) {
            gn__conn_set_error(conn, "TLS handshake: the peer closed the connection");
            return GN_ETLS;
        }
        if (rc == GN__AGAIN || rc == GN_ETLS || rc == GN_ECERT)
            tls_flush(conn); /* a failure's alert tells the peer why */
        if (rc != GN__AGAIN && rc != GN_ETLS && rc != GN_ECERT)
            gn__conn_set_error(conn, "TLS handshake: %s", gn_strerror(rc));
        return rc;
    }
}

static ssize_t tls_read(gn_conn *conn, void *buf, size_t len)
{
    int chunk = len > INT32_MAX ? INT32_MAX : (int)len;

    for (;;) {
        int rc;

        ERR_clear_error();
        rc = SSL_read(conn->ext->tls->ssl, buf, chunk);
        if (rc > 0) {
            tls_flush(conn); /* e.g. a key update's answer */
            return rc;
        }
        rc = need_more(conn, rc, "TLS read");
        if (rc != 1)
            return rc;
    }
}

/* Encrypt up to WRITE_BATCH bytes once the last batch has gone out. */
static ssize_t tls_writev(gn_conn *conn, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    int rc = tls_flush(conn);

    if (rc < 0)
        return rc;
    for (int i = 0; i < iovcnt && total < WRITE_BATCH; i++) {
        size_t len = iov[i].iov_len;
        if (len > WRITE_BATCH - total)
            len = WRITE_BATCH - total;
        if (len == 0)
            continue;
        ERR_clear_error();
        rc = SSL_write(conn->ext->tls->ssl, iov[i].iov_base, (int)len);
        if (rc <= 0) {
            if (total > 0)
                break;
            rc = need_more(conn, rc, "TLS write");
            return rc == 1 || rc == GN__AGAIN ? GN__AGAIN : rc == 0 ? GN_EPIPE : rc;
        }
        total += (size_t)rc;
    }
    rc = tls_flush(conn);
    if (rc < 0 && rc != GN__AGAIN)
        return rc;
    return (ssize_t)total;
}

/* sendfile cannot encrypt: read the file and write it as data. */
static ssize_t tls_sendfile(gn_conn *conn, int fd, int64_t *offset, size_t len)
{
    return gn__sendfile_by_copy(conn, fd, offset, len, tls_writev);
}

/* close_notify, then FIN once it has gone out. */
static int tls_shutdown(gn_conn *conn)
{
    int rc;

    if (!conn->ext->tls->notify_sent) {
        conn->ext->tls->notify_sent = true;
        ERR_clear_error();
        if (SSL_is_init_finished(conn->ext->tls->ssl))
            SSL_shutdown(conn->ext->tls->ssl);
    }
    rc = tls_flush(conn);
    if (rc < 0)
        return rc;
    if (shutdown(conn->io.fd, SHUT_WR) < 0 && errno != ENOTCONN)
        return gn_error_from_errno(errno);
    return 0;
}

static bool tls_buffered(const gn_conn *conn)
{
    return gn__conn_tls(conn) &&
           (SSL_pending(conn->ext->tls->ssl) > 0 || BIO_ctrl_pending(conn->ext->tls->in) > 0);
}

const struct gn__transport gn__transport_tls = {
    .name = "tls",
    .read = tls_read,
    .writev = tls_writev,
    .sendfile = tls_sendfile,
    .shutdown = tls_shutdown,
    .handshake = tls_handshake,
    .pending = tls_pending,
    .flush = tls_flush,
    .buffered = tls_buffered,
    .goodbye_on_close = true,
};

void gn__tls_goodbye(gn_conn *conn)
{
    if (!gn__conn_tls(conn) || conn->ext->tls->notify_sent || conn->io.fd < 0)
        return;
    conn->ext->tls->notify_sent = true;
    ERR_clear_error();
    if (SSL_is_init_finished(conn->ext->tls->ssl))
        SSL_shutdown(conn->ext->tls->ssl);
    tls_flush(conn);
}

/* ---- configuration ----------------------------------------------------- */

/* "h2,http/1.1" -> "\x02h2\x08http/1.1"; false when malformed. */
static bool alpn_wire(const char *list, unsigned char *out, size_t *len)
{
    size_t n = 0;

    while (*list) {
        const char *end = strchr(list, ',');
        size_t item = end ? (size_t)(end - list) : strlen(list);
        if (item == 0 || item > 255 || n + 1 + item > 256)
            return false;
        out[n++] = (unsigned char)item;
        memcpy(out + n, list, item);
        n += item;
        list += item + (end ? 1 : 0);
    }
    *len = n;
    return n > 0;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    struct gn__tls_config *cfg = arg;
    unsigned char *chosen;

    (void)ssl;
    if (SSL_select_next_proto(&chosen, outlen, cfg->alpn, (unsigned)cfg->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* The first error OpenSSL queued is the cause ("no start line"); the
 * last only says where it surfaced ("PEM lib"). */
static int config_error(const char *address, const char *what, const char *file, char *errbuf,
                        size_t errlen)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    if (file && access(file, R_OK) < 0)
        r = strerror(errno);
    else if (r && (strcmp(r, "no start line") == 0 || strcmp(r, "PEM lib") == 0))
        r = "not a PEM file of the expected kind";
    return gn__errbuf_input(errbuf, errlen, GN_ETLS, address, strlen(address), "%s '%s': %s", what,
                            file ? file : "", r ? r : "failed");
}

static int load_files(struct gn__tls_config *cfg, const gn_tls_options *o, const char *address,
                      char *errbuf, size_t errlen)
{
    if (o->cert_file && SSL_CTX_use_certificate_chain_file(cfg->ctx, o->cert_file) != 1)
        return config_error(address, "cannot load the certificate", o->cert_file, errbuf, errlen);
    if (o->key_file && SSL_CTX_use_PrivateKey_file(cfg->ctx, o->key_file, SSL_FILETYPE_PEM) != 1)
        return config_error(address, "cannot load the key", o->key_file, errbuf, errlen);
    if (o->cert_file && o->key_file && SSL_CTX_check_private_key(cfg->ctx) != 1)
        return config_error(address, "the key does not match the certificate", o->key_file, errbuf,
                            errlen);
    if (o->ca_file && SSL_CTX_load_verify_locations(cfg->ctx, o->ca_file, NULL) != 1)
        return config_error(address, "cannot load the CA file", o->ca_file, errbuf, errlen);
    return 0;
}

static int configure_server(struct gn__tls_config *cfg, const gn_tls_options *o,
                            const char *address, char *errbuf, size_t errlen)
{
    if (!o->cert_file || !o->key_file)
        return gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address), "%s",
                                "a TLS server needs a certificate and a key (gn_tls_options "
                                "cert_file and key_file)");
    if (o->verify_client) {
        if (!o->ca_file)
            return gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address), "%s",
                                    "verify_client needs ca_file, the CAs clients are checked "
                                    "against");
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_client_CA_list(cfg->ctx, SSL_load_client_CA_file(o->ca_file));
    }
    if (cfg->alpn_len)
        SSL_CTX_set_alpn_select_cb(cfg->ctx, select_alpn, cfg);
    /* The server picks the suite, from its own list's order: the client's
     * order may put a weaker suite first.  Built-in DH groups (RFC 7919
     * sizes matched to the key) let the DHE suites of the list work. */
    SSL_CTX_set_options(cfg->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_dh_auto(cfg->ctx, 1);
    /* Resumption across connections of this server, kept in memory. */
    SSL_CTX_set_session_id_context(cfg->ctx, (const unsigned char *)"gnezdo", 6);
    return 0;
}

/* ---- client sessions --------------------------------------------------
 *
 * Clients keep the sessions (TLS 1.3 tickets, TLS 1.2 session IDs) their
 * servers hand out, in one small process-wide table, and offer them on
 * the next connection to the same place: the handshake then skips the
 * certificate exchange.  A resumed session is not verified again, so the
 * key holds everything the first verification depended on: the name, the
 * port, the CA file, the client certificate, and whether it was insecure.
 *
 * No SSL_SESSION object is ever shared by two live connections: the table
 * keeps a copy of what arrived and hands each connection a copy of its
 * own.  A TLS 1.3 client rewrites its session when a ticket arrives (inside
 * SSL_read, copying the session it resumed), and a session shared with a
 * connection on another thread is then read and freed by two threads at
 * once, which ThreadSanitizer reported in tsan_stress (issue 13).  A copy
 * per connection costs a few allocations per handshake and makes that
 * impossible, whatever OpenSSL's locking does.
 */
#define SESSION_SLOTS 64

static struct {
    char key[sizeof(((struct gn__tls_config *)0)->session_key)];
    SSL_SESSION *session; /* the table's own copy, attached to no SSL */
    uint64_t used;
} sessions[SESSION_SLOTS];
static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t sessions_clock;

/* A new session of a live connection: a copy is kept, and the reference
 * OpenSSL hands over is not (0). */
static int session_arrived(SSL *ssl, SSL_SESSION *session)
{
    const struct gn__tls_config *cfg = SSL_get_app_data(ssl);
    SSL_SESSION *copy;
    size_t slot = 0;

    if (!cfg || !cfg->session_key[0] || !SSL_SESSION_is_resumable(session))
        return 0;
    copy = SSL_SESSION_dup(session); /* this connection's thread: no one else reads it */
    if (!copy)
        return 0;
    pthread_mutex_lock(&sessions_lock);
    for (size_t i = 0; i < SESSION_SLOTS; i++) {
        if (strcmp(sessions[i].key, cfg->session_key) == 0) {
            slot = i;
            break;
        }
        if (sessions[i].used < sessions[slot].used)
            slot = i; /* the least recently used, if the key is new */
    }
    if (sessions[slot].session)
        SSL_SESSION_free(sessions[slot].session);
    snprintf(sessions[slot].key, sizeof(sessions[slot].key), "%s", cfg->session_key);
    sessions[slot].session = copy;
    sessions[slot].used = ++sessions_clock;
    pthread_mutex_unlock(&sessions_lock);
    return 0;
}

static void offer_session(SSL *ssl, const struct gn__tls_config *cfg)
{
    SSL_SESSION *copy = NULL;

    if (!cfg->session_key[0])
        return;
    pthread_mutex_lock(&sessions_lock);
    for (size_t i = 0; i < SESSION_SLOTS; i++)
        if (sessions[i].session && strcmp(sessions[i].key, cfg->session_key) == 0) {
            copy = SSL_SESSION_dup(sessions[i].session);
            sessions[i].used = ++sessions_clock;
            break;
        }
    pthread_mutex_unlock(&sessions_lock);
    if (copy) {
        SSL_set_session(ssl, copy); /* takes its own reference */
        SSL_SESSION_free(copy);
    }
}

/* One field of a session key: its length, then its bytes, so that no two
 * different lists of fields hash the same input. */
static void key_field(EVP_MD_CTX *md, const void *data, size_t len)
{
    uint64_t n = len;

    EVP_DigestUpdate(md, &n, sizeof(n));
    EVP_DigestUpdate(md, data, len);
}

static void key_file(EVP_MD_CTX *md, const char *path)
{
    struct stat st = {0};

    /* The file's identity too: a CA file replaced in place must not keep
     * vouching for sessions verified under the old one. */
    key_field(md, path ? path : "", path ? strlen(path) : 0);
    if (path && stat(path, &st) == 0) {
        int64_t id[4] = {(int64_t)st.st_dev, (int64_t)st.st_ino, (int64_t)st.st_size,
                         (int64_t)st.st_mtime};
        key_field(md, id, sizeof(id));
    }
}

/* SHA-256 over everything the first verification depended on: the mode
 * (insecure or not), the name, the port, the CA file and the client's
 * certificate and key.  Hex into cfg->session_key; GN_ENOMEM if it fails. */
static int session_key(struct gn__tls_config *cfg, const gn_tls_options *o,
                       const gn_endpoint *target)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    uint32_t port = target ? gn_endpoint_port(target) : 0;
    unsigned char insecure = cfg->insecure;

    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        return GN_ENOMEM;
    }
    key_field(md, &insecure, 1);
    key_field(md, cfg->server_name, strlen(cfg->server_name));
    key_field(md, &port, sizeof(port));
    key_file(md, o->ca_file);
    key_file(md, o->cert_file);
    key_file(md, o->key_file);
    EVP_DigestFinal_ex(md, digest, &len);
    EVP_MD_CTX_free(md);
    for (unsigned int i = 0; i < len && 2 * i + 2 < sizeof(cfg->session_key); i++)
        snprintf(cfg->session_key + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

static int configure_client(struct gn__tls_config *cfg, const gn_tls_options *o,
                            const gn_endpoint *target, const char *address)
{
    if (o->server_name)
        snprintf(cfg->server_name, sizeof(cfg->server_name), "%s", o->server_name);
    else if (target)
        gn_endpoint_host(target, cfg->server_name, sizeof(cfg->server_name));
    cfg->insecure = o->insecure;
    if (cfg->insecure) {
        gn__log(GN_LOG_WARN, "TLS to %s: certificate verification is OFF (insecure)", address);
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_PEER, NULL);
        if (!o->ca_file)
            SSL_CTX_set_default_verify_paths(cfg->ctx);
    }
    if (cfg->alpn_len)
        SSL_CTX_set_alpn_protos(cfg->ctx, cfg->alpn, (unsigned)cfg->alpn_len);
    if (session_key(cfg, o, target) < 0)
        return 0; /* no key, no resumption: every handshake is a full one */
    SSL_CTX_set_session_cache_mode(cfg->ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(cfg->ctx, session_arrived);
    return 0;
}

int gn__tls_config_new(const gn_tls_options *opts, bool server, const gn_endpoint *target,
                       const char *address, struct gn__tls_config **out, char *errbuf,
                       size_t errlen)
{
    static const gn_tls_options none;
    const gn_tls_options *o = opts ? opts : &none;
    struct gn__tls_config *cfg = calloc(1, sizeof(*cfg));
    int rc;

    if (!cfg)
        return GN_ENOMEM;
    cfg->server = server;
    cfg->handshake_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
    cfg->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!cfg->ctx) {
        free(cfg);
        return GN_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(cfg->ctx, TLS1_2_VERSION);
    /* TLS 1.2 renegotiation: a peer could make the server redo the
     * expensive part at will; nobody needs it. */
    SSL_CTX_set_options(cfg->ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(cfg->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    rc = 0;
    /* A list OpenSSL takes in part (unknown names are skipped) is taken;
     * one that leaves no suite at all is refused. */
    if (SSL_CTX_set_cipher_list(cfg->ctx, o->ciphers ? o->ciphers : DEFAULT_TLS12_CIPHERS) != 1) {
        ERR_clear_error();
        rc = gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address),
                              "TLS 1.2 cipher list '%s' (gn_tls_options ciphers) names no cipher "
                              "suite OpenSSL knows (expected e.g. \"ECDHE-RSA-AES128-GCM-SHA256\")",
                              o->ciphers ? o->ciphers : DEFAULT_TLS12_CIPHERS);
    }
    if (rc == 0 && o->alpn && !alpn_wire(o->alpn, cfg->alpn, &cfg->alpn_len))
        rc = gn__errbuf_input(errbuf, errlen, GN_EINVAL, address, strlen(address),
                              "malformed ALPN list '%s' (expected e.g. \"h2,http/1.1\")", o->alpn);
    if (rc == 0)
        rc = load_files(cfg, o, address, errbuf, errlen);
    if (rc == 0)
        rc = server ? configure_server(cfg, o, address, errbuf, errlen)
                    : configure_client(cfg, o, target, address);
    if (rc < 0) {
        gn__tls_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

void gn__tls_config_free(struct gn__tls_config *cfg)
{
    if (!cfg)
        return;
    SSL_CTX_free(cfg->ctx);
    free(cfg);
}

uint32_t gn__tls_handshake_ms(const struct gn__tls_config *cfg)
{
    return cfg->handshake_ms;
}

/* ---- per connection ---------------------------------------------------- */

/* The name to check in the server's certificate: a DNS name or an IP. */
static void expect_name(SSL *ssl, const char *name)
{
    unsigned char ip[16];

    if (!name[0])
        return;
    if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
        return;
    }
    SSL_set_tlsext_host_name(ssl, name); /* SNI is for names only */
    SSL_set1_host(ssl, name);
}

int gn__tls_attach(gn_conn *conn, struct gn__tls_config *cfg, bool owns)
{
    struct gn__conn_ext *ext = gn__conn_ext(conn);
    struct gn__tls *t = ext ? calloc(1, sizeof(*t)) : NULL;

    if (!t)
        return GN_ENOMEM;
    t->ssl = SSL_new(cfg->ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->in || !t->out) {
        SSL_free(t->ssl);
        BIO_free(t->in);
        BIO_free(t->out);
        free(t);
        return GN_ENOMEM;
    }
    /* An empty memory BIO says "retry", not EOF. */
    BIO_set_mem_eof_return(t->in, -1);
    SSL_set_bio(t->ssl, t->in, t->out);
    if (cfg->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        SSL_set_app_data(t->ssl, cfg);
        offer_session(t->ssl, cfg);
        if (!cfg->insecure)
            expect_name(t->ssl, cfg->server_name);
        else if (cfg->server_name[0])
            SSL_set_tlsext_host_name(t->ssl, cfg->server_name);
    }
    t->cfg = cfg;
    t->owns_cfg = owns;
    ext->tls = t;
    conn->transport = &gn__transport_tls;
    return 0;
}

int gn__tls_client_attach(gn_conn *conn, const gn_tls_options *opts, const gn_endpoint *target,
                          const char *address, char *errbuf, size_t errlen)
{
    struct gn__tls_config *cfg;
    int rc = gn__tls_config_new(opts, false, target, address, &cfg, errbuf, errlen);

    if (rc < 0)
        return rc;
    rc = gn__tls_attach(conn, cfg, true);
    if (rc < 0)
        gn__tls_config_free(cfg);
    return rc;
}

uint32_t gn__tls_conn_handshake_ms(const gn_conn *conn)
{
    return conn->ext->tls->cfg->handshake_ms;
}

void gn__tls_detach(gn_conn *conn)
{
    struct gn__tls *t = gn__conn_tls(conn);

    if (!t)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    if (t->owns_cfg)
        gn__tls_config_free(t->cfg);
    free(t);
    conn->ext->tls = NULL;
}

int gn_conn_get_tls_info(const gn_conn *conn, gn_tls_info *out)
{
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    X509 *peer;
    SSL *ssl;

    if (!conn || !out)
        return GN_EINVAL;
    if (conn->kind != GN_TRANSPORT_TLS)
        return GN_EFAMILY;
    if (!gn__conn_tls(conn) || !SSL_is_init_finished(conn->ext->tls->ssl))
        return GN_ECLOSED;
    ssl = conn->ext->tls->ssl;
    memset(out, 0, sizeof(*out));
    snprintf(out->version, sizeof(out->version), "%s", SSL_get_version(ssl));
    snprintf(out->cipher, sizeof(out->cipher), "%s", SSL_get_cipher_name(ssl));
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    if (alpn_len >= sizeof(out->alpn))
        alpn_len = sizeof(out->alpn) - 1;
    memcpy(out->alpn, alpn ? (const char *)alpn : "", alpn_len);
    peer = SSL_get1_peer_certificate(ssl);
    if (peer) {
        X509_NAME_oneline(X509_get_subject_name(peer), out->peer, sizeof(out->peer));
        X509_free(peer);
    }
    out->resumed = SSL_session_reused(ssl) == 1;
    return 0;
}
