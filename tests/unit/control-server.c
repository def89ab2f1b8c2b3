/* SPDX-License-Identifier: MIT */
/*
 * The QMP socket server: a real client round trip, and the socket path rules — a live socket
 * is never taken over (a second machine on the same path is refused), a stale one is replaced,
 * any other file is refused, and at exit only our own socket is removed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "test-util.h"
#include "control/server.h"

static const struct pvm_qmp_command no_cmds[] = { { 0 } };

static char dir[64], path[128];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/pvmem-srv-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	return rmdir(dir);
}

static int connect_to(const char *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, p);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Poll the server until @fd has a line to read; return it (static buffer). */
static const char *read_line(struct pvm_qmp_server *srv, int fd)
{
	static char buf[4096];
	size_t len = 0;

	for (int i = 0; i < 200; i++) {
		ssize_t n;

		pvm_qmp_server_poll(srv, 10);
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);
		if (n > 0)
			len += (size_t)n;
		buf[len] = '\0';
		if (strchr(buf, '\n'))
			return buf;
	}
	fail_msg("no line from the server");
	return NULL;
}

static void test_round_trip(void **state)
{
	struct pvm_qmp_server *srv;
	const char *neg = "{\"execute\":\"qmp_capabilities\",\"id\":5}\n";
	int fd;

	assert_int_equal(pvm_qmp_server_new(path, no_cmds, NULL, &srv, NULL), 0);
	fd = connect_to(path);
	assert_non_null(strstr(read_line(srv, fd), "\"QMP\""));
	assert_int_equal(send(fd, neg, strlen(neg), 0), (ssize_t)strlen(neg));
	assert_non_null(strstr(read_line(srv, fd), "{\"return\":{},\"id\":5}"));
	close(fd);
	pvm_qmp_server_poll(srv, 10);   /* sees the hang-up */
	pvm_qmp_server_free(srv);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_live_socket_not_taken_over(void **state)
{
	struct pvm_qmp_server *a, *b = NULL;
	struct pvm_error err = { 0 };
	struct stat st1, st2;

	assert_int_equal(pvm_qmp_server_new(path, no_cmds, NULL, &a, NULL), 0);
	assert_int_equal(stat(path, &st1), 0);
	assert_int_equal(pvm_qmp_server_new(path, no_cmds, NULL, &b, &err), -EADDRINUSE);
	assert_null(b);
	assert_non_null(strstr(err.msg, "in use by a running machine"));
	/* The first server's socket is still the one at the path, and still answers. */
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	close(connect_to(path));
	pvm_qmp_server_free(a);
}

static void test_stale_socket_replaced_other_files_refused(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pvm_qmp_server *srv = NULL;
	struct pvm_error err = { 0 };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	FILE *f;

	/* A socket file nobody listens on: what a crashed run leaves. */
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(pvm_qmp_server_new(path, no_cmds, NULL, &srv, NULL), 0);
	pvm_qmp_server_free(srv);
	/* A regular file is never removed. */
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	srv = NULL;
	assert_int_equal(pvm_qmp_server_new(path, no_cmds, NULL, &srv, &err), -EEXIST);
	assert_null(srv);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
}

static void test_exit_removes_only_own_socket(void **state)
{
	struct pvm_qmp_server *srv;
	FILE *f;

	assert_int_equal(pvm_qmp_server_new(path, no_cmds, NULL, &srv, NULL), 0);
	/* Someone replaced the path meanwhile: it is not ours to remove. */
	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	pvm_qmp_server_free(srv);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
}

static void test_bad_paths(void **state)
{
	struct pvm_qmp_server *srv = NULL;
	char longp[200];

	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(pvm_qmp_server_new("", no_cmds, NULL, &srv, NULL), -EINVAL);
	assert_int_equal(pvm_qmp_server_new(longp, no_cmds, NULL, &srv, NULL), -EINVAL);
	assert_int_equal(pvm_qmp_server_new("/nonexistent-dir/x.sock", no_cmds, NULL, &srv, NULL), -ENOENT);
	assert_null(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_socket_not_taken_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket_replaced_other_files_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_removes_only_own_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
