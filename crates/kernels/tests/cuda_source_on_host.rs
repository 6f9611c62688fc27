//! The GPU's own kernels (crates/kernels/src/gpu/cuda_pool.cu, cuda_relu.cu, cuda_sgd.cu,
//! cuda_bn_running.cu, cuda_add_relu.cu, with cuda_half.cuh), compiled for the host by g++ with a
//! few definitions standing in for CUDA's (tests/host) and run by one thread through their
//! grid-stride loops: max-pooling against the CPU kernel
//! (crates/kernels/src/pool.rs, itself checked against PyTorch in against_torch.rs) and the `half`
//! crate's conversions, ReLU against PyTorch's rule, SGD against PyTorch's update written out in
//! f32, batch-norm's running statistics against the candle ops the CPU updates them with, the
//! residual addition and ReLU against candle's addition followed by the ReLU. A GPU runs the same sources
//! (`oodlab check-kernels --device cuda`, scripts/gpu-check.sh); this checks their arithmetic,
//! indexing, tie and padding rules and rounding on every machine, GPU or not.

mod host;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use half::{bf16, f16};
use host::{read_f32, read_u16, write_bytes, write_f32, write_u16};
use oodlab_kernels::SgdStep;

const HALF: &str = include_str!("../src/gpu/cuda_half.cuh");
const POOL: &str = include_str!("../src/gpu/cuda_pool.cu");
const ADD_RELU: &str = include_str!("../src/gpu/cuda_add_relu.cu");
const RELU: &str = include_str!("../src/gpu/cuda_relu.cu");
const SGD: &str = include_str!("../src/gpu/cuda_sgd.cu");
const RUNNING: &str = include_str!("../src/gpu/cuda_bn_running.cu");

/// `host convert IN OUT`: f32 values to bf16 and f16 bits and each back to f32.
/// `host forward|backward f32|bf16|f16 n c h w k stride padding X [GY] OUT`: the pooling kernels.
const POOL_HARNESS: &str = r#"
template <class T> static void pool(bool forward, const std::string& dtype, char** a) {
    unsigned long long n = std::atoll(a[0]), c = std::atoll(a[1]);
    int h = std::atoi(a[2]), w = std::atoi(a[3]), k = std::atoi(a[4]), s = std::atoi(a[5]), p = std::atoi(a[6]);
    int ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
    std::vector<T> x = read<T>(a[7]);
    if (forward) {
        std::vector<T> y(n * c * ho * wo);
        if (dtype == "f32") oodlab_max_pool_f32((const float*)x.data(), (float*)y.data(), y.size(), h, w, ho, wo, k, s, p);
        if (dtype == "bf16") oodlab_max_pool_bf16((const unsigned short*)x.data(), (unsigned short*)y.data(), y.size(), h, w, ho, wo, k, s, p);
        if (dtype == "f16") oodlab_max_pool_f16((const unsigned short*)x.data(), (unsigned short*)y.data(), y.size(), h, w, ho, wo, k, s, p);
        write(a[8], y);
    } else {
        std::vector<T> gy = read<T>(a[8]), gx(x.size());
        if (dtype == "f32") oodlab_max_pool_backward_f32((const float*)x.data(), (const float*)gy.data(), (float*)gx.data(), gx.size(), h, w, ho, wo, k, s, p);
        if (dtype == "bf16") oodlab_max_pool_backward_bf16((const unsigned short*)x.data(), (const unsigned short*)gy.data(), (unsigned short*)gx.data(), gx.size(), h, w, ho, wo, k, s, p);
        if (dtype == "f16") oodlab_max_pool_backward_f16((const unsigned short*)x.data(), (const unsigned short*)gy.data(), (unsigned short*)gx.data(), gx.size(), h, w, ho, wo, k, s, p);
        write(a[9], gx);
    }
}
int main(int argc, char** argv) {
    std::string what = argv[1];
    if (what == "convert") {
        std::vector<float> x = read<float>(argv[2]), b_back, h_back;
        std::vector<unsigned short> b, h;
        for (float v : x) {
            b.push_back(oodlab_f32_to_bf16(v));
            h.push_back(oodlab_f32_to_f16(v));
            b_back.push_back(oodlab_bf16_to_f32(b.back()));
            h_back.push_back(oodlab_f16_to_f32(h.back()));
        }
        std::string out = argv[3];
        write(out + ".bf16", b); write(out + ".f16", h); write(out + ".bf16.f32", b_back); write(out + ".f16.f32", h_back);
        return 0;
    }
    std::string dtype = argv[2];
    if (dtype == "f32") pool<float>(what == "forward", dtype, argv + 3);
    else pool<unsigned short>(what == "forward", dtype, argv + 3);
    return 0;
}
"#;

