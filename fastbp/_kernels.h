/* C helpers of the compiled backend (fastbp/_cython_backend.pyx).
 *
 * Plain C that Cython would only obscure: a monotonic clock for the time
 * budget of a chunk, the fused optimizer passes over the flat parameter
 * buffer, written so that the compiler vectorizes them, and the random
 * generator and mask pass of dropout.
 */
#ifndef FASTBP_KERNELS_H
#define FASTBP_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
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
 * streams. Z == NULL: the mask only (train_epoch's two-thread step draws
 * the whole minibatch's masks, then each share applies its rows'). */
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
        T *mask = M + i;                                                    \
        for (ptrdiff_t j = 0; j < m; j++) {                                 \
            mask[j] = draws.h[j] >= thr ? scale : (T) 0;                    \
        }                                                                   \
        if (Z != NULL) {                                                    \
            const T *z = Z + i;                                             \
            T *zm = Zm + i;                                                 \
            for (ptrdiff_t j = 0; j < m; j++) {                             \
                zm[j] = z[j] * mask[j];                                     \
            }                                                               \
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

/* ------------------------------------------------------------------------
 * Vectorizable float32 exp, expm1, erf and sigmoid, and the float32 loops of
 * the elu, selu, gelu and silu activations that call them.
 *
 * libm's expf/expm1f/erff are opaque calls GCC cannot vectorize. These are
 * straight-line code (selects, no branches, no calls, no float -> int
 * conversion), so a loop that calls them vectorizes. exp, expm1 and sigmoid
 * take their float argument to double and return the double result rounded
 * once to float (erf, below, works mostly in float, for speed):
 * double has the range to hold every intermediate (2^n for n down to -289,
 * exp(x) for x up to 200), so there is no special case for overflow,
 * underflow (subnormal results round correctly) or tiny arguments, and the
 * approximation error of e^r - 1 (< 2.4e-10 relative) all but vanishes in
 * the final rounding to float.
 *
 * Measured error against float64 libm (NumPy, SciPy) rounded to float32,
 * over 20 million evenly spaced floats of the range where each result varies
 * plus every 97th float32 bit pattern (all binades: +-0, subnormals, +-inf,
 * NaN): at most 1 ulp for exp, expm1 and sigmoid, whose results differ (by
 * that 1 ulp) for 0.010%, 0.014% and 0.008% of those inputs; erf, computed
 * in float for speed, at most 2 ulp, 26% of its results off by 1 ulp and
 * 0.4% by 2. The limits are exact: exp(-inf) = 0, exp(inf) = inf,
 * expm1(-inf) = -1, erf(+-inf) = +-1, sigmoid(-inf) = 0, sigmoid(inf) = 1,
 * expm1(+-0) = erf(+-0) = +-0; NaN gives NaN. tests/test_vecmath.py keeps
 * these bounds.
 *
 * The coefficients are least-squares fits (weighted for relative error) on
 * Chebyshev nodes, made for this file. */

/* c ? a : b, as bit operations: GCC does not if-convert a ?: whose operands
 * are computed (the computation could trap, so it is not speculated; the
 * build keeps -ftrapping-math), which stops the vectorizer ("control flow
 * in loop"). Here both operands are computed anyway and the loop vectorizes. */
static inline double fastbp_select_d(int c, double a, double b)
{
    unsigned long long ua, ub, m = 0ULL - (unsigned long long) (c != 0);
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof ua);
    return a;
}

static inline float fastbp_select_f(int c, float a, float b)
{
    unsigned int ua, ub, m = 0U - (unsigned int) (c != 0);
    memcpy(&ua, &a, sizeof ua);
    memcpy(&ub, &b, sizeof ub);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, sizeof ua);
    return a;
}

