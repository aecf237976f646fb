/*
 * Every code has a name and a text, and a code that is none of them (a
 * positive number, a count passed by mistake, INT_MIN) says so as the
 * header promises instead of passing for success.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <string.h>

#include "gnezdo.h"

Test(errors, each_code_has_its_name_and_text)
{
#define CHECK_CODE(name, value, text)                                                              \
    cr_expect_str_eq(gn_errname(value), #name);                                                    \
    cr_expect_str_eq(gn_strerror(value), text);
    GN_ERRORS(CHECK_CODE)
#undef CHECK_CODE
}

Test(errors, zero_is_success)
{
    cr_expect_str_eq(gn_errname(0), "OK");
    cr_expect_str_eq(gn_strerror(0), "success");
}

Test(errors, unknown_codes_are_unknown_whatever_their_sign)
{
    static const int unknown[] = {6000, 1, 29, INT_MAX, -1000, -6000, INT_MIN};

    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        cr_expect_str_eq(gn_errname(unknown[i]), "EUNKNOWN", "code %d", unknown[i]);
        cr_expect_str_eq(gn_strerror(unknown[i]), "unknown error", "code %d", unknown[i]);
    }
}
