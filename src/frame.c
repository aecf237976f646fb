/*
 * Framing helpers: stateless checks over the bytes on_data offers.
 */
#include <string.h>

#include "internal.h"

int gn_frame_line(const char *data, size_t len, size_t max_len, size_t *line_len, size_t *frame_len)
{
    size_t scan = len < max_len ? len : max_len;
    const char *nl;

    if ((!data && len > 0) || !line_len || !frame_len || max_len == 0)
        return GN_EINVAL;
    nl = scan ? memchr(data, '\n', scan) : NULL;
    if (!nl)
        return len >= max_len ? GN_EMSGSIZE : 0;
    *frame_len = (size_t)(nl - data) + 1;
    *line_len = *frame_len - 1;
    if (*line_len > 0 && data[*line_len - 1] == '\r')
        (*line_len)--;
    return 1;
}

int gn_frame_exact(size_t len, size_t n, size_t *frame_len)
{
    if (!frame_len)
        return GN_EINVAL;
    if (len < n)
        return 0;
    *frame_len = n;
    return 1;
}

int gn_frame_prefix(const char *data, size_t len, unsigned size_bytes, uint64_t max_payload,
                    size_t *payload_off, size_t *payload_len, size_t *frame_len)
{
    uint64_t n = 0;

    if ((!data && len > 0) || !payload_off || !payload_len || !frame_len)
        return GN_EINVAL;
    if (size_bytes != 1 && size_bytes != 2 && size_bytes != 4 && size_bytes != 8)
        return GN_EINVAL;
    if (len < size_bytes)
        return 0;
    for (unsigned i = 0; i < size_bytes; i++)
        n = (n << 8) | (unsigned char)data[i];
    /* Checked before waiting for the payload, so a hostile length is
     * refused at once instead of buffering toward it. */
    if (n > max_payload || n > SIZE_MAX - size_bytes)
        return GN_EMSGSIZE;
    if (len - size_bytes < n)
        return 0;
    *payload_off = size_bytes;
    *payload_len = (size_t)n;
    *frame_len = size_bytes + (size_t)n;
    return 1;
}
