//! The GPU's own half-precision training batch-norm (crates/kernels/src/gpu/cuda_bn.cu, `bn16k`),
//! compiled for the host by g++ and run as real grids: blocks of 256 threads with shared memory
//! and barriers, several blocks per channel (tests/host, `THREADS`). Against the definition worked
//! out in f64 from the same 16-bit values (PyTorch's `batch_norm(training=True)`: batch mean,
//! biased variance, eps 1e-5; its gradients written out), within the format's rounding; the fused
//! ReLU and residual+ReLU against the plain output followed by the ReLU and the addition rounded
//! as candle's, bit for bit. The evaluation kernel (f32, bf16, f16) against candle's ops apart,
//! as the model layers ran them. A GPU runs the same source (`oodlab check-kernels --device cuda`,
//! lines `bn16k ...`).

mod host;

use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};
use host::{read_f32, read_u16, write_f32, write_u16};

const HALF: &str = include_str!("../src/gpu/cuda_half.cuh");
const BN: &str = include_str!("../src/gpu/cuda_bn.cu");

/// `bn bf16|f16 N C H W BLOCKS THEN EPS DIR`: the forward pass over DIR/x (with DIR/r for THEN 2,
/// scale DIR/gamma, shift DIR/beta) and the backward pass from DIR/dy (masked by the output after
/// a fused ReLU, THEN 1), launched as cuda_bn.rs launches them but with BLOCKS blocks per channel
/// and small grids for the per-value kernels; writes DIR/y, mean, inv_std, dx and params
/// ([dgamma | dbeta]).
const HARNESS: &str = r#"
int main(int argc, char** argv) {
    std::string fmt = argv[1], dir = argv[9];
    unsigned int n = std::atoi(argv[2]), c = std::atoi(argv[3]), h = std::atoi(argv[4]), w = std::atoi(argv[5]);
    unsigned int blocks = std::atoi(argv[6]), hw = h * w, m = n * hw;
    int then = std::atoi(argv[7]);
    float eps = std::atof(argv[8]);
    unsigned long long total = (unsigned long long)n * c * hw;
    auto path = [&](const char* f) { return dir + "/" + f; };
    std::vector<unsigned short> x = read<unsigned short>(path("x").c_str()), r = read<unsigned short>(path("r").c_str());
    std::vector<unsigned short> dy = read<unsigned short>(path("dy").c_str()), y(total), dx(total);
    std::vector<float> gamma = read<float>(path("gamma").c_str()), beta = read<float>(path("beta").c_str());
    // NaN until written: a block's sum that is never written poisons its channel.
    std::vector<float> partials(2 * c * blocks, NAN), mean(c, NAN), inv_std(c, NAN), params(2 * c, NAN), coefficients(3 * c, NAN);
    bool bf = fmt == "bf16";
    launch(blocks, c, 256, [&] {
        if (bf) oodlab_bn_sums_bf16(x.data(), partials.data(), c, hw, m);
        else oodlab_bn_sums_f16(x.data(), partials.data(), c, hw, m);
    });
    launch(2, 1, 3, [&] {
        if (bf) oodlab_bn_statistics_bf16(x.data(), partials.data(), mean.data(), inv_std.data(), c, hw, m, blocks, eps);
        else oodlab_bn_statistics_f16(x.data(), partials.data(), mean.data(), inv_std.data(), c, hw, m, blocks, eps);
    });
    launch(3, 1, 5, [&] {
        const float *mu = mean.data(), *s = inv_std.data(), *g = gamma.data(), *b = beta.data();
        if (bf && then == 0) oodlab_bn_apply_bf16(x.data(), mu, s, g, b, y.data(), total, c, hw);
        if (bf && then == 1) oodlab_bn_apply_relu_bf16(x.data(), mu, s, g, b, y.data(), total, c, hw);
        if (bf && then == 2) oodlab_bn_apply_add_relu_bf16(x.data(), r.data(), mu, s, g, b, y.data(), total, c, hw);
        if (!bf && then == 0) oodlab_bn_apply_f16(x.data(), mu, s, g, b, y.data(), total, c, hw);
        if (!bf && then == 1) oodlab_bn_apply_relu_f16(x.data(), mu, s, g, b, y.data(), total, c, hw);
        if (!bf && then == 2) oodlab_bn_apply_add_relu_f16(x.data(), r.data(), mu, s, g, b, y.data(), total, c, hw);
    });
    std::fill(partials.begin(), partials.end(), NAN);
    const unsigned short* mask = then == 1 ? y.data() : nullptr;
    launch(blocks, c, 256, [&] {
        if (bf) oodlab_bn_backward_sums_bf16(x.data(), dy.data(), mask, mean.data(), partials.data(), c, hw, m);
        else oodlab_bn_backward_sums_f16(x.data(), dy.data(), mask, mean.data(), partials.data(), c, hw, m);
    });
    launch(1, 1, 2, [&] {
        oodlab_bn_backward_statistics(partials.data(), gamma.data(), inv_std.data(), params.data(), coefficients.data(), c, m, blocks);
    });
    launch(2, 1, 7, [&] {
        if (bf) oodlab_bn_backward_apply_bf16(x.data(), dy.data(), mask, mean.data(), coefficients.data(), dx.data(), total, c, hw);
        else oodlab_bn_backward_apply_f16(x.data(), dy.data(), mask, mean.data(), coefficients.data(), dx.data(), total, c, hw);
    });
    write(path("y"), y); write(path("mean"), mean); write(path("inv_std"), inv_std); write(path("dx"), dx); write(path("params"), params);
    return 0;
}
"#;

