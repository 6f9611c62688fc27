//! Each method's loss on fixed logits matches values computed independently in NumPy
//! (`scripts/reference/losses_numpy.py`, kept in `fixtures/`), as do CutMix's box and recomputed
//! lambda and the gradients of LMOE's consistency term; the detached side receives no gradient.

use candle_core::{DType, Device, Tensor, Var};
use oodlab_spec::{Consistency, ConsistencyLoss, Detach, LamPer, LmoeParams, Mix};
use oodlab_train::methods::{energy_oe, lmoe, losses, mixing, mixoe, oe};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/losses_reference.json")).unwrap()
}

fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let (r, c) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (r, c), &Device::Cpu).unwrap()
}

fn labels(v: &Value) -> Tensor {
    let y: Vec<u32> = serde_json::from_value(v.clone()).unwrap();
    Tensor::from_vec(y, 3, &Device::Cpu).unwrap()
}

fn lam(f: &Value, per: &str) -> Tensor {
    let l: Vec<f64> = serde_json::from_value(f["lams"][per].clone()).unwrap();
    losses::lam_column(&l, &Tensor::zeros(1, DType::F64, &Device::Cpu).unwrap()).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

fn close(got: f64, want: &Value, what: &str) {
    let want = want.as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "{what}: got {got}, NumPy {want}");
}

fn enum_of<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn ce_oe_and_energy_oe_match_numpy() {
    let f = fixture();
    let (z_in, z_out, y) = (matrix(&f["z_in"]), matrix(&f["z_out"]), labels(&f["y"]));
    close(scalar(&losses::ce(&z_in, &y).unwrap()), &f["ce"], "ce");
    close(scalar(&oe::loss(&z_in, &y, &z_out, 0.5).unwrap()), &f["oe"]["loss"], "oe");
    for case in f["energy_oe"].as_array().unwrap() {
        let (w, a, b) = (case["weight"].as_f64().unwrap(), case["m_in"].as_f64().unwrap(), case["m_out"].as_f64().unwrap());
        close(scalar(&energy_oe::loss(&z_in, &y, &z_out, w, a, b).unwrap()), &case["loss"], &format!("energy-oe {case}"));
    }
}

#[test]
fn mixoe_matches_numpy() {
    let f = fixture();
    let (z_in, z_xmix, y) = (matrix(&f["z_in"]), matrix(&f["z_xmix"]), labels(&f["y"]));
    for case in f["mixoe"].as_array().unwrap() {
        let l = lam(&f, case["lam_per"].as_str().unwrap());
        close(scalar(&mixoe::loss(&z_in, &y, &z_xmix, &l, 5.0, 4).unwrap()), &case["loss"], "mixoe");
    }
}

#[test]
fn lmoe_matches_numpy_for_every_switch() {
    let f = fixture();
    let (z_in, z_out, z_xmix, y) = (matrix(&f["z_in"]), matrix(&f["z_out"]), matrix(&f["z_xmix"]), labels(&f["y"]));
    let cases = f["lmoe"].as_array().unwrap();
    assert_eq!(cases.len(), 2 * 3 * 3 * 2);
    for case in cases {
        let params = LmoeParams {
            mix: Mix::Mixup,
            alpha: Some(1.0),
            weight: case["weight"].as_f64().unwrap(),
            consistency: Consistency {
                loss: enum_of(&case["loss_kind"]),
                weight: case["c"].as_f64().unwrap(),
                detach: enum_of(&case["detach"]),
                ..Consistency::default()
            },
            input_mix_ce: case["input_mix_ce"].as_bool().unwrap(),
            lam_per: enum_of::<LamPer>(&case["lam_per"]),
            forward: None,
            mix_at: None,
            noise: None,
            pair: None,
        };
        let l = lam(&f, case["lam_per"].as_str().unwrap());
        let got = lmoe::loss(&z_in, &z_out, Some(&z_xmix), &y, &l, &params, 4).unwrap();
        close(scalar(&got), &case["loss"], &format!("lmoe {case}"));
    }
}

#[test]
fn consistency_gradients_reach_only_the_side_that_is_not_detached() {
    let f = fixture();
    for case in f["consistency_grads"].as_array().unwrap() {
        let detach: Detach = enum_of(&case["detach"]);
        let loss: ConsistencyLoss = enum_of(&case["loss_kind"]);
        let vin = Var::from_tensor(&matrix(&f["z_in"])).unwrap();
        let vout = Var::from_tensor(&matrix(&f["z_out"])).unwrap();
        let vx = Var::from_tensor(&matrix(&f["z_xmix"])).unwrap();
        let l = lam(&f, case["lam_per"].as_str().unwrap());
        let z_lmix = losses::lerp(vin.as_tensor(), vout.as_tensor(), &l).unwrap();
        let c = Consistency { loss, weight: 1.0, detach, ..Consistency::default() };
        let d = lmoe::consistency(vx.as_tensor(), &z_lmix, &c).unwrap().unwrap();
        close(scalar(&d), &case["value"], &format!("consistency {case}"));
        let grads = d.backward().unwrap();
        let check = |var: &Var, key: &str, detached: bool| {
            let got = grads.get(var);
            if detached {
                let zero = got.is_none_or(|g| g.abs().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap() == 0.0);
                assert!(zero, "{key}: a gradient reached the detached side ({detach:?}, {loss:?})");
            } else {
                let got: Vec<f64> = got.expect("a gradient").flatten_all().unwrap().to_vec1().unwrap();
                let want: Vec<Vec<f64>> = serde_json::from_value(case[key].clone()).unwrap();
                for (g, w) in got.iter().zip(want.concat()) {
                    assert!((g - w).abs() < 1e-6, "{key} ({detach:?}, {loss:?}): got {g}, finite difference {w}");
                }
            }
        };
        check(&vin, "d_in", detach == Detach::LogitMix);
        check(&vout, "d_out", detach == Detach::LogitMix);
        check(&vx, "d_xmix", detach == Detach::InputMix);
    }
}

#[test]
fn cutmix_box_lambda_and_paste_match_numpy() {
    let f = fixture();
    for case in f["cutmix"].as_array().unwrap() {
        let u = |k: &str| case[k].as_u64().unwrap() as usize;
        let bx = mixing::CutBox::around(u("h"), u("w"), case["lam"].as_f64().unwrap(), u("cy"), u("cx"));
        let want: Vec<usize> = serde_json::from_value(case["box"].clone()).unwrap();
        assert_eq!(vec![bx.y1, bx.y2, bx.x1, bx.x2], want, "box for {case}");
        close(bx.kept_fraction(u("h"), u("w")), &case["kept"], "recomputed lambda");
        let img = |k: &str| matrix(&case[k]).reshape((1, 1, u("h"), u("w"))).unwrap();
        let got = mixing::paste(&img("x_in"), &img("x_out"), &[bx]).unwrap();
        let want = img("x_mix");
        let diff = (got - want).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        assert_eq!(diff, 0.0, "pasted image for {case}");
    }
}
