/* armorred example: a tiny program built through mkHardened. It makes an
 * indirect call (checked by CFI in CFI tiers) and prints a greeting. */
#include <stdio.h>
#include <string.h>

typedef int (*greeter_fn)(const char *who);

static int greet(const char *who) {
    char buf[64];
    /* fortified copy (FORTIFY_SOURCE=3 checks the destination size) */
    strncpy(buf, who, sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    return printf("hello, %s, from armorred\n", buf) < 0;
}

static int quiet(const char *who) {
    (void)who;
    return puts("armorred") < 0;
}

int main(int argc, char **argv) {
#ifdef NO_GREETING /* the "greeting" feature was dropped */
    greeter_fn fn = quiet;
    (void)greet;
#else
    greeter_fn fn = greet;
    (void)quiet;
#endif
    return fn(argc > 1 ? argv[1] : "world");
}
