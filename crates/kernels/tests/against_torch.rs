//! The kernels against PyTorch on fixed inputs: values made by scripts/reference/kernels_torch.py
//! (float64 from the same float32 inputs), kept in tests/fixtures/kernels_torch.json.

use candle_core::{Device, Tensor, Var};
use serde_json::Value;

fn values(shape: &[usize], seed: f64) -> Var {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i as f64 * 0.731 + seed).sin() * 1.7) as f32).collect();
    Var::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn upstream(y: &Tensor) -> Tensor {
    Tensor::from_vec((0..y.elem_count()).map(|i| 0.5 + (i % 13) as f32 * 0.25).collect::<Vec<_>>(), y.shape(), &Device::Cpu).unwrap()
}

fn reference() -> Value {
    serde_json::from_str(include_str!("fixtures/kernels_torch.json")).unwrap()
}

fn close(what: &str, got: &Tensor, want: &Value) {
    let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want: Vec<f64> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((*g as f64 - w).abs() <= 1e-4 * scale, "{what}[{i}]: {g}, PyTorch {w}");
    }
}

fn case(v: &Value) -> Vec<usize> {
    v["case"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

#[test]
fn conv2d_as_pytorch() {
    for r in reference()["conv"].as_array().unwrap() {
        let [n, c, o, h, w, k, s, p] = case(r)[..] else { panic!() };
        let (x, wt, b) = (values(&[n, c, h, w], 0.1), values(&[o, c, k, k], 0.7), values(&[o], 1.3));
        let y = oodlab_kernels::conv2d(x.as_tensor(), wt.as_tensor(), Some(b.as_tensor()), s, p).unwrap();
        let grads = (&y * upstream(&y)).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("conv {:?}", case(r));
        close(&what, &y, &r["y"]);
        close(&format!("{what} dx"), grads.get(x.as_tensor()).unwrap(), &r["dx"]);
        close(&format!("{what} dw"), grads.get(wt.as_tensor()).unwrap(), &r["dw"]);
        close(&format!("{what} db"), grads.get(b.as_tensor()).unwrap(), &r["db"]);
    }
}

#[test]
fn batch_norm_relu_pool_as_pytorch() {
    for r in reference()["bn_relu_pool"].as_array().unwrap() {
        let dims = case(r);
        let (n, c, h, w) = (dims[0], dims[1], dims[2], dims[3]);
        let pool = (dims.len() == 7).then(|| (dims[4], dims[5], dims[6]));
        let (x, gamma, beta) = (values(&[n, c, h, w], 0.5), values(&[c], 2.0), values(&[c], 3.0));
        let y = oodlab_kernels::batch_norm_train(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5, true, pool).unwrap().y;
        let grads = (&y * upstream(&y)).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("bn {dims:?}");
        close(&what, &y, &r["y"]);
        close(&format!("{what} dx"), grads.get(x.as_tensor()).unwrap(), &r["dx"]);
        close(&format!("{what} dgamma"), grads.get(gamma.as_tensor()).unwrap(), &r["dgamma"]);
        close(&format!("{what} dbeta"), grads.get(beta.as_tensor()).unwrap(), &r["dbeta"]);
    }
}

#[test]
fn conv_then_batch_norm_as_pytorch() {
    // The fused op: convolution, batch-norm, ReLU and (if given) max-pooling.
    for r in reference()["conv_bn"].as_array().unwrap() {
        let dims = case(r);
        let [n, c, o, h, w, k, s, p] = dims[..8] else { panic!() };
        let pool = (dims.len() == 11).then(|| (dims[8], dims[9], dims[10]));
        let (x, wt, b) = (values(&[n, c, h, w], 0.1), values(&[o, c, k, k], 0.7), values(&[o], 1.3));
        let (gamma, beta) = (values(&[o], 2.0), values(&[o], 3.0));
        let (xt, wtt, bt, gt, btt) = (x.as_tensor(), wt.as_tensor(), b.as_tensor(), gamma.as_tensor(), beta.as_tensor());
        let y = oodlab_kernels::conv_bn_train(xt, wtt, Some(bt), gt, btt, (s, p), 1e-5, true, pool).unwrap().y;
        let grads = (&y * upstream(&y)).unwrap().sum_all().unwrap().backward().unwrap();
        let what = format!("conv+bn {dims:?}");
        close(&what, &y, &r["y"]);
        for (name, v) in [("dx", &x), ("dw", &wt), ("dgamma", &gamma), ("dbeta", &beta)] {
            close(&format!("{what} {name}"), grads.get(v.as_tensor()).unwrap(), &r[name]);
        }
    }
}

#[test]
fn max_pool_as_pytorch() {
    for r in reference()["pool"].as_array().unwrap() {
        let [n, c, h, w, k, s, p] = case(r)[..] else { panic!() };
        let x = values(&[n, c, h, w], 0.3);
        let y = oodlab_kernels::max_pool2d(x.as_tensor(), k, s, p).unwrap();
        let grads = (&y * upstream(&y)).unwrap().sum_all().unwrap().backward().unwrap();
        close(&format!("pool {:?}", case(r)), &y, &r["y"]);
        close(&format!("pool {:?} dx", case(r)), grads.get(x.as_tensor()).unwrap(), &r["dx"]);
    }
}

#[test]
fn candles_own_max_pool_gradient_is_a_quarter_of_pytorchs() {
    // Why oodlab does not use candle's max_pool2d: for 2x2 windows with one maximum its backward
    // pass gives a quarter of the gradient (it multiplies by the share of the window holding the
    // maximum instead of dividing by the number of maxima), and for odd sizes its upsampled mask
    // misses windows altogether. Runs trained with it learn slower. The reference here is this
    // crate's max-pool, which matches PyTorch (test above).
    let x = values(&[2, 3, 8, 8], 0.3);
    let grad = |y: &Tensor| (y * upstream(y)).unwrap().sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
    let theirs = x.as_tensor().max_pool2d(2).unwrap();
    let ours = oodlab_kernels::max_pool2d(x.as_tensor(), 2, 2, 0).unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(flat(&theirs), flat(&ours));
    let (candle, right) = (flat(&grad(&theirs)), flat(&grad(&ours)));
    assert!(right.iter().any(|&v| v != 0.0));
    for (c, r) in candle.iter().zip(&right) {
        assert_eq!(4.0 * c, *r);
    }
}
