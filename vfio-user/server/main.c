/* SPDX-License-Identifier: MIT */
/*
 * vfio-user-server: serves the sample DMA device over vfio-user on an
 * AF_UNIX socket, one device instance per client, in the project's own
 * dialects or as a profile of a real server.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "vfio-user-server.h"

static vfio_user_server *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        vfio_user_server_stop(running);
}

int main(int argc, char **argv)
{
    g_autofree char *socket_path = NULL, *dialect = NULL, *profile = NULL;
    gboolean verbose = FALSE;
    GOptionEntry entries[] = {
        {"socket", 's', 0, G_OPTION_ARG_FILENAME, &socket_path,
         "listen on this AF_UNIX socket path (required; must not exist)", "PATH"},
        {"dialect", 'd', 0, G_OPTION_ARG_STRING, &dialect,
         "wire dialect of the own profile: 2021 (default), 0.9.1 or final", "D"},
        {"profile", 'p', 0, G_OPTION_ARG_STRING, &profile,
         "behave as: own (default), libvfio-user-2022, qemu-7.2, libvfio-user-2026", "P"},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "log each message handled to stderr",
         NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- vfio-user reference server");
    g_autoptr(GError) err = NULL;
    vfio_user_server_options opts;
    struct sigaction sa = {.sa_handler = on_signal};
    int ret;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(
        ctx, "Serves a sample DMA device (BAR0: DMA_ADDR, DMA_LEN, DMA_FILL, DMA_CMD,\n"
             "DMA_STATUS, DMA_SUM) to every client that connects, each with its own\n"
             "device instance. Stops cleanly on SIGTERM or SIGINT.\n");
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        g_printerr("vfio-user-server: %s\n", err->message);
        return 2;
    }
    if (!socket_path) {
        g_printerr("vfio-user-server: --socket PATH is required (see --help)\n");
        return 2;
    }
    vfio_user_server_options_init(&opts);
    opts.verbose = verbose;
    if (profile && vfio_user_server_profile_parse(profile, &opts.profile) < 0) {
        g_printerr("vfio-user-server: unknown profile '%s'\n", profile);
        return 2;
    }
    if (dialect) {
        if (opts.profile != VFIO_USER_SERVER_PROFILE_OWN) {
            g_printerr("vfio-user-server: --dialect applies to the own profile only\n");
            return 2;
        }
        if (vfio_user_dialect_parse(dialect, &opts.dialect) < 0) {
            g_printerr("vfio-user-server: unknown dialect '%s' (2021, 0.9.1, final)\n", dialect);
            return 2;
        }
    }

    running = vfio_user_server_new(socket_path, &opts, &err);
    if (!running) {
        g_printerr("vfio-user-server: %s\n", err->message);
        return 1;
    }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (verbose)
        g_printerr("vfio-user-server: listening on %s (profile %s)\n", socket_path,
                   profile ? profile : "own");
    ret = vfio_user_server_run(running);
    {
        vfio_user_server *srv = running;
        running = NULL;
        vfio_user_server_free(srv);
    }
    if (ret < 0) {
        g_printerr("vfio-user-server: %s\n", g_strerror(-ret));
        return 1;
    }
    return 0;
}
