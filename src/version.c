#include "gnezdo.h"

const char *gn_version(void)
{
    return GN_VERSION_STRING;
}