const EPS: f64 = 1e-5;

#[derive(Clone, Copy, Debug)]
enum Format {
    Bf16,
    F16,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Bf16 => "bf16",
            Format::F16 => "f16",
        }
    }

    fn bits(self, v: f32) -> u16 {
        match self {
            Format::Bf16 => bf16::from_f32(v).to_bits(),
            Format::F16 => f16::from_f32(v).to_bits(),
        }
    }

    fn value(self, b: u16) -> f32 {
        match self {
            Format::Bf16 => bf16::from_bits(b).to_f32(),
            Format::F16 => f16::from_bits(b).to_f32(),
        }
    }

    /// Half the gap between neighbouring values, relative: the error of one rounding.
    fn unit(self) -> f64 {
        match self {
            Format::Bf16 => 2f64.powi(-8),
            Format::F16 => 2f64.powi(-11),
        }
    }
}

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: f64) -> Vec<f64> {
    (0..len).map(|i| ((i as f64 * 0.618_034 + seed) * 12.9898).sin()).collect()
}

/// What the kernels gave for one case.
struct Outputs {
    y: Vec<u16>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    dx: Vec<u16>,
    params: Vec<f32>,
}

/// The inputs of one case, as 16-bit patterns, and their values.
#[derive(Clone)]
struct Inputs {
    x: Vec<u16>,
    r: Vec<u16>,
    dy: Vec<u16>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

fn inputs(format: Format, (n, c, h, w): (usize, usize, usize, usize)) -> Inputs {
    let hw = h * w;
    let len = n * c * hw;
    // Each channel far from 0 against its spread (offsets up to 24, spread 2): the variance's sum
    // would cancel without the kernels' shift.
    let x = values(len, 0.4).iter().enumerate().map(|(i, v)| format.bits((2.0 * v + ((i / hw) % c) as f64 * 6.0 - 6.0) as f32)).collect();
    let r = values(len, 0.45).iter().map(|v| format.bits(*v as f32)).collect();
    let dy = values(len, 0.7).iter().map(|v| format.bits(*v as f32)).collect();
    let gamma = values(c, 0.5).iter().map(|v| (v + 1.0) as f32).collect();
    let beta = values(c, 0.6).iter().map(|v| *v as f32).collect();
    Inputs { x, r, dy, gamma, beta }
}

fn run(format: Format, dims: (usize, usize, usize, usize), blocks: usize, then: u8, input: &Inputs) -> Outputs {
    let binary = host::binary("bn", || format!("{}{}\n{HALF}\n{BN}\n{HARNESS}", host::COMMON, host::THREADS));
    let dir = tempfile::tempdir().unwrap();
    let at = |f: &str| dir.path().join(f);
    write_u16(&at("x"), &input.x);
    write_u16(&at("r"), &input.r);
    write_u16(&at("dy"), &input.dy);
    write_f32(&at("gamma"), &input.gamma);
    write_f32(&at("beta"), &input.beta);
    let (n, c, h, w) = dims;
    let mut args: Vec<String> = vec![format.name().into()];
    args.extend([n, c, h, w, blocks].map(|v| v.to_string()));
    args.extend([then.to_string(), format!("{EPS:e}"), dir.path().display().to_string()]);
    host::run(&binary, &args);
    Outputs {
        y: read_u16(&at("y")),
        mean: read_f32(&at("mean")),
        inv_std: read_f32(&at("inv_std")),
        dx: read_u16(&at("dx")),
        params: read_f32(&at("params")),
    }
}

/// The definition in f64 over the inputs' values: per channel the mean and 1/sqrt(var + eps),
/// the normalized output before rounding, the input's gradient, dgamma and dbeta.
struct Reference {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    y: Vec<f64>,
    dx: Vec<f64>,
    dgamma: Vec<f64>,
    dbeta: Vec<f64>,
}

fn reference(format: Format, (n, c, h, w): (usize, usize, usize, usize), input: &Inputs) -> Reference {
    let hw = h * w;
    let m = (n * hw) as f64;
    let at = |b: usize, ch: usize, q: usize| (b * c + ch) * hw + q;
    let value = |bits: &[u16], i: usize| format.value(bits[i]) as f64;
    let (mut mean, mut inv_std, mut dgamma, mut dbeta) = (vec![0.0; c], vec![0.0; c], vec![0.0; c], vec![0.0; c]);
    let (mut y, mut dx) = (vec![0.0; n * c * hw], vec![0.0; n * c * hw]);
    for ch in 0..c {
        let indices: Vec<usize> = (0..n).flat_map(|b| (0..hw).map(move |q| at(b, ch, q))).collect();
        let mu = indices.iter().map(|&i| value(&input.x, i)).sum::<f64>() / m;
        let var = indices.iter().map(|&i| (value(&input.x, i) - mu).powi(2)).sum::<f64>() / m;
        let s = 1.0 / (var + EPS).sqrt();
        let g = input.gamma[ch] as f64;
        let sum_dy = indices.iter().map(|&i| value(&input.dy, i)).sum::<f64>();
        let sum_dy_xhat = indices.iter().map(|&i| value(&input.dy, i) * (value(&input.x, i) - mu) * s).sum::<f64>();
        for &i in &indices {
            let xhat = (value(&input.x, i) - mu) * s;
            y[i] = xhat * g + input.beta[ch] as f64;
            dx[i] = g * s * (value(&input.dy, i) - sum_dy / m - xhat * sum_dy_xhat / m);
        }
        (mean[ch], inv_std[ch], dgamma[ch], dbeta[ch]) = (mu, s, sum_dy_xhat, sum_dy);
    }
    Reference { mean, inv_std, y, dx, dgamma, dbeta }
}

/// Checks `got` against `want` within `bound(i)` each, naming the case and what.
fn assert_close(what: &str, got: impl Iterator<Item = f64>, want: &[f64], bound: impl Fn(usize) -> f64) {
    for (i, (g, w)) in got.zip(want).enumerate() {
        assert!((g - w).abs() <= bound(i), "{what}[{i}]: {g} where {w} (± {}) was expected", bound(i));
    }
}

fn check(format: Format, dims: (usize, usize, usize, usize), blocks: usize) {
    let case = format!("{} {dims:?} {blocks} blocks per channel", format.name());
    let input = inputs(format, dims);
    let want = reference(format, dims, &input);
    let out = run(format, dims, blocks, 0, &input);
    let u = format.unit();
    let largest = |v: &[f64]| v.iter().fold(0f64, |m, x| m.max(x.abs()));

    // Statistics: f32 sums of shifted values, then f64; the mean relative to the spread.
    let c = dims.1;
    let spread: Vec<f64> = want.inv_std.iter().map(|s| 1.0 / s).collect();
    assert_close(&format!("{case}: mean"), out.mean.iter().map(|v| *v as f64), &want.mean, |i| 1e-5 * (want.mean[i].abs() + spread[i]));
    assert_close(&format!("{case}: inv_std"), out.inv_std.iter().map(|v| *v as f64), &want.inv_std, |i| 1e-5 * want.inv_std[i]);
    // The output rounded once to the format (which neighbour, the f32 arithmetic before may
    // decide: up to a unit either way).
    let y_scale = largest(&want.y);
    assert_close(&format!("{case}: y"), out.y.iter().map(|b| format.value(*b) as f64), &want.y, |i| {
        2.0 * u * want.y[i].abs() + 1e-5 * y_scale
    });
    // The gradients: f32 sums per block, f64 per channel; dx rounded once.
    let (dgamma, dbeta) = (&out.params[..c], &out.params[c..]);
    let sum_scale = (dims.0 * dims.2 * dims.3) as f64;
    assert_close(&format!("{case}: dbeta"), dbeta.iter().map(|v| *v as f64), &want.dbeta, |_| 1e-5 * sum_scale);
    assert_close(&format!("{case}: dgamma"), dgamma.iter().map(|v| *v as f64), &want.dgamma, |_| 1e-5 * sum_scale * 4.0);
    let dx_scale = largest(&want.dx);
    assert_close(&format!("{case}: dx"), out.dx.iter().map(|b| format.value(*b) as f64), &want.dx, |i| {
        2.0 * u * want.dx[i].abs() + 1e-4 * dx_scale
    });

    // The fused outputs equal the plain one followed by the ReLU (sign bit set: 0) and by the
    // addition rounded once (candle's) and the ReLU, bit for bit; the fused ReLU's backward pass
    // equals the plain one from the gradient the ReLU passes (where its output is positive).
    let relu = |b: u16| if b & 0x8000 != 0 { 0 } else { b };
    let with_relu = run(format, dims, blocks, 1, &input);
    assert_eq!(with_relu.y, out.y.iter().map(|b| relu(*b)).collect::<Vec<_>>(), "{case}: batch-norm+ReLU");
    let passed: Vec<u16> = with_relu.y.iter().zip(&input.dy).map(|(y, g)| if *y == 0 || y & 0x8000 != 0 { 0 } else { *g }).collect();
    assert!(passed.iter().zip(&input.dy).any(|(p, g)| p != g), "{case}: the ReLU stops some gradient");
    let apart = run(format, dims, blocks, 0, &Inputs { dy: passed, ..input.clone() });
    assert_eq!((&with_relu.dx, &with_relu.params), (&apart.dx, &apart.params), "{case}: batch-norm+ReLU backward");
    let with_residual = run(format, dims, blocks, 2, &input);
    let summed: Vec<u16> = out.y.iter().zip(&input.r).map(|(a, b)| relu(format.bits(format.value(*a) + format.value(*b)))).collect();
    assert_eq!(with_residual.y, summed, "{case}: batch-norm+add+ReLU");
    // The statistics do not depend on what follows.
    assert_eq!((with_relu.mean, with_residual.inv_std), (out.mean, out.inv_std), "{case}");
}

#[test]
fn the_gpu_half_precision_batch_norm_follows_its_definition() {
    for format in [Format::Bf16, Format::F16] {
        // Planes smaller than a block's stride (several images a step), larger than it, a batch
        // of one with idle threads, one value per plane (every value another channel), a
        // ResNet shape, and several blocks per channel in most.
        check(format, (3, 5, 9, 7), 1);
        check(format, (2, 3, 45, 41), 3);
        check(format, (1, 4, 6, 6), 2);
        check(format, (16, 6, 1, 1), 1);
        check(format, (4, 8, 14, 14), 2);
    }
}

#[test]
fn the_sums_do_not_depend_on_how_many_blocks_share_a_channel_beyond_rounding() {
    // The same data split over 1 and 5 blocks: statistics within f32's rounding of each other,
    // and a launch of one shape repeats bit for bit (no atomics).
    let (format, dims) = (Format::Bf16, (4, 3, 20, 20));
    let input = inputs(format, dims);
    let (one, five, again) = (run(format, dims, 1, 0, &input), run(format, dims, 5, 0, &input), run(format, dims, 5, 0, &input));
    for (a, b) in one.mean.iter().zip(&five.mean).chain(one.inv_std.iter().zip(&five.inv_std)) {
        assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} against {b}");
    }
    assert_eq!((&five.y, &five.dx, &five.params), (&again.y, &again.dx, &again.params));
}

