/*
 * The test node's sandbox ("pause") image: PID 1 of every Pod sandbox. It holds the Pod's
 * namespaces open and does nothing else: it waits for a signal, exits 0 on SIGINT or SIGTERM,
 * and reaps any zombie it inherits (SIGCHLD), like Kubernetes' own pause. Ours because this
 * machine reaches no public image registry; scripts/cluster/images.sh builds it with
 * `gcc -static -Os` and pushes it to the cluster's registry.
 *
 *   pause        wait for SIGINT/SIGTERM, then exit 0
 *   pause -v     print the version and exit 0 (a quick check that the image runs)
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "sourcebuild-pause 1"

static void on_term(int sig) {
	(void)sig;
	_exit(0);
}

static void on_child(int sig) {
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(int argc, char **argv) {
	struct sigaction term, child;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		printf("%s\n", VERSION);
		return 0;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: warning: not PID 1, zombies will not be reaped\n");

	memset(&term, 0, sizeof term);
	term.sa_handler = on_term;
	sigemptyset(&term.sa_mask);
	if (sigaction(SIGINT, &term, NULL) < 0 || sigaction(SIGTERM, &term, NULL) < 0) {
		perror("pause: sigaction");
		return 1;
	}
	memset(&child, 0, sizeof child);
	child.sa_handler = on_child;
	sigemptyset(&child.sa_mask);
	child.sa_flags = SA_NOCLDSTOP;
	if (sigaction(SIGCHLD, &child, NULL) < 0) {
		perror("pause: sigaction");
		return 1;
	}
	for (;;)
		pause();
}
