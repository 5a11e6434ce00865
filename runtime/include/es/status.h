/* Status codes shared by every runtime module, one-to-one with gRPC status codes.
 *
 * Functions return 0 (ES_OK) or a negative es_status; results travel in out-params.
 * HTTP and gRPC report the same error because both map from this one enum. */
#ifndef ES_STATUS_H
#define ES_STATUS_H

#include <stddef.h>

typedef enum es_status {
    ES_OK = 0,
    ES_CANCELLED = -1,
    ES_UNKNOWN = -2,
    ES_INVALID_ARGUMENT = -3,
    ES_DEADLINE_EXCEEDED = -4,
    ES_NOT_FOUND = -5,
    ES_ALREADY_EXISTS = -6,
    ES_PERMISSION_DENIED = -7,
    ES_RESOURCE_EXHAUSTED = -8,
    ES_FAILED_PRECONDITION = -9,
    ES_ABORTED = -10,
    ES_OUT_OF_RANGE = -11,
    ES_UNIMPLEMENTED = -12,
    ES_INTERNAL = -13,
    ES_UNAVAILABLE = -14,
    ES_DATA_LOSS = -15,
    ES_UNAUTHENTICATED = -16,
} es_status;

/* A failure with the field it concerns. field is a proto path ("items[2].quantity") or "". */
typedef struct es_error {
    int code;           /* es_status */
    char field[128];
    char message[384];
} es_error;

/* Static name of a status ("INVALID_ARGUMENT"); never NULL. */
const char *es_strerror(int status);
/* The gRPC status code (a non-negative integer) for a status. */
int es_grpc_code(int status);
/* The HTTP status for a status, per google/rpc/code.proto. */
int es_http_status(int status);
/* Fills err (may be NULL) and returns code. The message is printf-formatted. */
int es_error_set(es_error *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
