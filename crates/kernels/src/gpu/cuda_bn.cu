// Training batch-norm over bf16 or f16 data (NCHW) with f32 statistics, scale and shift, in
// oodlab's own kernels (crates/kernels/src/cuda_bn.rs; the op `bn16k`): the data read and written
// in its 16-bit format, as PyTorch's own batch-norm kernels do for such data (PyTorch never hands
// bf16 to cuDNN's), where normalizing an f32 copy (cudnn_bn.rs, "via f32") moves about three times
// the bytes. Sums are f32 per thread and per block, f64 per channel; no atomics, so a launch of
// one shape repeats bit for bit. Compiled at run time by NVRTC after cuda_half.cuh, and on the
// host by g++ with the threads of each block run as threads (crates/kernels/tests/cuda_bn_on_host.rs).
//
// Forward, three launches:
//   sums        grid (blocks, c): per block, over its share of a channel's m = n*h*w values,
//               the sums of d = x - k and d*d, k the channel's first value (a shift, so that the
//               variance's sum does not cancel when the mean is large against the spread);
//   statistics  per channel: the blocks' sums added in f64 into the mean and 1/sqrt(var + eps),
//               var biased, as cuDNN saves them (the running statistics are folded in from them
//               by cuda_bn_running.cu, as after cuDNN's);
//   apply       y = (x - mean) * (inv_std * gamma) + beta rounded to the format, then the ReLU, or
//               the residual added (rounded again) and the ReLU, as cudnn_bn.rs's separate kernels
//               would: a fused op equals the ops apart bit for bit.
// Backward (from the gradient at the normalized values dy; after a fused ReLU, the gradient at
// the ReLU's output and the output itself, the mask: dy passes where the output is positive, as
// cuda_relu.cu's backward pass, so the masked gradient is never stored), three launches:
//   sums        per block, the sums of dy and dy * (x - mean);
//   statistics  per channel dbeta = sum dy, dgamma = inv_std * sum dy (x - mean), and the
//               coefficients of
//   apply       dx = gamma * inv_std * (dy - dbeta / m - (x - mean) * inv_std * dgamma / m).

#define OODLAB_BN_THREADS 256 // threads per block of the sums kernels (a power of two)
#define OODLAB_BN_RUN 4       // values per thread and turn of the apply kernels
#define OODLAB_BN_LOADS 4     // values per thread and turn of the sums kernels

struct OodlabBf16 {
    typedef unsigned short T;
    static __device__ __forceinline__ float load(unsigned short v) { return oodlab_bf16_to_f32(v); }
    static __device__ __forceinline__ unsigned short store(float f) { return oodlab_f32_to_bf16(f); }
};

struct OodlabF16 {
    typedef unsigned short T;
    static __device__ __forceinline__ float load(unsigned short v) { return oodlab_f16_to_f32(v); }
    static __device__ __forceinline__ unsigned short store(float f) { return oodlab_f32_to_f16(f); }
};

// The gradient at a normalized value: dy[at], or 0 where the fused ReLU's output (the mask, if
// given) is zero or negative (cuda_relu.cu's rule on the bits).
template <class F>
__device__ __forceinline__ float oodlab_bn_gradient(const unsigned short* dy, const unsigned short* mask, unsigned long long at) {
    if (mask) {
        unsigned short v = mask[at];
        if (v == 0 || (v & 0x8000u)) return 0.0f;
    }
    return F::load(dy[at]);
}

struct OodlabF32 {
    typedef float T;
    static __device__ __forceinline__ float load(float v) { return v; }
    static __device__ __forceinline__ float store(float f) { return f; }
};

