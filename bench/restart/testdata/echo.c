/* echo.c - the restart benchmark's managed program: a tiny TCP echo server on
 * 127.0.0.1:PORT (argv[1]), SO_REUSEADDR, one connection at a time, echoes
 * until the peer closes. Same binary for every manager.
 *   gcc -O2 -o echo echo.c */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}
	int port = atoi(argv[1]);
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "echo: bad port %s\n", argv[1]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
		perror("echo: socket");
		return 1;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 128) < 0) {
		perror("echo: bind/listen");
		return 1;
	}
	for (;;) {
		int c = accept(ls, NULL, NULL);
		if (c < 0)
			continue;
		char buf[4096];
		ssize_t n;
		while ((n = read(c, buf, sizeof buf)) > 0) {
			ssize_t off = 0;
			while (off < n) {
				ssize_t w = write(c, buf + off, n - off);
				if (w <= 0)
					goto done;
				off += w;
			}
		}
	done:
		close(c);
	}
}
