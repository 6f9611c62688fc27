// ReLU forward and its one-kernel backward pass (crates/kernels/src/cuda_relu.rs). Compiled at run
// time by NVRTC, and on the host by g++ in crates/kernels/tests/cuda_source_on_host.rs.
extern "C" __global__ void oodlab_relu_f32(const float* x, float* y, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}
extern "C" __global__ void oodlab_relu_backward_f32(const float* y, const float* gy, float* gx, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        gx[i] = y[i] > 0.0f ? gy[i] : 0.0f;
    }
}
// bf16 and f16 on their bits: the output keeps a value whose sign bit is clear, and the gradient
// passes where the output is neither zero nor negative.
extern "C" __global__ void oodlab_relu_b16(const unsigned short* x, unsigned short* y, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        unsigned short v = x[i];
        y[i] = (v & 0x8000u) ? (unsigned short)0 : v;
    }
}
extern "C" __global__ void oodlab_relu_backward_b16(const unsigned short* y, const unsigned short* gy, unsigned short* gx, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        unsigned short v = y[i];
        gx[i] = (v != 0 && !(v & 0x8000u)) ? gy[i] : (unsigned short)0;
    }
}
