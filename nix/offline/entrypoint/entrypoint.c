/*
 * The official nginx and redis images' entrypoint behaviour, without a shell.
 *
 * Built twice from this file (see ../pkgs/entrypoint.nix):
 *   -DENTRYPOINT_NGINX  the steps /docker-entrypoint.d runs in the official
 *                       nginx image (IPv6 listen default, local resolvers,
 *                       envsubst of templates, worker auto-tuning), then
 *                       exec of the command;
 *   -DENTRYPOINT_REDIS  the argument handling of the official redis image
 *                       (`--opt …` and `x.conf` become `redis-server …`,
 *                       umask 0077 when it is 0022, modules directory).
 * With -DENTRYPOINT_NO_MAIN the file is included by entrypoint_test.c.
 *
 * Written from the behaviour of the official scripts (same environment
 * variables, defaults and file locations); no shell, no external programs.
 * Input handling: every buffer grows with overflow checks, files read are
 * capped, outputs are written to a temporary file and renamed into place,
 * and directories below the output directory are opened with O_NOFOLLOW so a
 * symlink cannot redirect a write outside it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

extern char **environ;

#define MAX_FILE (16u << 20) /* templates and configs larger than this are refused */
#define MAX_DEPTH 32         /* template directory nesting */

static const char *me = "/docker-entrypoint.sh";

/* ---- logging ------------------------------------------------------------ */

