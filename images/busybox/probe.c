/* kolejka-probe: small, exact programs for tests and benchmarks, run inside task containers.
 *
 *   kolejka-probe mem MIB [SECONDS]   touch MIB mebibytes of fresh memory, then hold it SECONDS
 *   kolejka-probe cpu SECONDS         spin until this program has used SECONDS of CPU time
 *   kolejka-probe sleep SECONDS       print the wall clock ("start SEC.NSEC"), then sleep
 *   kolejka-probe forkbomb            fork for ever; print how many forks succeeded, now and then
 *   kolejka-probe escalate            try to gain privileges; one line per attempt, exit 1 if any
 *                                     attempt succeeded
 *   kolejka-probe net IP PORT         try a TCP connection; exit 0 if it connected
 *   kolejka-probe crash               die of a segmentation fault
 *
 * Static, so it runs in any image; exact, so measured figures can be compared with the truth.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return now.tv_sec + now.tv_nsec / 1e9;
}

static void pause_for(double seconds) {
    struct timespec pause = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
        ;
}

static int mem(long mib, double hold) {
    long page = sysconf(_SC_PAGESIZE);
    size_t size = (size_t)mib << 20;
    volatile char *block = malloc(size);
    if (block == NULL) {
        perror("malloc");
        return 1;
    }
    for (size_t offset = 0; offset < size; offset += page)
        block[offset] = 1;
    if (hold > 0)
        pause_for(hold);
    printf("touched %ld MiB\n", mib);
    return 0;
}

static int cpu(double seconds) {
    /* The process's CPU clock survives exec: it already holds what the container runtime's init
     * used in this process before it executed us. Count from here. */
    double start = cpu_seconds();
    volatile unsigned long spins = 0;
    while (cpu_seconds() - start < seconds)
        spins++;
    printf("spun %.3f s of cpu\n", cpu_seconds() - start);
    return 0;
}

static int sleeper(double seconds) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    printf("start %ld.%09ld\n", (long)now.tv_sec, now.tv_nsec);
    fflush(stdout);
    pause_for(seconds);
    return 0;
}

static int forkbomb(void) {
    long forks = 0, failures = 0;
    while (forks >= 0) {
        pid_t child = fork();
        if (child == 0) {
            for (;;)
                pause();
        }
        if (child > 0)
            forks++;
        else
            failures++;
        if ((forks + failures) % 1000 == 0) {
            printf("forks %ld failures %ld\n", forks, failures);
            fflush(stdout);
        }
    }
    return 0;
}

static int attempts_succeeded = 0;

static void report(const char *attempt, int result) {
    if (result == 0) {
        printf("%s: SUCCEEDED\n", attempt);
        attempts_succeeded++;
    } else {
        printf("%s: blocked (%s)\n", attempt, strerror(errno));
    }
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t written = write(fd, text, strlen(text));
    close(fd);
    return written < 0 ? -1 : 0;
}

static int escalate(void) {
    printf("uid %d euid %d\n", getuid(), geteuid());
    report("setuid(0)", setuid(0));
    report("setgid(0)", setgid(0));
    report("mount tmpfs", mount("none", "/tmp", "tmpfs", 0, NULL));
    report("remount / read-write", mount(NULL, "/", NULL, MS_REMOUNT, NULL));
    report("chroot", chroot("/tmp"));
    report("unshare user namespace", unshare(CLONE_NEWUSER));
    report("unshare mount namespace", unshare(CLONE_NEWNS));
    report("mknod block device", mknod("/tmp/kolejka-disk", S_IFBLK | 0600, makedev(8, 0)));
    int raw = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    report("raw socket", raw < 0 ? -1 : 0);
    report("sethostname", sethostname("escaped", 7));
    struct timeval epoch = {0, 0};
    report("settimeofday", settimeofday(&epoch, NULL));
    report("reboot", reboot(RB_DISABLE_CAD));
    report("write /proc/sys/kernel/hostname", write_file("/proc/sys/kernel/hostname", "escaped"));
    report("write /proc/sysrq-trigger", write_file("/proc/sysrq-trigger", "h"));
    report("write /sys/kernel/mm/transparent_hugepage/enabled",
           write_file("/sys/kernel/mm/transparent_hugepage/enabled", "never"));
    report("write /sys/fs/cgroup", write_file("/sys/fs/cgroup/cgroup.procs", "1"));
    report("write /etc/passwd", write_file("/etc/passwd", "root::0:0::/:/bin/sh\n"));
    report("open /dev/mem", open("/dev/mem", O_RDONLY) < 0 ? -1 : 0);
    report("chown to root", chown(".", 0, 0));
    return attempts_succeeded ? 1 : 0;
}

static int net(const char *ip, int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, ip, &address.sin_addr) != 1) {
        fprintf(stderr, "not an IPv4 address: %s\n", ip);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        printf("socket: %s\n", strerror(errno));
        return 1;
    }
    struct timeval timeout = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        printf("connect %s:%d: %s\n", ip, port, strerror(errno));
        return 1;
    }
    printf("connected to %s:%d\n", ip, port);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "mem") == 0)
        return mem(atol(argv[2]), argc >= 4 ? atof(argv[3]) : 0);
    if (argc >= 3 && strcmp(argv[1], "cpu") == 0)
        return cpu(atof(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "sleep") == 0)
        return sleeper(atof(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "forkbomb") == 0)
        return forkbomb();
    if (argc >= 2 && strcmp(argv[1], "escalate") == 0)
        return escalate();
    if (argc >= 4 && strcmp(argv[1], "net") == 0)
        return net(argv[2], atoi(argv[3]));
    if (argc >= 2 && strcmp(argv[1], "crash") == 0)
        return *(volatile int *)NULL;
    fprintf(stderr, "usage: kolejka-probe mem MIB [SECONDS] | cpu SECONDS | sleep SECONDS | "
                    "forkbomb | escalate | net IP PORT | crash\n");
    return 2;
}
