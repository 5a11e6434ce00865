/* The part of khash (the hash table h2o keeps HTTP/2 streams in) that h2o/http2_internal.h needs
 * to compile: Debian's libh2o-dev ships that header but not the khash.h it includes. The
 * structure layout and the 64-bit integer hash must equal those libh2o 2.2.5 was built with,
 * since http_limits.c reads h2o's table (iteration only; the lookup below serves the header's
 * inline helper). Written for this project; only the integer-keyed map is provided. */
#ifndef ES_H2O_COMPAT_KHASH_H
#define ES_H2O_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khint32_t;
typedef uint64_t khint64_t;
typedef khint32_t khint_t;
typedef khint_t khiter_t;

/* Two flag bits per bucket: bit 1 empty, bit 0 deleted. */
#define es__kh_isempty(flag, i) ((flag[(i) >> 4] >> (((i) & 0xfU) << 1)) & 2)
#define es__kh_isdel(flag, i) ((flag[(i) >> 4] >> (((i) & 0xfU) << 1)) & 1)
#define es__kh_iseither(flag, i) ((flag[(i) >> 4] >> (((i) & 0xfU) << 1)) & 3)
#define es__kh_int64_hash(key) (khint32_t)((key) >> 33 ^ (key) ^ (key) << 11)

#define KHASH_MAP_INIT_INT64(name, khval_t)                                                        \
    typedef struct kh_##name##_s {                                                                 \
        khint_t n_buckets, size, n_occupied, upper_bound;                                          \
        khint32_t *flags;                                                                          \
        khint64_t *keys;                                                                           \
        khval_t *vals;                                                                             \
    } kh_##name##_t;                                                                               \
    static inline khint_t kh_get_##name(const kh_##name##_t *h, khint64_t key)                     \
    {                                                                                              \
        if (!h->n_buckets)                                                                         \
            return 0;                                                                              \
        khint_t mask = h->n_buckets - 1, step = 0, i = es__kh_int64_hash(key) & mask, last = i;    \
        while (!es__kh_isempty(h->flags, i) && (es__kh_isdel(h->flags, i) || h->keys[i] != key)) { \
            i = (i + (++step)) & mask;                                                             \
            if (i == last)                                                                         \
                return h->n_buckets;                                                               \
        }                                                                                          \
        return es__kh_iseither(h->flags, i) ? h->n_buckets : i;                                    \
    }

#define khash_t(name) kh_##name##_t
#define kh_get(name, h, k) kh_get_##name(h, k)
#define kh_exist(h, x) (!es__kh_iseither((h)->flags, (x)))
#define kh_key(h, x) ((h)->keys[x])
#define kh_val(h, x) ((h)->vals[x])
#define kh_value(h, x) ((h)->vals[x])
#define kh_begin(h) (khint_t)(0)
#define kh_end(h) ((h)->n_buckets)
#define kh_size(h) ((h)->size)

#define kh_foreach_value(h, vvar, ...)                                                             \
    {                                                                                              \
        for (khint_t es__kh_i = kh_begin(h); es__kh_i != kh_end(h); ++es__kh_i) {                  \
            if (!kh_exist(h, es__kh_i))                                                            \
                continue;                                                                          \
            (vvar) = kh_val(h, es__kh_i);                                                          \
            __VA_ARGS__;                                                                                  \
        }                                                                                          \
    }

#endif
