/* listen-echo: a plain C socket-activated TCP echo, per sd_listen_fds(3)'s
 * conventions without libsystemd: LISTEN_PID must be this process and
 * LISTEN_FDS >= 1; the first socket is fd 3 (SD_LISTEN_FDS_START). Each
 * connection gets "TAG:" + its first line back, then is closed. It exits 3
 * when no socket was passed (a binary that binds by itself would bind here,
 * which is what --listen cannot serve). SIGTERM is graceful: the connection
 * in hand is answered, then it exits 0; connections not yet accepted stay in
 * the socket's queue for the next process. Used by the units and e2e tests. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t term;

static void on_term(int sig) { (void)sig; term = 1; }

int main(int argc, char **argv) {
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *tag = argc > 1 ? argv[1] : "echo";
	if (!pid || !fds || atol(pid) != (long)getpid() || atoi(fds) < 1) {
		fprintf(stderr, "listen-echo: no socket passed (LISTEN_PID=%s LISTEN_FDS=%s)\n",
			pid ? pid : "", fds ? fds : "");
		return 3;
	}
	/* SIGTERM stays blocked except while waiting for a connection
	 * (pselect), so it never cuts a connection short. */
	sigset_t term_set, wait_set;
	sigemptyset(&term_set);
	sigaddset(&term_set, SIGTERM);
	sigprocmask(SIG_BLOCK, &term_set, &wait_set);
	sigdelset(&wait_set, SIGTERM);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);

	fprintf(stderr, "listen-echo %s: serving fd 3 (LISTEN_FDS=%s)\n", tag, fds);
	while (!term) {
		fd_set rd;
		FD_ZERO(&rd);
		FD_SET(3, &rd);
		if (pselect(4, &rd, NULL, NULL, NULL, &wait_set) < 0) {
			if (errno == EINTR) continue;
			perror("pselect");
			return 1;
		}
		int c = accept(3, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
			perror("accept");
			return 1;
		}
		char buf[4096];
		size_t n = 0;
		while (n < sizeof buf) {
			ssize_t r = read(c, buf + n, sizeof buf - n);
			if (r <= 0) break;
			n += (size_t)r;
			if (memchr(buf, '\n', n)) break;
		}
		char out[4200];
		int m = snprintf(out, sizeof out, "%s:%.*s", tag, (int)n, buf);
		if (m > 0) (void)!write(c, out, (size_t)m);
		close(c);
	}
	fprintf(stderr, "listen-echo %s: SIGTERM, exiting\n", tag);
	return 0;
}
