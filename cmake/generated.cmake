# Included from the top CMakeLists.txt (generated/ holds only generator output).
# Compiles the committed output of scripts/generate.sh. `generate` rewrites this folder from
# proto/; `check-generated` regenerates into a temporary folder and fails on any difference.
set(GEN ${PROJECT_SOURCE_DIR}/generated)
file(GLOB ES_PB_SRCS CONFIGURE_DEPENDS
  ${GEN}/es/*.c ${GEN}/google/protobuf/*.pb-c.c ${GEN}/google/api/*.pb-c.c)
add_library(es_pb STATIC ${ES_PB_SRCS})
target_include_directories(es_pb PUBLIC ${GEN})
target_link_libraries(es_pb PUBLIC PkgConfig::PROTOBUF_C)
set_target_properties(es_pb PROPERTIES POSITION_INDEPENDENT_CODE ON)

# One library per generated package, found by its <base>.es.c (the plugin writes one for every
# annotated package under proto/, so a new package needs no edit here): generated/orders/v1/
# becomes orders_v1_gen. ES_GEN_PACKAGES lists the bases ("orders_v1"). The hand-written rules a
# package's tables call (decide, queries) link to it where they are defined (app/CMakeLists.txt).
set(ES_GEN_PACKAGES "")
file(GLOB_RECURSE ES_GEN_TABLES CONFIGURE_DEPENDS ${GEN}/*.es.c)
foreach(tables ${ES_GEN_TABLES})
  get_filename_component(dir ${tables} DIRECTORY)
  get_filename_component(base ${tables} NAME_WE)
  file(GLOB srcs CONFIGURE_DEPENDS ${dir}/*.c)
  add_library(${base}_gen STATIC ${srcs})
  target_include_directories(${base}_gen PUBLIC ${GEN})
  target_link_libraries(${base}_gen PUBLIC es_pb es_runtime_core)
  list(APPEND ES_GEN_PACKAGES ${base})
  file(RELATIVE_PATH rel ${GEN} ${dir})
  set_property(GLOBAL PROPERTY ES_PACKAGE_HEADER_${base} "${rel}/${base}.es.h")
endforeach()

# es_packages_library(<target> <base>... [QUERY_APP <base>=<function>...]): a library whose
# packages.c defines es_linked_packages (es/packages.h), the list of generated packages a binary
# linking <target> serves, in the order given; each <base>_gen is linked. QUERY_APP names the
# function making a package's query context (es_query_app_fn, in its rules library). A package
# generated outside generated/ (a test fixture) comes from es_build_time_package, before the call.
function(es_packages_library target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "" "QUERY_APP")
  set(includes "")
  set(entries "")
  set(apps "")
  set(app_decls "")
  foreach(base ${ARG_UNPARSED_ARGUMENTS})
    set(fn "NULL")
    foreach(pair ${ARG_QUERY_APP})
      if(pair MATCHES "^${base}=(.+)$")
        set(fn ${CMAKE_MATCH_1})
        string(APPEND app_decls "void *${fn}(const es_package_host *host);\n")
      endif()
    endforeach()
    string(APPEND apps "    ${fn},\n")
    get_property(header GLOBAL PROPERTY ES_PACKAGE_HEADER_${base})
    if(NOT header)
      message(FATAL_ERROR "es_packages_library(${target}): no generated package ${base}")
    endif()
    string(APPEND includes "#include \"${header}\"\n")
    string(APPEND entries "    &${base}_schema,\n")
  endforeach()
  list(LENGTH ARG_UNPARSED_ARGUMENTS n)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}_packages.c)
  file(CONFIGURE OUTPUT ${out} @ONLY CONTENT
"/* Written by cmake (es_packages_library ${target}): the generated packages this binary serves. */
#include \"es/packages.h\"
${includes}
${app_decls}
static const es_schema *const schemas[] = {
${entries}};

/* Each package's query context (QUERY_APP), NULL for the application's default. */
static const es_query_app_fn query_apps[] = {
${apps}};

const es_package_list es_linked_packages = {.schemas = schemas, .query_apps = query_apps, .n = ${n}};
")
  add_library(${target} STATIC ${out})
  list(TRANSFORM ARG_UNPARSED_ARGUMENTS APPEND _gen OUTPUT_VARIABLE libs)
  target_link_libraries(${target} PUBLIC ${libs} es_runtime_service)
endfunction()

# es_build_time_package(<proto_root> <file.proto> [OPENAPI]): a package kept outside proto/ (a
# test's or a fixture's), generated at build time by protoc-c and protoc-gen-es with the include
# path scripts/generate.sh uses (<proto_root> first, then proto/ for the es options), into
# <current binary dir>/gen, and compiled into <base>_gen like the packages of generated/
# (tickets/v1/tickets.proto becomes tickets_v1_gen; ES_PACKAGE_HEADER_<base> is set, so
# es_packages_library can list it). OPENAPI: the package has services, so the plugin also writes
# <base>.openapi.c. Editing the .proto or the plugin regenerates it.
function(es_build_time_package root proto)
  cmake_parse_arguments(PARSE_ARGV 2 ARG "OPENAPI" "" "")
  get_filename_component(dir ${proto} DIRECTORY)
  get_filename_component(name ${proto} NAME_WE)
  string(REPLACE "/" "_" base ${dir})
  set(gen ${CMAKE_CURRENT_BINARY_DIR}/gen)
  set(srcs ${gen}/${dir}/${name}.pb-c.c ${gen}/${dir}/${base}.es.c)
  if(ARG_OPENAPI)
    list(APPEND srcs ${gen}/${dir}/${base}.openapi.c)
  endif()
  add_custom_command(
    OUTPUT ${srcs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${gen}
    COMMAND protoc -I${root} -I${PROJECT_SOURCE_DIR}/proto -I${GOOGLEAPIS_DIR} -I${PROTO_SYSTEM_DIR}
            --c_out=${gen} --plugin=protoc-gen-es=$<TARGET_FILE:protoc-gen-es> --es_out=${gen} ${proto}
    DEPENDS protoc-gen-es ${root}/${proto}
    COMMENT "protoc-c and protoc-gen-es for the build-time package ${base}")
  add_library(${base}_gen STATIC ${srcs})
  target_include_directories(${base}_gen PUBLIC ${gen})
  target_link_libraries(${base}_gen PUBLIC es_pb es_runtime_core)
  set_property(GLOBAL PROPERTY ES_PACKAGE_HEADER_${base} "${dir}/${base}.es.h")
endfunction()

add_custom_target(generate
  COMMAND ${CMAKE_COMMAND} -E env GOOGLEAPIS_DIR=${GOOGLEAPIS_DIR} PROTO_SYSTEM_DIR=${PROTO_SYSTEM_DIR}
          ${PROJECT_SOURCE_DIR}/scripts/generate.sh $<TARGET_FILE:protoc-gen-es> ${GEN}
  DEPENDS protoc-gen-es
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  COMMENT "Regenerating generated/ from proto/")
add_custom_target(check-generated
  COMMAND ${CMAKE_COMMAND} -E env GOOGLEAPIS_DIR=${GOOGLEAPIS_DIR} PROTO_SYSTEM_DIR=${PROTO_SYSTEM_DIR}
          ${PROJECT_SOURCE_DIR}/scripts/check-generated.sh $<TARGET_FILE:protoc-gen-es>
  DEPENDS protoc-gen-es
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  COMMENT "Checking generated/ against proto/")
