/* ISO 4217 currency codes (from Debian's iso-codes, generated at configure time). */
#ifndef ORDERS_CURRENCY_H
#define ORDERS_CURRENCY_H

/* 1 when code is an active ISO 4217 alphabetic code ("EUR"), else 0. */
int orders_currency_known(const char *code);

#endif
