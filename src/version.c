#include "gnezdo.h"

const char *gn_version(void)
{
    return GN_VERSION_STRING;
}

unsigned gn_version_number(void)
{
    return GN_VERSION_NUMBER;
}
