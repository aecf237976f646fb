/* SHA-256 through Windows' CNG, bcrypt.dll (sha256.h). */
#include <bcrypt.h>
#include <stdio.h>
#include <stdlib.h>

#include "sha256.h"

struct cli_sha256 {
    BCRYPT_ALG_HANDLE alg;
    BCRYPT_HASH_HANDLE hash;
};

cli_sha256 *cli_sha256_new(void)
{
    cli_sha256 *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    if (BCryptOpenAlgorithmProvider(&h->alg, BCRYPT_SHA256_ALGORITHM, NULL, 0) == 0 &&
        BCryptCreateHash(h->alg, &h->hash, NULL, 0, NULL, 0, 0) == 0)
        return h;
    cli_sha256_free(h);
    return NULL;
}

void cli_sha256_update(cli_sha256 *h, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ULONG step = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        BCryptHashData(h->hash, (PUCHAR)p, step, 0);
        p += step;
        len -= step;
    }
}

void cli_sha256_hex(cli_sha256 *h, char hex[CLI_SHA256_HEX])
{
    unsigned char d[32];

    hex[0] = '\0';
    if (BCryptFinishHash(h->hash, d, sizeof(d), 0) != 0)
        return;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

void cli_sha256_free(cli_sha256 *h)
{
    if (!h)
        return;
    if (h->hash)
        BCryptDestroyHash(h->hash);
    if (h->alg)
        BCryptCloseAlgorithmProvider(h->alg, 0);
    free(h);
}
