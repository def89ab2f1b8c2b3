/* SPDX-License-Identifier: MIT */
/*
 * QMP over a UNIX stream socket: a listener and its clients, all non-blocking, driven by
 * pvm_qmp_server_poll() from the machine's loop. A client that does not read its output is
 * dropped once PVM_QMP_MAX_OUTPUT bytes are pending, so no client can stall the VMM.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/server.h"
#include "core/util.h"

#define PVM_QMP_MAX_OUTPUT (8u << 20)
#define PVM_QMP_MAX_CLIENTS 16

struct client {
	int fd;                          /* connected socket, -1 when the slot is free */
	struct pvm_qmp_session *session; /* protocol state */
	char *out;                       /* pending output */
	size_t out_len, out_cap;         /* bytes pending, allocated */
	bool dead;                       /* write failed or output overflowed: drop it */
};

struct pvm_qmp_server {
	int listen_fd;                            /* the listening socket */
	char *path;                               /* socket path, unlinked at free */
	const struct pvm_qmp_command *cmds;       /* command table */
	void *opaque;                             /* passed to handlers */
	struct client clients[PVM_QMP_MAX_CLIENTS];
	bool quit;                                /* a client asked to quit */
	dev_t sock_dev;                           /* the socket file we bound: unlinked at free */
	ino_t sock_ino;                           /*   only if the path still names it */
	pvm_qmp_fd_watch_fn watch;                /* told when a client fd comes and goes */
	void *watch_opaque;                       /* passed to watch */
};

static int client_write(void *opaque, const char *data, size_t len)
{
	struct client *c = opaque;

	if (c->dead)
		return -EPIPE;
	if (c->out_len + len > PVM_QMP_MAX_OUTPUT) {
		c->dead = true;
		return -ENOBUFS;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = PVM_MAX(c->out_cap * 2, c->out_len + len);
		char *b = pvm_reallocarray(c->out, cap, 1);

		if (!b) {
			c->dead = true;
			return -ENOMEM;
		}
		c->out = b;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return 0;
}

static void client_flush(struct client *c)
{
	while (c->out_len && !c->dead) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			c->dead = true;
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
}

static void client_close(struct pvm_qmp_server *srv, struct client *c)
{
	if (c->fd >= 0) {
		if (srv->watch)
			srv->watch(srv->watch_opaque, c->fd, false);
		close(c->fd);
	}
	pvm_qmp_session_free(c->session);
	pvm_free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

int pvm_qmp_server_new(const char *path, const struct pvm_qmp_command *cmds, void *opaque,
		       struct pvm_qmp_server **out, struct pvm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pvm_qmp_server *srv;
	struct stat st;
	int fd;

	*out = NULL;
	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
		return pvm_error_set(err, -EINVAL, "socket path '%s' is empty or too long",
				     path ? path : "");
	srv = pvm_calloc(1, sizeof(*srv));
	if (!srv)
		return pvm_error_set(err, -ENOMEM, "out of memory");
	for (int i = 0; i < PVM_QMP_MAX_CLIENTS; i++)
		srv->clients[i].fd = -1;
	srv->path = pvm_strdup(path);
	if (!srv->path) {
		pvm_free(srv);
		return pvm_error_set(err, -ENOMEM, "out of memory");
	}
	/* Replace a stale socket left by a previous run, never any other kind of file, and never a
	 * socket a running machine still serves (connecting to it tells). */
	if (lstat(path, &st) == 0) {
		int probe, live;

		if (!S_ISSOCK(st.st_mode)) {
			pvm_free(srv->path);
			pvm_free(srv);
			return pvm_error_set(err, -EEXIST, "%s exists and is not a socket", path);
		}
		strcpy(sa.sun_path, path);
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			pvm_free(srv->path);
			pvm_free(srv);
			return pvm_error_set(err, -EADDRINUSE, "%s is in use by a running machine", path);
		}
		unlink(path);
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		pvm_free(srv->path);
		pvm_free(srv);
		return pvm_error_set(err, -e, "cannot listen on %s: %s", path, strerror(e));
	}
	if (stat(path, &st) == 0) {
		srv->sock_dev = st.st_dev;
		srv->sock_ino = st.st_ino;
	}
	srv->listen_fd = fd;
	srv->cmds = cmds;
	srv->opaque = opaque;
	*out = srv;
	return 0;
}

void pvm_qmp_server_free(struct pvm_qmp_server *srv)
{
	if (!srv)
		return;
	for (int i = 0; i < PVM_QMP_MAX_CLIENTS; i++)
		if (srv->clients[i].fd >= 0) {
			client_flush(&srv->clients[i]);
			client_close(srv, &srv->clients[i]);
		}
	close(srv->listen_fd);
	/* Only our own socket: another machine may have replaced a path we no longer own. */
	{
		struct stat st;

		if (lstat(srv->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == srv->sock_dev &&
		    st.st_ino == srv->sock_ino)
			unlink(srv->path);
	}
	pvm_free(srv->path);
	pvm_free(srv);
}

static void accept_one(struct pvm_qmp_server *srv)
{
	int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct client *c = NULL;

	if (fd < 0)
		return;
	for (int i = 0; i < PVM_QMP_MAX_CLIENTS && !c; i++)
		if (srv->clients[i].fd < 0)
			c = &srv->clients[i];
	if (!c) {
		static const char busy[] = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"too many QMP clients\"}}\r\n";

		if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			pvm_debug("qmp: could not tell a client the server is full");
		close(fd);
		return;
	}
	c->fd = fd;
	if (pvm_qmp_session_new(srv->cmds, srv->opaque, client_write, c, &c->session) < 0 ||
	    pvm_qmp_session_greet(c->session) < 0) {
		close(fd);
		pvm_qmp_session_free(c->session);
		pvm_free(c->out);
		memset(c, 0, sizeof(*c));
		c->fd = -1;
		return;
	}
	if (srv->watch)
		srv->watch(srv->watch_opaque, fd, true);
	client_flush(c);
}

/* At most this many reads per poll: a client that keeps writing must not keep the loop (and with
 * it the guest and the other clients) here forever; the socket stays readable and the next poll
 * comes back to it. */
#define PVM_QMP_READS_PER_POLL 16

static void read_client(struct pvm_qmp_server *srv, struct client *c)
{
	char buf[65536];

	for (int round = 0; round < PVM_QMP_READS_PER_POLL; round++) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n == 0) {
			c->dead = true;
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = true;
			return;
		}
		if (pvm_qmp_session_input(c->session, buf, (size_t)n) < 0)
			c->dead = true;
		if (pvm_qmp_session_quit_requested(c->session))
			srv->quit = true;
		client_flush(c);
		if (c->dead || srv->quit)
			return;
	}
}

