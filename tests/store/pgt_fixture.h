/* One throwaway PostgreSQL for a cmocka group, the set-up the PostgreSQL test programs share:
 * pgt_start before the group's first test, pgt_stop after its last. A program includes this
 * once (after cmocka.h), reaches the cluster as `pg` and ends main with
 *     return PGT_RUN_GROUP("cluster-name", tests);
 * Programs that set up more than the cluster write their own setup and teardown. */
#ifndef TESTS_STORE_PGT_FIXTURE_H
#define TESTS_STORE_PGT_FIXTURE_H

#include "support.h"

static pgt pg;
static const char *pgt_fixture_name;

static int pgt_fixture_setup(void **state)
{
    (void)state;
    pgt_start(&pg, pgt_fixture_name);
    return 0;
}

static int pgt_fixture_teardown(void **state)
{
    (void)state;
    pgt_stop(&pg);
    return 0;
}

#define PGT_RUN_GROUP(name, tests) \
    (pgt_fixture_name = (name), cmocka_run_group_tests(tests, pgt_fixture_setup, pgt_fixture_teardown))

#endif
