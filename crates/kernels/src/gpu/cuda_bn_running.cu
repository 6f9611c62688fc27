// A training step's batch-norm folds the batch's statistics into the running ones, in place, one
// kernel for both (crates/kernels/src/cudnn_bn.rs), with PyTorch's momentum update:
//   var   = 1 / (inv_std * inv_std) - eps          (cuDNN saves 1/sqrt(var + eps))
//   mean' = running_mean * keep + mean * momentum  (keep = 1 - momentum)
//   var'  = running_var * keep + var * var_factor  (var_factor = momentum * m / (m - 1): the
//                                                  variance unbiased over the m values of a channel)
// Each operation is rounded on its own, as the candle ops of the same update round them
// (crates/kernels/src/norm.rs, `running_statistics`, which the CPU uses). candle's `t * f` is its
// affine op `t * f + 0`: the `+ 0` is kept, as it turns a product of -0 into +0. Compiled at run
// time by NVRTC, and on the host by g++ in crates/kernels/tests/cuda_source_on_host.rs.
extern "C" __global__ void oodlab_bn_running(
    float* running_mean, float* running_var, const float* mean, const float* inv_std,
    unsigned long long c, float eps, float keep, float momentum, float var_factor)
{
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < c;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        float s = inv_std[i];
        float var = __fsub_rn(__fdiv_rn(1.0f, __fmul_rn(s, s)), eps);
        float m = __fadd_rn(__fmul_rn(running_mean[i], keep), 0.0f);
        running_mean[i] = __fadd_rn(m, __fadd_rn(__fmul_rn(mean[i], momentum), 0.0f));
        float v = __fadd_rn(__fmul_rn(running_var[i], keep), 0.0f);
        running_var[i] = __fadd_rn(v, __fadd_rn(__fmul_rn(var, var_factor), 0.0f));
    }
}
