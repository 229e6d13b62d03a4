/* test_layout.c - the layer rule of README.md (Layout): scripts/check-layers.py finds no lower
 * layer including or calling a higher one and no call circle in this tree and its objects
 * ($S2S_BUILD/obj), and does find each kind of violation in a small tree made to have them. */
#include "test_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int have_python(void) { return system("python3 -c 0 >/dev/null 2>&1") == 0; }

Test(layout, tree_follows_the_layer_table)
{
    if (!have_python())
        cr_skip_test("python3 not found");
    const char *build = getenv("S2S_BUILD") ? getenv("S2S_BUILD") : "build";
    char cmd[512], out[65536];
    snprintf(cmd, sizeof cmd, "python3 scripts/check-layers.py --objects %s/obj 2>&1", build);
    int rc = tu_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s\n%s", cmd, out);
    cr_assert(strstr(out, "0 problem(s)") && strstr(out, "calls of"), "%s", out);
}

static void put(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(text, f);
    fclose(f);
}

/* A four-layer tree: lib/ (core) under lib/data/ under lib/backend/, programs in apps/. */
Test(layout, violations_are_found)
{
    if (!have_python())
        cr_skip_test("python3 not found");
    char dir[] = "/tmp/s2s_layout_XXXXXX", cmd[1024], out[65536];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "mkdir -p %s/include %s/lib/data %s/lib/backend %s/apps %s/obj/lib/data %s/obj/lib/backend",
             dir, dir, dir, dir, dir, dir);
    cr_assert_eq(system(cmd), 0);
    put(dir, "README.md",
        "<!-- layers -->\n| layer | folders | may use | what |\n| --- | --- | --- | --- |\n"
        "| 0 | `include/` | nothing | api |\n| 2 | `lib/` | lower layers | core |\n"
        "| 3 | `lib/data/` | lower layers | data |\n| 4 | `lib/backend/` | lower layers | backends |\n"
        "| 11 | `apps/` | `include/` only | programs |\n<!-- /layers -->\n");
    put(dir, "include/api.h", "int api(void);\n");
    put(dir, "lib/core.h", "#include \"api.h\"\n#include \"backend.h\"\n"); /* core -> backend: up */
    put(dir, "lib/backend/backend.h", "#include \"core.h\"\n");               /* down: fine */
    put(dir, "apps/tool.c", "#include \"api.h\"\n#include \"core.h\"\n#include <core.h>\n#include <stdio.h>\n");
    put(dir, "lib/dup.h", ""), put(dir, "lib/backend/dup.h", ""); /* one name, two folders */
    put(dir, "lib/data/x.c", "#include \"dup.h\"\nint y(void);\nint x(void) { return y(); }\n"); /* data calls backend */
    put(dir, "lib/backend/y.c", "int z(void);\nint y(void) { return z(); }\n");
    put(dir, "lib/backend/z.c", "int y(void);\nint z(void) { return y() + 1; }\n"); /* y <-> z */
    snprintf(cmd, sizeof cmd,
             "cd %s && cc -Ilib -c lib/data/x.c -o obj/lib/data/x.o && cc -c lib/backend/y.c -o obj/lib/backend/y.o && "
             "cc -c lib/backend/z.c -o obj/lib/backend/z.o",
             dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "python3 scripts/check-layers.py --root %s --objects %s/obj 2>&1", dir, dir);
    int rc = tu_run(cmd, out, sizeof out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(rc, 1, "exit %d\n%s", rc, out);
    cr_assert(strstr(out, "lib/core.h:2: layer 2 (lib/) includes lib/backend/backend.h of layer 4"), "%s", out);
    cr_assert(strstr(out, "apps/tool.c:2: a program includes lib/core.h"), "%s", out);
    cr_assert(strstr(out, "apps/tool.c:3: a program includes lib/core.h"), "<...> is checked too:\n%s", out);
    cr_assert(strstr(out, "lib/data/x.c:1: #include dup.h matches lib/backend/dup.h, lib/dup.h"), "%s", out);
    cr_assert(strstr(out, "lib/data/x.c (layer 3) calls y of lib/backend/y.c (layer 4)"), "%s", out);
    cr_assert(strstr(out, "call circle: lib/backend/y.c <-> lib/backend/z.c"), "%s", out);
    cr_assert(strstr(out, "6 problem(s)"), "%s", out);
    cr_assert_null(strstr(out, "backend.h:1"), "a downward include was reported:\n%s", out);
}