/// `relu f32|b16 forward X Y` and `relu f32|b16 backward Y GY GX`.
const RELU_HARNESS: &str = r#"
int main(int argc, char** argv) {
    std::string dtype = argv[1], what = argv[2];
    if (dtype == "f32") {
        std::vector<float> a = read<float>(argv[3]), out(a.size());
        if (what == "forward") oodlab_relu_f32(a.data(), out.data(), a.size());
        else { std::vector<float> g = read<float>(argv[4]); oodlab_relu_backward_f32(a.data(), g.data(), out.data(), a.size()); }
        write(argv[argc - 1], out);
    } else {
        std::vector<unsigned short> a = read<unsigned short>(argv[3]), out(a.size());
        if (what == "forward") oodlab_relu_b16(a.data(), out.data(), a.size());
        else { std::vector<unsigned short> g = read<unsigned short>(argv[4]); oodlab_relu_backward_b16(a.data(), g.data(), out.data(), a.size()); }
        write(argv[argc - 1], out);
    }
    return 0;
}
"#;

/// `sgd LR MOMENTUM WEIGHT_DECAY NESTEROV FIRST P GRAD BUF`: one update, P and BUF rewritten.
const SGD_HARNESS: &str = r#"
int main(int argc, char** argv) {
    float lr = std::atof(argv[1]), momentum = std::atof(argv[2]), wd = std::atof(argv[3]);
    int nesterov = std::atoi(argv[4]), first = std::atoi(argv[5]);
    std::vector<float> p = read<float>(argv[6]), g = read<float>(argv[7]), b = read<float>(argv[8]);
    oodlab_sgd(p.data(), g.data(), b.data(), p.size(), lr, momentum, wd, nesterov, first);
    write(argv[6], p);
    write(argv[8], b);
    return 0;
}
"#;

/// `running EPS KEEP MOMENTUM VAR_FACTOR RM RV MEAN INV_STD`, the factors as f32 bits in hex: one
/// update, RM and RV rewritten.
const RUNNING_HARNESS: &str = r#"
int main(int argc, char** argv) {
    float f[4];
    for (int i = 0; i < 4; i++) f[i] = __uint_as_float((unsigned int)std::strtoul(argv[1 + i], nullptr, 16));
    std::vector<float> rm = read<float>(argv[5]), rv = read<float>(argv[6]), m = read<float>(argv[7]), s = read<float>(argv[8]);
    oodlab_bn_running(rm.data(), rv.data(), m.data(), s.data(), rm.size(), f[0], f[1], f[2], f[3]);
    write(argv[5], rm);
    write(argv[6], rv);
    return 0;
}
"#;

/// `add_relu f32|bf16|f16 A B Y`.
const ADD_RELU_HARNESS: &str = r#"
int main(int argc, char** argv) {
    std::string dtype = argv[1];
    if (dtype == "f32") {
        std::vector<float> a = read<float>(argv[2]), b = read<float>(argv[3]), y(a.size());
        oodlab_add_relu_f32(a.data(), b.data(), y.data(), y.size());
        write(argv[4], y);
    } else {
        std::vector<unsigned short> a = read<unsigned short>(argv[2]), b = read<unsigned short>(argv[3]), y(a.size());
        if (dtype == "bf16") oodlab_add_relu_bf16(a.data(), b.data(), y.data(), y.size());
        else oodlab_add_relu_f16(a.data(), b.data(), y.data(), y.size());
        write(argv[4], y);
    }
    return 0;
}
"#;

