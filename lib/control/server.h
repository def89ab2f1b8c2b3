/* SPDX-License-Identifier: MIT */
/* QMP over a UNIX socket (internal; the public entry points are in include/pvmem/control.h). */
#ifndef PVM_CONTROL_SERVER_H
#define PVM_CONTROL_SERVER_H

#include "control/qmp.h"

struct pvm_qmp_server;

/* Listen on @path (a stale socket there is replaced; any other file is -EEXIST). */
int pvm_qmp_server_new(const char *path, const struct pvm_qmp_command *cmds, void *opaque,
		       struct pvm_qmp_server **out, struct pvm_error *err);
/* Close every client, the listener, and unlink the socket. */
void pvm_qmp_server_free(struct pvm_qmp_server *srv);
/* Wait up to @timeout_ms for activity, then accept, read, execute and write. Returns the
 * number of ready descriptors, 0 on time-out, or -errno. */
int pvm_qmp_server_poll(struct pvm_qmp_server *srv, int timeout_ms);
/* Send an event to every negotiated client. @data is not consumed. */
void pvm_qmp_server_event(struct pvm_qmp_server *srv, const char *name, json_object *data);
bool pvm_qmp_server_quit_requested(const struct pvm_qmp_server *srv);
int pvm_qmp_server_fd(const struct pvm_qmp_server *srv);
/* Told when a client's descriptor is added (@added) or about to be closed, so that an owner with
 * its own event loop can watch it and call pvm_qmp_server_poll(srv, 0) when it is readable. */
typedef void (*pvm_qmp_fd_watch_fn)(void *opaque, int fd, bool added);
void pvm_qmp_server_set_fd_watch(struct pvm_qmp_server *srv, pvm_qmp_fd_watch_fn fn, void *opaque);

#endif
