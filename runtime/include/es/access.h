/* Who may call what: the generated access rules of a method (es_method_def.access, from the
 * rpc's (es.access) option) applied to an authenticated caller. The application authenticates
 * (tokens, roles, principals); this decides, the same way for every service. */
#ifndef ES_ACCESS_H
#define ES_ACCESS_H

#include "es/pipeline.h"
#include "es/service.h"

/* Checks call (canonicalised, not yet validated) for a caller with role and principal:
 *  - no rule names the role: PERMISSION_DENIED;
 *  - "role": allowed;
 *  - "role:self=field": the request's field must be empty or the principal (PERMISSION_DENIED
 *    naming the field otherwise); when empty it is set to the principal (from call->arena);
 *  - "role:owner": the target stream (method->target, the request's target_field) is loaded
 *    through pipeline and its owner field must equal the principal; a missing stream or an
 *    empty or malformed id is let through, so that the call answers NOT_FOUND or INVALID_ARGUMENT
 *    as it would to the owner.
 * Returns ES_OK, ES_PERMISSION_DENIED (err names the method and the role), or a load error. */
int es_access_check(es_pipeline *pipeline, es_call *call, const char *role, const char *principal, es_error *err);

#endif
