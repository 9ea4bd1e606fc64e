// An LD_PRELOAD library that makes file writes under one folder fail, for the fault tests
// (tests/fault/test_faults.py). Only operations on files under GEMKIT_FAULT_DIR count:
//   creating or opening a file for writing (open, openat, creat, fopen), mkdir, write, pwrite,
//   writev, fwrite, fflush, fclose, fsync, fdatasync, rename(at), copy_file_range, sendfile.
// Environment:
//   GEMKIT_FAULT_DIR         absolute folder whose files are watched (required; else the library
//                            does nothing)
//   GEMKIT_FAULT_AT=N        the N-th watched operation (1-based) and every later one fail, as a
//                            full disk keeps failing; 0 or unset: none fails (counting only)
//   GEMKIT_FAULT_ERRNO       ENOSPC (default) or EIO; KILL: the process SIGKILLs itself at the
//                            N-th operation instead (a crash in the middle of a write)
//   GEMKIT_FAULT_COUNT_FILE  at exit, the number of watched operations is written there, and the
//                            first failed operation ("op path") on a second line
// Every process counts its own operations: a program that runs others (gemkit ablate) has each
// of them fail at its own N-th operation, and the count file holds the last one to exit.
// glibc's stdio writes through internal aliases that LD_PRELOAD cannot replace, so fwrite,
// fflush and fclose are intercepted themselves; C++ streams reach write() and are seen there.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 4096

static char g_dir[PATH_MAX];
static size_t g_dir_len;
static long g_fail_at;
static int g_errno = ENOSPC;
static int g_kill;
static atomic_long g_count;
static char g_first_failure[PATH_MAX + 32];
static char* g_fd_path[MAX_FDS];  // watched open files: their paths
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((constructor)) static void fault_init(void) {
  const char* dir = getenv("GEMKIT_FAULT_DIR");
  if (!dir || !*dir || !realpath(dir, g_dir)) return;
  g_dir_len = strlen(g_dir);
  const char* at = getenv("GEMKIT_FAULT_AT");
  g_fail_at = at ? strtol(at, NULL, 10) : 0;
  const char* e = getenv("GEMKIT_FAULT_ERRNO");
  if (e && strcmp(e, "EIO") == 0) g_errno = EIO;
  if (e && strcmp(e, "KILL") == 0) g_kill = 1;
}

__attribute__((destructor)) static void fault_report(void) {
  const char* path = getenv("GEMKIT_FAULT_COUNT_FILE");
  if (!g_dir_len || !path) return;
  static int (*real_open)(const char*, int, ...);
  if (!real_open) real_open = dlsym(RTLD_NEXT, "open");
  int fd = real_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[PATH_MAX + 64];
  int n = snprintf(line, sizeof line, "%ld\n%s\n", atomic_load(&g_count), g_first_failure);
  ssize_t (*real_write)(int, const void*, size_t) = dlsym(RTLD_NEXT, "write");
  if (n > 0) real_write(fd, line, (size_t)n);
  close(fd);
}

// Whether `path` (absolute, or relative to the working directory) lies under the watched folder.
static int watched_path(const char* path) {
  if (!g_dir_len || !path) return 0;
  char abs[PATH_MAX];
  if (path[0] != '/') {
    if (!getcwd(abs, sizeof abs)) return 0;
    size_t n = strlen(abs);
    if (n + 1 + strlen(path) >= sizeof abs) return 0;
    abs[n] = '/';
    strcpy(abs + n + 1, path);
    path = abs;
  }
  return strncmp(path, g_dir, g_dir_len) == 0 && (path[g_dir_len] == '/' || path[g_dir_len] == 0);
}

static int watched_fd(int fd) {
  if (fd < 0 || fd >= MAX_FDS) return 0;
  pthread_mutex_lock(&g_lock);
  int w = g_fd_path[fd] != NULL;
  pthread_mutex_unlock(&g_lock);
  return w;
}

static void watch_fd(int fd, const char* path) {
  if (fd < 0 || fd >= MAX_FDS) return;
  pthread_mutex_lock(&g_lock);
  free(g_fd_path[fd]);
  g_fd_path[fd] = strdup(path);
  pthread_mutex_unlock(&g_lock);
}

static void forget_fd(int fd) {
  if (fd < 0 || fd >= MAX_FDS) return;
  pthread_mutex_lock(&g_lock);
  free(g_fd_path[fd]);
  g_fd_path[fd] = NULL;
  pthread_mutex_unlock(&g_lock);
}

// Counts one watched operation; returns 1 (with errno set) when it must fail.
static int should_fail(const char* op, const char* path) {
  long n = atomic_fetch_add(&g_count, 1) + 1;
  if (g_fail_at <= 0 || n < g_fail_at) return 0;
  if (g_kill) kill(getpid(), SIGKILL);
  pthread_mutex_lock(&g_lock);
  if (!g_first_failure[0]) snprintf(g_first_failure, sizeof g_first_failure, "%s %s", op, path ? path : "?");
  pthread_mutex_unlock(&g_lock);
  errno = g_errno;
  return 1;
}

static int fd_fails(const char* op, int fd) {
  if (!watched_fd(fd)) return 0;
  char path[PATH_MAX] = "?";
  pthread_mutex_lock(&g_lock);
  if (g_fd_path[fd]) snprintf(path, sizeof path, "%s", g_fd_path[fd]);
  pthread_mutex_unlock(&g_lock);
  return should_fail(op, path);
}

