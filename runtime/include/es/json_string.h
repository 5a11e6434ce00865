/* JSON string literals (RFC 8259 section 7): the one escaper behind the JSON codec, the HTTP
 * error bodies, the log lines and orderctl's output. */
#ifndef ES_JSON_STRING_H
#define ES_JSON_STRING_H

#include <stddef.h>

#include "es/buf.h"

/* Appends s[0..n) to out as a quoted JSON string, always valid JSON (and valid UTF-8) whatever
 * the bytes: '"' and '\\' are escaped, control characters (U+0000..U+001F) become \n, \r, \t,
 * \b, \f or \u00XX, well-formed UTF-8 (es/utf8.h) is copied as is, and every byte that is not
 * part of a well-formed sequence becomes \ufffd (U+FFFD, the replacement character), one per
 * byte. Returns the number of bytes so replaced: 0 means the text was valid UTF-8 and reads back
 * exactly; a caller that must refuse invalid text (the proto3 JSON codec) checks it and
 * truncates out back to its earlier length. s may hold NULs. */
size_t es_json_quote(es_buf *out, const char *s, size_t n);
/* es_json_quote of a NUL-terminated string; NULL appends null (the JSON literal). */
size_t es_json_quote_str(es_buf *out, const char *s);

#endif
