/* files.c - what every file the library reads or writes goes through first: inputs are regular
 * files (or the pipe given as standard input), refused at once otherwise; an output prefix's
 * folder exists, takes a new file, and has room for what a run will write. */
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a named pipe (FIFO)" : S_ISCHR(m) ? "a character device"
         : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

s2s_status s2s_open_input(const char *path, const char *what, int *fd)
{
    struct stat sb, in;
    *fd = -1;
    if (stat(path, &sb) != 0)
        return S2S_FAIL(S2S_ERR_IO, "cannot open %s '%s': %s; check the path", what, path, strerror(errno));
    /* a pipe or terminal this process holds open is read as it is: standard input named as
     * /dev/stdin, a shell's process substitution <(...) as /dev/fd/N */
    int is_ours = 0;
    for (int fd_i = 0; fd_i < 256 && !is_ours && !S_ISREG(sb.st_mode); fd_i++)
        is_ours = fstat(fd_i, &in) == 0 && in.st_dev == sb.st_dev && in.st_ino == sb.st_ino;
    if (!S_ISREG(sb.st_mode) && !is_ours)
        return S2S_FAIL(S2S_ERR_IO, "%s '%s' is %s; give a regular file (or pipe the data to standard input and "
                                    "name /dev/stdin)", what, path, kind_of(sb.st_mode));
    if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return S2S_FAIL(S2S_ERR_IO, "cannot open %s '%s': %s", what, path, strerror(errno));
    return S2S_OK;
}

/* The folder part of a prefix: "runs/m" -> "runs", "m" -> ".", "/m" -> "/". */
static void folder_of(const char *prefix, char *dir, size_t cap)
{
    const char *slash = strrchr(prefix, '/');
    size_t n = !slash ? 0 : slash == prefix ? 1 : (size_t)(slash - prefix);
    if (n >= cap)
        n = cap - 1;
    memcpy(dir, n ? prefix : ".", n ? n : 1);
    dir[n ? n : 1] = '\0';
}

S2S_API s2s_status s2s_output_check(const char *prefix, uint64_t bytes)
{
    if (!prefix || !*prefix)
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "s2s_output_check: the output prefix is empty");
    size_t plen = strlen(prefix);
    if (prefix[plen - 1] == '/')
        return S2S_FAIL(S2S_ERR_INVALID_ARG, "output prefix '%s' ends in '/': give a prefix for the file names "
                                             "(e.g. %smodel)", prefix, prefix);
    char dir[4096];
    folder_of(prefix, dir, sizeof dir);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return S2S_FAIL(S2S_ERR_IO, "output folder '%s' (of the prefix '%s'): %s; create it first (mkdir -p %s)", dir,
                        prefix, strerror(errno), dir);
    if (!S_ISDIR(sb.st_mode))
        return S2S_FAIL(S2S_ERR_IO, "output folder '%s' (of the prefix '%s') is %s, not a directory", dir, prefix,
                        kind_of(sb.st_mode));
    /* a real file, made and removed: the only test that holds for root, read-only mounts and ACLs */
    char *probe = malloc(plen + 32);
    if (!probe)
        return S2S_FAIL(S2S_ERR_OUT_OF_MEMORY, "out of memory checking '%s'", prefix);
    snprintf(probe, plen + 32, "%s.write-test-XXXXXX", prefix);
    int fd = mkstemp(probe);
    int e = fd < 0 ? errno : 0;
    if (fd >= 0)
        close(fd), unlink(probe);
    free(probe);
    if (e)
        return S2S_FAIL(S2S_ERR_IO, "cannot create files in the output folder '%s': %s; choose a folder you can "
                                    "write to", dir, strerror(e));
    struct statvfs vs;
    if (bytes && statvfs(dir, &vs) == 0 && (uint64_t)vs.f_bavail * vs.f_frsize < bytes)
        return S2S_FAIL(S2S_ERR_IO, "the output folder '%s' has %.1f MiB free; a checkpoint needs about %.1f MiB: "
                                    "free some space or choose another folder", dir,
                        (double)vs.f_bavail * vs.f_frsize / 1048576.0, (double)bytes / 1048576.0);
    return S2S_OK;
}
