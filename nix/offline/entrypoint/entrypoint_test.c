/*
 * Unit tests of entrypoint.c's logic, run in the derivation's build (see
 * ../pkgs/entrypoint.nix): envsubst as GNU envsubst with a list of defined
 * names, the CPU count from a fake /proc and cgroup tree (v1 and v2), the
 * resolv.conf parsing, the nginx.conf and default.conf edits, the -g merge,
 * the stream block detection, the `sort -V` order and the built-in step
 * markers of /docker-entrypoint.d, redis' argument rule, and the refusal to
 * write through a symlink.
 */
#define ENTRYPOINT_NO_MAIN
#include "entrypoint.c"

static int failures, checks;

#define CHECK(cond, ...)                                                                                                   \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

static void subst_is(const char *in, const char *want)
{
    static const char *const vars[] = {"HOST=example.org", "PORT=8181", "EMPTY=", "A=1", NULL};
    struct buf out = {0};
    int rc = envsubst(in, strlen(in), vars, &out);
    CHECK(rc == 0 && strcmp(out.p ? out.p : "", want) == 0, "envsubst(%s) = [%s], want [%s]", in, out.p ? out.p : "", want);
    buf_free(&out);
}

static void test_envsubst(void)
{
    subst_is("listen ${PORT};", "listen 8181;");
    subst_is("server_name $HOST;", "server_name example.org;");
    subst_is("${UNDEFINED} $UNDEFINED", "${UNDEFINED} $UNDEFINED");
    subst_is("$host $request_uri", "$host $request_uri");
    subst_is("[${EMPTY}][$EMPTY]", "[][]");
    subst_is("$HOSTNAME ${HOST}NAME", "$HOSTNAME example.orgNAME"); /* longest name */
    subst_is("${HOST", "${HOST");                                  /* no closing brace */
    subst_is("$ ${ } $$A $9 ${A}}", "$ ${ } $1 $9 1}");
    subst_is("end$", "end$");
    subst_is("$A$A${A}", "111");
    /* a long template and a long value: no fixed-size buffer */
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    memcpy(big + n - 7, "${PORT}", 7);
    big[n] = '\0';
    static const char *const vars[] = {"PORT=8181", NULL};
    struct buf out = {0};
    CHECK(envsubst(big, n, vars, &out) == 0 && out.len == n - 7 + 4 && strcmp(out.p + out.len - 4, "8181") == 0,
          "long template");
    buf_free(&out);
    free(big);
}

static void test_filter(void)
{
    setenv("NGINX_TEST_ONE", "1", 1);
    setenv("OTHER_TEST", "2", 1);
    setenv("NGINX_ENVSUBST_FILTER", "^NGINX_TEST", 1);
    const char **vars = defined_vars();
    CHECK(lookup(vars, "NGINX_TEST_ONE", 14) != NULL, "filter keeps NGINX_TEST_ONE");
    CHECK(lookup(vars, "OTHER_TEST", 10) == NULL, "filter drops OTHER_TEST");
    free(vars);
    unsetenv("NGINX_ENVSUBST_FILTER");
    vars = defined_vars();
    CHECK(lookup(vars, "OTHER_TEST", 10) != NULL, "no filter: every variable");
    free(vars);
}

static void test_resolvers(void)
{
    struct buf out = {0};
    local_resolvers("# comment\nsearch example\nnameserver 10.0.0.2\n  nameserver\t10.0.0.3 # x\noptions ndots:5\nnameserver ::1", &out);
    CHECK(strcmp(out.p, "10.0.0.2 10.0.0.3 ::1 ") == 0, "resolvers = [%s]", out.p);
    buf_free(&out);
}

