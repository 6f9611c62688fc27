//! Two SGD steps of each method, with its inputs through the network in one joint pass or in
//! separate passes, mixing at every kind of stage (`mix_at`, `pair`, NoisyMix's `noise` with the
//! reference's draws injected), against PyTorch (`scripts/reference/forward_torch.py`, values in `fixtures/`):
//! each step's loss and, after the steps, every parameter and batch-norm running statistic to
//! 1e-5. The running statistics tell the groupings apart: a separate pass updates them once per
//! input, a joint pass once with the statistics of the concatenation.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use oodlab_spec::{Arch, Method, ModelSettings, OptimizerSettings};
use oodlab_train::methods::mixing::CutBox;
use oodlab_train::methods::{step_loss_with, Batch, MixDraw, NoiseDraw};
use oodlab_train::model::build;
use oodlab_train::optim::Optimizer;
use serde::Deserialize;

const B: usize = 6;
const K: usize = 3;
const H: usize = 12;

#[derive(Deserialize)]
struct Draw {
    lams: Vec<f64>,
    boxes: Vec<(usize, usize, usize, usize)>,
    /// NoisyMix's draws, as the mix's shape flattened (float32 values).
    noise: Option<NoiseValues>,
}

#[derive(Deserialize)]
struct NoiseValues {
    mult: Option<Vec<f32>>,
    add: Option<Vec<f32>>,
}

#[derive(Deserialize)]
struct Step {
    loss: f64,
    draw: Option<Draw>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    method: serde_json::Value,
    outliers: usize,
    steps: Vec<Step>,
    state: BTreeMap<String, Vec<f64>>,
}

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

/// float32(sin(0.731 i + seed) * scale), as the script's `values`.
fn values(n: usize, seed: f64, scale: f64) -> Vec<f32> {
    (0..n).map(|i| ((i as f64 * 0.731 + seed).sin() * scale) as f32).collect()
}

/// The script's parameter formulas: (seed, scale) by name; batch-norm weights are 1 + values.
const INIT: [(&str, f64, f64); 12] = [
    ("conv1.weight", 1.0, 0.5),
    ("conv1.bias", 2.0, 0.1),
    ("bn1.weight", 3.0, 0.2),
    ("bn1.bias", 4.0, 0.1),
    ("conv2.weight", 5.0, 0.3),
    ("conv2.bias", 6.0, 0.1),
    ("bn2.weight", 7.0, 0.2),
    ("bn2.bias", 8.0, 0.1),
    ("conv3.weight", 9.0, 0.3),
    ("conv3.bias", 10.0, 0.1),
    ("fc.weight", 11.0, 0.5),
    ("fc.bias", 12.0, 0.1),
];