// One block's two sums over a channel: thread j of the channel's blocks*256 takes values j,
// j + blocks*256, ... of the channel (consecutive threads read consecutive addresses), then the
// block adds its threads' sums pairwise in shared memory and thread 0 writes them to
// partials[2 * (channel * blocks + block)] and the next float.
template <class F, bool BACKWARD>
__device__ __forceinline__ void oodlab_bn_block_sums(
    const unsigned short* x, const unsigned short* dy, const unsigned short* mask, const float* mean, float* partials,
    unsigned int c, unsigned int hw, unsigned int m)
{
    __shared__ float sa[OODLAB_BN_THREADS];
    __shared__ float sb[OODLAB_BN_THREADS];
    unsigned int ch = blockIdx.y, t = threadIdx.x;
    unsigned int j = blockIdx.x * OODLAB_BN_THREADS + t, stride = gridDim.x * OODLAB_BN_THREADS;
    // The value's image and place in the plane, stepped without a division per value.
    unsigned int n = j / hw, q = j % hw, step_n = stride / hw, step_q = stride % hw;
    float centre = BACKWARD ? mean[ch] : F::load(x[(unsigned long long)ch * hw]);
    float a = 0.0f, b = 0.0f;
    // OODLAB_BN_LOADS values a turn, their loads issued before any is added: a thread's loads of
    // two bytes are small, and only enough of them in flight keep the memory busy.
    for (unsigned int i = j; i < m; i += OODLAB_BN_LOADS * stride) {
        float d[OODLAB_BN_LOADS], g[OODLAB_BN_LOADS];
#pragma unroll
        for (int k = 0; k < OODLAB_BN_LOADS; k++) {
            bool inside = i + k * stride < m;
            unsigned long long at = ((unsigned long long)n * c + ch) * hw + q;
            d[k] = inside ? F::load(x[at]) - centre : 0.0f;
            g[k] = BACKWARD && inside ? oodlab_bn_gradient<F>(dy, mask, at) : 0.0f;
            n += step_n;
            q += step_q;
            if (q >= hw) {
                q -= hw;
                n += 1;
            }
        }
#pragma unroll
        for (int k = 0; k < OODLAB_BN_LOADS; k++) {
            if (BACKWARD) {
                a += g[k];
                b += g[k] * d[k];
            } else {
                a += d[k];
                b += d[k] * d[k];
            }
        }
    }
    sa[t] = a;
    sb[t] = b;
    __syncthreads();
    for (unsigned int half = OODLAB_BN_THREADS / 2; half > 0; half >>= 1) {
        if (t < half) {
            sa[t] += sa[t + half];
            sb[t] += sb[t + half];
        }
        __syncthreads();
    }
    if (t == 0) {
        unsigned long long p = (unsigned long long)ch * gridDim.x + blockIdx.x;
        partials[2 * p] = sa[0];
        partials[2 * p + 1] = sb[0];
    }
}

// A channel's blocks' sums, added in f64 in block order.
__device__ __forceinline__ void oodlab_bn_channel_sums(const float* partials, unsigned int ch, unsigned int blocks, double* a, double* b) {
    *a = 0.0;
    *b = 0.0;
    for (unsigned int k = 0; k < blocks; k++) {
        *a += (double)partials[2 * ((unsigned long long)ch * blocks + k)];
        *b += (double)partials[2 * ((unsigned long long)ch * blocks + k) + 1];
    }
}

template <class F>
__device__ __forceinline__ void oodlab_bn_statistics(
    const unsigned short* x, const float* partials, float* mean, float* inv_std,
    unsigned int c, unsigned int hw, unsigned int m, unsigned int blocks, float eps)
{
    for (unsigned int ch = blockIdx.x * blockDim.x + threadIdx.x; ch < c; ch += blockDim.x * gridDim.x) {
        double a, b;
        oodlab_bn_channel_sums(partials, ch, blocks, &a, &b);
        double d = a / m; // the mean's distance from the shift
        double var = b / m - d * d;
        mean[ch] = (float)((double)F::load(x[(unsigned long long)ch * hw]) + d);
        inv_std[ch] = (float)(1.0 / sqrt((var > 0.0 ? var : 0.0) + (double)eps));
    }
}

// AFTER: 0 the normalized values, 1 their ReLU, 2 the ReLU of their sum with the residual r.
// Each thread takes runs of OODLAB_BN_RUN consecutive values, finding the channel once per run.
template <class F, int AFTER>
__device__ __forceinline__ void oodlab_bn_apply(
    const unsigned short* x, const unsigned short* r, const float* mean, const float* inv_std,
    const float* gamma, const float* beta, unsigned short* y, unsigned long long total, unsigned int c, unsigned int hw)
{
    unsigned long long runs = (total + OODLAB_BN_RUN - 1) / OODLAB_BN_RUN;
    for (unsigned long long run = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; run < runs;
         run += (unsigned long long)blockDim.x * gridDim.x) {
        unsigned long long i = run * OODLAB_BN_RUN, plane = i / hw;
        unsigned int q = (unsigned int)(i - plane * hw), ch = (unsigned int)(plane % c);
        float mu = mean[ch], scale = inv_std[ch] * gamma[ch], shift = beta[ch];
        for (int k = 0; k < OODLAB_BN_RUN && i < total; k++, i++) {
            unsigned short v = F::store((F::load(x[i]) - mu) * scale + shift);
            if (AFTER == 2) {
                v = F::store(__fadd_rn(F::load(v), F::load(r[i])));
            }
            if (AFTER != 0 && (v & 0x8000u)) {
                v = 0; // the ReLU keeps values whose sign bit is clear, as cuda_relu.cu
            }
            y[i] = v;
            if (++q == hw && k + 1 < OODLAB_BN_RUN) {
                q = 0;
                if (++ch == c) ch = 0;
                mu = mean[ch];
                scale = inv_std[ch] * gamma[ch];
                shift = beta[ch];
            }
        }
    }
}

