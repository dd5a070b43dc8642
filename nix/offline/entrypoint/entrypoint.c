/*
 * The official nginx and redis images' entrypoint behaviour, without a shell.
 *
 * Built twice from this file (see ../pkgs/entrypoint.nix):
 *   -DENTRYPOINT_NGINX  the official nginx image's walk of
 *                       /docker-entrypoint.d in `sort -V` order: its own
 *                       steps (IPv6 listen default, local resolvers, envsubst
 *                       of http and stream templates, worker auto-tuning)
 *                       where the image's marker files name them, a user's
 *                       programs started and waited for; then exec of the
 *                       command;
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
#include <sys/wait.h>
#include <time.h>
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

/* Errors and warnings are printed even with quiet logs, on stderr. */
static void complain(const char *level, const char *fmt, va_list ap)
{
    fputs(me, stderr);
    fputs(level, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    complain(": error: ", fmt, ap);
    va_end(ap);
}

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    complain(": warning: ", fmt, ap);
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

/* A directory walk's visitor: `file` is called for each regular file (after
 * symlinks) with its path, its directory relative to the walk's start and
 * its name. */
struct walker {
    void (*file)(struct walker *w, const char *path, const char *rel_dir, const char *name);
    int failed;
};

struct tpl {
    struct walker w; /* first: the visitor casts back */
    const char *template_dir, *suffix, *output_dir;
    const char *const *vars;
    int found;
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
        t->w.failed = 1;
        return;
    }
    info("Running envsubst on %s to %s", path, shown);
    struct buf in = {0}, out = {0};
    if (read_file(path, &in) < 0) {
        err("cannot read %s: %s", path, strerror(errno));
        t->w.failed = 1;
        goto done;
    }
    if (envsubst(in.p, in.len, t->vars, &out) < 0 || buf_put(&out, "", 0) < 0) {
        err("out of memory substituting %s", path);
        t->w.failed = 1;
        goto done;
    }
    int dfd = open_output_subdir(t->output_dir, rel_dir);
    if (dfd < 0) {
        err("cannot open the directory of %s: %s%s", shown, strerror(errno),
            errno == ELOOP ? " (a symlink below the output directory is not followed)" : "");
        t->w.failed = 1;
        goto done;
    }
    if (write_atomic(dfd, out_name, out.p, out.len) < 0) {
        err("cannot write %s: %s", shown, strerror(errno));
        t->w.failed = 1;
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

/* `find DIR -follow -type f`: symlinks are followed, a directory loop is
 * skipped. */
static void walk(struct walker *t, const char *dir, const char *rel, struct ancestor *anc, int depth)
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
        } else if (S_ISREG(st.st_mode)) {
            t->file(t, path, rel, e->d_name);
        }
    }
    closedir(d);
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : fallback;
}

/* Walks `dir` (a directory, after symlinks) with `w`; -1 when it is not one. */
static int walk_tree(struct walker *w, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return -1;
    struct ancestor anc[MAX_DEPTH + 1];
    anc[0].dev = st.st_dev;
    anc[0].ino = st.st_ino;
    walk(w, dir, "", anc, 0);
    return 0;
}

/* A template visitor: renders each file named `*SUFFIX`, or with `vars`
 * NULL only counts them. */
static void template_file(struct walker *w, const char *path, const char *rel_dir, const char *name)
{
    struct tpl *t = (struct tpl *)w;
    if (!ends_with(name, t->suffix))
        return;
    t->found++;
    if (t->vars == NULL)
        return;
    if (strlen(name) == strlen(t->suffix)) {
        err("%s: the name is only the suffix, nothing to write", path);
        return;
    }
    render(t, path, rel_dir, name);
}

/*
 * Does nginx.conf text have a stream block, as the official step asks
 * `grep -E "\s*stream\s*\{"`: `stream`, blanks, `{` on one line, anywhere
 * (so a commented-out block counts too, as it does there).
 */
