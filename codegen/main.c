/* placeholder: replaced by the real generator */
#include <stdio.h>
#include <stdlib.h>
#include "google/protobuf/compiler/plugin.pb-c.h"
extern const char cg_event_store_sql[];
int main(void)
{
    Google__Protobuf__Compiler__CodeGeneratorResponse resp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
    resp.has_supported_features = 1;
    resp.supported_features = 1;
    size_t n = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
    unsigned char *buf = malloc(n + 1);
    google__protobuf__compiler__code_generator_response__pack(&resp, buf);
    fwrite(buf, 1, n, stdout);
    free(buf);
    (void)cg_event_store_sql;
    return 0;
}
