/* <netdb.h> on Windows: WinSock and the wrappers of posix_win.h provide it. */
#include "../posix_win.h"