#define REAL(name) \
  static __typeof__(name)* real_##name; \
  if (!real_##name) real_##name = (__typeof__(name)*)dlsym(RTLD_NEXT, #name)

static int writes(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) != 0; }

static int open_common(int (*real)(int, const char*, int, ...), int dirfd, const char* path, int flags, mode_t mode,
                       const char* op) {
  const int watched = (dirfd == AT_FDCWD || path[0] == '/') && writes(flags) && watched_path(path);
  if (watched && should_fail(op, path)) return -1;
  int fd = real(dirfd, path, flags, mode);
  if (watched && fd >= 0) watch_fd(fd, path);
  return fd;
}

static mode_t mode_arg(int flags, va_list ap) { return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0; }

int openat(int dirfd, const char* path, int flags, ...) {
  REAL(openat);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_common(real_openat, dirfd, path, flags, mode, "open");
}
int openat64(int dirfd, const char* path, int flags, ...) {
  REAL(openat64);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_common(real_openat64, dirfd, path, flags, mode, "open");
}
int open(const char* path, int flags, ...) {
  REAL(openat);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_common(real_openat, AT_FDCWD, path, flags, mode, "open");
}
int open64(const char* path, int flags, ...) {
  REAL(openat64);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return open_common(real_openat64, AT_FDCWD, path, flags, mode, "open");
}
int creat(const char* path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }
int creat64(const char* path, mode_t mode) { return open64(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

static FILE* fopen_common(FILE* (*real)(const char*, const char*), const char* path, const char* mode) {
  const int watched = strpbrk(mode, "wa+") && watched_path(path);
  if (watched && should_fail("fopen", path)) return NULL;
  FILE* f = real(path, mode);
  if (watched && f) watch_fd(fileno(f), path);
  return f;
}
FILE* fopen(const char* path, const char* mode) {
  REAL(fopen);
  return fopen_common(real_fopen, path, mode);
}
FILE* fopen64(const char* path, const char* mode) {
  REAL(fopen64);
  return fopen_common(real_fopen64, path, mode);
}

int mkdir(const char* path, mode_t mode) {
  REAL(mkdir);
  if (watched_path(path) && should_fail("mkdir", path)) return -1;
  return real_mkdir(path, mode);
}

ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write);
  if (fd_fails("write", fd)) return -1;
  return real_write(fd, buf, n);
}
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite);
  if (fd_fails("pwrite", fd)) return -1;
  return real_pwrite(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  REAL(pwrite64);
  if (fd_fails("pwrite", fd)) return -1;
  return real_pwrite64(fd, buf, n, off);
}
ssize_t writev(int fd, const struct iovec* iov, int count) {
  REAL(writev);
  if (fd_fails("writev", fd)) return -1;
  return real_writev(fd, iov, count);
}
size_t fwrite(const void* buf, size_t size, size_t n, FILE* f) {
  REAL(fwrite);
  if (fd_fails("fwrite", fileno(f))) return 0;
  return real_fwrite(buf, size, n, f);
}
int fflush(FILE* f) {
  REAL(fflush);
  if (f && fd_fails("fflush", fileno(f))) return EOF;
  return real_fflush(f);
}
int fclose(FILE* f) {
  REAL(fclose);
  const int fd = f ? fileno(f) : -1;
  const int fails = fd_fails("fclose", fd);
  forget_fd(fd);
  if (fails) {  // the buffered data is lost, as when the final flush fails; the file is closed
    const int e = errno;
    __fpurge(f);
    real_fclose(f);
    errno = e;
    return EOF;
  }
  return real_fclose(f);
}
int close(int fd) {
  REAL(close);
  forget_fd(fd);
  return real_close(fd);
}
int fsync(int fd) {
  REAL(fsync);
  if (fd_fails("fsync", fd)) return -1;
  return real_fsync(fd);
}
int fdatasync(int fd) {
  REAL(fdatasync);
  if (fd_fails("fdatasync", fd)) return -1;
  return real_fdatasync(fd);
}
int rename(const char* from, const char* to) {
  REAL(rename);
  if (watched_path(to) && should_fail("rename", to)) return -1;
  return real_rename(from, to);
}
int renameat(int fromfd, const char* from, int tofd, const char* to) {
  REAL(renameat);
  if ((tofd == AT_FDCWD || to[0] == '/') && watched_path(to) && should_fail("rename", to)) return -1;
  return real_renameat(fromfd, from, tofd, to);
}
ssize_t copy_file_range(int in, off64_t* in_off, int out, off64_t* out_off, size_t n, unsigned flags) {
  REAL(copy_file_range);
  if (fd_fails("copy_file_range", out)) return -1;
  return real_copy_file_range(in, in_off, out, out_off, n, flags);
}
ssize_t sendfile(int out, int in, off_t* off, size_t n) {
  REAL(sendfile);
  if (fd_fails("sendfile", out)) return -1;
  return real_sendfile(out, in, off, n);
}
ssize_t sendfile64(int out, int in, off64_t* off, size_t n) {
  REAL(sendfile64);
  if (fd_fails("sendfile", out)) return -1;
  return real_sendfile64(out, in, off, n);
}
