/* listen-echo: a plain C socket-activated TCP echo, per sd_listen_fds(3)'s
 * conventions without libsystemd: LISTEN_PID must be this process and
 * LISTEN_FDS >= 1; the first socket is fd 3 (SD_LISTEN_FDS_START). Each
 * connection gets "TAG:" + its first line back, then is closed. It exits 3
 * when no socket was passed (a binary that binds by itself would bind here,
 * which is what --listen cannot serve). Used by the units and e2e tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *tag = argc > 1 ? argv[1] : "echo";
	if (!pid || !fds || atol(pid) != (long)getpid() || atoi(fds) < 1) {
		fprintf(stderr, "listen-echo: no socket passed (LISTEN_PID=%s LISTEN_FDS=%s)\n",
			pid ? pid : "", fds ? fds : "");
		return 3;
	}
	fprintf(stderr, "listen-echo %s: serving fd 3 (LISTEN_FDS=%s)\n", tag, fds);
	for (;;) {
		int c = accept(3, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED) continue;
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
}
