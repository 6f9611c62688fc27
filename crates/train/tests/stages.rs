//! The networks' forward pass split at each stage (`Staged::span`): up to a stage and on from it is
//! the whole pass, bit for bit, for the CNN and both ResNets; and a mixing step trains at every
//! stage of each, its loss lowered by a few SGD steps.

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use oodlab_spec::{Arch, Method, ModelSettings, OptimizerSettings, Stage};
use oodlab_train::methods::{step_loss, Batch};
use oodlab_train::model::{build, init_seeded, Network, Staged};
use oodlab_train::optim::Optimizer;
use rand::SeedableRng;

fn network(arch: Arch, seed: u64) -> (VarMap, Network) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let settings = ModelSettings { arch, channels: vec![4, 8, 8], pretrained: None };
    let net = build(&settings, 3, 4, DType::F32, vb).unwrap();
    init_seeded(&varmap, seed, arch).unwrap();
    (varmap, net)
}

fn images(n: usize, side: usize, seed: f64) -> Tensor {
    let v: Vec<f32> = (0..n * 3 * side * side).map(|i| ((i as f64 * 0.37 + seed).sin()) as f32).collect();
    Tensor::from_vec(v, (n, 3, side, side), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn up_to_a_stage_and_on_from_it_is_the_whole_pass() {
    for arch in [Arch::Cnn, Arch::Resnet18, Arch::Resnet50] {
        let (_, net) = network(arch, 3);
        let x = images(2, 32, 0.5);
        // Evaluation mode: the running statistics do not move, so every pass sees the same network.
        let whole = values(&net.forward_t(&x, false).unwrap());
        for &stage in arch.stages() {
            let h = net.span(&x, Stage::Input, stage, false).unwrap();
            let z = net.span(&h, stage, Stage::Logits, false).unwrap();
            assert_eq!(values(&z), whole, "{arch:?} at {stage:?}");
        }
        let features = net.span(&x, Stage::Input, Stage::Features, false).unwrap();
        assert_eq!(values(&features), values(&net.features_t(&x, false).unwrap()), "{arch:?}");
        // A stage of another architecture, and the stages the wrong way round, are errors.
        let other = if arch == Arch::Cnn { Stage::Layer2 } else { Stage::Block2 };
        assert!(net.span(&x, Stage::Input, other, false).is_err(), "{arch:?}");
        assert!(net.span(&features, Stage::Features, Stage::Input, false).is_err(), "{arch:?}");
    }
}

#[test]
fn a_mixing_step_trains_at_every_stage_of_every_network() {
    for arch in [Arch::Cnn, Arch::Resnet18] {
        for &stage in arch.stages() {
            let (varmap, net) = network(arch, 7);
            let method: Method = serde_json::from_value(serde_json::json!({
                "kind": "lmoe", "weight": 1.0, "consistency": {"loss": "none"}, "mix_at": stage,
                "pair": "joint", "noise": {"add": 0.4, "mult": 0.2}
            }))
            .unwrap();
            let method = method.resolved();
            let (x, x_out) = (images(4, 16, 0.1), images(4, 16, 2.3));
            let y = Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).unwrap();
            let batch = Batch { images: &x, labels: &y, outliers: Some(&x_out), classes: 4 };
            let settings = OptimizerSettings { lr: 0.01, momentum: 0.0, ..OptimizerSettings::default() };
            let mut opt = Optimizer::new(varmap.all_vars(), &settings);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let mut losses = Vec::new();
            for _ in 0..8 {
                let out = step_loss(&method, &net, &batch, &mut rng).unwrap();
                losses.push(out.loss.to_scalar::<f32>().unwrap());
                opt.step(&out.loss.backward().unwrap(), 0.01).unwrap();
            }
            assert!(losses.iter().all(|l| l.is_finite()), "{arch:?} at {stage:?}: {losses:?}");
            // Noisy, so compare the ends of the run rather than each step.
            let (first, last) = (losses[..2].iter().sum::<f32>(), losses[6..].iter().sum::<f32>());
            assert!(last < first, "{arch:?} at {stage:?}: {losses:?}");
        }
    }
}