static void put(const char *dir, const char *rel, const char *text)
{
    char path[PATH_MAX], cmd[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(cmd, sizeof cmd, "%s", path);
    for (char *s = strchr(cmd + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(cmd, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "create %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_cpus(const char *tmp)
{
    CHECK(cpuset_count("0-3,8,10-11\n") == 7, "cpuset list");
    CHECK(cpuset_count("0\n") == 1, "one cpu");
    CHECK(cpuset_count("x") == -1, "malformed cpuset");
    CHECK(quota_cpus("150000", "100000") == 2, "ceil(1.5) = 2");
    CHECK(quota_cpus("-1", "100000") == -1, "v1 no limit");
    CHECK(quota_cpus("max", "100000") == -1, "v2 no limit");
    CHECK(quota_cpus("100000", "0") == -1, "zero period");

    /* cgroup v2, as podman --cpus 1 sets it up (mount root `/`) */
    char v2[PATH_MAX];
    snprintf(v2, sizeof v2, "%s/v2", tmp);
    put(v2, "proc/self/mountinfo",
        "22 1 0:21 / / rw - overlay overlay rw\n"
        "30 22 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n");
    put(v2, "proc/self/cgroup", "0::/machine/ctr\n");
    put(v2, "sys/fs/cgroup/machine/ctr/cpu.max", "100000 100000\n");
    put(v2, "sys/fs/cgroup/machine/ctr/cpuset.cpus.effective", "0-7\n");
    CHECK(cpu_count(v2, 8) == 1, "v2 cpu.max 1 cpu: got %ld", cpu_count(v2, 8));
    put(v2, "sys/fs/cgroup/machine/ctr/cpu.max", "max 100000\n");
    CHECK(cpu_count(v2, 8) == 8, "v2 no quota: online");
    put(v2, "sys/fs/cgroup/machine/ctr/cpuset.cpus.effective", "2-3\n");
    CHECK(cpu_count(v2, 8) == 2, "v2 cpuset 2-3: got %ld", cpu_count(v2, 8));
    CHECK(cpu_count(v2, 1) == 1, "online is a bound");

    /* cgroup v2 in a cgroup namespace: the mount's root is the process's path */
    char ns[PATH_MAX];
    snprintf(ns, sizeof ns, "%s/ns", tmp);
    put(ns, "proc/self/mountinfo", "30 22 0:26 /machine/ctr /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    put(ns, "proc/self/cgroup", "0::/machine/ctr\n");
    put(ns, "sys/fs/cgroup/cpu.max", "250000 100000\n");
    CHECK(cpu_count(ns, 8) == 3, "v2 namespace: got %ld", cpu_count(ns, 8));

    /* cgroup v1: cpu,cpuacct quota and cpuset */
    char v1[PATH_MAX];
    snprintf(v1, sizeof v1, "%s/v1", tmp);
    put(v1, "proc/self/mountinfo",
        "40 30 0:35 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
        "41 30 0:36 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n");
    put(v1, "proc/self/cgroup", "5:cpuset:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
    put(v1, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
    put(v1, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    put(v1, "sys/fs/cgroup/cpuset/docker/abc/cpuset.effective_cpus", "0-5\n");
    CHECK(cpu_count(v1, 16) == 3, "v1 quota 3: got %ld", cpu_count(v1, 16));
    put(v1, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    CHECK(cpu_count(v1, 16) == 6, "v1 cpuset 6: got %ld", cpu_count(v1, 16));

    /* nothing readable: the online count */
    char none[PATH_MAX];
    snprintf(none, sizeof none, "%s/none", tmp);
    CHECK(cpu_count(none, 4) == 4, "no cgroup files");
}

static void test_edits(void)
{
    struct buf out = {0};
    int n = rewrite_worker_processes("user x;\nworker_processes auto;\n  worker_processes 9;\n", 2, &out);
    CHECK(n == 1 && strstr(out.p, "#worker_processes auto;\nworker_processes 2;\n") && strstr(out.p, "  worker_processes 9;"),
          "rewrite: %d [%s]", n, out.p);
    buf_free(&out);
    CHECK(has_worker_processes("events {}\n  worker_processes 1;\n", 1) && !has_worker_processes("events {}\n", 1),
          "worker_processes detection");

    n = add_ipv6_listen("server {\n    listen       8080;\n}\n", &out);
    CHECK(n == 0 && strcmp(out.p, "server {\n    listen       8080;\n    listen  [::]:8080;\n}\n") == 0, "ipv6: [%s]", out.p);
    buf_free(&out);
    CHECK(add_ipv6_listen("server { listen 9090; }", &out) == 1, "ipv6: a changed file is left alone");
    buf_free(&out);
}

static void test_global(void)
{
    char *a1[] = {"nginx", "-g", "daemon off;", NULL};
    struct cmd c = {.argv = a1, .argc = 3};
    CHECK(add_global(&c, "worker_processes 1;") == 0 && c.argc == 3 && strcmp(c.argv[2], "daemon off; worker_processes 1;") == 0,
          "-g merged: %s", c.argv[2]);
    char *a2[] = {"nginx", "-T", NULL};
    struct cmd d = {.argv = a2, .argc = 2};
    CHECK(add_global(&d, "worker_processes auto;") == 0 && d.argc == 4 && strcmp(d.argv[2], "-g") == 0 &&
              d.argv[4] == NULL,
          "-g added");
    char *a3[] = {"nginx", "-c", "-g", "-gdaemon off;", NULL};
    struct cmd e = {.argv = a3, .argc = 4};
    CHECK(add_global(&e, "x;") == 0 && strcmp(e.argv[2], "-g") == 0 && strcmp(e.argv[3], "-gdaemon off; x;") == 0,
          "-c's argument is not a -g; -gVALUE merged: %s", e.argv[3]);
    char *a4[] = {"nginx", "-c", "/tmp/my.conf", NULL};
    CHECK(strcmp(config_file(a4), "/tmp/my.conf") == 0, "-c FILE");
}

static void test_stream_block(void)
{
    CHECK(has_stream_block("events {}\nstream {\n  server { listen 1; }\n}\n"), "stream {");
    CHECK(has_stream_block("stream{}"), "stream{");
    CHECK(has_stream_block("  stream \t {"), "blanks before {");
    /* grep's line-wise `\s*stream\s*\{` also matches these, so they count */
    CHECK(has_stream_block("# stream { include x; }"), "a commented-out block counts, as with grep");
    CHECK(has_stream_block("upstream{"), "`upstream{` contains `stream{`");
    CHECK(!has_stream_block("http {\n  upstream backend {\n  }\n}\n"), "upstream NAME { is not a stream block");
    CHECK(!has_stream_block("stream\n{\n}\n"), "grep reads one line at a time");
    CHECK(!has_stream_block("events {}\n"), "no stream");
}

/* `sort -V` of these paths, as GNU coreutils orders them */
static void test_version_order(void)
{
    const char *want[] = {
        "/docker-entrypoint.d/1-first.sh",
        "/docker-entrypoint.d/2-b.sh",
        "/docker-entrypoint.d/9.envsh",
        "/docker-entrypoint.d/10-listen-on-ipv6-by-default.sh",
        "/docker-entrypoint.d/15-local-resolvers.envsh",
        "/docker-entrypoint.d/20-envsubst-on-templates.sh",
        "/docker-entrypoint.d/25-user.sh",
        "/docker-entrypoint.d/30-tune-worker-processes.sh",
        "/docker-entrypoint.d/100-late.sh",
        "/docker-entrypoint.d/a.sh~", /* `~` before the end */
        "/docker-entrypoint.d/a.sh",
        "/docker-entrypoint.d/b01.sh", /* equal as versions: bytes decide */
        "/docker-entrypoint.d/b1.sh",
        "/docker-entrypoint.d/b2.sh",
        "/docker-entrypoint.d/sub/1.sh",
    };
    size_t n = sizeof want / sizeof *want;
    const char *got[sizeof want / sizeof *want];
    for (size_t i = 0; i < n; i++)
        got[i] = want[(i * 7) % n]; /* 7 is prime to 15: a permutation */
    qsort(got, n, sizeof *got, by_version);
    for (size_t i = 0; i < n; i++)
        CHECK(strcmp(got[i], want[i]) == 0, "sort -V [%zu] = %s, want %s", i, got[i], want[i]);
    CHECK(version_cmp("x-1.0~rc1", "x-1.0") < 0, "~ sorts before the end");
    CHECK(version_cmp("a.tar.gz", "a-1.tar.gz") < 0, "suffixes are compared last");
    CHECK(version_cmp("x", "x") == 0, "equal");
}

static void test_step_markers(void)
{
    CHECK(builtin_step("# armorred built-in step: 20-envsubst-on-templates.sh\n# more\n") == STEP_ENVSUBST, "envsubst");
    CHECK(builtin_step("# armorred built-in step: 15-local-resolvers.envsh") == STEP_RESOLVERS, "resolvers");
    CHECK(builtin_step("# armorred built-in step: 20-envsubst-on-templates.shx\n") == STEP_NONE, "a longer name");
    CHECK(builtin_step("#!/bin/sh\n# armorred built-in step: 10-listen-on-ipv6-by-default.sh\n") == STEP_NONE,
          "only the first line");
    CHECK(builtin_step("") == STEP_NONE, "empty file");

    /* the markers the image ships (./nginx-entrypoint.d): one per step, each
     * known as the step its name says, and executable as the official
     * scripts are, so the walk launches rather than ignores them */
    int seen = 0;
    for (int i = STEP_IPV6; i <= STEP_WORKERS; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "nginx-entrypoint.d/%s", step_names[i]);
        CHECK(step_of_file(path) == i && access(path, X_OK) == 0, "%s is the marker of its step", path);
        seen++;
    }
    DIR *d = opendir("nginx-entrypoint.d");
    struct dirent *e;
    int files = 0;
    while (d != NULL && (e = readdir(d)) != NULL)
        files += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    CHECK(files == seen, "nginx-entrypoint.d holds the %d markers and nothing else (%d files)", seen, files);
}

static void test_redis(void)
{
    char *a[] = {"--appendonly", "yes", NULL};
    char **r = redis_args(2, a);
    CHECK(r != a && strcmp(r[0], "redis-server") == 0 && strcmp(r[1], "--appendonly") == 0 && r[3] == NULL, "--opt");
    char *b[] = {"/etc/redis.conf", NULL};
    r = redis_args(1, b);
    CHECK(r != b && strcmp(r[0], "redis-server") == 0, "x.conf");
    char *c[] = {"redis-cli", "ping", NULL};
    CHECK(redis_args(2, c) == c, "other command unchanged");
    char *d[] = {"conf", NULL};
    CHECK(redis_args(1, d) == d, "no .conf suffix");
}

static void test_no_symlink_escape(const char *tmp)
{
    char out[PATH_MAX], outside[PATH_MAX], link[PATH_MAX];
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(outside, sizeof outside, "%s/outside", tmp);
    snprintf(link, sizeof link, "%s/out/sub", tmp);
    mkdir(out, 0755);
    mkdir(outside, 0755);
    CHECK(symlink(outside, link) == 0, "symlink");
    errno = 0;
    int fd = open_output_subdir(out, "sub");
    CHECK(fd < 0 && errno == ELOOP, "a symlinked subdirectory is refused (fd %d, %s)", fd, strerror(errno));
    fd = open_output_subdir(out, "../outside");
    CHECK(fd < 0, "`..` is refused");
    fd = open_output_subdir(out, "a/b");
    CHECK(fd >= 0, "subdirectories are created");
    if (fd >= 0) {
        CHECK(write_atomic(fd, "x.conf", "hello", 5) == 0, "atomic write");
        /* an existing symlink at the target name is replaced, not followed */
        char target[PATH_MAX], victim[PATH_MAX];
        snprintf(victim, sizeof victim, "%s/victim", outside);
        snprintf(target, sizeof target, "%s/a/b/y.conf", out);
        put(outside, "victim", "keep");
        CHECK(symlinkat(victim, fd, "y.conf") == 0, "symlink y.conf");
        CHECK(write_atomic(fd, "y.conf", "new", 3) == 0, "write over a symlink");
        struct buf v = {0};
        read_file(victim, &v);
        CHECK(strcmp(v.p, "keep") == 0, "the symlink's target is untouched");
        struct stat st;
        CHECK(lstat(target, &st) == 0 && S_ISREG(st.st_mode), "the symlink became a file");
        buf_free(&v);
        close(fd);
    }
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/entrypoint-test.XXXXXX", base && base[0] ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_envsubst();
    test_filter();
    test_resolvers();
    test_cpus(dir);
    test_edits();
    test_global();
    test_stream_block();
    test_version_order();
    test_step_markers();
    test_redis();
    test_no_symlink_escape(dir);
    printf("entrypoint unit tests: %d checks, %d failed\n", checks, failures);
    return failures != 0;
}
