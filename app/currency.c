/* ISO 4217 currency codes: the table is generated from Debian's iso-codes at configure time
 * (app/currencies.cmake), sorted, and searched here. */
#include "currency.h"

#include <stdlib.h>
#include <string.h>

extern const char *const orders_iso4217_codes[];
extern const size_t orders_iso4217_n;

static int cmp(const void *k, const void *e) { return strcmp(k, *(const char *const *)e); }

int orders_currency_known(const char *code)
{
    return code && bsearch(code, orders_iso4217_codes, orders_iso4217_n, sizeof orders_iso4217_codes[0], cmp) != NULL;
}
