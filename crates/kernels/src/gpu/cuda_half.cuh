// Conversions between f32 and the 16-bit formats, exact one way and rounded to nearest even the
// other, for the kernels that compute half types in f32 (cuda_pool.cu, cuda_add_relu.cu): each
// module's source begins with this file (crates/kernels/src/cuda_pool.rs, cudnn_bn.rs). Tested
// against the `half` crate in crates/kernels/tests/cuda_source_on_host.rs.

__device__ __forceinline__ float oodlab_bf16_to_f32(unsigned short b) {
    return __uint_as_float(((unsigned int)b) << 16);
}

__device__ __forceinline__ unsigned short oodlab_f32_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (unsigned short)((u >> 16) | 0x40u); // NaN stays a (quiet) NaN
    }
    u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even
    return (unsigned short)(u >> 16);
}

__device__ __forceinline__ float oodlab_f16_to_f32(unsigned short h) {
    unsigned int sign = ((unsigned int)h & 0x8000u) << 16;
    unsigned int e = ((unsigned int)h >> 10) & 0x1fu;
    unsigned int m = (unsigned int)h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-8f; // subnormal: m * 2^-24, exact
        return sign ? -v : v;
    }
    if (e == 31) {
        return __uint_as_float(sign | 0x7f800000u | (m << 13)); // infinity or NaN
    }
    return __uint_as_float(sign | ((e + 112u) << 23) | (m << 13));
}

__device__ __forceinline__ unsigned short oodlab_f32_to_f16(float f) {
    unsigned int u = __float_as_uint(f);
    unsigned int sign = (u >> 16) & 0x8000u;
    unsigned int a = u & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return (unsigned short)(sign | 0x7e00u); // NaN
    }
    if (a >= 0x477ff000u) {
        return (unsigned short)(sign | 0x7c00u); // 65520 and above round to infinity
    }
    if (a < 0x38800000u) {
        // Below half's smallest normal (2^-14): a multiple of 2^-24, rounded to nearest even; a
        // result of 0x400 is the smallest normal, which is its encoding too.
        return (unsigned short)(sign | __float2uint_rn(__uint_as_float(a) * 16777216.0f));
    }
    a += 0xc8000fffu + ((a >> 13) & 1u); // exponent rebased from 127 to 15, rounded to nearest even
    return (unsigned short)(sign | (a >> 13));
}