static int quiet_logs(void)
{
    const char *q = getenv("NGINX_ENTRYPOINT_QUIET_LOGS");
    return q != NULL && q[0] != '\0';
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
    if (quiet_logs())
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs(me, stdout);
    fputs(": ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

/* Errors are printed even with quiet logs, on stderr. */
static void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(me, stderr);
    fputs(": error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- growable buffer ---------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_put(struct buf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX - b->len - 1)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_puts(struct buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Reads a whole file (following symlinks) into b; -1 with errno set. */
static int read_file(const char *path, struct buf *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        if (b->len + (size_t)n > MAX_FILE || buf_put(b, chunk, (size_t)n) < 0) {
            close(fd);
            errno = EFBIG;
            return -1;
        }
    }
    close(fd);
    if (b->p == NULL && buf_put(b, "", 0) < 0)
        return -1;
    return 0;
}

/* snprintf into a fixed buffer; -1 when it does not fit. */
static int join(char *out, size_t size, const char *a, const char *sep, const char *b)
{
    int n = snprintf(out, size, "%s%s%s", a, sep, b);
    return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

/* Writes data to dirfd/name through a temporary file and rename, so a reader
 * never sees a half-written file and a symlink at `name` is replaced, not
 * followed. The mode is 0666 less the umask, as a shell redirection gives. */
static int write_atomic(int dirfd, const char *name, const char *data, size_t len)
{
    char tmp[NAME_MAX + 1];
    static unsigned counter;
    int fd = -1;
    for (int tries = 0; tries < 100 && fd < 0; tries++) {
        if (snprintf(tmp, sizeof tmp, ".entrypoint.%ld.%u.tmp", (long)getpid(), counter++) >= (int)sizeof tmp)
            return -1;
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            return -1;
    }
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (renameat(dirfd, tmp, dirfd, name) < 0)
        goto fail;
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlinkat(dirfd, tmp, 0);
    errno = e;
    return -1;
}

/* ---- envsubst ------------------------------------------------------------ */

static int name_start(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
static int name_char(unsigned char c) { return name_start(c) || (c >= '0' && c <= '9'); }

/* The value of `name` (len bytes) among `vars` ("NAME=value" entries, NULL
 * terminated), or NULL when it is not listed. */
static const char *lookup(const char *const *vars, const char *name, size_t len)
{
    for (; *vars; vars++)
        if (strncmp(*vars, name, len) == 0 && (*vars)[len] == '=')
            return *vars + len + 1;
    return NULL;
}

/*
 * GNU envsubst given a SHELL-FORMAT that names `vars`: `$NAME` and `${NAME}`
 * are replaced when NAME is listed; anything else (an unlisted name, `${`
 * without a closing brace, a `$` before no name) is copied unchanged.
 */
int envsubst(const char *in, size_t n, const char *const *vars, struct buf *out)
{
    size_t i = 0;
    while (i < n) {
        const char *dollar = memchr(in + i, '$', n - i);
        size_t upto = dollar ? (size_t)(dollar - in) : n;
        if (buf_put(out, in + i, upto - i) < 0)
            return -1;
        i = upto;
        if (i >= n)
            break;
        size_t j = i + 1;
        int brace = j < n && in[j] == '{';
        if (brace)
            j++;
        size_t start = j;
        if (j < n && name_start((unsigned char)in[j])) {
            while (j < n && name_char((unsigned char)in[j]))
                j++;
            int closed = !brace || (j < n && in[j] == '}');
            const char *value = closed ? lookup(vars, in + start, j - start) : NULL;
            if (value != NULL) {
                if (buf_puts(out, value) < 0)
                    return -1;
                i = j + (brace ? 1 : 0);
                continue;
            }
        }
        /* not substituted: copy the `$` (and `{`) and go on after them */
        if (buf_put(out, in + i, start - i) < 0)
            return -1;
        i = start;
    }
    return 0;
}

/* The environment entries whose names match NGINX_ENVSUBST_FILTER (an
 * extended regular expression, unanchored, as awk's `name ~ /filter/`);
 * all of them when it is empty. NULL terminated; free the array only. */
static const char **defined_vars(void)
{
    const char *filter = getenv("NGINX_ENVSUBST_FILTER");
    regex_t re;
    int use_re = filter != NULL && filter[0] != '\0';
    size_t count = 0;
    for (char **e = environ; *e; e++)
        count++;
    const char **vars = calloc(count + 1, sizeof *vars);
    if (vars == NULL)
        return NULL;
    if (use_re && regcomp(&re, filter, REG_EXTENDED | REG_NOSUB) != 0) {
        /* awk fails on a bad expression and then no name is listed */
        err("NGINX_ENVSUBST_FILTER `%s` is not a valid regular expression; no variable is substituted", filter);
        return vars;
    }
    size_t k = 0;
    char name[256];
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || eq == *e)
            continue;
        size_t len = (size_t)(eq - *e);
        if (use_re) {
            if (len >= sizeof name)
                continue; /* no shell variable name is that long in practice */
            memcpy(name, *e, len);
            name[len] = '\0';
            if (regexec(&re, name, 0, NULL, 0) != 0)
                continue;
        }
        vars[k++] = *e;
    }
    if (use_re)
        regfree(&re);
    return vars;
}

/* ---- templates ------------------------------------------------------------ */

struct tpl {
    const char *template_dir, *suffix, *output_dir;
    const char *const *vars;
    int failed;
};

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Opens (creating as needed) the directory `rel_dir` below the output
 * directory, one component at a time, never through a symlink. */
static int open_output_subdir(const char *output_dir, const char *rel_dir)
{
    int fd = open(output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char part[NAME_MAX + 1];
    const char *p = rel_dir;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
            close(fd);
            errno = EINVAL;
            return -1;
        }
        memcpy(part, p, len);
        part[len] = '\0';
        if (mkdirat(fd, part, 0777) < 0 && errno != EEXIST) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(fd);
        if (next < 0) {
            errno = e == ELOOP || e == ENOTDIR ? ELOOP : e;
            return -1;
        }
        fd = next;
        p += len;
        if (*p == '/')
            p++;
    }
    return fd;
}

static void render(struct tpl *t, const char *path, const char *rel_dir, const char *name)
{
    size_t out_len = strlen(name) - strlen(t->suffix);
    char out_name[NAME_MAX + 1];
    char shown[PATH_MAX];
    memcpy(out_name, name, out_len);
    out_name[out_len] = '\0';
    if (snprintf(shown, sizeof shown, "%s/%s%s%s", t->output_dir, rel_dir, *rel_dir ? "/" : "", out_name) >= (int)sizeof shown) {
        err("output path for %s is too long", path);
        t->failed = 1;
        return;
    }
    info("Running envsubst on %s to %s", path, shown);
    struct buf in = {0}, out = {0};
    if (read_file(path, &in) < 0) {
        err("cannot read %s: %s", path, strerror(errno));
        t->failed = 1;
        goto done;
    }
    if (envsubst(in.p, in.len, t->vars, &out) < 0 || buf_put(&out, "", 0) < 0) {
        err("out of memory substituting %s", path);
        t->failed = 1;
        goto done;
    }
    int dfd = open_output_subdir(t->output_dir, rel_dir);
    if (dfd < 0) {
        err("cannot open the directory of %s: %s%s", shown, strerror(errno),
            errno == ELOOP ? " (a symlink below the output directory is not followed)" : "");
        t->failed = 1;
        goto done;
    }
    if (write_atomic(dfd, out_name, out.p, out.len) < 0) {
        err("cannot write %s: %s", shown, strerror(errno));
        t->failed = 1;
    }
    close(dfd);
done:
    buf_free(&in);
    buf_free(&out);
}

struct ancestor {
    dev_t dev;
    ino_t ino;
};

/* `find DIR -follow -type f -name "*SUFFIX"`: symlinks are followed, a
 * directory loop is skipped. */
static void walk(struct tpl *t, const char *dir, const char *rel, struct ancestor *anc, int depth)
{
    if (depth >= MAX_DEPTH) {
        err("%s: nested deeper than %d directories, not descending", dir, MAX_DEPTH);
        return;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        err("cannot list %s: %s", dir, strerror(errno));
        t->failed = 1;
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[PATH_MAX], sub[PATH_MAX];
        if (join(path, sizeof path, dir, "/", e->d_name) < 0 ||
            join(sub, sizeof sub, rel, *rel ? "/" : "", e->d_name) < 0) {
            err("%s/%s: path too long", dir, e->d_name);
            t->failed = 1;
            continue;
        }
        struct stat st;
        if (stat(path, &st) < 0)
            continue; /* a dangling symlink: find -follow skips it too */
        if (S_ISDIR(st.st_mode)) {
            int loop = 0;
            for (int i = 0; i <= depth; i++)
                loop |= anc[i].dev == st.st_dev && anc[i].ino == st.st_ino;
            if (loop) {
                err("%s: file system loop, not descending", path);
                continue;
            }
            anc[depth + 1].dev = st.st_dev;
            anc[depth + 1].ino = st.st_ino;
            walk(t, path, sub, anc, depth + 1);
        } else if (S_ISREG(st.st_mode) && ends_with(e->d_name, t->suffix)) {
            if (strlen(e->d_name) == strlen(t->suffix)) {
                err("%s: the name is only the suffix, nothing to write", path);
                continue;
            }
            render(t, path, rel, e->d_name);
        }
    }
    closedir(d);
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : fallback;
}

/* 20-envsubst-on-templates: returns -1 when a template could not be written. */
static int step_envsubst(void)
{
    struct tpl t = {
        .template_dir = env_or("NGINX_ENVSUBST_TEMPLATE_DIR", "/etc/nginx/templates"),
        .suffix = env_or("NGINX_ENVSUBST_TEMPLATE_SUFFIX", ".template"),
        .output_dir = env_or("NGINX_ENVSUBST_OUTPUT_DIR", "/etc/nginx/conf.d"),
    };
    struct stat st;
    if (stat(t.template_dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0;
    if (access(t.output_dir, W_OK) < 0) {
        info("ERROR: %s exists, but %s is not writable", t.template_dir, t.output_dir);
        return 0;
    }
    const char **vars = defined_vars();
    if (vars == NULL) {
        err("out of memory listing the environment");
        return -1;
    }
    t.vars = vars;
    struct ancestor anc[MAX_DEPTH + 1];
    anc[0].dev = st.st_dev;
    anc[0].ino = st.st_ino;
    walk(&t, t.template_dir, "", anc, 0);
    free(vars);
    return t.failed ? -1 : 0;
}

/* ---- local resolvers ------------------------------------------------------- */

/* The `nameserver` addresses of resolv.conf text, each followed by a space
 * (awk with ORS=" "). */
int local_resolvers(const char *text, struct buf *out)
{
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *f = p, *end = p + len;
        while (f < end && (*f == ' ' || *f == '\t'))
            f++;
        const char *f1 = f;
        while (f < end && *f != ' ' && *f != '\t')
            f++;
        if ((size_t)(f - f1) == 10 && memcmp(f1, "nameserver", 10) == 0) {
            while (f < end && (*f == ' ' || *f == '\t'))
                f++;
            const char *f2 = f;
            while (f < end && *f != ' ' && *f != '\t' && *f != '\r')
                f++;
            if (buf_put(out, f2, (size_t)(f - f2)) < 0 || buf_put(out, " ", 1) < 0)
                return -1;
        }
        p = eol ? eol + 1 : end;
    }
    return buf_put(out, "", 0);
}

/* ---- worker auto-tuning ------------------------------------------------------ */

static long ceildiv(long num, long div) { return num / div + (num % div != 0); }

/* Number of CPUs in a cpuset list such as `0-3,8,10-11`; -1 if malformed. */
long cpuset_count(const char *s)
{
    long total = 0;
    const char *p = s;
    while (*p && *p != '\n') {
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10);
        if (end == p || errno || a < 0 || a > 1 << 20)
            return -1;
        long b = a;
        p = end;
        if (*p == '-') {
            p++;
            b = strtol(p, &end, 10);
            if (end == p || errno || b < 0 || b > 1 << 20)
                return -1;
            p = end;
        }
        if (b >= a)
            total += b - a + 1;
        if (*p == ',')
            p++;
        else if (*p && *p != '\n')
            return -1;
    }
    return total;
}

/* ceil(quota / period) for `quota period` (cgroup v2 cpu.max, with `max`
 * for no limit) or for two separate numbers (v1); -1 when there is no
 * limit or the values make no sense. */
long quota_cpus(const char *quota, const char *period)
{
    if (strncmp(quota, "max", 3) == 0 || strncmp(quota, "-1", 2) == 0)
        return -1;
    char *end;
    errno = 0;
    long q = strtol(quota, &end, 10);
    if (end == quota || errno || q <= 0)
        return -1;
    long p = strtol(period, &end, 10);
    if (end == period || errno || p <= 0)
        return -1;
    long n = ceildiv(q, p);
    return n > 0 ? n : -1;
}

/* Field `k` (1-based) of a line split on `sep`, copied into out. */
static int field(const char *line, char sep, int k, char *out, size_t size)
{
    const char *p = line;
    for (int i = 1; i < k; i++) {
        p = strchr(p, sep);
        if (p == NULL)
            return -1;
        p++;
    }
    char stop[3] = {sep, '\n', '\0'};
    size_t len = strcspn(p, stop);
    if (len >= size)
        return -1;
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

enum cg { CG_CPUSET, CG_CPU, CG_V2 };

/*
 * The cgroup directory of this process for a v1 controller or for v2, found
 * as the official script finds it: the first matching `cgroup`/`cgroup2`
 * line of mountinfo gives the mount's root and mount point, the matching
 * line of /proc/self/cgroup the process's path; the directory is the mount
 * point plus that path when the root is `/`, or the mount point when the
 * root is that path. `prefix` is prepended to every file read (tests).
 */
static int cgroup_dir(const char *prefix, enum cg which, char *out, size_t size)
{
    char path[PATH_MAX];
    struct buf mi = {0}, cg = {0};
    int rc = -1, found = 0;
    char root[PATH_MAX] = "", mnt[PATH_MAX] = "", cgpath[PATH_MAX] = "";
    if (join(path, sizeof path, prefix, "", "/proc/self/mountinfo") < 0 || read_file(path, &mi) < 0)
        goto done;
    if (join(path, sizeof path, prefix, "", "/proc/self/cgroup") < 0 || read_file(path, &cg) < 0)
        goto done;
    /* v1: the first matching mount; v2: the last cgroup2 mount */
    for (char *line = mi.p; *line && !(found && which != CG_V2);) {
        char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char l[4096];
        if (len < sizeof l) {
            memcpy(l, line, len);
            l[len] = '\0';
            int match;
            if (which == CG_V2)
                match = strstr(l, "- cgroup2 ") != NULL;
            else if (strstr(l, "- cgroup ") == NULL)
                match = 0;
            else if (which == CG_CPUSET)
                match = strstr(l, "cpuset") != NULL;
            else
                match = strstr(l, "cpuset") == NULL && strstr(l, "cpu") != NULL;
            if (match && field(l, ' ', 4, root, sizeof root) == 0 && field(l, ' ', 5, mnt, sizeof mnt) == 0)
                found = 1;
        }
        line += len + (eol != NULL);
    }
    if (!found)
        goto done;
    /* the process's path: v1 the first line of the controller, v2 the
     * last `0::` line */
    for (char *line = cg.p; *line;) {
        char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char ctl[256], p3[PATH_MAX];
        if (field(line, ':', 2, ctl, sizeof ctl) == 0 && field(line, ':', 3, p3, sizeof p3) == 0) {
            int match;
            if (which == CG_V2)
                match = strncmp(line, "0::", 3) == 0;
            else if (which == CG_CPUSET)
                match = strcmp(ctl, "cpuset") == 0;
            else
                match = strcmp(ctl, "cpu,cpuacct") == 0 || strcmp(ctl, "cpuacct,cpu") == 0 ||
                        strcmp(ctl, "cpuacct") == 0 || strcmp(ctl, "cpu") == 0;
            if (match) {
                memcpy(cgpath, p3, strlen(p3) + 1);
                if (which != CG_V2)
                    break;
            }
        }
        line += len + (eol != NULL);
    }
    const char *dir;
    char combined[PATH_MAX];
    if (strcmp(root, "/") == 0) {
        if (join(combined, sizeof combined, mnt, "", cgpath) < 0)
            goto done;
        dir = combined;
    } else if (strcmp(root, cgpath) == 0) {
        dir = mnt;
    } else {
        goto done;
    }
    if (join(out, size, prefix, "", dir) < 0)
        goto done;
    rc = 0;
done:
    buf_free(&mi);
    buf_free(&cg);
    return rc;
}

static long read_count(const char *dir, const char *file, long (*parse)(const char *))
{
    char path[PATH_MAX];
    struct buf b = {0};
    long n = -1;
    if (join(path, sizeof path, dir, "/", file) == 0 && read_file(path, &b) == 0)
        n = parse(b.p);
    buf_free(&b);
    return n;
}

static long parse_cpuset(const char *s) { return cpuset_count(s); }
static long parse_v2_quota(const char *s)
{
    const char *sp = strchr(s, ' ');
    return sp ? quota_cpus(s, sp + 1) : -1;
}

/*
 * The worker count: the smallest of the online CPUs, the v1 cpuset and CFS
 * quota, and the v2 cpuset and cpu.max, each counting as the online number
 * where it is absent.
 */
long cpu_count(const char *prefix, long online)
{
    long n = online, v;
    char dir[PATH_MAX];
    if (cgroup_dir(prefix, CG_CPUSET, dir, sizeof dir) == 0 &&
        (v = read_count(dir, "cpuset.effective_cpus", parse_cpuset)) >= 0 && v < n)
        n = v;
    if (cgroup_dir(prefix, CG_CPU, dir, sizeof dir) == 0) {
        char qp[PATH_MAX], pp[PATH_MAX];
        struct buf q = {0}, p = {0};
        if (join(qp, sizeof qp, dir, "/", "cpu.cfs_quota_us") == 0 && join(pp, sizeof pp, dir, "/", "cpu.cfs_period_us") == 0 &&
            read_file(qp, &q) == 0 && read_file(pp, &p) == 0 && (v = quota_cpus(q.p, p.p)) > 0 && v < n)
            n = v;
        buf_free(&q);
        buf_free(&p);
    }
    if (cgroup_dir(prefix, CG_V2, dir, sizeof dir) == 0) {
        if ((v = read_count(dir, "cpuset.cpus.effective", parse_cpuset)) >= 0 && v < n)
            n = v;
        if ((v = read_count(dir, "cpu.max", parse_v2_quota)) > 0 && v < n)
            n = v;
    }
    return n;
}

/* Does `text` have a line starting with `worker_processes` (after optional
 * blanks when `indented`)? */
static int has_worker_processes(const char *text, int indented)
{
    const char *p = text;
    while (p && *p) {
        const char *q = p;
        if (indented)
            while (*q == ' ' || *q == '\t')
                q++;
        if (strncmp(q, "worker_processes", 16) == 0)
            return 1;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

/* The official rewrite of a writable nginx.conf: each line starting with
 * `worker_processes` is commented out and followed by the tuned one.
 * Returns the number of lines rewritten, -1 when out of memory. */
int rewrite_worker_processes(const char *text, long n, struct buf *out)
{
    const char *p = text;
    int changed = 0;
    char line[64];
    snprintf(line, sizeof line, "worker_processes %ld;\n", n);
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        if (strncmp(p, "worker_processes", 16) == 0) {
            if (buf_puts(out, "# Commented out by 30-tune-worker-processes.sh\n#") < 0 || buf_put(out, p, len) < 0 ||
                (!eol && buf_put(out, "\n", 1) < 0) || buf_puts(out, line) < 0)
                return -1;
            changed++;
        } else if (buf_put(out, p, len) < 0) {
            return -1;
        }
        p += len;
    }
    return buf_put(out, "", 0) < 0 ? -1 : changed;
}

/* ---- the nginx command ------------------------------------------------------- */

struct cmd {
    char **argv;
    int argc;
    char *g_value; /* owned: the merged -g value, when changed */
};

/* The configuration file nginx will read: `-c FILE`, `-cFILE`, or the default. */
static const char *config_file(char **argv)
{
    const char *c = "/etc/nginx/nginx.conf";
    for (int i = 1; argv[i]; i++) {
        if (strcmp(argv[i], "-c") == 0 && argv[i + 1])
            c = argv[++i];
        else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2])
            c = argv[i] + 2;
        else if ((strcmp(argv[i], "-g") == 0 || strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "-e") == 0 ||
                  strcmp(argv[i], "-s") == 0) && argv[i + 1])
            i++;
    }
    return c;
}

