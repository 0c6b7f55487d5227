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

/* Dropout masks: xoshiro256** generators (64-bit output, period 2^256 - 1,
 * four words of state each), FASTBP_RNG_LANES of them side by side so that
 * the compiler runs the lanes in vector registers (one generator alone is
 * a chain of dependent operations: ~2 ns per unit, several times the rest
 * of the dropout passes). The lanes are seeded by running splitmix64 from
 * one 64-bit seed, as the generator's authors recommend (no lane can start
 * from a state of zeros). */
#define FASTBP_RNG_LANES 16
#define FASTBP_RNG_WORDS (4 * FASTBP_RNG_LANES)

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

/* state: FASTBP_RNG_WORDS words, word w of lane k at state[w * LANES + k]. */
static void fastbp_rng_seed(uint64_t *state, uint64_t seed)
{
    for (int j = 0; j < FASTBP_RNG_WORDS; j++) {
        state[j] = fastbp_splitmix64(&seed);
    }
}

/* One step of every lane; out[k]: the output of lane k. */
static inline void fastbp_rng_step(uint64_t *s0, uint64_t *s1, uint64_t *s2,
                                   uint64_t *s3, uint64_t *out)
{
    for (int k = 0; k < FASTBP_RNG_LANES; k++) {
        uint64_t t = s1[k] << 17;
        /* rotl(s1 * 5, 7) * 9, the products as shifts and additions (SSE2
         * and AVX2 have no 64-bit vector multiply) */
        uint64_t x = fastbp_rotl(s1[k] + (s1[k] << 2), 7);
        out[k] = x + (x << 3);
        s2[k] ^= s0[k];
        s3[k] ^= s1[k];
        s1[k] ^= s2[k];
        s0[k] ^= s3[k];
        s2[k] ^= t;
        s3[k] = fastbp_rotl(s3[k], 45);
    }
}

/* One hidden layer's inverted dropout over n outputs Z (in one pass):
 * M = 0 (dropped) or scale = 1 / (1 - p) (kept), Zm = Z * M. Blocks of
 * FASTBP_DROP_BLOCK units: the lanes first fill a buffer of 32-bit draws
 * (two per 64-bit output), then one plain loop decides each unit, dropped
 * when its draw is below threshold = floor(p * 2^32) (an integer compare,
 * no conversion to floating point); both loops vectorize. The last block
 * of a call may leave draws unused. The state lives in locals during the
 * call and is written back at the end, so the next call continues the
 * streams. */
#define FASTBP_DROP_BLOCK 256
/* (a block is a whole number of steps of the lanes) */
typedef char fastbp_drop_block_check[
    FASTBP_DROP_BLOCK % (2 * FASTBP_RNG_LANES) == 0 ? 1 : -1];
#if defined(_MSC_VER)
#define FASTBP_RESTRICT __restrict
#else
#define FASTBP_RESTRICT restrict
#endif
#define FASTBP_DROPOUT(T, NAME)                                             \
static FASTBP_CLONES void NAME(const T *FASTBP_RESTRICT Z,                  \
                               T *FASTBP_RESTRICT Zm,                       \
                               T *FASTBP_RESTRICT M, ptrdiff_t n,           \
                               uint64_t threshold, T scale,                 \
                               uint64_t *state)                             \
{                                                                           \
    enum { K = FASTBP_RNG_LANES, NB = FASTBP_DROP_BLOCK };                  \
    uint64_t s0[K], s1[K], s2[K], s3[K];                                    \
    union { uint64_t w[NB / 2]; uint32_t h[NB]; } draws;                    \
    uint32_t thr = (uint32_t) threshold;                                    \
    for (int k = 0; k < K; k++) {                                           \
        s0[k] = state[k];                                                   \
        s1[k] = state[K + k];                                               \
        s2[k] = state[2 * K + k];                                           \
        s3[k] = state[3 * K + k];                                           \
    }                                                                       \
    for (ptrdiff_t i = 0; i < n; i += NB) {                                 \
        ptrdiff_t m = n - i < NB ? n - i : NB;                              \
        for (ptrdiff_t j = 0; 2 * j < m; j += K) {                          \
            fastbp_rng_step(s0, s1, s2, s3, draws.w + j);                   \
        }                                                                   \
        const T *z = Z + i;                                                 \
        T *zm = Zm + i, *mask = M + i;                                      \
        for (ptrdiff_t j = 0; j < m; j++) {                                 \
            T mj = draws.h[j] >= thr ? scale : (T) 0;                       \
            mask[j] = mj;                                                   \
            zm[j] = z[j] * mj;                                              \
        }                                                                   \
    }                                                                       \
    for (int k = 0; k < K; k++) {                                           \
        state[k] = s0[k];                                                   \
        state[K + k] = s1[k];                                               \
        state[2 * K + k] = s2[k];                                           \
        state[3 * K + k] = s3[k];                                           \
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