int has_stream_block(const char *text)
{
    for (const char *p = strstr(text, "stream"); p; p = strstr(p + 1, "stream")) {
        const char *q = p + 6;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\f' || *q == '\v')
            q++;
        if (*q == '{')
            return 1;
    }
    return 0;
}

/* `mkdir -p`: -1 with errno set when a component cannot be made. */
static int mkdir_p(const char *path)
{
    char p[PATH_MAX];
    if (join(p, sizeof p, path, "", "") < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) < 0 && errno != EEXIST)
            return -1;
        *s = c;
        if (c == '\0')
            return 0;
    }
}

#define NGINX_CONF "/etc/nginx/nginx.conf"

/* The command the entrypoint will exec, as the steps adjust it. */
struct cmd {
    char **argv;
    int argc;
    char *g_value;    /* owned: the merged -g value, when changed */
    int workers_set;  /* a worker_processes went into -g */
};

static int add_global(struct cmd *c, const char *directive);
static int shipped(const char *path);
static const char *config_file(char **argv);

/* Where the stream block goes when nginx.conf is the image's own: beside the
 * rendered files, under a name their `*.conf` include does not match. */
#define STREAM_BLOCK_FILE ".stream-block"

/*
 * The image's own nginx.conf is a link into the read-only store, so the
 * official append can never happen there, and nginx's `-g` refuses block
 * directives ("block directives are not supported in -g option"). The same
 * block is written to a file in the (writable) stream output directory
 * instead, and `-g` includes that file in the main context, which nginx
 * accepts. Returns 0 on success, -1 otherwise (errno set).
 */
static int include_stream_block(struct cmd *c, const char *stream_output_dir)
{
    struct buf block = {0}, directive = {0};
    int ok = buf_puts(&block, "stream {\n  include ") == 0 && buf_puts(&block, stream_output_dir) == 0 &&
             buf_puts(&block, "/*.conf;\n}\n") == 0 && buf_puts(&directive, "include ") == 0 &&
             buf_puts(&directive, stream_output_dir) == 0 && buf_puts(&directive, "/" STREAM_BLOCK_FILE ";") == 0;
    int dfd = ok ? open(stream_output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    ok = dfd >= 0 && write_atomic(dfd, STREAM_BLOCK_FILE, block.p, block.len) == 0 &&
         add_global(c, directive.p) == 0;
    if (dfd >= 0)
        close(dfd);
    buf_free(&block);
    /* add_global keeps the directive when it appends a new -g: never freed,
     * the process execs next */
    if (!ok)
        buf_free(&directive);
    return ok ? 0 : -1;
}

/*
 * The official step's stream block for nginx.conf: when the file has one it
 * only says where to include the rendered files; otherwise it appends one
 * if it can. The image's own nginx.conf (a link into the store) never can
 * be appended to, so for it the block is included through `-g` instead
 * (include_stream_block); a read-only configuration of the user's own gives
 * up on stream templates, as the official step does. Returns 1 to go on and
 * render, 0 to stop, -1 when writing the block failed.
 */
static int add_stream_block(struct cmd *c, const char *stream_output_dir)
{
    struct buf text = {0};
    int has = read_file(NGINX_CONF, &text) == 0 && has_stream_block(text.p);
    buf_free(&text);
    if (has) {
        info("%s contains a stream block; include %s/*.conf to enable stream templates", NGINX_CONF, stream_output_dir);
        return 1;
    }
    /* appended in place, as `>>` does, so a bind-mounted file works too */
    int fd = open(NGINX_CONF, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0 && shipped(NGINX_CONF) && strcmp(config_file(c->argv), NGINX_CONF) == 0) {
        if (include_stream_block(c, stream_output_dir) < 0) {
            err("cannot write %s/" STREAM_BLOCK_FILE ": %s", stream_output_dir, strerror(errno));
            return -1;
        }
        info("%s is read-only; including %s/*.conf through -g 'include %s/" STREAM_BLOCK_FILE ";'", NGINX_CONF,
             stream_output_dir, stream_output_dir);
        return 1;
    }
    if (fd < 0) {
        info("info: can not modify %s (read-only file system?)", NGINX_CONF);
        return 0;
    }
    info("Appending stream block to %s to include %s/*.conf", NGINX_CONF, stream_output_dir);
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm) == NULL || strftime(when, sizeof when, "%a %b %e %H:%M:%S %Z %Y", &tm) == 0)
        when[0] = '\0';
    struct buf block = {0};
    int ok = buf_puts(&block, "# added by \"") == 0 && buf_puts(&block, me) == 0 && buf_puts(&block, "\" on \"") == 0 &&
             buf_puts(&block, when) == 0 && buf_puts(&block, "\"\nstream {\n  include ") == 0 &&
             buf_puts(&block, stream_output_dir) == 0 && buf_puts(&block, "/*.conf;\n}\n") == 0;
    for (size_t off = 0; ok && off < block.len;) {
        ssize_t n = write(fd, block.p + off, block.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        ok = n > 0;
        off += n > 0 ? (size_t)n : 0;
    }
    if (!ok)
        err("cannot append to %s: %s", NGINX_CONF, strerror(errno));
    close(fd);
    buf_free(&block);
    return ok ? 1 : -1;
}

