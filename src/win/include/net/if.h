/* <net/if.h> on Windows: interface names and indexes are in iphlpapi
 * (not in posix_win.h: the header is as long as the rest together). */
#include "../posix_win.h"
#include <netioapi.h>