/// `eval f32|bf16|f16 N C H W THEN DIR`: the evaluation kernel over DIR/x (and DIR/r for THEN 2)
/// with DIR/scale and DIR/shift, on a small grid; writes DIR/y.
const EVAL_HARNESS: &str = r#"
template <class T> static void eval(const std::string& fmt, unsigned int c, unsigned int hw, unsigned long long total, int then, const std::string& dir) {
    auto path = [&](const char* f) { return dir + "/" + f; };
    std::vector<T> x = read<T>(path("x").c_str()), r = read<T>(path("r").c_str()), y(total);
    std::vector<float> scale = read<float>(path("scale").c_str()), shift = read<float>(path("shift").c_str());
    launch(3, 1, 5, [&] {
        const float *a = scale.data(), *b = shift.data();
        if constexpr (sizeof(T) == 4) {
            if (then == 0) oodlab_bn_eval_f32(x.data(), a, b, y.data(), total, c, hw);
            if (then == 1) oodlab_bn_eval_relu_f32(x.data(), a, b, y.data(), total, c, hw);
            if (then == 2) oodlab_bn_eval_add_relu_f32(x.data(), r.data(), a, b, y.data(), total, c, hw);
        } else if (fmt == "bf16") {
            if (then == 0) oodlab_bn_eval_bf16(x.data(), a, b, y.data(), total, c, hw);
            if (then == 1) oodlab_bn_eval_relu_bf16(x.data(), a, b, y.data(), total, c, hw);
            if (then == 2) oodlab_bn_eval_add_relu_bf16(x.data(), r.data(), a, b, y.data(), total, c, hw);
        } else {
            if (then == 0) oodlab_bn_eval_f16(x.data(), a, b, y.data(), total, c, hw);
            if (then == 1) oodlab_bn_eval_relu_f16(x.data(), a, b, y.data(), total, c, hw);
            if (then == 2) oodlab_bn_eval_add_relu_f16(x.data(), r.data(), a, b, y.data(), total, c, hw);
        }
    });
    write(path("y"), y);
}
int main(int argc, char** argv) {
    std::string fmt = argv[1];
    unsigned int n = std::atoi(argv[2]), c = std::atoi(argv[3]), h = std::atoi(argv[4]), w = std::atoi(argv[5]);
    int then = std::atoi(argv[6]);
    unsigned long long total = (unsigned long long)n * c * h * w;
    if (fmt == "f32") eval<float>(fmt, c, h * w, total, then, argv[7]);
    else eval<unsigned short>(fmt, c, h * w, total, then, argv[7]);
    return 0;
}
"#;

