# Generates the ISO 4217 currency table from Debian's iso-codes package at configure time
# (the list is read from the standard's maintained copy, never typed by hand).
set(ISO4217_JSON /usr/share/iso-codes/json/iso_4217.json CACHE FILEPATH "ISO 4217 list (Debian iso-codes)")
if(NOT EXISTS ${ISO4217_JSON})
  message(FATAL_ERROR "${ISO4217_JSON} is missing: install Debian's iso-codes package (scripts/install-deps.sh)")
endif()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${ISO4217_JSON})
file(READ ${ISO4217_JSON} _iso)
string(JSON _n LENGTH "${_iso}" "4217")
set(_codes "")
math(EXPR _last "${_n} - 1")
foreach(i RANGE 0 ${_last})
  string(JSON _c GET "${_iso}" "4217" ${i} "alpha_3")
  list(APPEND _codes "${_c}")
endforeach()
list(SORT _codes)
list(REMOVE_DUPLICATES _codes)
list(LENGTH _codes _count)
set(_body "")
foreach(c ${_codes})
  string(APPEND _body "    \"${c}\",\n")
endforeach()
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/iso4217_table.c CONTENT
"/* Generated at configure time from ${ISO4217_JSON} by app/currencies.cmake. */
#include <stddef.h>
const char *const orders_iso4217_codes[] = {
${_body}};
const size_t orders_iso4217_n = ${_count};
" @ONLY)