/// A kernel source with its harness, compiled once per test binary.
fn host_binary(name: &'static str) -> PathBuf {
    host::binary(name, || {
        // The modules that compute half types in f32 begin with the conversions, as at run time.
        let (kernels, harness) = match name {
            "pool" => (format!("{HALF}\n{POOL}"), POOL_HARNESS),
            "add_relu" => (format!("{HALF}\n{ADD_RELU}"), ADD_RELU_HARNESS),
            "relu" => (RELU.to_string(), RELU_HARNESS),
            "running" => (RUNNING.to_string(), RUNNING_HARNESS),
            _ => (SGD.to_string(), SGD_HARNESS),
        };
        format!("{}{}\n{kernels}\n{harness}", host::COMMON, host::ONE_THREAD)
    })
}

fn run_kernel(name: &'static str, args: &[String]) {
    host::run(&host_binary(name), args);
}

/// Same bits, or both NaN (NaN payloads may differ).
fn same<T: PartialEq + Copy + std::fmt::Debug>(a: T, b: T, a_nan: bool, b_nan: bool) -> bool {
    (a_nan && b_nan) || a == b
}

#[test]
fn the_kernels_conversions_round_as_the_half_crate() {
    let dir = tempfile::tempdir().unwrap();
    // Every f16 value, the midpoints between neighbours (ties), values just beside them, every
    // bf16 value's neighbourhood over the f32 range, and pseudo-random f32 bit patterns.
    let mut xs: Vec<f32> = Vec::new();
    for bits in 0..=u16::MAX {
        let v = f16::from_bits(bits).to_f32();
        let next = f16::from_bits(bits.wrapping_add(1)).to_f32();
        xs.push(v);
        if v.is_finite() && next.is_finite() {
            let mid = (v as f64 + next as f64) / 2.0;
            xs.extend([mid as f32, f32::from_bits((mid as f32).to_bits() + 1), f32::from_bits((mid as f32).to_bits().saturating_sub(1))]);
        }
        let b = bf16::from_bits(bits).to_f32();
        xs.extend([b, f32::from_bits(b.to_bits() ^ 0x8000), f32::from_bits(b.to_bits() | 0x7fff), f32::from_bits(b.to_bits() + 1)]);
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        xs.push(f32::from_bits(state as u32));
    }
    xs.extend([65504.0, 65519.99, 65520.0, 1e9, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 5.96e-8, 2.98e-8, 2.99e-8, -0.0]);
    let input = dir.path().join("x");
    write_bytes(&input, xs.iter().map(|v| v.to_le_bytes()));
    let out = dir.path().join("out");
    run_kernel("pool", &["convert".into(), input.display().to_string(), out.display().to_string()]);
    let path = |ext: &str| PathBuf::from(format!("{}.{ext}", out.display()));
    let (b, h, b_back, h_back) = (read_u16(&path("bf16")), read_u16(&path("f16")), read_f32(&path("bf16.f32")), read_f32(&path("f16.f32")));
    assert_eq!(b.len(), xs.len());
    for (i, &x) in xs.iter().enumerate() {
        let (want_b, want_h) = (bf16::from_f32(x), f16::from_f32(x));
        assert!(
            same(b[i], want_b.to_bits(), bf16::from_bits(b[i]).is_nan(), want_b.is_nan()),
            "bf16 of {x:e} ({:#x}): {:#x}, want {:#x}",
            x.to_bits(),
            b[i],
            want_b.to_bits()
        );
        assert!(
            same(h[i], want_h.to_bits(), f16::from_bits(h[i]).is_nan(), want_h.is_nan()),
            "f16 of {x:e} ({:#x}): {:#x}, want {:#x}",
            x.to_bits(),
            h[i],
            want_h.to_bits()
        );
        let (back_b, back_h) = (want_b.to_f32(), want_h.to_f32());
        assert!(same(b_back[i].to_bits(), back_b.to_bits(), b_back[i].is_nan(), back_b.is_nan()), "bf16 {:#x} to f32", b[i]);
        assert!(
            same(h_back[i].to_bits(), back_h.to_bits(), h_back[i].is_nan(), back_h.is_nan()),
            "f16 {:#x} to f32: {} want {}",
            h[i],
            h_back[i],
            back_h
        );
    }
}