int pvm_qmp_server_poll(struct pvm_qmp_server *srv, int timeout_ms)
{
	struct pollfd pfd[PVM_QMP_MAX_CLIENTS + 1];
	struct client *who[PVM_QMP_MAX_CLIENTS + 1];
	int n = 0, rc;

	pfd[n].fd = srv->listen_fd;
	pfd[n].events = POLLIN;
	who[n++] = NULL;
	for (int i = 0; i < PVM_QMP_MAX_CLIENTS; i++) {
		struct client *c = &srv->clients[i];

		if (c->fd < 0)
			continue;
		pfd[n].fd = c->fd;
		pfd[n].events = POLLIN | (c->out_len ? POLLOUT : 0);
		who[n++] = c;
	}
	rc = poll(pfd, (nfds_t)n, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 1; i < n; i++) {
		struct client *c = who[i];

		if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
			read_client(srv, c);
		if (pfd[i].revents & POLLOUT)
			client_flush(c);
		if (c->dead)
			client_close(srv, c);
	}
	if (pfd[0].revents & POLLIN)
		accept_one(srv);
	return rc;
}

void pvm_qmp_server_event(struct pvm_qmp_server *srv, const char *name, json_object *data)
{
	for (int i = 0; i < PVM_QMP_MAX_CLIENTS; i++) {
		struct client *c = &srv->clients[i];

		if (c->fd < 0 || c->dead)
			continue;
		pvm_qmp_session_event(c->session, name, data);
		client_flush(c);
	}
}

bool pvm_qmp_server_quit_requested(const struct pvm_qmp_server *srv)
{
	return srv->quit;
}

int pvm_qmp_server_fd(const struct pvm_qmp_server *srv)
{
	return srv->listen_fd;
}

void pvm_qmp_server_set_fd_watch(struct pvm_qmp_server *srv, pvm_qmp_fd_watch_fn fn, void *opaque)
{
	srv->watch = fn;
	srv->watch_opaque = opaque;
}
