/* A program outside the tree, built against the installed gnezdo. */
#include <gnezdo.h>
#include <stdio.h>

int main(void)
{
    char text[GN_ENDPOINT_STRLEN];
    gn_endpoint ep;

    if (gn_endpoint_parse("[::1]:http", 0, &ep, NULL, 0) != 0)
        return 1;
    gn_endpoint_format(&ep, text, sizeof(text));
    printf("gnezdo %s: %s, https is port %d\n", gn_version(), text,
           gn_service_port("https", GN_PROTO_TCP));
    return 0;
}
