/* orderd's documents over HTTP: the order timeline page (/ and /static/...) and the OpenAPI
 * document (/openapi.json), all compiled into the binary. */
#ifndef ORDERS_WEB_H
#define ORDERS_WEB_H

#include "es/http_server.h"
#include "es/packages.h"

/* Registers GET handlers on s (before es_http_server_start): "/" and "/index.html" (the page),
 * "/static/app.js", "/static/style.css", "/openapi.json": the generated document of the one
 * package with routes (generated/openapi/orders_v1.openapi.json byte for byte for orderd), or,
 * when several packages have routes, one document with every package's paths, tags and
 * components. They answer from static memory and take no locks. Returns ES_OK, or the first
 * error of es_http_server_add_handler (ES_FAILED_PRECONDITION after start). */
int orders_web_register(es_http_server *s, const es_package_list *packages);

#endif