/// Inputs of (n, c, h, w): multiples of 1/2, exact in every format, so that windows hold ties;
/// the first plane's shifted down by 1, so that windows of negative values border the padding.
fn pool_input(n: usize, c: usize, h: usize, w: usize, seed: f32) -> Vec<f32> {
    (0..n * c * h * w)
        .map(|i| (((i as f32 * 0.618_034 + seed) * 12.9898).sin() * 2.0).round() / 2.0 - if i < h * w { 1.0 } else { 0.0 })
        .collect()
}

/// The CPU kernel's output and input gradient for upstream gradient `gy` (the kernel's values
/// in f32, checked against PyTorch elsewhere).
fn cpu_reference(
    x: &[f32],
    gy_of: impl Fn(usize) -> Vec<f32>,
    dims: (usize, usize, usize, usize),
    k: usize,
    s: usize,
    p: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let xv = Var::from_tensor(&Tensor::from_vec(x.to_vec(), dims, &Device::Cpu).unwrap()).unwrap();
    let y = oodlab_kernels::max_pool2d(xv.as_tensor(), k, s, p).unwrap();
    let gy = gy_of(y.elem_count());
    let gy_t = Tensor::from_vec(gy.clone(), y.shape(), &Device::Cpu).unwrap();
    let grads = (&y * &gy_t).unwrap().sum_all().unwrap().backward().unwrap();
    let gx = grads.get(xv.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), gy, gx)
}

/// Whether some window of the (planes, h, w) input holds its maximum more than once.
fn tied_maximum(x: &[f32], (planes, h, w): (usize, usize, usize), k: usize, s: usize, p: usize) -> bool {
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    (0..planes).any(|plane| {
        (0..ho * wo).any(|o| {
            let (i, j) = (o / wo, o % wo);
            let window: Vec<f32> = (0..k * k)
                .filter_map(|d| {
                    let (r, q) = ((i * s + d / k).checked_sub(p)?, (j * s + d % k).checked_sub(p)?);
                    (r < h && q < w).then(|| x[(plane * h + r) * w + q])
                })
                .collect();
            let max = window.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            window.iter().filter(|&&v| v == max).count() > 1
        })
    })
}

