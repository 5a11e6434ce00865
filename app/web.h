/* orderd's documents over HTTP: the order timeline page (/ and /static/...) and the OpenAPI
 * document (/openapi.json), all compiled into the binary. */
#ifndef ORDERS_WEB_H
#define ORDERS_WEB_H

#include "es/http_server.h"

/* Registers GET handlers on s (before es_http_server_start): "/" and "/index.html" (the page),
 * "/static/app.js", "/static/style.css", "/openapi.json" (generated/openapi/orders_v1.openapi.json
 * byte for byte). They answer from static memory and take no locks. Returns ES_OK, or the first
 * error of es_http_server_add_handler (ES_FAILED_PRECONDITION after start). */
int orders_web_register(es_http_server *s);

#endif
