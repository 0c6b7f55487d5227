/* C helpers of the compiled backend (fastbp/_cython_backend.pyx).
 *
 * Plain C that Cython would only obscure: a monotonic clock for the time
 * budget of a chunk, the fused optimizer passes over the flat parameter
 * buffer, written so that the compiler vectorizes them, and the random
 * generator and mask pass of dropout.
 */
#ifndef FASTBP_KERNELS_H
#define FASTBP_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Set by setup.py: 1 for the checked build (FASTBP_DEBUG=1 pip install .). */
#ifndef FASTBP_DEBUG
#define FASTBP_DEBUG 0
#endif
static const int fastbp_debug_build = FASTBP_DEBUG;

/* Seconds on a monotonic clock. */
static double fastbp_now(void)
{
    struct timespec ts;
#if defined(_WIN32)
    timespec_get(&ts, TIME_UTC);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* The optimizer passes: one pass over the flat buffer each, a plain counted
 * loop on raw pointers. The gradient is formed on the fly,
 * g = (G + alpha * p) / sum(weights) as g = (G + alpha * p) * inv_sw, with
 * alpha = 0 for the biases, so the gradient buffer is read once.
 *
 * Memory-bound at small batches and, for Adam, bound by sqrt and division:
 * GCC builds an AVX2 clone beside the baseline one (target_clones, picked at
 * load time by the CPU). AVX2 alone enables no FMA, and the build passes
 * -ffp-contract=off, so the rounding is NumPy's on any machine. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) \
    && defined(__linux__) && !FASTBP_DEBUG
#define FASTBP_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FASTBP_CLONES
#endif

/* Adam: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
 *       p = decay p + neg_lr_t * m / (sqrt(v) + eps)   (neg_lr_t: the
 *       bias-corrected step size, negated; decay = 1 - lr * weight_decay,
 *       AdamW's decoupled decay, exactly 1 when off: p * 1 == p) */
#define FASTBP_ADAM(T, NAME, SQRT)                                          \
static FASTBP_CLONES void NAME(                                             \
    T *p, const T *G, T *m, T *v, ptrdiff_t n, T alpha, T inv_sw,           \
    T b1, T one_b1, T b2, T one_b2, T neg_lr_t, T eps, T decay)             \
{                                                                           \
    for (ptrdiff_t i = 0; i < n; i++) {                                     \
        T g = (G[i] + alpha * p[i]) * inv_sw;                               \
        T mi = b1 * m[i] + one_b1 * g;                                      \
        T vi = b2 * v[i] + one_b2 * (g * g);                                \
        m[i] = mi;                                                          \
        v[i] = vi;                                                          \
        p[i] = decay * p[i] + neg_lr_t * mi / (SQRT(vi) + eps);             \
    }                                                                       \
}

/* SGD with momentum: vel = mu vel - lr g;
 *       p = decay p + (mu vel - lr g) (Nesterov) or p = decay p + vel
 *       (decay = 1 - lr * weight_decay, decoupled; exactly 1 when off) */
#define FASTBP_SGD(T, NAME)                                                 \
static FASTBP_CLONES void NAME(                                             \
    T *p, const T *G, T *vel, ptrdiff_t n, T alpha, T inv_sw,               \
    T lr, T mu, int nesterov, T decay)                                      \
{                                                                           \
    if (nesterov) {                                                         \
        for (ptrdiff_t i = 0; i < n; i++) {                                 \
            T g = (G[i] + alpha * p[i]) * inv_sw;                           \
            T u = mu * vel[i] - lr * g;                                     \
            vel[i] = u;                                                     \
            p[i] = decay * p[i] + (mu * u - lr * g);                        \
        }                                                                   \
    } else {                                                                \
        for (ptrdiff_t i = 0; i < n; i++) {                                 \
            T g = (G[i] + alpha * p[i]) * inv_sw;                           \
            T u = mu * vel[i] - lr * g;                                     \
            vel[i] = u;                                                     \
            p[i] = decay * p[i] + u;                                        \
        }                                                                   \
    }                                                                       \
}

/* Gradient clipping: sum_i g_i^2 of the gradient the passes above form,
 * g = (G + alpha * p) * inv_sw, accumulated in double. Only run when
 * max_grad_norm is set (one extra read of G and p per minibatch). */
#define FASTBP_GRAD_SQNORM(T, NAME)                                         \
static FASTBP_CLONES double NAME(                                           \
    const T *p, const T *G, ptrdiff_t n, T alpha, T inv_sw)                 \
{                                                                           \
    /* Eight running sums, not one: a single sum waits for the latency of  \
       each addition (the compiler may not reorder it), eight independent   \
       ones let the loop run at the speed of memory. */                     \
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                 \
    double total = 0;                                                       \
    ptrdiff_t i = 0;                                                        \
    for (; i + 8 <= n; i += 8) {                                            \
        for (int k = 0; k < 8; k++) {                                       \
            T g = (G[i + k] + alpha * p[i + k]) * inv_sw;                   \
            s[k] += (double) g * (double) g;                                \
        }                                                                   \
    }                                                                       \
    for (; i < n; i++) {                                                    \
        T g = (G[i] + alpha * p[i]) * inv_sw;                               \
        total += (double) g * (double) g;                                   \
    }                                                                       \
    for (int k = 0; k < 8; k++) {                                           \
        total += s[k];                                                      \
    }                                                                       \
    return total;                                                           \
}

/* Dropout masks: a xoshiro256** generator (64-bit output, period 2^256 - 1;
 * four words of state), seeded by running splitmix64 from one 64-bit seed,
 * as its authors recommend (a state of all zeros is then impossible). */
static inline uint64_t fastbp_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t fastbp_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void fastbp_rng_seed(uint64_t *state, uint64_t seed)
{
    for (int k = 0; k < 4; k++) {
        state[k] = fastbp_splitmix64(&seed);
    }
}

static inline uint64_t fastbp_rng_next(uint64_t *s)
{
    uint64_t out = fastbp_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = fastbp_rotl(s[3], 45);
    return out;
}

/* One hidden layer's inverted dropout over n outputs Z (in one pass):
 * M = 0 (dropped) or scale = 1 / (1 - p) (kept), Zm = Z * M. Each 64-bit
 * draw decides two units, one per 32-bit half: dropped when the half is
 * below threshold = floor(p * 2^32) (an integer compare, no conversion to
 * floating point). The state lives in locals during the loop and is
 * written back at the end, so the next call continues the stream. */
#define FASTBP_DROPOUT(T, NAME)                                             \
static void NAME(const T *Z, T *Zm, T *M, ptrdiff_t n, uint64_t threshold,  \
                 T scale, uint64_t *state)                                  \
{                                                                           \
    uint64_t s[4] = {state[0], state[1], state[2], state[3]};               \
    ptrdiff_t i = 0;                                                        \
    for (; i + 2 <= n; i += 2) {                                            \
        uint64_t r = fastbp_rng_next(s);                                    \
        T m0 = (r & 0xffffffffULL) >= threshold ? scale : (T) 0;            \
        T m1 = (r >> 32) >= threshold ? scale : (T) 0;                      \
        M[i] = m0;                                                          \
        M[i + 1] = m1;                                                      \
        Zm[i] = Z[i] * m0;                                                  \
        Zm[i + 1] = Z[i + 1] * m1;                                          \
    }                                                                       \
    if (i < n) {                                                            \
        uint64_t r = fastbp_rng_next(s);                                    \
        T m0 = (r & 0xffffffffULL) >= threshold ? scale : (T) 0;            \
        M[i] = m0;                                                          \
        Zm[i] = Z[i] * m0;                                                  \
    }                                                                       \
    for (int k = 0; k < 4; k++) {                                           \
        state[k] = s[k];                                                    \
    }                                                                       \
}

FASTBP_ADAM(float, fastbp_adam_f, sqrtf)
FASTBP_ADAM(double, fastbp_adam_d, sqrt)
FASTBP_SGD(float, fastbp_sgd_f)
FASTBP_SGD(double, fastbp_sgd_d)
FASTBP_GRAD_SQNORM(float, fastbp_grad_sqnorm_f)
FASTBP_GRAD_SQNORM(double, fastbp_grad_sqnorm_d)
FASTBP_DROPOUT(float, fastbp_dropout_f)
FASTBP_DROPOUT(double, fastbp_dropout_d)

#endif /* FASTBP_KERNELS_H */