#[test]
fn the_gpu_pooling_equals_the_cpu_kernel_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    // (n, c, h, w, k, stride, padding): ResNet's stem (overlapping windows), the CNN's 2x2, odd and
    // non-square sizes, a batch of one, stride 1 (each input in up to nine windows).
    let cases = [
        (2, 4, 16, 16, 3, 2, 1),
        (2, 3, 8, 8, 2, 2, 0),
        (3, 2, 9, 7, 3, 2, 1),
        (1, 5, 7, 6, 2, 2, 0),
        (2, 2, 6, 6, 3, 1, 1),
        (1, 1, 5, 5, 3, 2, 0),
    ];
    for (case, &(n, c, h, w, k, s, p)) in cases.iter().enumerate() {
        let x = pool_input(n, c, h, w, case as f32);
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let round = |v: &[f32]| {
                Tensor::new(v, &Device::Cpu).unwrap().to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap()
            };
            // Gradients rounded to the format first, so the reference sums the values the kernel sees.
            let (y, gy, gx) = cpu_reference(
                &x,
                |len| round(&(0..len).map(|i| ((i as f32 * 0.37 + 0.5) * 7.1).sin()).collect::<Vec<_>>()),
                (n, c, h, w),
                k,
                s,
                p,
            );
            let name = dtype.as_str();
            let file = |what: &str| dir.path().join(format!("{case}-{name}-{what}"));
            let encode = |v: &[f32]| -> Vec<u8> {
                match dtype {
                    DType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    DType::BF16 => v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect(),
                    _ => v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()).collect(),
                }
            };
            let decode = |path: &Path| -> Vec<f32> {
                match dtype {
                    DType::F32 => read_f32(path),
                    DType::BF16 => read_u16(path).into_iter().map(|b| bf16::from_bits(b).to_f32()).collect(),
                    _ => read_u16(path).into_iter().map(|b| f16::from_bits(b).to_f32()).collect(),
                }
            };
            std::fs::write(file("x"), encode(&x)).unwrap();
            std::fs::write(file("gy"), encode(&gy)).unwrap();
            let geometry = [n, c, h, w, k, s, p].map(|v| v.to_string());
            let args = |what: &str, files: &[&str]| {
                let mut a = vec![what.to_string(), name.to_string()];
                a.extend(geometry.iter().cloned());
                a.extend(files.iter().map(|f| file(f).display().to_string()));
                a
            };
            run_kernel("pool", &args("forward", &["x", "y"]));
            run_kernel("pool", &args("backward", &["x", "gy", "gx"]));
            // The output copies input values: equal. The gradient: the CPU kernel's f32 sums (in
            // the same order) rounded once to the format.
            assert_eq!(decode(&file("y")), y, "case {case} {name}: output");
            let want_gx = if dtype == DType::F32 { gx.clone() } else { round(&gx) };
            assert_eq!(decode(&file("gx")), want_gx, "case {case} {name}: input gradient");
            // The cases exercise what the rules are about: ties in neighbouring pixels, and with
            // padding, windows of negative pixels only (zero padding would have won there).
            assert!(tied_maximum(&x, (n * c, h, w), k, s, p), "case {case}: no window holds its maximum twice");
            assert!(p == 0 || y.iter().any(|v| *v < 0.0), "case {case}: no window of negative pixels");
        }
    }
}

#[test]
fn a_window_of_ties_sends_its_gradient_to_the_first() {
    // Worked by hand: one 2x2 window of four equal values; PyTorch's rule gives the first the
    // whole gradient (a last-maximum or every-maximum rule would not).
    let x = vec![1.0f32, 1.0, 1.0, 1.0];
    let (_, _, gx) = cpu_reference(&x, |len| vec![1.0; len], (1, 1, 2, 2), 2, 2, 0);
    assert_eq!(gx, vec![1.0, 0.0, 0.0, 0.0], "the first maximum takes the gradient");
    let dir = tempfile::tempdir().unwrap();
    write_bytes(&dir.path().join("x"), x.iter().map(|v| v.to_le_bytes()));
    write_bytes(&dir.path().join("gy"), [1.0f32.to_le_bytes()]);
    let mut a: Vec<String> = ["backward", "f32", "1", "1", "2", "2", "2", "2", "0"].map(String::from).to_vec();
    a.extend(["x", "gy", "gx"].map(|f| dir.path().join(f).display().to_string()));
    run_kernel("pool", &a);
    assert_eq!(read_f32(&dir.path().join("gx")), gx);
}

