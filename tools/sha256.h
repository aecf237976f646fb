/*
 * SHA-256 for send and recv's receipts: OpenSSL's libcrypto on Linux
 * (sha256_openssl.c), Windows' own CNG (sha256_win.c), which Wine
 * implements too.
 */
#ifndef CLI_SHA256_H
#define CLI_SHA256_H

#include <stddef.h>

#define CLI_SHA256_HEX 65 /* 64 hex digits and the NUL */

typedef struct cli_sha256 cli_sha256;

/* A new digest, or NULL when none can be made. */
cli_sha256 *cli_sha256_new(void);
void cli_sha256_update(cli_sha256 *h, const void *buf, size_t len);
/* The digest of everything so far, as lowercase hex; ends h's use. */
void cli_sha256_hex(cli_sha256 *h, char hex[CLI_SHA256_HEX]);
void cli_sha256_free(cli_sha256 *h);

#endif
