/* SPDX-License-Identifier: MIT */
/* The listening server and the vfio-user-server program. */
#include <signal.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "raw.h"

static char *temp_socket(void)
{
    g_autofree char *dir = g_dir_make_tmp("vus-XXXXXX", NULL);
    cr_assert_not_null(dir);
    return g_build_filename(dir, "sock", NULL);
}

static void remove_socket_dir(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    unlink(path);
    rmdir(dir);
}

static int connect_to(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static gpointer run_main(gpointer srv)
{
    return GINT_TO_POINTER(vfio_user_server_run(srv));
}

Test(listener, gives_each_client_its_own_device)
{
    g_autofree char *path = temp_socket();
    vfio_user_server_options o;
    GError *err = NULL;
    vfio_user_server *srv;
    GThread *t;
    int a, b, fds_before = count_fds();

    vfio_user_server_options_init(&o);
    srv = vfio_user_server_new(path, &o, &err);
    cr_assert_not_null(srv, "%s", err ? err->message : "");
    t = g_thread_new("listener", run_main, srv);
    a = connect_to(path);
    b = connect_to(path);
    cr_assert_geq(a, 0);
    cr_assert_geq(b, 0);
    cr_assert_eq(raw_version(a, RAW_CAPS, NULL), 0);
    cr_assert_eq(raw_version(b, RAW_CAPS, NULL), 0);
    cr_assert_eq(vfio_user_server_clients(srv), 2);
    cr_assert_eq(raw_reg_write(a, 1, VFIO_USER_SAMPLE_DMA_ADDR, 0xabc, 8), 0);
    cr_assert_eq(raw_reg_read(b, 2, VFIO_USER_SAMPLE_DMA_ADDR, 8), 0);
    cr_assert_eq(raw_reg_read(a, 3, VFIO_USER_SAMPLE_DMA_ADDR, 8), 0xabc);
    close(b);
    vfio_user_server_stop(srv);
    cr_assert_eq(GPOINTER_TO_INT(g_thread_join(t)), 0);
    {
        raw_msg r;
        cr_assert_eq(raw_recv(a, &r), -ECONNRESET, "stopped clients are closed");
    }
    close(a);
    vfio_user_server_free(srv);
    cr_assert_not(g_file_test(path, G_FILE_TEST_EXISTS), "socket unlinked");
    remove_socket_dir(path);
    cr_assert_eq(count_fds(), fds_before);
}

Test(listener, refuses_an_existing_path_and_bad_options)
{
    g_autofree char *path = temp_socket();
    vfio_user_server_options o;
    GError *err = NULL;

    vfio_user_server_options_init(&o);
    cr_assert(g_file_set_contents(path, "x", 1, NULL));
    cr_assert_null(vfio_user_server_new(path, &o, &err));
    cr_assert_not_null(err);
    g_clear_error(&err);
    cr_assert(g_file_test(path, G_FILE_TEST_EXISTS), "someone else's file is left alone");
    unlink(path);
    o.pgsize = 1000;
    cr_assert_null(vfio_user_server_new(path, &o, &err));
    cr_assert_not_null(err);
    g_clear_error(&err);
    remove_socket_dir(path);
}

Test(program, serves_a_client_and_exits_cleanly_on_sigterm)
{
    g_autofree char *path = temp_socket();
    char *argv[] = {SERVER_EXE, "--socket", path, "--dialect", "final", "--verbose", NULL};
    GError *err = NULL;
    GPid pid;
    int fd = -1, status;

    cr_assert(g_spawn_async(NULL, argv, NULL,
                            G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                            &pid, &err),
              "%s", err ? err->message : "");
    /* Waits for the socket to appear (bounded: about 10 s). */
    for (int i = 0; i < 1000 && fd < 0; i++) {
        fd = connect_to(path);
        if (fd < 0)
            g_usleep(10000);
    }
    cr_assert_geq(fd, 0, "the server never listened");
    cr_assert_eq(raw_version(fd, RAW_CAPS, NULL), 0);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    cr_assert_eq(WEXITSTATUS(status), 0);
    cr_assert_not(g_file_test(path, G_FILE_TEST_EXISTS), "socket unlinked");
    close(fd);
    remove_socket_dir(path);
}

Test(program, rejects_unknown_profiles_and_prints_help)
{
    char *bad[] = {SERVER_EXE, "--socket", "/nonexistent/x", "--profile", "nope", NULL};
    char *help[] = {SERVER_EXE, "--help", NULL};
    g_autofree char *out = NULL;
    int status;

    cr_assert(g_spawn_sync(NULL, bad, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL,
                           &status, NULL));
    cr_assert_not(g_spawn_check_wait_status(status, NULL));
    cr_assert(g_spawn_sync(NULL, help, NULL, 0, NULL, NULL, &out, NULL, &status, NULL));
    cr_assert(g_spawn_check_wait_status(status, NULL));
    cr_assert_not_null(strstr(out, "--socket"));
    cr_assert_not_null(strstr(out, "--profile"));
}

Test(listener, a_spawned_connection_stops_on_request_and_closes_the_client_end)
{
    vfio_user_server_options o;
    vfio_user_server_thread *t;
    GError *err = NULL;
    raw_msg r;
    int fd, fds_before = count_fds();

    vfio_user_server_options_init(&o);
    t = vfio_user_server_spawn_pair(&o, &fd, &err);
    cr_assert_not_null(t, "%s", err ? err->message : "");
    cr_assert_eq(raw_version(fd, RAW_CAPS, NULL), 0);
    cr_assert_eq(vfio_user_server_join(t, true), 0);
    cr_assert_eq(raw_recv(fd, &r), -ECONNRESET);
    close(fd);
    cr_assert_eq(count_fds(), fds_before);
    o.pgsize = 3;
    cr_assert_null(vfio_user_server_spawn_pair(&o, &fd, &err));
    cr_assert_not_null(err);
    g_clear_error(&err);
    cr_assert_eq(count_fds(), fds_before, "a failed spawn leaks nothing");
}