/// The evaluation kernel on `x` (and the residual `r`) in `dtype`, its output as f32 values.
fn run_eval(dtype: DType, x: &Tensor, r: &Tensor, scale: &[f32], shift: &[f32], then: u8) -> Vec<f32> {
    let binary = host::binary("bn_eval", || format!("{}{}\n{HALF}\n{BN}\n{EVAL_HARNESS}", host::COMMON, host::THREADS));
    let dir = tempfile::tempdir().unwrap();
    let at = |f: &str| dir.path().join(f);
    for (name, t) in [("x", x), ("r", r)] {
        let t = t.flatten_all().unwrap();
        match dtype {
            DType::F32 => write_f32(&at(name), &t.to_vec1::<f32>().unwrap()),
            DType::BF16 => write_u16(&at(name), &t.to_vec1::<bf16>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
            _ => write_u16(&at(name), &t.to_vec1::<f16>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
        }
    }
    write_f32(&at("scale"), scale);
    write_f32(&at("shift"), shift);
    let (n, c, h, w) = x.dims4().unwrap();
    let mut args: Vec<String> = vec![dtype.as_str().into()];
    args.extend([n, c, h, w].map(|v| v.to_string()));
    args.extend([then.to_string(), dir.path().display().to_string()]);
    host::run(&binary, &args);
    match dtype {
        DType::F32 => read_f32(&at("y")),
        DType::BF16 => read_u16(&at("y")).into_iter().map(|b| bf16::from_bits(b).to_f32()).collect(),
        _ => read_u16(&at("y")).into_iter().map(|b| f16::from_bits(b).to_f32()).collect(),
    }
}

#[test]
fn the_gpu_evaluation_batch_norm_equals_candles_ops_apart() {
    // What crates/train's layers computed in evaluation before the kernel: the data cast to f32,
    // times the scale, plus the shift (candle's broadcast ops), the ReLU, cast back; a block's end
    // adds the residual in the data's format, then the ReLU. Equal values (a zero's sign aside).
    let cpu = Device::Cpu;
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for (n, c, h, w) in [(3, 5, 9, 7), (16, 6, 1, 1), (2, 4, 3, 2)] {
            let len = n * c * h * w;
            let shaped = |v: Vec<f64>| Tensor::from_vec(v.iter().map(|x| *x as f32 * 3.0).collect::<Vec<_>>(), (n, c, h, w), &cpu);
            let x = shaped(values(len, 0.2)).unwrap().to_dtype(dtype).unwrap();
            let r = shaped(values(len, 0.3)).unwrap().to_dtype(dtype).unwrap();
            let scale: Vec<f32> = values(c, 0.5).iter().map(|v| (v * 1.7) as f32).collect();
            let shift: Vec<f32> = values(c, 0.6).iter().map(|v| *v as f32).collect();
            let per_channel = |v: &[f32]| Tensor::from_vec(v.to_vec(), (1, c, 1, 1), &cpu);
            let bn = x
                .to_dtype(DType::F32)
                .unwrap()
                .broadcast_mul(&per_channel(&scale).unwrap())
                .unwrap()
                .broadcast_add(&per_channel(&shift).unwrap())
                .unwrap();
            let plain = bn.to_dtype(dtype).unwrap();
            let with_relu = bn.relu().unwrap().to_dtype(dtype).unwrap();
            let with_residual = (&plain + &r).unwrap().relu().unwrap();
            for (then, want) in [(0u8, plain), (1, with_relu), (2, with_residual)] {
                let want = want.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let got = run_eval(dtype, &x, &r, &scale, &shift, then);
                assert_eq!(got, want, "{dtype:?} {n}x{c}x{h}x{w}, after {then}");
                if then == 1 {
                    assert!(want.contains(&0.0) && want.iter().any(|v| *v > 0.0), "the ReLU cuts some values");
                }
            }
        }
    }
}
