/*
 * What the benchmarks share: clocks, CPU pinning, ports, and the CPU time
 * and memory of the server process they measure. Header-only: each
 * benchmark is one program.
 */
#ifndef VEIL_BENCH_PROC_H
#define VEIL_BENCH_PROC_H

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

static inline uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline void pin_cpu(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof s, &s);
}

/*
 * A free port below the ephemeral range (32768 and up), so that TIME_WAIT
 * sockets of the many connections a benchmark makes cannot collide with a
 * listener.
 */
static inline uint16_t free_port(void)
{
	for (int i = 0; i < 1000; i++) {
		uint16_t port = (uint16_t)(20000 + randombytes_uniform(12000));
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port = htons(port),
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
		if (fd >= 0)
			close(fd);
		if (ok)
			return port;
	}
	abort();
}

static inline int wait_port(uint16_t port, pid_t pid)
{
	for (int i = 0; i < 400; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port = htons(port),
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
		close(fd);
		if (ok)
			return 0;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return -1;
		usleep(25000);
	}
	return -1;
}

/* CPU time (user+system) of a process in microseconds. */
static inline uint64_t proc_cpu_us(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* Fields after the command: state(3) ... utime(14) stime(15). */
	for (int field = 3; p && field <= 15; field++) {
		p = strchr(p + 1, ' ');
		if (p == NULL)
			break;
		/* p is at the space before field number `field`. */
		if (field == 14)
			ut = strtoul(p + 1, NULL, 10);
		if (field == 15)
			st = strtoul(p + 1, NULL, 10);
	}
	return (uint64_t)(ut + st) * 1000000u / (uint64_t)sysconf(_SC_CLK_TCK);
}

/*
 * Times the threads of a process went to sleep waiting (voluntary context
 * switches, summed over /proc/PID/task): each is a wake-up paid later.
 */
static inline uint64_t proc_sleeps(pid_t pid)
{
	char path[64], line[256];
	uint64_t n = 0;
	/* d_name is at most 255 bytes: p2 holds path, it and "/status". */
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (d == NULL)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char p2[400];
		snprintf(p2, sizeof p2, "%s/%s/status", path, e->d_name);
		FILE *f = fopen(p2, "r");
		if (f == NULL)
			continue;
		while (fgets(line, sizeof line, f))
			if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
				n += strtoull(line + 24, NULL, 10);
		fclose(f);
	}
	closedir(d);
	return n;
}

/* A field of /proc/PID/status in KiB ("VmRSS:", "RssAnon:", ...), -1 if absent. */
static inline long proc_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long kb = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, n) == 0)
			kb = strtol(line + n, NULL, 10);
	fclose(f);
	return kb;
}

/* Resident memory of a process in KiB. */
static inline long proc_rss_kb(pid_t pid)
{
	return proc_status_kb(pid, "VmRSS:");
}

#endif
