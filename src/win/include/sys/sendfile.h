/* <sys/sendfile.h> on Windows: posix_win.c copies through a buffer. */
#include "../../posix_win.h"