/* e^x - 1 for double x, as 2^n (e^r - 1) + (2^n - 1), x = n ln2 + r,
 * |r| <= ln2 / 2; e^r - 1 = r Q(r) with |Q(r) - (e^r - 1)/r| / Q < 2.4e-10.
 * *scale receives 2^n. x is clamped to [-200, 200] first (the results there
 * are 0 / -1 or inf once rounded to float; NaN stays NaN); n is rounded to
 * nearest by adding 1.5 * 2^52, whose low mantissa bits then hold n, and
 * 2^n is built from those bits. */
static inline double fastbp_expm1_core(double x, double *scale)
{
    const double shift = 6755399441055744.0;      /* 1.5 * 2^52 */
    const double log2e = 1.4426950408889634;
    const double ln2 = 0.6931471805599453;
    x = fastbp_select_d(x < -200.0, -200.0, x);
    x = fastbp_select_d(x > 200.0, 200.0, x);
    double kd = x * log2e + shift;
    double n = kd - shift;
    double r = x - n * ln2;
    unsigned long long bits;
    memcpy(&bits, &kd, sizeof bits);
    bits = (bits + 1023ULL) << 52;                 /* exponent field n + 1023 */
    memcpy(scale, &bits, sizeof bits);
    double q = 0.00019832974824665676;
    q = q * r + 0.0013940988283686483;
    q = q * r + 0.008333417790897201;
    q = q * r + 0.04166635472322619;
    q = q * r + 0.1666666618275847;
    q = q * r + 0.5000000046563057;
    q = q * r + 1.0000000000356235;
    return q * r;                                  /* e^r - 1 */
}

static inline double fastbp_exp_d(double x)
{
    double scale;
    double q = fastbp_expm1_core(x, &scale);
    return scale * q + scale;
}

/* erf(y) and e^(-y^2) for float y, in float (8 lanes with AVX2, not 4:
 * gelu computes both for every unit in training, the costliest of the
 * activations). |y| < 0.8: y P(y^2), |P - erf(y)/y| / P < 3.1e-9;
 * else 1 - e^(-y^2) R(z), R(z) = erfc(y) e^(y^2), z = (|y| - 2.4) / 1.6 in
 * [-1, 1] for |y| in [0.8, 4], relative error < 3.9e-9; for |y| > 4, R(z)
 * is taken at 4 (e^(-y^2) R < 1.6e-8 there: erf rounds to 1). The float
 * roundings of the steps make this the one function off by up to 2 ulp
 * (measured error in the comment above). *ex receives e^(-y^2) (0 once
 * y^2 > 87, below the normal floats: gelu's derivative multiplies it by y,
 * up to 2^127). */
static inline float fastbp_erf_exp_f(float y, float *ex)
{
    const float shift = 12582912.0f;               /* 1.5 * 2^23 */
    float a = fabsf(y);
    float s = a * a;                               /* inf for huge a */
    int tiny = s > 87.0f;
    /* e^x, x = -min(s, 87): x = n ln2 + r, ln2 = hi + lo, hi with 15
     * significant bits (n hi exact), e^r - 1 = r Q(r), |error| < 1.1e-8;
     * 2^n from the low bits of x log2e + 1.5 * 2^23, n in [-126, 0] */
    float x = -fastbp_select_f(tiny, 87.0f, s);
    float kd = x * 1.44269504f + shift;
    float n = kd - shift;
    float r = (x - n * 0.693145751953125f) - n * 1.42860682e-06f;
    unsigned int bits;
    memcpy(&bits, &kd, sizeof bits);
    bits = (bits + 127U) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof bits);
    float q = 0.0013881424f;
    q = q * r + 0.008369052f;
    q = q * r + 0.041667249f;
    q = q * r + 0.16666506f;
    q = q * r + 0.49999998f;
    q = q * r + 1.0000000f;
    float e2 = scale * (q * r) + scale;
    e2 = fastbp_select_f(tiny, 0.0f, e2);          /* NaN stays NaN */
    float p = -0.00065323507f;
    p = p * s + 0.0050846641f;
    p = p * s - 0.026820542f;
    p = p * s + 0.11283106f;
    p = p * s - 0.37612602f;
    p = p * s + 1.1283791f;
    float small = a * p;
    float ac = fastbp_select_f(a > 4.0f, 4.0f, a);
    float z = (ac - 2.4f) * 0.625f;
    float c = -1.5720811e-05f;
    c = c * z + 4.4282096e-05f;
    c = c * z - 5.8710313e-05f;
    c = c * z + 0.00013059581f;
    c = c * z - 0.00037751842f;
    c = c * z + 0.0008904186f;
    c = c * z - 0.0019680769f;
    c = c * z + 0.0043064286f;
    c = c * z - 0.0091590052f;
    c = c * z + 0.018794589f;
    c = c * z - 0.03713515f;
    c = c * z + 0.070384972f;
    c = c * z - 0.12733638f;
    c = c * z + 0.21849874f;
    float large = 1.0f - e2 * c;
    float e = fastbp_select_f(a < 0.8f, small, large);
    *ex = e2;
    return copysignf(e, y);                        /* odd; erf(-0) = -0 */
}

