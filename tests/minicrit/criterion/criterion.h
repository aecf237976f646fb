/*
 * minicrit: the part of Criterion's API that gnezdo's tests use, for
 * builds where Criterion is missing (mingw-w64: there is no Windows
 * build of it).  The same tests/test_*.c compile against either.  The
 * runner (tests/minicrit/minicrit.c) runs each test in a child process
 * of its own, like Criterion.  Written from Criterion's documented
 * behaviour; no code of Criterion's is in here.
 *
 * Messages: every cr_ macro takes an optional printf-style message,
 * which must start with a string literal (it is pasted after " ", so
 * an absent message is the format " " and never an empty one).
 */
#ifndef MINICRIT_CRITERION_H
#define MINICRIT_CRITERION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h> /* the tests count on it, as Criterion includes it */
#include <string.h>

/* One Test(): filled in by the macro, registered before main. */
struct mc_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    void (*init)(void);
    void (*fini)(void);
    double timeout; /* seconds; 0: none */
    const char *description;
    bool disabled;
    struct mc_test *next; /* the runner's list, sorted by suite, name */
};

/* One TestSuite(): its init and fini run around each test of the suite,
 * outside the test's own; its timeout is the default of its tests. */
struct mc_suite {
    const char *name;
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    struct mc_suite *next;
};

void mc_register_test(struct mc_test *test);
void mc_register_suite(struct mc_suite *suite);
/* A failed check: prints "file:line: Assertion failed: <message, or the
 * expression without one>", and for strings both values.  The assert
 * form ends the test (its fini still runs); the expect form records the
 * failure and returns. */
__attribute__((noreturn, format(printf, 6, 7))) void
mc_assert_failed(const char *file, int line, const char *expr, const char *actual,
                 const char *expected, const char *fmt, ...);
__attribute__((format(printf, 6, 7))) void mc_expect_failed(const char *file, int line,
                                                            const char *expr, const char *actual,
                                                            const char *expected, const char *fmt,
                                                            ...);
/* Ends the test as skipped (a skip passes); its fini still runs. */
__attribute__((noreturn, format(printf, 1, 2))) void mc_skip(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void mc_log_info(const char *fmt, ...);

#define MC_ID_(suite, name, what) mc_##what##_##suite##__##name

#define Test(SUITE, NAME, ...)                                                                     \
    static void MC_ID_(SUITE, NAME, fn)(void);                                                     \
    static struct mc_test MC_ID_(SUITE, NAME, test) = {                                            \
        .suite = #SUITE, .name = #NAME, .fn = MC_ID_(SUITE, NAME, fn), __VA_ARGS__};               \
    __attribute__((constructor)) static void MC_ID_(SUITE, NAME, register)(void)                   \
    {                                                                                              \
        mc_register_test(&MC_ID_(SUITE, NAME, test));                                              \
    }                                                                                              \
    static void MC_ID_(SUITE, NAME, fn)(void)

#define TestSuite(suite, ...)                                                                      \
    static struct mc_suite mc_suite_##suite = {.name = #suite, __VA_ARGS__};                       \
    __attribute__((constructor)) static void mc_register_suite_##suite(void)                       \
    {                                                                                              \
        mc_register_suite(&mc_suite_##suite);                                                      \
    }

/* kind is assert or expect; the message is evaluated only on failure. */
#define MC_CHECK_(kind, cond, expr, ...)                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            mc_##kind##_failed(__FILE__, __LINE__, expr, NULL, NULL, " " __VA_ARGS__);             \
    } while (0)
#define MC_STR_(kind, a, op, b, ...)                                                               \
    do {                                                                                           \
        const char *mc_a_ = (a), *mc_b_ = (b);                                                     \
        if (!(strcmp(mc_a_, mc_b_) op 0))                                                          \
            mc_##kind##_failed(__FILE__, __LINE__, "(" #a ") " #op " (" #b ")", mc_a_, mc_b_,      \
                               " " __VA_ARGS__);                                                   \
    } while (0)

#define cr_assert(cond, ...)     MC_CHECK_(assert, cond, #cond, __VA_ARGS__)
#define cr_expect(cond, ...)     MC_CHECK_(expect, cond, #cond, __VA_ARGS__)
#define cr_assert_not(cond, ...) MC_CHECK_(assert, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_expect_not(cond, ...) MC_CHECK_(expect, !(cond), "!(" #cond ")", __VA_ARGS__)
#define cr_assert_fail(...)                                                                        \
    mc_assert_failed(__FILE__, __LINE__, "cr_assert_fail", NULL, NULL, " " __VA_ARGS__)

#define MC_CMP_(kind, a, op, b, ...)                                                               \
    MC_CHECK_(kind, (a)op(b), "(" #a ") " #op " (" #b ")", __VA_ARGS__)
#define cr_assert_eq(a, b, ...)    MC_CMP_(assert, a, ==, b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...)    MC_CMP_(expect, a, ==, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...)   MC_CMP_(assert, a, !=, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...)   MC_CMP_(expect, a, !=, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)    MC_CMP_(assert, a, <, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...)    MC_CMP_(expect, a, <, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...)   MC_CMP_(assert, a, <=, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...)   MC_CMP_(expect, a, <=, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)    MC_CMP_(assert, a, >, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...)    MC_CMP_(expect, a, >, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...)   MC_CMP_(assert, a, >=, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...)   MC_CMP_(expect, a, >=, b, __VA_ARGS__)
#define cr_assert_null(p, ...)     MC_CMP_(assert, p, ==, NULL, __VA_ARGS__)
#define cr_expect_null(p, ...)     MC_CMP_(expect, p, ==, NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) MC_CMP_(assert, p, !=, NULL, __VA_ARGS__)
#define cr_expect_not_null(p, ...) MC_CMP_(expect, p, !=, NULL, __VA_ARGS__)

#define cr_assert_str_eq(a, b, ...)  MC_STR_(assert, a, ==, b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...)  MC_STR_(expect, a, ==, b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) MC_STR_(assert, a, !=, b, __VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) MC_STR_(expect, a, !=, b, __VA_ARGS__)

/* size in bytes, as Criterion's. */
#define cr_assert_arr_eq(a, b, size, ...)                                                          \
    MC_CHECK_(assert, memcmp((a), (b), (size)) == 0, "memcmp(" #a ", " #b ", " #size ") == 0",     \
              __VA_ARGS__)
#define cr_expect_arr_eq(a, b, size, ...)                                                          \
    MC_CHECK_(expect, memcmp((a), (b), (size)) == 0, "memcmp(" #a ", " #b ", " #size ") == 0",     \
              __VA_ARGS__)
#define MC_FLOAT_EQ_(kind, a, b, eps, ...)                                                         \
    MC_CHECK_(kind, (a) - (b) <= (eps) && (b) - (a) <= (eps), "(" #a ") == (" #b ") within " #eps, \
              __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...) MC_FLOAT_EQ_(assert, a, b, eps, __VA_ARGS__)
#define cr_expect_float_eq(a, b, eps, ...) MC_FLOAT_EQ_(expect, a, b, eps, __VA_ARGS__)

#define cr_skip(...)      mc_skip(" " __VA_ARGS__)
#define cr_skip_test(...) mc_skip(" " __VA_ARGS__)

#include "logging.h"

#endif
