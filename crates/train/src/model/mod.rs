//! The networks a run can train: the small CNN of DESIGN.md and torchvision's ResNet-18/50, their
//! seeded initialisation, and loading pretrained weights with torchvision's parameter names.

pub mod cnn;
pub mod layers;
pub mod resnet;

use std::path::Path;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use oodlab_spec::{Arch, ModelSettings, Precision, Stage};
use rand::Rng;
use rand_distr::{Distribution, Normal};

pub use cnn::Cnn;
pub use resnet::{Depth, ResNet};

/// A built network of any architecture.
pub enum Network {
    Cnn(Cnn),
    ResNet(ResNet),
}

impl Network {
    /// The penultimate features, the input of the last linear layer.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Network::Cnn(m) => m.features_t(x, train),
            Network::ResNet(m) => m.features_t(x, train),
        }
    }

    /// The last linear layer, which turns features into logits.
    pub fn head(&self) -> &layers::Fc {
        match self {
            Network::Cnn(m) => m.head(),
            Network::ResNet(m) => m.head(),
        }
    }
}

/// A network whose forward pass can stop at a stage and go on from it, through the same layers:
/// what a representation mix needs (`mix_at`, docs/methods.md).
pub trait Staged: ModuleT {
    /// The layers after stage `from` up to stage `to`, applied to `x`, the output of `from`.
    fn span(&self, x: &Tensor, from: Stage, to: Stage, train: bool) -> Result<Tensor>;
}

impl Staged for Network {
    fn span(&self, x: &Tensor, from: Stage, to: Stage, train: bool) -> Result<Tensor> {
        match self {
            Network::Cnn(m) => m.span(x, from, to, train),
            Network::ResNet(m) => m.span(x, from, to, train),
        }
    }
}

impl Staged for Cnn {
    fn span(&self, x: &Tensor, from: Stage, to: Stage, train: bool) -> Result<Tensor> {
        Cnn::span(self, x, from, to, train)
    }
}

impl Staged for ResNet {
    fn span(&self, x: &Tensor, from: Stage, to: Stage, train: bool) -> Result<Tensor> {
        ResNet::span(self, x, from, to, train)
    }
}

/// The stages after `from` up to and including `to` in `arch`'s order; an error when either is
/// not one of its stages or `to` comes before `from`.
pub(crate) fn stages_between(arch: Arch, from: Stage, to: Stage) -> Result<&'static [Stage]> {
    let stages = arch.stages();
    let at = |s: Stage| {
        stages.iter().position(|&x| x == s).ok_or_else(|| candle_core::Error::Msg(format!("{} has no stage `{}`", arch.name(), s.name())))
    };
    let (i, j) = (at(from)?, at(to)?);
    if j < i {
        return Err(candle_core::Error::Msg(format!("stage `{}` comes before `{}`", to.name(), from.name())));
    }
    Ok(&stages[i + 1..=j])
}

impl ModuleT for Network {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Network::Cnn(m) => m.forward_t(x, train),
            Network::ResNet(m) => m.forward_t(x, train),
        }
    }
}

/// The number format convolutions and matrix products compute in.
pub fn compute_dtype(precision: Precision) -> DType {
    match precision {
        Precision::F32 => DType::F32,
        Precision::Bf16 => DType::BF16,
        Precision::F16 => DType::F16,
    }
}

/// Builds `settings.arch` for images of `in_channels` channels and `classes` logits; its f32
/// variables land in the VarBuilder's map.
pub fn build(settings: &ModelSettings, in_channels: usize, classes: usize, compute: DType, vb: VarBuilder) -> Result<Network> {
    Ok(match settings.arch {
        Arch::Cnn => Network::Cnn(Cnn::new(in_channels, &settings.channels, classes, compute, vb)?),
        Arch::Resnet18 => Network::ResNet(ResNet::new(Depth::D18, in_channels, classes, compute, vb)?),
        Arch::Resnet50 => Network::ResNet(ResNet::new(Depth::D50, in_channels, classes, compute, vb)?),
    })
}