fn set_parameters(varmap: &VarMap) {
    let data = varmap.data().lock().unwrap();
    for (name, seed, scale) in INIT {
        let var = &data[name];
        let shape = var.as_tensor().shape().clone();
        let mut v = values(shape.elem_count(), seed, scale);
        if name.starts_with("bn") && name.ends_with("weight") {
            // The script adds 1 in float64 to the float32 values; so does this, then rounds once.
            v = v.iter().map(|&x| (x as f64 + 1.0) as f32).collect();
        }
        var.set(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap();
    }
}

fn inputs(step: usize, n_out: usize) -> (Tensor, Tensor, Tensor) {
    let dev = &Device::Cpu;
    let x = Tensor::from_vec(values(B * H * H, 20.0 + step as f64, 1.3), (B, 1, H, H), dev).unwrap();
    let y = Tensor::from_vec((0..B).map(|i| ((i + step) % K) as u32).collect::<Vec<_>>(), B, dev).unwrap();
    // The script subtracts 0.2 in float64 from the float32 values.
    let out: Vec<f32> = values(n_out * H * H, 40.0 + step as f64, 1.1).iter().map(|&v| (v as f64 - 0.2) as f32).collect();
    let x_out = Tensor::from_vec(out, (n_out, 1, H, H), dev).unwrap();
    (x, y, x_out)
}

fn run_case(case: &Case) -> (Vec<f64>, BTreeMap<String, Vec<f32>>) {
    let method: Method = serde_json::from_value(case.method.clone()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let method = method.resolved();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = build(&ModelSettings { arch: Arch::Cnn, channels: vec![4, 8, 8], pretrained: None }, 1, K, DType::F32, vb).unwrap();
    set_parameters(&varmap);
    let settings = OptimizerSettings { lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 5e-4, ..OptimizerSettings::default() };
    let mut opt = Optimizer::new(varmap.all_vars(), &settings);
    let mut losses = Vec::new();
    for (i, step) in case.steps.iter().enumerate() {
        let (x, y, x_out) = inputs(i, case.outliers);
        let batch = Batch { images: &x, labels: &y, outliers: Some(&x_out), classes: K };
        let draw = step.draw.as_ref().map(|d| {
            let mix = match &method {
                Method::Mixoe(p) => p.mix,
                Method::Lmoe(p) => p.mix,
                _ => unreachable!("only the mixing methods draw"),
            };
            let boxes = d.boxes.iter().map(|&(y1, y2, x1, x2)| CutBox { y1, y2, x1, x2 }).collect();
            let noise = d.noise.as_ref().map(|n| NoiseDraw::Given { mult: n.mult.clone(), add: n.add.clone() });
            MixDraw { mix, lams: d.lams.clone(), boxes, noise }
        });
        let out = step_loss_with(&method, &model, &batch, draw.as_ref()).unwrap();
        losses.push(out.loss.to_scalar::<f32>().unwrap() as f64);
        opt.step(&out.loss.backward().unwrap(), 0.05).unwrap();
    }
    let state = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    (losses, state)
}

#[test]
fn two_steps_of_each_method_and_grouping_match_pytorch() {
    let reference: Reference = serde_json::from_str(include_str!("fixtures/forward_torch.json")).unwrap();
    assert_eq!(reference.cases.len(), 21);
    let close = |got: f64, want: f64| (got - want).abs() <= 1e-5 * want.abs().max(1.0);
    for case in &reference.cases {
        let (losses, state) = run_case(case);
        for (i, (got, step)) in losses.iter().zip(&case.steps).enumerate() {
            assert!(close(*got, step.loss), "{}: step {} loss {got}, PyTorch {}", case.name, i + 1, step.loss);
        }
        assert_eq!(state.keys().collect::<Vec<_>>(), case.state.keys().collect::<Vec<_>>(), "{}", case.name);
        for (name, want) in &case.state {
            let got = &state[name];
            assert_eq!(got.len(), want.len(), "{}: {name}", case.name);
            for (j, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(close(*g as f64, *w), "{}: {name}[{j}] = {g}, PyTorch {w}", case.name);
            }
        }
    }
}

/// LMOE with no term of its own (no consistency, no input-mix term) mixing at the input is
/// MixOE: one family from the input to the logits. Its losses and parameters equal MixOE's
/// bit for bit, in oodlab as in the fixture.
#[test]
fn lmoe_mixing_at_the_input_without_its_terms_is_mixoe() {
    let reference: Reference = serde_json::from_str(include_str!("fixtures/forward_torch.json")).unwrap();
    let by_name: BTreeMap<&str, &Case> = reference.cases.iter().map(|c| (c.name.as_str(), c)).collect();
    let (lmoe, mixoe) = (by_name["lmoe-input-cutmix"], by_name["mixoe-cutmix-separate"]);
    let ((la, sa), (lb, sb)) = (run_case(lmoe), run_case(mixoe));
    assert_eq!(la, lb);
    assert_eq!(sa, sb);
    let want: Vec<f64> = mixoe.steps.iter().map(|s| s.loss).collect();
    assert_eq!(lmoe.steps.iter().map(|s| s.loss).collect::<Vec<_>>(), want, "the fixture agrees");
}

/// Without noise, a mix of the pooled features is a mix of the logits: the head is one linear
/// layer, `fc(λa + (1 − λ)b) = λ fc(a) + (1 − λ) fc(b)`; and so is a mix at block 3, whose
/// output (after its ReLU) reaches the logits through the average pool and the head, both linear.
/// These points of the "where to mix" axis agree to rounding; block 2, followed by conv3 and a
/// ReLU, does not.
#[test]
fn mixing_the_features_or_block3_is_mixing_the_logits_without_noise() {
    let reference: Reference = serde_json::from_str(include_str!("fixtures/forward_torch.json")).unwrap();
    let authors = reference.cases.iter().find(|c| c.name == "lmoe-authors-code").unwrap();
    let at = |stage: &str| {
        let mut method = authors.method.clone();
        method["mix_at"] = serde_json::json!(stage);
        let steps = authors
            .steps
            .iter()
            .map(|s| {
                let d = s.draw.as_ref().unwrap();
                Step { loss: s.loss, draw: Some(Draw { lams: d.lams.clone(), boxes: d.boxes.clone(), noise: None }) }
            })
            .collect();
        let case = Case { name: stage.into(), method, outliers: authors.outliers, steps, state: authors.state.clone() };
        run_case(&case)
    };
    let (ll, sl) = at("logits");
    for stage in ["features", "block3"] {
        let (lf, sf) = at(stage);
        for (f, l) in lf.iter().zip(&ll) {
            assert!((f - l).abs() < 1e-6, "{stage} {f}, logits {l}");
        }
        for (name, f) in &sf {
            for (a, b) in f.iter().zip(&sl[name]) {
                assert!((a - b).abs() < 1e-5, "{stage}: {name}: {a} vs {b}");
            }
        }
    }
    let (lb, _) = at("block2");
    assert!((lb[0] - ll[0]).abs() > 1e-5, "block 2: {} vs logits {}", lb[0], ll[0]);
}

/// Each new switch changes what is trained: the authors' joint pair against LMOE's separate
/// passes, a mix at block 1 against one at the logits, and noise against none each move the
/// running statistics or the losses (so the PyTorch comparison above could not pass with a
/// switch that did nothing).
#[test]
fn where_to_mix_switches_each_change_the_step() {
    let reference: Reference = serde_json::from_str(include_str!("fixtures/forward_torch.json")).unwrap();
    let by_name: BTreeMap<&str, &Case> = reference.cases.iter().map(|c| (c.name.as_str(), c)).collect();
    let differ = |a: &str, b: &str, key: &str| {
        let (ra, rb) = (&by_name[a].state[key], &by_name[b].state[key]);
        ra.iter().zip(rb).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    };
    // pair: joint normalizes the mix's inputs together: bn1's running mean moves otherwise.
    assert!(differ("lmoe-authors-consistency", "lmoe-separate", "bn1.running_mean") > 1e-3);
    // Mixing at block 1 instead of the logits changes bn2's statistics (the mix passes through it).
    assert!(differ("lmoe-authors-block1", "lmoe-authors-code", "bn2.running_mean") > 1e-3);
    // Noise on the input mix changes MixOE's first loss.
    let first = |n: &str| by_name[n].steps[0].loss;
    assert!((first("mixoe-input-noise") - first("mixoe-mixup-separate")).abs() > 1e-4);
}

/// The running statistics after one step differ between the groupings as the reference codes'
/// do: the test above would pass for a method whose grouping switch did nothing only if both
/// groupings gave the same values, which the fixture rules out.
#[test]
fn the_groupings_give_different_running_statistics() {
    let reference: Reference = serde_json::from_str(include_str!("fixtures/forward_torch.json")).unwrap();
    let by_name: BTreeMap<&str, &Case> = reference.cases.iter().map(|c| (c.name.as_str(), c)).collect();
    for (a, b) in [("oe-joint", "oe-separate"), ("mixoe-mixup-joint", "mixoe-mixup-separate"), ("lmoe-joint", "lmoe-separate")] {
        let (ra, rb) = (&by_name[a].state["bn1.running_mean"], &by_name[b].state["bn1.running_mean"]);
        let diff = ra.iter().zip(rb).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(diff > 1e-3, "{a} and {b} have the same running mean (largest difference {diff})");
    }
}