// coefficients: [gamma * inv_std | dbeta / m | inv_std * dgamma / m] per channel.
template <class F>
__device__ __forceinline__ void oodlab_bn_backward_apply(
    const unsigned short* x, const unsigned short* dy, const unsigned short* mask, const float* mean, const float* coefficients,
    unsigned short* dx, unsigned long long total, unsigned int c, unsigned int hw)
{
    unsigned long long runs = (total + OODLAB_BN_RUN - 1) / OODLAB_BN_RUN;
    for (unsigned long long run = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; run < runs;
         run += (unsigned long long)blockDim.x * gridDim.x) {
        unsigned long long i = run * OODLAB_BN_RUN, plane = i / hw;
        unsigned int q = (unsigned int)(i - plane * hw), ch = (unsigned int)(plane % c);
        float mu = mean[ch], scale = coefficients[ch], shift = coefficients[c + ch], slope = coefficients[2 * c + ch];
        for (int k = 0; k < OODLAB_BN_RUN && i < total; k++, i++) {
            dx[i] = F::store(scale * (oodlab_bn_gradient<F>(dy, mask, i) - shift - (F::load(x[i]) - mu) * slope));
            if (++q == hw && k + 1 < OODLAB_BN_RUN) {
                q = 0;
                if (++ch == c) ch = 0;
                mu = mean[ch];
                scale = coefficients[ch];
                shift = coefficients[c + ch];
                slope = coefficients[2 * c + ch];
            }
        }
    }
}

// param_grads: [dgamma | dbeta]; coefficients as oodlab_bn_backward_apply's.
extern "C" __global__ void oodlab_bn_backward_statistics(
    const float* partials, const float* gamma, const float* inv_std, float* param_grads, float* coefficients,
    unsigned int c, unsigned int m, unsigned int blocks)
{
    for (unsigned int ch = blockIdx.x * blockDim.x + threadIdx.x; ch < c; ch += blockDim.x * gridDim.x) {
        double a, b;
        oodlab_bn_channel_sums(partials, ch, blocks, &a, &b);
        double s = (double)inv_std[ch];
        double dgamma = b * s;
        param_grads[ch] = (float)dgamma;
        param_grads[c + ch] = (float)a;
        coefficients[ch] = (float)((double)gamma[ch] * s);
        coefficients[c + ch] = (float)(a / m);
        coefficients[2 * c + ch] = (float)(s * dgamma / m);
    }
}

// Evaluation (the running statistics): y = x * scale + shift per channel, the scale and shift
// computed by the caller with candle's ops as the layer's evaluation computes them (crates/train
// model/layers.rs), the product and the sum each rounded on their own in f32 as candle's
// broadcast ops round them (so bf16 and f16 data, read exactly into f32, behave as the casts to
// f32 and back around those ops), rounded once to the format; then the ReLU, or the residual
// added (rounded again, as candle's addition in the format) and the ReLU. The layer's separate ops
// bit for bit, in one pass where they take three to seven (host test in cuda_bn_on_host.rs).
template <class F, int AFTER>
__device__ __forceinline__ void oodlab_bn_eval(
    const typename F::T* x, const typename F::T* r, const float* scale, const float* shift, typename F::T* y,
    unsigned long long total, unsigned int c, unsigned int hw)
{
    unsigned long long runs = (total + OODLAB_BN_RUN - 1) / OODLAB_BN_RUN;
    for (unsigned long long run = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; run < runs;
         run += (unsigned long long)blockDim.x * gridDim.x) {
        unsigned long long i = run * OODLAB_BN_RUN, plane = i / hw;
        unsigned int q = (unsigned int)(i - plane * hw), ch = (unsigned int)(plane % c);
        float a = scale[ch], b = shift[ch];
        for (int k = 0; k < OODLAB_BN_RUN && i < total; k++, i++) {
            float v = F::load(F::store(__fadd_rn(__fmul_rn(F::load(x[i]), a), b)));
            if (AFTER == 2) {
                v = F::load(F::store(__fadd_rn(v, F::load(r[i]))));
            }
            if (AFTER != 0 && !(v > 0.0f)) {
                v = 0.0f; // PyTorch's ReLU (cuda_relu.cu): zero of either sign and below become +0
            }
            y[i] = F::store(v);
            if (++q == hw && k + 1 < OODLAB_BN_RUN) {
                q = 0;
                if (++ch == c) ch = 0;
                a = scale[ch];
                b = shift[ch];
            }
        }
    }
}

