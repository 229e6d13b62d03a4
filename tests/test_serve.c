/* test_serve.c - s2s-serve end to end (tests/serve/serve_test.py: every endpoint, streaming, each
 * error and its status, the API key, answers equal to decoding alone under 16 concurrent
 * clients, hey's bounded load, a client that vanishes mid-stream, a full queue, a deadline, a
 * drain on SIGTERM) and the web page in a real browser where Chromium and Selenium are installed
 * (tests/serve/browser_test.py). Servers bind 127.0.0.1 on free ports and are stopped within. */
#include "test_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *build(void) { return getenv("S2S_BUILD") ? getenv("S2S_BUILD") : "build"; }

static int have_server(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/s2s-serve", build());
    return access(p, X_OK) == 0;
}

/* Runs tests/serve/SCRIPT against this build: passes on "SCRIPT: 0 failed"; exit 77 skips. */
static void run_script(const char *script)
{
    if (!have_server())
        cr_skip_test("s2s-serve is not built (libmicrohttpd-dev missing)");
    char cmd[512];
    static char out[1 << 16];
    snprintf(cmd, sizeof cmd, "python3 tests/serve/%s.py %s 2>&1", script, build());
    int rc = tu_run(cmd, out, sizeof out);
    if (rc == 77)
        cr_skip_test("%s", out);
    char want[64];
    snprintf(want, sizeof want, "%s: 0 failed", script);
    cr_assert(rc == 0 && strstr(out, want), "%s: exit %d\n%s", cmd, rc, out);
}

Test(serve, end_to_end, .timeout = 300) { run_script("serve_test"); }

Test(serve, web_page_in_a_browser, .timeout = 300) { run_script("browser_test"); }