#[test]
fn the_gpu_relu_follows_pytorchs_rule_in_every_format() {
    // PyTorch: max(x, 0), and the gradient passes where x > 0 only (not at 0). Values of either
    // sign, exact zeros of both signs, tiny and huge values.
    let dir = tempfile::tempdir().unwrap();
    let mut x: Vec<f32> = (0..997).map(|i| ((i as f32 * 0.618_034) * 12.9898).sin() * 3.0).collect();
    x.extend([0.0, -0.0, 1e-30, -1e-30, 6e4, -6e4, f32::MIN_POSITIVE, f32::INFINITY, f32::NEG_INFINITY]);
    let gy: Vec<f32> = (0..x.len()).map(|i| ((i as f32 * 0.37 + 0.5) * 7.1).sin()).collect();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    // f32
    write_f32(&dir.path().join("x"), &x);
    write_f32(&dir.path().join("gy"), &gy);
    run_kernel("relu", &args(&["f32", "forward", &path("x"), &path("y")]));
    let y = read_f32(&dir.path().join("y"));
    run_kernel("relu", &args(&["f32", "backward", &path("y"), &path("gy"), &path("gx")]));
    let gx = read_f32(&dir.path().join("gx"));
    for i in 0..x.len() {
        let (want_y, want_g) = if x[i] > 0.0 { (x[i], gy[i]) } else { (0.0, 0.0) };
        assert_eq!((y[i].to_bits(), gx[i].to_bits()), (want_y.to_bits(), want_g.to_bits()), "f32 relu at {}", x[i]);
    }
    // bf16 and f16 run the same kernel on their bits.
    for (name, to_bits, from_bits) in [
        ("bf16", (|v: f32| bf16::from_f32(v).to_bits()) as fn(f32) -> u16, (|b: u16| bf16::from_bits(b).to_f32()) as fn(u16) -> f32),
        ("f16", |v| f16::from_f32(v).to_bits(), |b| f16::from_bits(b).to_f32()),
    ] {
        let (xb, gb): (Vec<u16>, Vec<u16>) = (x.iter().map(|&v| to_bits(v)).collect(), gy.iter().map(|&v| to_bits(v)).collect());
        write_u16(&dir.path().join("xb"), &xb);
        write_u16(&dir.path().join("gb"), &gb);
        run_kernel("relu", &args(&["b16", "forward", &path("xb"), &path("yb")]));
        let yb = read_u16(&dir.path().join("yb"));
        run_kernel("relu", &args(&["b16", "backward", &path("yb"), &path("gb"), &path("gxb")]));
        let gxb = read_u16(&dir.path().join("gxb"));
        for i in 0..x.len() {
            let xv = from_bits(xb[i]);
            let (want_y, want_g) = if xv > 0.0 { (xb[i], gb[i]) } else { (0, 0) };
            assert_eq!((yb[i], gxb[i]), (want_y, want_g), "{name} relu at {xv}");
        }
    }
}

/// PyTorch's SGD update (torch.optim.SGD's `_single_tensor_sgd`), each operation rounded to f32
/// on its own: the reference the kernel must equal bit for bit.
fn sgd_reference(p: &mut [f32], grad: &[f32], buf: &mut [f32], step: SgdStep, first: bool) {
    let SgdStep { lr, momentum, weight_decay: wd, nesterov } = step;
    for i in 0..p.len() {
        let mut g = grad[i];
        if wd != 0.0 {
            g += p[i] * wd;
        }
        if momentum != 0.0 {
            buf[i] = if first { g } else { buf[i] * momentum + g };
            g = if nesterov { g + buf[i] * momentum } else { buf[i] };
        }
        p[i] -= g * lr;
    }
}