static inline float fastbp_expf_v(float x)
{
    return (float) fastbp_exp_d((double) x);
}

static inline float fastbp_expm1f_v(float x)
{
    double scale;
    double q = fastbp_expm1_core((double) x, &scale);
    /* expm1 has the sign of x: -0 -> -0, not (1 * -0) + 0 = +0 */
    return (float) copysign(scale * q + (scale - 1.0), (double) x);
}

static inline float fastbp_erff_v(float x)
{
    float ex;
    return fastbp_erf_exp_f(x, &ex);
}

/* 1 / (1 + e^-x), in double, rounded once (e^-x -> inf: 0) */
static inline float fastbp_sigmoidf_v(float x)
{
    return (float) (1.0 / (1.0 + fastbp_exp_d(-(double) x)));
}

/* Elementwise over an array (the test shims of tests/test_vecmath.py):
 * which = 0 exp, 1 expm1, 2 erf, 3 sigmoid. */
static FASTBP_CLONES void fastbp_vecmath_f(int which, const float *x,
                                           float *y, ptrdiff_t n)
{
    if (which == 0) {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = fastbp_expf_v(x[i]);
    } else if (which == 1) {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = fastbp_expm1f_v(x[i]);
    } else if (which == 2) {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = fastbp_erff_v(x[i]);
    } else {
        for (ptrdiff_t i = 0; i < n; i++) y[i] = fastbp_sigmoidf_v(x[i]);
    }
}

/* The float32 activation loops, in place on n contiguous elements, with the
 * float operations of _cython_backend.pyx's _act_flat / _bias_act_grad (and
 * activations.py): only exp/expm1/erf/sigmoid differ (<= 1 ulp, above). */

/* elu: h if h > 0 else e^h - 1 (NaN: expm1(NaN) = NaN) */
static FASTBP_CLONES void fastbp_elu_f(float *h, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        float x = h[i];
        float e = fastbp_expm1f_v(x);
        h[i] = fastbp_select_f(x > 0, x, e);
    }
}

/* selu: scale h if h > 0 else (e^h - 1) scale alpha */
static FASTBP_CLONES void fastbp_selu_f(float *h, ptrdiff_t n, float sc,
                                        float sa)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        float x = h[i];
        float e = fastbp_expm1f_v(x) * sa;
        h[i] = fastbp_select_f(x > 0, x * sc, e);
    }
}

/* gelu: h Phi(h), Phi(h) = (erf(h / sqrt 2) + 1) / 2; with g != NULL also
 * g = f'(h) = Phi(h) + h phi(h), written e^(-h^2/2) (1/sqrt(2 pi)) h + Phi,
 * with e^(-h^2/2) = e^(-y^2), y = h / sqrt 2 (the float32 y erf is taken
 * of), which erf computes anyway. */
