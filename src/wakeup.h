/*
 * Wake-ups: a descriptor another thread makes readable, so that a thread
 * asleep in poll or in a backend wakes for a posted task, a moved deadline
 * or room in a queue.  An eventfd on Linux (wakeup_eventfd.c); on Windows,
 * where WSAPoll waits only for sockets, a loopback socket
 * (win/wakeup_win.c).
 */
#ifndef GN_WAKEUP_H
#define GN_WAKEUP_H

/* A new wake-up, non-blocking and not inherited: its descriptor, or a
 * negative GN_E code. */
int gn__wakeup_open(void);
/* Make fd readable; safe from any thread.  Wake-ups coalesce: one
 * already pending is enough. */
void gn__wakeup_signal(int fd);
/* Take every pending wake-up, so fd stops being readable. */
void gn__wakeup_drain(int fd);
void gn__wakeup_close(int fd);

#endif