/* Adds `directive` to the command's `-g` (nginx keeps only the last -g, so
 * an existing one is extended rather than repeated). */
static int add_global(struct cmd *c, const char *directive)
{
    for (int i = 1; i < c->argc; i++) {
        int split = strcmp(c->argv[i], "-g") == 0 && i + 1 < c->argc;
        int joined = strncmp(c->argv[i], "-g", 2) == 0 && c->argv[i][2] != '\0';
        if (!split && !joined) {
            if ((strcmp(c->argv[i], "-c") == 0 || strcmp(c->argv[i], "-p") == 0 || strcmp(c->argv[i], "-e") == 0 ||
                 strcmp(c->argv[i], "-s") == 0) && i + 1 < c->argc)
                i++;
            continue;
        }
        struct buf b = {0};
        if ((joined && buf_puts(&b, "-g") < 0) || buf_puts(&b, split ? c->argv[i + 1] : c->argv[i] + 2) < 0 ||
            buf_puts(&b, " ") < 0 || buf_puts(&b, directive) < 0)
            return -1;
        free(c->g_value);
        c->g_value = b.p;
        c->argv[split ? i + 1 : i] = b.p;
        return 0;
    }
    char **argv = malloc(sizeof *argv * (size_t)(c->argc + 3));
    if (argv == NULL)
        return -1;
    memcpy(argv, c->argv, sizeof *argv * (size_t)c->argc);
    argv[c->argc] = "-g";
    argv[c->argc + 1] = (char *)directive;
    c->argc += 2;
    argv[c->argc] = NULL;
    c->argv = argv;
    return 0;
}