static FASTBP_CLONES void fastbp_gelu_f(float *h, float *g, ptrdiff_t n,
                                        float inv_sqrt2, float inv_sqrt_2pi)
{
    if (g == NULL) {
        for (ptrdiff_t i = 0; i < n; i++) {
            float x = h[i];
            float p = (fastbp_erff_v(x * inv_sqrt2) + 1.0f) * 0.5f;
            h[i] = x * p;
        }
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            float x = h[i];
            float e;
            float p = (fastbp_erf_exp_f(x * inv_sqrt2, &e) + 1.0f) * 0.5f;
            h[i] = x * p;
            g[i] = e * inv_sqrt_2pi * x + p;
        }
    }
}

/* silu: h sigmoid(h); with g != NULL also g = ((1 - s) h + 1) s */
static FASTBP_CLONES void fastbp_silu_f(float *h, float *g, ptrdiff_t n)
{
    if (g == NULL) {
        for (ptrdiff_t i = 0; i < n; i++) {
            float x = h[i];
            h[i] = x * fastbp_sigmoidf_v(x);
        }
    } else {
        for (ptrdiff_t i = 0; i < n; i++) {
            float x = h[i];
            float s = fastbp_sigmoidf_v(x);
            h[i] = x * s;
            g[i] = ((1.0f - s) * x + 1.0f) * s;
        }
    }
}

/* The elu and selu derivatives, D *= f'(H) written with Z = f(H), both
 * dtypes, with the operations of _cython_backend.pyx's _derivative (whose
 * ?: loops GCC left scalar, "control flow in loop"):
 *   elu:  D * (min(Z, 0) + 1)                 (e^h = Z + 1 for h <= 0)
 *   selu: D * (Z + scale alpha if Z <= 0 else scale)
 * A NaN Z gives D * 1 (elu) or D * scale (selu), as the select in Cython. */
#define FASTBP_ELU_SELU_DERIVATIVE(T, NAME_ELU, NAME_SELU, SELECT)          \
static FASTBP_CLONES void NAME_ELU(const T *Z, T *D, ptrdiff_t n)          \
{                                                                           \
    for (ptrdiff_t i = 0; i < n; i++) {                                     \
        T z = Z[i];                                                         \
        D[i] = D[i] * (SELECT(z < 0, z, (T) 0) + (T) 1);                    \
    }                                                                       \
}                                                                           \
static FASTBP_CLONES void NAME_SELU(const T *Z, T *D, ptrdiff_t n, T sa,   \
                                    T sc)                                   \
{                                                                           \
    for (ptrdiff_t i = 0; i < n; i++) {                                     \
        T z = Z[i];                                                         \
        D[i] = D[i] * SELECT(z <= 0, z + sa, sc);                           \
    }                                                                       \
}

FASTBP_ELU_SELU_DERIVATIVE(float, fastbp_elu_derivative_f,
                           fastbp_selu_derivative_f, fastbp_select_f)
FASTBP_ELU_SELU_DERIVATIVE(double, fastbp_elu_derivative_d,
                           fastbp_selu_derivative_d, fastbp_select_d)

/* A second worker thread for one training chunk.
 *
 * train_epoch's float32 blocked first layer (small batches) splits its two
 * big passes -- the forward product's column blocks, and dJ/dW_1's row
 * blocks each followed by the optimizer pass over them -- between the
 * calling thread and this helper: each thread runs whole blocks, the same
 * blocks as one thread would, so the numbers do not change. Between jobs
 * (a few hundred microseconds apart) the helper spins, then sleeps on a
 * condition variable after FASTBP_HELPER_SPINS checks; the caller spins
 * while it waits, yielding now and then. It lives for one chunk (started
 * and joined by the chunk kernel), and only when the thread policy gave the
 * chunk two or more threads, i.e. when a core is free for it.
 *
 * Where there are no POSIX threads (MSVC), fastbp_helper_start fails and
 * the kernel runs every block itself. */
enum { FASTBP_HELPER_IDLE = 0, FASTBP_HELPER_POSTED = 1, FASTBP_HELPER_DONE = 2,
       FASTBP_HELPER_EXIT = 3 };
#define FASTBP_HELPER_SPINS (1 << 16)

