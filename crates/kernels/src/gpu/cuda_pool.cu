// Max-pooling of (planes, h, w) into (planes, ho, wo) over k x k windows with a stride and
// padding, as PyTorch's max_pool2d: padding never wins, and each window's value and gradient are
// those of its first maximum in row-major order (the CPU kernel's rule, crates/kernels/src/pool.rs).
//
// Compiled at run time by NVRTC (crates/kernels/src/cuda_pool.rs), and on the host by g++ with
// a few definitions standing in for CUDA's (crates/kernels/tests/cuda_source_on_host.rs), so
// that the kernels' logic is tested on machines without a GPU: no shared memory, no
// synchronisation, grid-stride loops that one thread can run through alone.
//
// The backward pass gathers rather than scatters: each input element sums the gradients of the
// windows whose maximum it is, in the windows' row-major order, which is the order in which the CPU
// kernel adds them, so f32 results are equal bit for bit, no atomics are needed, and runs repeat.
// bf16 and f16 are read into floats exactly; the output copies the input's bits, and the gradient
// is summed in f32 and rounded once to nearest even (as PyTorch accumulates half types). The
// conversions are cuda_half.cuh's, which the module's source begins with.

struct OodlabF32 {
    typedef float T;
    static __device__ __forceinline__ float get(const float* p, long long i) { return p[i]; }
    static __device__ __forceinline__ float put(float v) { return v; }
};

struct OodlabBf16 {
    typedef unsigned short T;
    static __device__ __forceinline__ float get(const unsigned short* p, long long i) { return oodlab_bf16_to_f32(p[i]); }
    static __device__ __forceinline__ unsigned short put(float v) { return oodlab_f32_to_bf16(v); }
};

struct OodlabF16 {
    typedef unsigned short T;
    static __device__ __forceinline__ float get(const unsigned short* p, long long i) { return oodlab_f16_to_f32(p[i]); }
    static __device__ __forceinline__ unsigned short put(float v) { return oodlab_f32_to_f16(v); }
};

// The position in `plane` (h x w) of window (i, j)'s first maximum, or -1 if the window holds no
// pixel (never for the shapes pool.rs accepts: padding is at most half the window).
template <class D>
__device__ __forceinline__ int oodlab_arg_max(const typename D::T* plane, int i, int j, int h, int w, int k, int stride, int padding) {
    int at = -1;
    float best = 0.0f;
    for (int di = 0; di < k; ++di) {
        int r = i * stride - padding + di;
        if (r < 0 || r >= h) continue;
        for (int dj = 0; dj < k; ++dj) {
            int q = j * stride - padding + dj;
            if (q < 0 || q >= w) continue;
            float v = D::get(plane, (long long)r * w + q);
            if (at < 0 || v > best) {
                best = v;
                at = r * w + q;
            }
        }
    }
    return at;
}

template <class D>
__device__ void oodlab_max_pool(const typename D::T* x, typename D::T* y, unsigned long long n, int h, int w, int ho, int wo,
                                int k, int stride, int padding) {
    for (unsigned long long o = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; o < n;
         o += (unsigned long long)blockDim.x * gridDim.x) {
        unsigned long long plane = o / ((unsigned long long)ho * wo);
        int r = (int)(o - plane * ho * wo);
        const typename D::T* xp = x + plane * h * w;
        int at = oodlab_arg_max<D>(xp, r / wo, r % wo, h, w, k, stride, padding);
        y[o] = xp[at < 0 ? 0 : at]; // the input's bits, unrounded
    }
}

template <class D>
__device__ void oodlab_max_pool_backward(const typename D::T* x, const typename D::T* gy, typename D::T* gx, unsigned long long n,
                                         int h, int w, int ho, int wo, int k, int stride, int padding) {
    for (unsigned long long idx = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; idx < n;
         idx += (unsigned long long)blockDim.x * gridDim.x) {
        unsigned long long plane = idx / ((unsigned long long)h * w);
        int pos = (int)(idx - plane * h * w);
        int r = pos / w, q = pos % w;
        // Windows (i, j) that hold (r, q): i * stride - padding <= r <= i * stride - padding + k - 1.
        int lo_i = r + padding - k + 1, lo_j = q + padding - k + 1;
        lo_i = lo_i <= 0 ? 0 : (lo_i + stride - 1) / stride;
        lo_j = lo_j <= 0 ? 0 : (lo_j + stride - 1) / stride;
        int hi_i = (r + padding) / stride, hi_j = (q + padding) / stride;
        hi_i = hi_i < ho - 1 ? hi_i : ho - 1;
        hi_j = hi_j < wo - 1 ? hi_j : wo - 1;
        const typename D::T* xp = x + plane * h * w;
        const typename D::T* gp = gy + plane * ho * wo;
        float sum = 0.0f;
        for (int i = lo_i; i <= hi_i; ++i) {
            for (int j = lo_j; j <= hi_j; ++j) {
                if (oodlab_arg_max<D>(xp, i, j, h, w, k, stride, padding) == pos) {
                    sum += D::get(gp, (long long)i * wo + j);
                }
            }
        }
        gx[idx] = D::put(sum);
    }
}

#define OODLAB_POOL_KERNELS(suffix, D)                                                                                     \
    extern "C" __global__ void oodlab_max_pool_##suffix(const D::T* x, D::T* y, unsigned long long n, int h, int w, int ho, \
                                                        int wo, int k, int stride, int padding) {                            \
        oodlab_max_pool<D>(x, y, n, h, w, ho, wo, k, stride, padding);                                                       \
    }                                                                                                                         \
    extern "C" __global__ void oodlab_max_pool_backward_##suffix(const D::T* x, const D::T* gy, D::T* gx, unsigned long long n, \
                                                                 int h, int w, int ho, int wo, int k, int stride, int padding) { \
        oodlab_max_pool_backward<D>(x, gy, gx, n, h, w, ho, wo, k, stride, padding);                                          \
    }

OODLAB_POOL_KERNELS(f32, OodlabF32)
OODLAB_POOL_KERNELS(bf16, OodlabBf16)
OODLAB_POOL_KERNELS(f16, OodlabF16)