/* Is `path` a file of the image's own (read-only) closure? The shipped
 * configuration is linked there, so a resolved path into /nix/store/ means
 * the user has not replaced it. */
static int shipped(const char *path)
{
    char *real = realpath(path, NULL);
    int yes = real != NULL && strncmp(real, "/nix/store/", 11) == 0;
    free(real);
    return yes;
}

/*
 * 30-tune-worker-processes, for a configuration that lives in the read-only
 * store: the shipped nginx.conf has no `worker_processes`, and the count
 * reaches nginx through `-g` (`auto` unless auto-tuning is asked, as the
 * official nginx.conf has it). A user's own writable configuration is edited
 * as the official script edits it.
 */
static int step_workers(struct cmd *c, const char *proc_prefix)
{
    static char directive[64];
    const char *conf = config_file(c->argv);
    int tune = getenv("NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE") && getenv("NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE")[0];
    if (shipped(conf)) {
        struct buf text = {0};
        int has = read_file(conf, &text) == 0 && has_worker_processes(text.p, 1);
        buf_free(&text);
        if (has)
            return 0;
        if (tune) {
            long online = sysconf(_SC_NPROCESSORS_ONLN);
            long n = cpu_count(proc_prefix, online > 0 ? online : 1);
            snprintf(directive, sizeof directive, "worker_processes %ld;", n);
            info("30-tune-worker-processes: %ld worker processes (from the CPU limit), passed with -g", n);
        } else {
            snprintf(directive, sizeof directive, "worker_processes auto;");
        }
        return add_global(c, directive);
    }
    if (!tune)
        return 0;
    struct buf text = {0}, out = {0};
    int rc = 0;
    char dir[PATH_MAX];
    const char *slash = strrchr(conf, '/');
    if (slash == NULL)
        strcpy(dir, ".");
    else if (slash == conf)
        strcpy(dir, "/");
    else if (snprintf(dir, sizeof dir, "%.*s", (int)(slash - conf), conf) >= (int)sizeof dir)
        return -1;
    if (access(conf, W_OK) < 0 || access(dir, W_OK) < 0) {
        err("can not modify %s (read-only file system?)", conf);
        return 0;
    }
    if (read_file(conf, &text) < 0) {
        err("cannot read %s: %s", conf, strerror(errno));
        return 0;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long n = cpu_count(proc_prefix, online > 0 ? online : 1);
    int changed = rewrite_worker_processes(text.p, n, &out);
    if (changed < 0) {
        rc = -1;
    } else if (changed > 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || write_atomic(dfd, slash ? slash + 1 : conf, out.p, out.len) < 0) {
            err("cannot write %s: %s", conf, strerror(errno));
            rc = -1;
        }
        if (dfd >= 0)
            close(dfd);
    }
    buf_free(&text);
    buf_free(&out);
    return rc;
}

