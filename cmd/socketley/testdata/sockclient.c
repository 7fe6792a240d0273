/*
 * sockclient: a control-socket client written from docs/wire-protocol.md
 * only, as binaries built on the C++ Socketley SDK (attach.h, control.h)
 * speak it. The end-to-end tests compile it with cc to prove that such
 * binaries work with this daemon unchanged.
 *
 *   sockclient cmd WORD...
 *       send one request line, print the reply text, exit with its code
 *   sockclient serve TYPE NAME PORT
 *       listen on 127.0.0.1:PORT (0: a free port the kernel picks), attach
 *       (managed when SOCKETLEY_MANAGED is set; the name comes from
 *       SOCKETLEY_NAME when set), print "attached PID PORT" and run. SIGUSR1
 *       detaches (remove NAME) and keeps running; SIGTERM/SIGINT detach an
 *       unmanaged attach, then exit 0 -- what the C++ SDK does at exit.
 *       SIGWINCH prints "alive PID": the signals are taken in order of
 *       number, so a SIGTERM/SIGINT already pending is handled (exit)
 *       before it, and a test reading "alive" knows none was.
 *
 * Socket path as the C++ SDK resolves it: $SOCKETLEY_SOCKET when set and
 * non-empty; /run/socketley/socketley.sock when readable and writable;
 * /tmp/socketley.sock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static const char *socket_path(void) {
	const char *s = getenv("SOCKETLEY_SOCKET");
	if (s && *s)
		return s;
	if (access("/run/socketley/socketley.sock", R_OK | W_OK) == 0)
		return "/run/socketley/socketley.sock";
	return "/tmp/socketley.sock";
}

/* request sends line (without newline) and reads the reply frame: one code
 * byte, text, NUL. It returns the code, or -1 on a transport error. */
static int request(const char *line, char *text, size_t cap) {
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	const char *path = socket_path();
	if (strlen(path) >= sizeof addr.sun_path) {
		snprintf(text, cap, "socket path too long\n");
		return -1;
	}
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		snprintf(text, cap, "connect %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	size_t n = strlen(line);
	char *req = malloc(n + 2);
	memcpy(req, line, n);
	req[n] = '\n';
	req[n + 1] = 0;
	ssize_t w = write(fd, req, n + 1);
	free(req);
	if (w != (ssize_t)(n + 1)) {
		snprintf(text, cap, "write: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	int code = -1;
	size_t len = 0;
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r <= 0) {
			snprintf(text, cap, "read: %s\n", r == 0 ? "connection closed before the NUL" : strerror(errno));
			close(fd);
			return -1;
		}
		if (code < 0) {
			code = (unsigned char)c;
			continue;
		}
		if (c == 0)
			break;
		if (len + 1 < cap)
			text[len++] = c;
	}
	text[len] = 0;
	close(fd);
	return code;
}

static char text[1 << 20];

static int cmd(int argc, char **argv) {
	char line[8192] = "";
	for (int i = 0; i < argc; i++) {
		if (i)
			strncat(line, " ", sizeof line - strlen(line) - 1);
		strncat(line, argv[i], sizeof line - strlen(line) - 1);
	}
	int code = request(line, text, sizeof text);
	fputs(text, code == 0 ? stdout : stderr);
	return code < 0 ? 2 : code;
}

static int serve(const char *type, const char *name, int port) {
	const char *env = getenv("SOCKETLEY_NAME");
	if (env && *env)
		name = env;
	const char *m = getenv("SOCKETLEY_MANAGED");
	int managed = m && *m;

	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sin;
	if (bind(ls, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(ls, 128) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sin, &sl) < 0) {
		fprintf(stderr, "listen on port %d: %s\n", port, strerror(errno));
		return 2;
	}
	port = ntohs(sin.sin_port);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGWINCH);
	sigprocmask(SIG_BLOCK, &set, NULL);

	char line[512];
	snprintf(line, sizeof line, "attach %s %s %d --pid %d%s", type, name, port, (int)getpid(),
		 managed ? " --managed" : "");
	int code = request(line, text, sizeof text);
	if (code != 0) {
		fprintf(stderr, "attach failed (%d): %s", code, text);
		return code < 0 ? 2 : code;
	}
	printf("attached %d %d\n", (int)getpid(), port);
	fflush(stdout);

	int attached = !managed;
	char rm[256];
	snprintf(rm, sizeof rm, "remove %s", name);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGWINCH) {
			printf("alive %d\n", (int)getpid());
			fflush(stdout);
			continue;
		}
		if (attached) {
			code = request(rm, text, sizeof text);
			printf("detach %d: %s", code, text);
			fflush(stdout);
			attached = 0;
		}
		if (sig != SIGUSR1)
			return 0;
	}
}

int main(int argc, char **argv) {
	if (argc >= 3 && strcmp(argv[1], "cmd") == 0)
		return cmd(argc - 2, argv + 2);
	if (argc == 5 && strcmp(argv[1], "serve") == 0)
		return serve(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: sockclient cmd WORD... | sockclient serve TYPE NAME PORT\n");
	return 2;
}
