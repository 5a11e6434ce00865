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

file(GLOB ORDERS_GEN_SRCS CONFIGURE_DEPENDS ${GEN}/orders/v1/*.c)
if(ORDERS_GEN_SRCS)
  add_library(orders_v1_gen STATIC ${ORDERS_GEN_SRCS})
  target_include_directories(orders_v1_gen PUBLIC ${GEN})
  target_link_libraries(orders_v1_gen PUBLIC es_pb es_runtime_core)
endif()

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
