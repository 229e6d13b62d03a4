/* lsan_suppress.c - LeakSanitizer suppressions for `make sanitize`, linked into the sanitizer
 * build of the test suite only (the Makefile's sanitize target adds it to the test sources).
 *
 * Criterion's runner process keeps a few small allocations to its end (two 48-byte callocs in
 * libcriterion with Criterion 2.4.1). A suppressions file cannot name them safely: LSan matches
 * a module anywhere in a leak's stack, and every test's stack passes through
 * criterion_internal_test_main, so "leak:libcriterion.so" would hide the tests' and the
 * library's leaks too. So the third-party suppressions below apply in the runner process only,
 * where no test code runs; the workers that run the tests (BoxFort sets BXFI_MAP in them) get
 * none, and every leak there is reported. */
#include <stdlib.h>

/* Default visibility: the suite is built with -fvisibility=hidden, and the sanitizer runtime
 * (a shared library) must find this hook in the executable. */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);

__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
    if (getenv("BXFI_MAP"))
        return ""; /* a test worker: nothing is suppressed */
    return "leak:libcriterion.so\n"
           "leak:libgit2.so\n"
           "leak:libnanomsg.so\n";
}