#[test]
fn the_gpu_sgd_update_equals_pytorchs_rounded_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let n = 1000;
    let path = |name: &str| dir.path().join(name).display().to_string();
    for (momentum, wd, nesterov) in [(0.9f32, 5e-4f32, true), (0.9, 5e-4, false), (0.0, 0.0, false), (0.9, 0.0, true), (0.0, 1e-2, false)] {
        let lr = 0.05f32;
        let mut p: Vec<f32> = (0..n).map(|i| ((i as f32 * 0.618_034 + 0.8) * 12.9898).sin()).collect();
        let mut buf = vec![0f32; n];
        write_f32(&dir.path().join("p"), &p);
        write_f32(&dir.path().join("buf"), &buf);
        for step in 0..3 {
            let grad: Vec<f32> = (0..n).map(|i| ((i as f32 * 0.618_034 + 0.9 + step as f32) * 12.9898).sin()).collect();
            write_f32(&dir.path().join("grad"), &grad);
            sgd_reference(&mut p, &grad, &mut buf, SgdStep { lr, momentum, weight_decay: wd, nesterov }, step == 0);
            let args = [
                lr.to_string(),
                momentum.to_string(),
                wd.to_string(),
                u8::from(nesterov).to_string(),
                u8::from(step == 0).to_string(),
                path("p"),
                path("grad"),
                path("buf"),
            ];
            run_kernel("sgd", &args);
            let case = format!("momentum {momentum} wd {wd} nesterov {nesterov} step {step}");
            assert_eq!(read_f32(&dir.path().join("p")), p, "{case}: weights");
            if momentum != 0.0 {
                assert_eq!(read_f32(&dir.path().join("buf")), buf, "{case}: momentum buffer");
            }
        }
    }
}

#[test]
fn the_gpu_running_statistics_equal_the_cpus_candle_ops_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let c = 1000;
    let wave = |i: usize, seed: f32| ((i as f32 * 0.618_034 + seed) * 12.9898).sin();
    // Running values and batch means of either sign, some zeros of both signs (candle's `t * f` is
    // `t * f + 0`: a -0 product becomes +0, and the sum of two -0 would stay -0 without it);
    // 1/sqrt(var + eps) over variances from 0 to ~100, as cuDNN saves it.
    let signed = |i: usize, seed: f32| match i % 50 {
        0 => -0.0,
        1 => 0.0,
        _ => wave(i, seed) * 3.0,
    };
    let rm0: Vec<f32> = (0..c).map(|i| signed(i, 0.1)).collect();
    let mean: Vec<f32> = (0..c).map(|i| signed(i, 0.2)).collect();
    let rv0: Vec<f32> = (0..c).map(|i| wave(i, 0.3).abs() * 4.0).collect();
    let eps = 1e-5f64;
    let inv_std: Vec<f32> = (0..c).map(|i| 1.0 / ((wave(i, 0.4).abs() * 10.0).powi(2) + eps as f32).sqrt()).collect();
    assert!(rm0.iter().zip(&mean).any(|(a, b)| a.to_bits() == (-0f32).to_bits() && b.to_bits() == (-0f32).to_bits()));
    let cpu = Device::Cpu;
    let t = |v: &[f32]| Tensor::from_vec(v.to_vec(), c, &cpu).unwrap();
    let hex = |v: f32| format!("{:x}", v.to_bits());
    // (momentum, values per channel): PyTorch's default over a ResNet stem's batch, the smallest
    // batch (factor 2 momentum), an odd count, a large momentum.
    for (momentum, count) in [(0.1f64, 64.0 * 112.0 * 112.0), (0.1, 2.0), (0.01, 49.0), (0.5, 1000.0)] {
        // The CPU's update, from the variance as the GPU path derives it from cuDNN's 1/sqrt(var + eps).
        let var = (t(&inv_std).sqr().unwrap().recip().unwrap() - eps).unwrap();
        let (rm, rv) = oodlab_kernels::running_statistics(&t(&rm0), &t(&rv0), &t(&mean), &var, momentum, count).unwrap();
        write_f32(&dir.path().join("rm"), &rm0);
        write_f32(&dir.path().join("rv"), &rv0);
        write_f32(&dir.path().join("mean"), &mean);
        write_f32(&dir.path().join("inv"), &inv_std);
        let factors = [eps as f32, (1.0 - momentum) as f32, momentum as f32, (momentum * count / (count - 1.0)) as f32];
        let mut args: Vec<String> = factors.iter().map(|&v| hex(v)).collect();
        args.extend(["rm", "rv", "mean", "inv"].map(path));
        run_kernel("running", &args);
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let case = format!("momentum {momentum}, {count} values per channel");
        assert_eq!(bits(read_f32(&dir.path().join("rm"))), bits(rm.to_vec1().unwrap()), "{case}: running mean");
        assert_eq!(bits(read_f32(&dir.path().join("rv"))), bits(rv.to_vec1().unwrap()), "{case}: running variance");
    }
}

