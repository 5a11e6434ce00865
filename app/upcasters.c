/* The order service's upcasters: see upcasters.h. */
#include "upcasters.h"

const es_upcaster *const orders_upcasters = NULL;
const size_t orders_n_upcasters = 0;
