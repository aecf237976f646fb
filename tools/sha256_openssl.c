/* SHA-256 through OpenSSL's libcrypto (sha256.h). */
#include <openssl/evp.h>
#include <stdio.h>

#include "sha256.h"

cli_sha256 *cli_sha256_new(void)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL))
        return (cli_sha256 *)md;
    EVP_MD_CTX_free(md);
    return NULL;
}

void cli_sha256_update(cli_sha256 *h, const void *buf, size_t len)
{
    EVP_DigestUpdate((EVP_MD_CTX *)h, buf, len);
}

void cli_sha256_hex(cli_sha256 *h, char hex[CLI_SHA256_HEX])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    EVP_DigestFinal_ex((EVP_MD_CTX *)h, d, &n);
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    hex[2 * (n < 32 ? n : 32)] = '\0';
}

void cli_sha256_free(cli_sha256 *h)
{
    EVP_MD_CTX_free((EVP_MD_CTX *)h);
}