/* 10-listen-on-ipv6-by-default, for the shipped default server. */
#define DEFAULT_CONF "/etc/nginx/conf.d/default.conf"
#define LISTEN_V4 "listen       8080;"
#define LISTEN_V6 "listen  [::]:8080;"

int add_ipv6_listen(const char *text, struct buf *out)
{
    const char *at = strstr(text, LISTEN_V4);
    if (at == NULL)
        return 1;
    size_t head = (size_t)(at - text) + strlen(LISTEN_V4);
    if (buf_put(out, text, head) < 0 || buf_puts(out, "\n    " LISTEN_V6) < 0 || buf_puts(out, text + head) < 0)
        return -1;
    return 0;
}

static void step_ipv6(void)
{
    const char *step = "10-listen-on-ipv6-by-default";
    if (access("/proc/net/if_inet6", F_OK) < 0) {
        info("%s: info: ipv6 not available", step);
        return;
    }
    struct stat st;
    if (stat(DEFAULT_CONF, &st) < 0 || !S_ISREG(st.st_mode)) {
        info("%s: info: " DEFAULT_CONF " is not a file or does not exist", step);
        return;
    }
    if (access("/etc/nginx/conf.d", W_OK) < 0) {
        info("%s: info: can not modify " DEFAULT_CONF " (read-only file system?)", step);
        return;
    }
    struct buf text = {0}, out = {0};
    if (read_file(DEFAULT_CONF, &text) < 0) {
        err("cannot read " DEFAULT_CONF ": %s", strerror(errno));
        return;
    }
    if (strstr(text.p, LISTEN_V6)) {
        info("%s: info: IPv6 listen already enabled", step);
    } else if (!shipped(DEFAULT_CONF)) {
        info("%s: info: " DEFAULT_CONF " differs from the packaged version", step);
    } else if (add_ipv6_listen(text.p, &out) != 0) {
        info("%s: info: " DEFAULT_CONF " differs from the packaged version", step);
    } else {
        int dfd = open("/etc/nginx/conf.d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0 && write_atomic(dfd, "default.conf", out.p, out.len) == 0)
            info("%s: info: Enabled listen on IPv6 in " DEFAULT_CONF, step);
        else
            info("%s: info: can not modify " DEFAULT_CONF ": %s", step, strerror(errno));
        if (dfd >= 0)
            close(dfd);
    }
    buf_free(&text);
    buf_free(&out);
}

__attribute__((unused)) static int nginx_main(int argc, char **argv)
{
    struct cmd c = {.argv = argv + 1, .argc = argc - 1};
    if (c.argc == 0)
        return 0; /* `exec` with no command does nothing */
    if (strcmp(c.argv[0], "nginx") == 0 || strcmp(c.argv[0], "nginx-debug") == 0) {
        info("/docker-entrypoint.d/ is not empty, will attempt to perform configuration");
        step_ipv6();
        /* 15-local-resolvers: visible to the templates, not exported to
         * nginx (the official script sets it in the subshell that runs the
         * steps) */
        char *saved = getenv("NGINX_LOCAL_RESOLVERS");
        saved = saved ? strdup(saved) : NULL;
        const char *lr = getenv("NGINX_ENTRYPOINT_LOCAL_RESOLVERS");
        if (lr && lr[0]) {
            struct buf conf = {0}, list = {0};
            if (read_file("/etc/resolv.conf", &conf) == 0 && local_resolvers(conf.p, &list) == 0)
                setenv("NGINX_LOCAL_RESOLVERS", list.p, 1);
            else
                err("cannot read /etc/resolv.conf: %s", strerror(errno));
            buf_free(&conf);
            buf_free(&list);
        }
        int bad = step_envsubst() < 0;
        if (saved) {
            setenv("NGINX_LOCAL_RESOLVERS", saved, 1);
            free(saved);
        } else {
            unsetenv("NGINX_LOCAL_RESOLVERS");
        }
        if (bad || step_workers(&c, "") < 0) {
            err("configuration failed");
            return 1;
        }
        info("Configuration complete; ready for start up");
    }
    execvp(c.argv[0], c.argv);
    err("cannot run %s: %s", c.argv[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

/* ---- redis ------------------------------------------------------------------ */

#define REDIS_MODULES "/usr/local/lib/redis/modules/"

/* `--opt …` or `x.conf …` → `redis-server --opt …`. Returns a new argv
 * (argv itself when nothing changes). */
char **redis_args(int argc, char **argv)
{
    if (argc < 1 || !(argv[0][0] == '-' || ends_with(argv[0], ".conf")))
        return argv;
    char **out = malloc(sizeof *out * (size_t)(argc + 2));
    if (out == NULL)
        return NULL;
    out[0] = "redis-server";
    memcpy(out + 1, argv, sizeof *out * (size_t)argc);
    out[argc + 1] = NULL;
    return out;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

__attribute__((unused)) static int redis_main(int argc, char **argv)
{
    me = "docker-entrypoint.sh";
    argc--, argv++;
    if (argc == 0)
        return 0;
    char **args = redis_args(argc, argv);
    if (args == NULL) {
        err("out of memory");
        return 1;
    }
    if (args != argv)
        argc++;
    mode_t um = umask(0);
    umask(um == 022 ? 077 : um);
    if (strcmp(args[0], "redis-server") == 0) {
        puts("Starting Redis Server");
        DIR *d = opendir(REDIS_MODULES);
        if (d == NULL) {
            printf("Warning: Default Redis modules directory %s does not exist.\n", REDIS_MODULES);
        } else {
            /* the shell glob sorts names; collect, sort, then append */
            struct dirent *e;
            char **mods = NULL;
            size_t n = 0;
            while ((e = readdir(d)) != NULL) {
                if (!ends_with(e->d_name, ".so"))
                    continue;
                char **m = realloc(mods, sizeof *m * (n + 1));
                char *path = malloc(strlen(REDIS_MODULES) + strlen(e->d_name) + 1);
                if (m == NULL || path == NULL)
                    return 1;
                mods = m;
                strcpy(path, REDIS_MODULES);
                strcat(path, e->d_name);
                mods[n++] = path;
            }
            closedir(d);
            qsort(mods, n, sizeof *mods, by_name);
            for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (stat(mods[i], &st) < 0 || st.st_size == 0) {
                    printf("Skipping module %s: file has no size.\n", mods[i]);
                } else if (S_ISDIR(st.st_mode)) {
                    printf("Skipping module %s: is a directory.\n", mods[i]);
                } else if (access(mods[i], R_OK) < 0) {
                    printf("Skipping module %s: file is not readable.\n", mods[i]);
                } else if (access(mods[i], X_OK) < 0) {
                    printf("Warning: Module %s is not executable.\n", mods[i]);
                } else {
                    char **a = realloc(args == argv ? NULL : args, sizeof *a * (size_t)(argc + 3));
                    if (a == NULL)
                        return 1;
                    if (args == argv)
                        memcpy(a, argv, sizeof *a * (size_t)argc);
                    args = a;
                    args[argc++] = "--loadmodule";
                    args[argc++] = mods[i];
                    args[argc] = NULL;
                }
            }
        }
        fflush(stdout);
    }
    execvp(args[0], args);
    err("cannot run %s: %s", args[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

#ifndef ENTRYPOINT_NO_MAIN
int main(int argc, char **argv)
{
#if defined(ENTRYPOINT_NGINX)
    return nginx_main(argc, argv);
#elif defined(ENTRYPOINT_REDIS)
    return redis_main(argc, argv);
#else
#error "build with -DENTRYPOINT_NGINX or -DENTRYPOINT_REDIS"
#endif
}
#endif