#define OODLAB_BN_EVAL(suffix, F)                                                                                        \
    extern "C" __global__ void oodlab_bn_eval_##suffix(const F::T* x, const float* scale, const float* shift, F::T* y,     \
                                                       unsigned long long total, unsigned int c, unsigned int hw) {       \
        oodlab_bn_eval<F, 0>(x, 0, scale, shift, y, total, c, hw);                                                         \
    }                                                                                                                     \
    extern "C" __global__ void oodlab_bn_eval_relu_##suffix(const F::T* x, const float* scale, const float* shift,         \
                                                            F::T* y, unsigned long long total, unsigned int c,            \
                                                            unsigned int hw) {                                             \
        oodlab_bn_eval<F, 1>(x, 0, scale, shift, y, total, c, hw);                                                         \
    }                                                                                                                     \
    extern "C" __global__ void oodlab_bn_eval_add_relu_##suffix(const F::T* x, const F::T* r, const float* scale,         \
                                                                const float* shift, F::T* y, unsigned long long total,    \
                                                                unsigned int c, unsigned int hw) {                         \
        oodlab_bn_eval<F, 2>(x, r, scale, shift, y, total, c, hw);                                                         \
    }

OODLAB_BN_EVAL(f32, OodlabF32)
OODLAB_BN_EVAL(bf16, OodlabBf16)
OODLAB_BN_EVAL(f16, OodlabF16)

#define OODLAB_BN_FORMAT(suffix, F)                                                                                      \
    extern "C" __global__ void oodlab_bn_sums_##suffix(const unsigned short* x, float* partials, unsigned int c,           \
                                                       unsigned int hw, unsigned int m) {                                   \
        oodlab_bn_block_sums<F, false>(x, 0, 0, 0, partials, c, hw, m);                                                      \
    }                                                                                                                     \
    extern "C" __global__ void oodlab_bn_statistics_##suffix(const unsigned short* x, const float* partials, float* mean,  \
                                                             float* inv_std, unsigned int c, unsigned int hw,              \
                                                             unsigned int m, unsigned int blocks, float eps) {             \
        oodlab_bn_statistics<F>(x, partials, mean, inv_std, c, hw, m, blocks, eps);                                       \
    }                                                                                                                     \
    extern "C" __global__ void oodlab_bn_apply_##suffix(const unsigned short* x, const float* mean, const float* inv_std,  \
                                                        const float* gamma, const float* beta, unsigned short* y,          \
                                                        unsigned long long total, unsigned int c, unsigned int hw) {      \
        oodlab_bn_apply<F, 0>(x, 0, mean, inv_std, gamma, beta, y, total, c, hw);                                         \
    }                                                                                                                     \
    extern "C" __global__ void oodlab_bn_apply_relu_##suffix(const unsigned short* x, const float* mean,                  \
                                                             const float* inv_std, const float* gamma, const float* beta,  \
                                                             unsigned short* y, unsigned long long total, unsigned int c,  \
                                                             unsigned int hw) {                                            \
        oodlab_bn_apply<F, 1>(x, 0, mean, inv_std, gamma, beta, y, total, c, hw);                                         \
    }                                                                                                                     \
    extern "C" __global__ void oodlab_bn_apply_add_relu_##suffix(const unsigned short* x, const unsigned short* r,        \
                                                                 const float* mean, const float* inv_std,                  \
                                                                 const float* gamma, const float* beta, unsigned short* y, \
                                                                 unsigned long long total, unsigned int c,                 \
                                                                 unsigned int hw) {                                        \
        oodlab_bn_apply<F, 2>(x, r, mean, inv_std, gamma, beta, y, total, c, hw);                                         \
    }                                                                                                                     \
    extern "C" __global__ void oodlab_bn_backward_sums_##suffix(const unsigned short* x, const unsigned short* dy,        \
                                                                const unsigned short* mask, const float* mean,             \
                                                                float* partials, unsigned int c, unsigned int hw,          \
                                                                unsigned int m) {                                          \
        oodlab_bn_block_sums<F, true>(x, dy, mask, mean, partials, c, hw, m);                                             \
    }                                                                                                                     \
    extern "C" __global__ void oodlab_bn_backward_apply_##suffix(const unsigned short* x, const unsigned short* dy,       \
                                                                 const unsigned short* mask, const float* mean,            \
                                                                 const float* coefficients, unsigned short* dx,            \
                                                                 unsigned long long total, unsigned int c,                 \
                                                                 unsigned int hw) {                                        \
        oodlab_bn_backward_apply<F>(x, dy, mask, mean, coefficients, dx, total, c, hw);                                   \
    }

OODLAB_BN_FORMAT(bf16, OodlabBf16)
OODLAB_BN_FORMAT(f16, OodlabF16)
