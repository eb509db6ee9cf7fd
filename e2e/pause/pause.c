/* Minimal sandbox "pause" process: holds the pod's namespaces, reaps zombies, exits on
 * SIGINT/SIGTERM. Built with `gcc -static` by e2e/build.sh for the locally made pause image. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void sigdown(int signo) { (void)signo; _exit(0); }

static void sigreap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        printf("pause (neptune-e2e)\n");
        return 0;
    }
    if (getpid() != 1) fprintf(stderr, "pause: warning: not pid 1\n");
    struct sigaction down = {.sa_handler = sigdown};
    struct sigaction reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &down, NULL) < 0 || sigaction(SIGTERM, &down, NULL) < 0 ||
        sigaction(SIGCHLD, &reap, NULL) < 0) {
        perror("sigaction");
        return 1;
    }
    for (;;) pause();
}
