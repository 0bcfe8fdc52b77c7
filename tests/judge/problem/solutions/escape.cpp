// Tries to get out of its box, says on stderr how each attempt went, then answers right.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void attempt(const char *what, bool done) {
    std::fprintf(stderr, "%s: %s\n", what, done ? "DONE" : std::strerror(errno));
}

static bool reach(const char *path) {
    int sock = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path, sizeof(address.sun_path) - 1);
    return connect(sock, reinterpret_cast<sockaddr *>(&address), sizeof(address)) == 0;
}

int main() {
    attempt("write /etc/passwd", open("/etc/passwd", O_WRONLY | O_APPEND) >= 0);
    attempt("write the tests", open("/var/lib/kolejka/task/tests/tests.yaml", O_WRONLY) >= 0);
    attempt("write the results", open("/var/lib/kolejka/task/results/x", O_WRONLY | O_CREAT, 0644) >= 0);
    attempt("reach the observer", reach("/var/run/kolejka/observer/socket"));
    attempt("reach our observer", reach("/run/kolejka/observer.sock"));
    attempt("kill the judge", kill(1, SIGKILL) == 0);
    long long n, x, sum = 0;
    std::cin >> n;
    for (long long i = 0; i < n; ++i) {
        std::cin >> x;
        sum += x;
    }
    std::cout << sum << std::endl;
}