/*
 * 20-envsubst-on-templates: the http templates (`*SUFFIX`) into the output
 * directory, then, when any `*STREAM_SUFFIX` exists, the stream templates
 * into the stream output directory. The two passes tell them apart by
 * suffix alone, as the official step does (`x.stream-template` does not end
 * in `.template`). Returns -1 when a template could not be written or the
 * stream output directory could not be made (the official `mkdir -p` under
 * `set -e`).
 */
static int step_envsubst(struct cmd *c)
{
    struct tpl t = {
        .w = {.file = template_file},
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
    walk_tree(&t.w, t.template_dir);

    struct tpl s = {
        .w = {.file = template_file},
        .template_dir = t.template_dir,
        .suffix = env_or("NGINX_ENVSUBST_STREAM_TEMPLATE_SUFFIX", ".stream-template"),
        .output_dir = env_or("NGINX_ENVSUBST_STREAM_OUTPUT_DIR", "/etc/nginx/stream-conf.d"),
    };
    walk_tree(&s.w, s.template_dir);
    if (s.found > 0) {
        if (mkdir_p(s.output_dir) < 0) {
            err("cannot create %s: %s", s.output_dir, strerror(errno));
            s.w.failed = 1;
        } else if (access(s.output_dir, W_OK) < 0) {
            info("ERROR: %s exists, but %s is not writable", s.template_dir, s.output_dir);
        } else {
            int go = add_stream_block(c, s.output_dir);
            s.w.failed = go < 0;
            if (go > 0) {
                s.vars = vars;
                walk_tree(&s.w, s.template_dir);
            }
        }
    }
    free(vars);
    return t.w.failed || s.w.failed ? -1 : 0;
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
 * as the official script edits it. Called as the step (`tune` from the
 * environment) and once more after the steps with `tune` 0, so the shipped
 * file gets its `auto` even when a mounted /docker-entrypoint.d leaves the
 * step out, as the official nginx.conf carries `auto` itself.
 */
static int step_workers(struct cmd *c, const char *proc_prefix, int tune)
{
    static char directive[64];
    const char *conf = config_file(c->argv);
    if (shipped(conf)) {
        struct buf text = {0};
        int has = read_file(conf, &text) == 0 && has_worker_processes(text.p, 1);
        buf_free(&text);
        if (has || c->workers_set)
            return 0;
        c->workers_set = 1;
        if (tune) {
            long online = sysconf(_SC_NPROCESSORS_ONLN);
            long n = cpu_count(proc_prefix, online > 0 ? online : 1);
            snprintf(directive, sizeof directive, "worker_processes %ld;", n);
            info("%ld worker processes (from the CPU limit), passed with -g", n);
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
    if (access("/proc/net/if_inet6", F_OK) < 0) {
        info("info: ipv6 not available");
        return;
    }
    struct stat st;
    if (stat(DEFAULT_CONF, &st) < 0 || !S_ISREG(st.st_mode)) {
        info("info: " DEFAULT_CONF " is not a file or does not exist");
        return;
    }
    if (access("/etc/nginx/conf.d", W_OK) < 0) {
        info("info: can not modify " DEFAULT_CONF " (read-only file system?)");
        return;
    }
    struct buf text = {0}, out = {0};
    if (read_file(DEFAULT_CONF, &text) < 0) {
        err("cannot read " DEFAULT_CONF ": %s", strerror(errno));
        return;
    }
    if (strstr(text.p, LISTEN_V6)) {
        info("info: IPv6 listen already enabled");
    } else if (!shipped(DEFAULT_CONF)) {
        info("info: " DEFAULT_CONF " differs from the packaged version");
    } else if (add_ipv6_listen(text.p, &out) != 0) {
        info("info: " DEFAULT_CONF " differs from the packaged version");
    } else {
        int dfd = open("/etc/nginx/conf.d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0 && write_atomic(dfd, "default.conf", out.p, out.len) == 0)
            info("info: Enabled listen on IPv6 in " DEFAULT_CONF);
        else
            info("info: can not modify " DEFAULT_CONF ": %s", strerror(errno));
        if (dfd >= 0)
            close(dfd);
    }
    buf_free(&text);
    buf_free(&out);
}

/* ---- /docker-entrypoint.d -------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

/* A non-digit's rank in a version comparison: `~` before the end of a part,
 * the end (and a digit) before letters, letters before anything else. */
static int ver_rank(const char *s, size_t i, size_t n)
{
    if (i >= n || is_digit(s[i]))
        return 0;
    unsigned char c = (unsigned char)s[i];
    if (c == '~')
        return -1;
    return is_alpha((char)c) ? c : c + 256;
}

/* Debian's version order over s[0..sn) and t[0..tn): alternate runs of
 * non-digits, compared by rank, and digits, compared as numbers. */
static int ver_cmp_n(const char *s, size_t sn, const char *t, size_t tn)
{
    size_t i = 0, j = 0;
    while (i < sn || j < tn) {
        while ((i < sn && !is_digit(s[i])) || (j < tn && !is_digit(t[j]))) {
            int a = ver_rank(s, i, sn), b = ver_rank(t, j, tn);
            if (a != b)
                return a < b ? -1 : 1;
            i++, j++;
        }
        while (i < sn && s[i] == '0')
            i++;
        while (j < tn && t[j] == '0')
            j++;
        int first = 0;
        for (; i < sn && j < tn && is_digit(s[i]) && is_digit(t[j]); i++, j++)
            if (first == 0)
                first = s[i] - t[j];
        if (i < sn && is_digit(s[i]))
            return 1;
        if (j < tn && is_digit(t[j]))
            return -1;
        if (first != 0)
            return first < 0 ? -1 : 1;
    }
    return 0;
}

/* Where a trailing file suffix starts: the longest tail made of parts
 * `.` letter-or-`~` then letters, digits or `~` (`.tar.gz`, `.sh`). */
static size_t suffix_start(const char *s, size_t n)
{
    size_t chain = n, i = 0;
    int in_chain = 0;
    while (i < n) {
        if (s[i] == '.' && i + 1 < n && (is_alpha(s[i + 1]) || s[i + 1] == '~')) {
            if (!in_chain)
                chain = i;
            in_chain = 1;
            for (i += 2; i < n && (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '~'); i++)
                ;
        } else {
            in_chain = 0;
            i++;
        }
    }
    return in_chain ? chain : n;
}

/*
 * `sort -V` (GNU filevercmp) for the absolute paths find prints: the names
 * without their suffixes first, then whole, in version order; bytes break a
 * tie. (filevercmp's rules for names starting with a dot never apply to an
 * absolute path.)
 */
int version_cmp(const char *a, const char *b)
{
    size_t an = strlen(a), bn = strlen(b);
    int r = ver_cmp_n(a, suffix_start(a, an), b, suffix_start(b, bn));
    if (r == 0)
        r = ver_cmp_n(a, an, b, bn);
    return r != 0 ? r : strcmp(a, b);
}

static int by_version(const void *a, const void *b)
{
    return version_cmp(*(char *const *)a, *(char *const *)b);
}

#define STEPS_DIR "/docker-entrypoint.d/"

/*
 * The official steps this program does itself. The image ships them in
 * /docker-entrypoint.d as small read-only marker files under the official
 * names (../pkgs/entrypoint.nix), so they keep their place in the version
 * order among a user's own scripts, and a user who mounts their own
 * directory leaves them out, as in the official image. A marker is known by
 * its first line, so a copy of it in a mounted directory works too.
 */
enum step { STEP_NONE, STEP_IPV6, STEP_RESOLVERS, STEP_ENVSUBST, STEP_WORKERS };
static const char *const step_names[] = {
    [STEP_IPV6] = "10-listen-on-ipv6-by-default.sh",
    [STEP_RESOLVERS] = "15-local-resolvers.envsh",
    [STEP_ENVSUBST] = "20-envsubst-on-templates.sh",
    [STEP_WORKERS] = "30-tune-worker-processes.sh",
};
#define STEP_MARK "# armorred built-in step: "

/* The step a marker file's text starts with, or STEP_NONE. */
int builtin_step(const char *head)
{
    size_t m = strlen(STEP_MARK);
    if (strncmp(head, STEP_MARK, m) != 0)
        return STEP_NONE;
    for (int i = STEP_IPV6; i <= STEP_WORKERS; i++) {
        size_t n = strlen(step_names[i]);
        if (strncmp(head + m, step_names[i], n) == 0 && (head[m + n] == '\n' || head[m + n] == '\0'))
            return i;
    }
    return STEP_NONE;
}

static int step_of_file(const char *path)
{
    char head[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return STEP_NONE;
    ssize_t n = read(fd, head, sizeof head - 1);
    close(fd);
    head[n > 0 ? n : 0] = '\0';
    return builtin_step(head);
}

/* Is there a regular file right in `dir`? As `find DIR -mindepth 1
 * -maxdepth 1 -type f`, a symlink does not count. */
static int has_top_level_file(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    struct stat st;
    int yes = 0;
    while (!yes && (e = readdir(d)) != NULL)
        yes = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
              fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    closedir(d);
    return yes;
}

struct paths {
    struct walker w; /* first: the visitor casts back */
    char **v;
    size_t n;
};

static void collect_path(struct walker *w, const char *path, const char *rel_dir, const char *name)
{
    (void)rel_dir, (void)name;
    struct paths *p = (struct paths *)w;
    char **v = realloc(p->v, sizeof *v * (p->n + 1));
    if (v != NULL)
        p->v = v;
    char *copy = v != NULL ? strdup(path) : NULL;
    if (copy == NULL) {
        err("out of memory listing %s", path);
        w->failed = 1;
        return;
    }
    p->v[p->n++] = copy;
}

/* A user's script, run as the official entrypoint runs `"$f"`: its exit
 * status, 126 or 127 when it cannot be started (as a shell reports). */
static int run_program(const char *path)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        err("cannot start %s: %s", path, strerror(errno));
        return 1;
    }
    if (pid == 0) {
        char *argv[] = {(char *)path, NULL};
        execv(path, argv);
        int e = errno;
        err("cannot run %s: %s; this image has no shell (/bin/sh), so a script here must be a program or start with "
            "#! and an interpreter the image has",
            path, strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            err("cannot wait for %s: %s", path, strerror(errno));
            return 1;
        }
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

/* 15-local-resolvers: NGINX_LOCAL_RESOLVERS for the templates. */
static void step_resolvers(void)
{
    const char *lr = getenv("NGINX_ENTRYPOINT_LOCAL_RESOLVERS");
    if (lr == NULL || lr[0] == '\0')
        return;
    struct buf conf = {0}, list = {0};
    if (read_file("/etc/resolv.conf", &conf) == 0 && local_resolvers(conf.p, &list) == 0)
        setenv("NGINX_LOCAL_RESOLVERS", list.p, 1);
    else
        err("cannot read /etc/resolv.conf: %s", strerror(errno));
    buf_free(&conf);
    buf_free(&list);
}

/* A built-in step, logging under the file's name as the official script's
 * `$ME` does. Non-zero when it failed. */
static int run_step(struct cmd *c, enum step step, const char *path)
{
    const char *saved = me;
    me = strrchr(path, '/') + 1;
    int bad = 0;
    switch (step) {
    case STEP_IPV6:
        step_ipv6();
        break;
    case STEP_RESOLVERS:
        step_resolvers();
        break;
    case STEP_ENVSUBST:
        bad = step_envsubst(c) < 0;
        break;
    case STEP_WORKERS: {
        const char *tune = getenv("NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE");
        bad = step_workers(c, "", tune != NULL && tune[0] != '\0') < 0;
        break;
    }
    case STEP_NONE:
        break;
    }
    me = saved;
    if (bad)
        err("%s failed", path);
    return bad;
}

/* One file of /docker-entrypoint.d, as the official loop treats it. A
 * non-zero result stops the entrypoint with that status (`set -e`). */
static int run_entry(struct cmd *c, const char *path)
{
    int envsh = ends_with(path, ".envsh");
    if (!envsh && !ends_with(path, ".sh")) {
        info("Ignoring %s", path);
        return 0;
    }
    if (access(path, X_OK) < 0) {
        info("Ignoring %s, not executable", path);
        return 0;
    }
    if (envsh)
        info("Sourcing %s", path);
    else
        info("Launching %s", path);
    enum step step = step_of_file(path);
    if (step != STEP_NONE)
        return run_step(c, step, path);
    if (envsh) {
        /* sourcing needs the shell the image does not have */
        warn("%s was not sourced: this image has no shell (/bin/sh), so the variables it sets are not set", path);
        return 0;
    }
    int rc = run_program(path);
    if (rc != 0)
        err("%s failed (status %d); stopping, as the official entrypoint does", path, rc);
    return rc;
}

/* The official entrypoint's walk of /docker-entrypoint.d; non-zero stops. */
static int run_steps(struct cmd *c)
{
    if (!has_top_level_file(STEPS_DIR)) {
        info("No files found in " STEPS_DIR ", skipping configuration");
        return 0;
    }
    info(STEPS_DIR " is not empty, will attempt to perform configuration");
    info("Looking for shell scripts in " STEPS_DIR);
    struct paths p = {.w = {.file = collect_path}};
    walk_tree(&p.w, "/docker-entrypoint.d");
    /* a file left out could be a script the start depends on */
    if (p.w.failed) {
        err("cannot list every file of " STEPS_DIR " (see above); stopping");
        return 1;
    }
    qsort(p.v, p.n, sizeof *p.v, by_version);
    /* NGINX_LOCAL_RESOLVERS reaches the steps, not nginx (the official
     * script sets it in the subshell that runs the steps) */
    char *saved = getenv("NGINX_LOCAL_RESOLVERS");
    saved = saved ? strdup(saved) : NULL;
    int rc = 0;
    for (size_t i = 0; i < p.n; i++) {
        if (rc == 0)
            rc = run_entry(c, p.v[i]);
        free(p.v[i]);
    }
    free(p.v);
    if (saved) {
        setenv("NGINX_LOCAL_RESOLVERS", saved, 1);
        free(saved);
    } else {
        unsetenv("NGINX_LOCAL_RESOLVERS");
    }
    if (rc == 0)
        info("Configuration complete; ready for start up");
    return rc;
}

__attribute__((unused)) static int nginx_main(int argc, char **argv)
{
    struct cmd c = {.argv = argv + 1, .argc = argc - 1};
    if (c.argc == 0)
        return 0; /* `exec` with no command does nothing */
    if (strcmp(c.argv[0], "nginx") == 0 || strcmp(c.argv[0], "nginx-debug") == 0) {
        int rc = run_steps(&c);
        if (rc != 0)
            return rc;
        if (step_workers(&c, "", 0) < 0) {
            err("out of memory");
            return 1;
        }
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
