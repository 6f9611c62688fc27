// SGD's update in place, one kernel per variable (crates/kernels/src/cuda_sgd.rs). Compiled at run
// time by NVRTC, and on the host by g++ in crates/kernels/tests/cuda_source_on_host.rs.
extern "C" __global__ void oodlab_sgd(
    float* p, const float* grad, float* buf, unsigned long long n,
    float lr, float momentum, float weight_decay, int nesterov, int first)
{
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        float w = p[i];
        float g = grad[i];
        if (weight_decay != 0.0f) g = __fadd_rn(g, __fmul_rn(w, weight_decay));
        if (momentum != 0.0f) {
            float b = first ? g : __fadd_rn(__fmul_rn(buf[i], momentum), g);
            buf[i] = b;
            g = nesterov ? __fadd_rn(g, __fmul_rn(b, momentum)) : b;
        }
        p[i] = __fsub_rn(w, __fmul_rn(g, lr));
    }
}