typedef void (*fastbp_job_fn)(void *);

/* Jobs run by helper threads since the module was loaded (tests). */
static long fastbp_helper_jobs = 0;
static long fastbp_helper_jobs_done(void)
{
#if defined(__GNUC__) || defined(__clang__)
    return __atomic_load_n(&fastbp_helper_jobs, __ATOMIC_RELAXED);
#else
    return fastbp_helper_jobs;
#endif
}

#if (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
#include <pthread.h>
#include <sched.h>
#define FASTBP_HAVE_HELPER 1

typedef struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int running;
    int state;
    fastbp_job_fn fn;
    void *arg;
} fastbp_helper;

static inline void fastbp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *fastbp_helper_main(void *self)
{
    fastbp_helper *h = (fastbp_helper *) self;
    for (;;) {
        int s = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE);
        long spins = 0;
        while (s != FASTBP_HELPER_POSTED && s != FASTBP_HELPER_EXIT) {
            if (++spins < FASTBP_HELPER_SPINS) {
                fastbp_cpu_relax();
            } else {
                pthread_mutex_lock(&h->lock);
                while ((s = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE))
                           != FASTBP_HELPER_POSTED && s != FASTBP_HELPER_EXIT) {
                    pthread_cond_wait(&h->wake, &h->lock);
                }
                pthread_mutex_unlock(&h->lock);
                break;
            }
            s = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE);
        }
        if (s == FASTBP_HELPER_EXIT) {
            return NULL;
        }
        h->fn(h->arg);
        __atomic_fetch_add(&fastbp_helper_jobs, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&h->state, FASTBP_HELPER_DONE, __ATOMIC_RELEASE);
    }
}

/* 0 when the helper runs, -1 when it could not be started. */
static int fastbp_helper_start(fastbp_helper *h)
{
    h->running = 0;
    h->state = FASTBP_HELPER_IDLE;
    h->fn = NULL;
    h->arg = NULL;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        return -1;
    }
    if (pthread_cond_init(&h->wake, NULL) != 0) {
        pthread_mutex_destroy(&h->lock);
        return -1;
    }
    if (pthread_create(&h->thread, NULL, fastbp_helper_main, h) != 0) {
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->lock);
        return -1;
    }
    h->running = 1;
    return 0;
}

static void fastbp_helper_post(fastbp_helper *h, fastbp_job_fn fn, void *arg)
{
    h->fn = fn;
    h->arg = arg;
    pthread_mutex_lock(&h->lock);
    __atomic_store_n(&h->state, FASTBP_HELPER_POSTED, __ATOMIC_RELEASE);
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
}

static void fastbp_helper_wait(fastbp_helper *h)
{
    long spins = 0;
    while (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != FASTBP_HELPER_DONE) {
        if (++spins % 4096 == 0) {
            sched_yield();  /* the helper may be waiting for this core */
        } else {
            fastbp_cpu_relax();
        }
    }
    __atomic_store_n(&h->state, FASTBP_HELPER_IDLE, __ATOMIC_RELAXED);
}

static void fastbp_helper_stop(fastbp_helper *h)
{
    if (!h->running) {
        return;
    }
    pthread_mutex_lock(&h->lock);
    __atomic_store_n(&h->state, FASTBP_HELPER_EXIT, __ATOMIC_RELEASE);
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    h->running = 0;
}
#else
#define FASTBP_HAVE_HELPER 0
typedef struct {
    int running;
} fastbp_helper;
static int fastbp_helper_start(fastbp_helper *h) { h->running = 0; return -1; }
static void fastbp_helper_post(fastbp_helper *h, fastbp_job_fn fn, void *arg)
{
    (void) h;
    fn(arg);  /* never reached: start fails, so the caller runs every block */
}
static void fastbp_helper_wait(fastbp_helper *h) { (void) h; }
static void fastbp_helper_stop(fastbp_helper *h) { h->running = 0; }
#endif

#endif /* FASTBP_KERNELS_H */