/// Seeded initialisation, as PyTorch's defaults: candle's CPU generator cannot be seeded, so every
/// weight is overwritten from a ChaCha stream, in name order, to make runs reproducible.
/// Linear layers (and the CNN's convolutions, which keep nn.Conv2d's default) get weights and
/// biases uniform in ±1/sqrt(fan_in); ResNet convolutions get torchvision's
/// kaiming_normal_(mode="fan_out", nonlinearity="relu"): normal with std sqrt(2 / fan_out).
/// Batch-norm scales and shifts keep their 1 and 0.
pub fn init_seeded(varmap: &VarMap, seed: u64, arch: Arch) -> Result<()> {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = oodlab_data::order::rng(seed, "init");
    for name in names {
        let Some(layer) = name.strip_suffix(".weight").or_else(|| name.strip_suffix(".bias")) else { continue };
        let Some(weight) = data.get(&format!("{layer}.weight")) else { continue };
        if weight.rank() < 2 {
            continue; // batch-norm
        }
        let var = &data[name];
        let n = var.elem_count();
        let values: Vec<f32> = if arch != Arch::Cnn && weight.rank() == 4 {
            // ResNet convolutions have no bias, so `name` is the weight.
            let fan_out: usize = weight.dims()[0] * weight.dims()[2..].iter().product::<usize>();
            let normal = Normal::new(0.0, (2.0 / fan_out as f64).sqrt()).expect("a positive std");
            (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
        } else {
            let fan_in: usize = weight.dims()[1..].iter().product();
            let bound = 1.0 / (fan_in as f64).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect()
        };
        var.set(&Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(DType::F32)?)?;
    }
    Ok(())
}

/// The classification head, replaced for the run's classes rather than loaded.
const HEAD: &str = "fc.";

/// Loads pretrained weights with torchvision's names from a safetensors file into every variable
/// but the head. Every other variable must be in the file with its shape, and the file may hold
/// nothing else but the head and batch-norm's `num_batches_tracked` counters; otherwise nothing
/// is loaded and the error lists what differs. Returns the number of tensors loaded.
pub fn load_pretrained(varmap: &VarMap, path: &Path, arch: Arch) -> std::result::Result<usize, String> {
    let file = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let data = varmap.data().lock().unwrap();
    let (mut missing, mut mismatched, mut unexpected) = (Vec::new(), Vec::new(), Vec::new());
    let mut names: Vec<&String> = data.keys().filter(|n| !n.starts_with(HEAD)).collect();
    names.sort();
    for name in &names {
        match file.get(*name) {
            None => missing.push(name.to_string()),
            Some(t) if t.dims() != data[*name].dims() => {
                mismatched.push(format!("{name} is {:?} in the file, {:?} in the model", t.dims(), data[*name].dims()))
            }
            Some(_) => {}
        }
    }
    let mut keys: Vec<&String> = file.keys().collect();
    keys.sort();
    for key in keys {
        if !key.starts_with(HEAD) && !key.ends_with(".num_batches_tracked") && !data.contains_key(key) {
            unexpected.push(key.clone());
        }
    }
    if !(missing.is_empty() && mismatched.is_empty() && unexpected.is_empty()) {
        let list = |what: &str, v: &[String]| {
            if v.is_empty() {
                String::new()
            } else {
                let more = if v.len() > 4 { format!(" and {} more", v.len() - 4) } else { String::new() };
                format!("; {} {what}: {}{more}", v.len(), v.iter().take(4).cloned().collect::<Vec<_>>().join(", "))
            }
        };
        return Err(format!(
            "{} does not fit model.arch {}{}{}{} (expected torchvision's {} parameter names; \
             scripts/torchvision_to_safetensors.py converts a torchvision state dict)",
            path.display(),
            arch.name(),
            list("missing", &missing),
            list("with another shape", &mismatched),
            list("not in the model", &unexpected),
            arch.name(),
        ));
    }
    for name in &names {
        let var = &data[*name];
        let t = file[*name].to_dtype(DType::F32).and_then(|t| t.to_device(var.device())).map_err(|e| e.to_string())?;
        var.set(&t).map_err(|e| format!("loading {name}: {e}"))?;
    }
    Ok(names.len())
}