#[test]
fn the_gpu_residual_addition_and_relu_equal_candles_addition_then_the_relu() {
    // The unfused GPU path it replaces: candle's addition in the data's format, then cuda_relu.cu's
    // rule (tested above): the sum where its sign bit is clear, else +0. Values of either sign,
    // sums that cancel to zeros of both signs, sums far apart in magnitude, sums that overflow f16.
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let wave = |i: usize, seed: f32| ((i as f32 * 0.618_034 + seed) * 12.9898).sin();
    let mut a: Vec<f32> = (0..2000).map(|i| wave(i, 0.1) * 3.0).collect();
    let mut b: Vec<f32> = (0..2000).map(|i| wave(i, 0.2) * 3.0 * 10f32.powi(i as i32 % 7 - 3)).collect();
    for (x, y) in [(1.5, -1.5), (-0.0, -0.0), (0.0, -0.0), (-2.0, 2.0), (40000.0, 40000.0), (-40000.0, -40000.0), (1.0, 1e-6), (-1.0, 3e-5)]
    {
        a.push(x);
        b.push(y);
    }
    assert!(a.iter().zip(&b).any(|(x, y)| x + y == 0.0) && a.iter().zip(&b).any(|(x, y)| (x + y).abs() > 65504.0));
    let cpu = Device::Cpu;
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let t = |v: &[f32]| Tensor::from_vec(v.to_vec(), v.len(), &cpu).unwrap().to_dtype(dtype).unwrap();
        let sum = (t(&a) + t(&b)).unwrap();
        let name = format!("{dtype:?}").to_lowercase();
        let want: Vec<u32> = match dtype {
            DType::F32 => sum.to_vec1::<f32>().unwrap().iter().map(|&v| if v > 0.0 { v.to_bits() } else { 0 }).collect(),
            _ => {
                let bits: Vec<u16> = if dtype == DType::BF16 {
                    sum.to_vec1::<bf16>().unwrap().iter().map(|v| v.to_bits()).collect()
                } else {
                    sum.to_vec1::<f16>().unwrap().iter().map(|v| v.to_bits()).collect()
                };
                bits.iter().map(|&v| if v & 0x8000 != 0 { 0 } else { u32::from(v) }).collect()
            }
        };
        let got: Vec<u32> = if dtype == DType::F32 {
            write_f32(&dir.path().join("a"), &a);
            write_f32(&dir.path().join("b"), &b);
            run_kernel("add_relu", &[name.clone(), path("a"), path("b"), path("y")]);
            read_f32(&dir.path().join("y")).iter().map(|v| v.to_bits()).collect()
        } else {
            let bits = |v: &Tensor| -> Vec<u16> {
                if dtype == DType::BF16 {
                    v.to_vec1::<bf16>().unwrap().iter().map(|x| x.to_bits()).collect()
                } else {
                    v.to_vec1::<f16>().unwrap().iter().map(|x| x.to_bits()).collect()
                }
            };
            write_u16(&dir.path().join("a"), &bits(&t(&a)));
            write_u16(&dir.path().join("b"), &bits(&t(&b)));
            run_kernel("add_relu", &[name.clone(), path("a"), path("b"), path("y")]);
            read_u16(&dir.path().join("y")).into_iter().map(u32::from).collect()
        };
        for i in 0..a.len() {
            assert_eq!(got[i], want[i], "{name}: relu({} + {})", a[i], b[i]);
        }
    }
}
