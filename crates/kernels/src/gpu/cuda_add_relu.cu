// `max(a + b, 0)` in one kernel: a ResNet block's residual addition and ReLU, the sum never
// stored (crates/kernels/src/cudnn_bn.rs fuses it after the block's last batch-norm). The sum is
// rounded once to the data's format, as candle's addition rounds it, and the ReLU keeps a value
// whose sign bit is clear, as cuda_relu.cu does: the result equals candle's addition followed by
// that ReLU bit for bit. bf16 and f16 are added in f32 and rounded to nearest even: the f32 sum
// is exact unless the two lie too far apart, and then what it drops lies below half a unit of the
// half type, so the result is the exact sum rounded once. Compiled at run time by NVRTC after
// cuda_half.cuh, and on the host by g++ in crates/kernels/tests/cuda_source_on_host.rs.
extern "C" __global__ void oodlab_add_relu_f32(const float* a, const float* b, float* y, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        float v = __fadd_rn(a[i], b[i]);
        y[i] = v > 0.0f ? v : 0.0f;
    }
}
extern "C" __global__ void oodlab_add_relu_bf16(const unsigned short* a, const unsigned short* b, unsigned short* y, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        unsigned short v = oodlab_f32_to_bf16(__fadd_rn(oodlab_bf16_to_f32(a[i]), oodlab_bf16_to_f32(b[i])));
        y[i] = (v & 0x8000u) ? (unsigned short)0 : v;
    }
}
extern "C" __global__ void oodlab_add_relu_f16(const unsigned short* a, const unsigned short* b, unsigned short* y, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        unsigned short v = oodlab_f32_to_f16(__fadd_rn(oodlab_f16_to_f32(a[i]), oodlab_f16_to_f32(b[i])));
        y[i] = (v & 0x8000u) ? (unsigned short)0 : v;
    }
}
