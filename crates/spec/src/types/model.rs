//! `model` — the architecture, its widths, pretrained weights and the number format (docs/spec.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    pub arch: Arch,
    /// Output channels of the three conv layers (`cnn` only).
    pub channels: Vec<usize>,
    /// Weights to start from: a safetensors file with torchvision's parameter names
    /// (scripts/torchvision_to_safetensors.py makes one); the classification head `fc` is left out
    /// and trained afresh for the run's classes. Resolved against the spec's folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings { arch: Arch::Cnn, channels: vec![32, 64, 128], pretrained: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// conv+BN+ReLU+pool, conv+BN+ReLU+pool, conv+ReLU, global average pool, linear.
    Cnn,
    /// torchvision's ResNet-18 (basic blocks 2-2-2-2).
    Resnet18,
    /// torchvision's ResNet-50 (bottleneck blocks 3-4-6-3, stride on the 3x3 conv).
    Resnet50,
}

impl Arch {
    /// The stages of its forward pass, in order (`method.mix_at`).
    pub fn stages(self) -> &'static [crate::mixing::Stage] {
        match self {
            Arch::Cnn => crate::mixing::Stage::cnn(),
            Arch::Resnet18 | Arch::Resnet50 => crate::mixing::Stage::resnet(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Cnn => "cnn",
            Arch::Resnet18 => "resnet18",
            Arch::Resnet50 => "resnet50",
        }
    }
}

/// Number format of training's forward and backward passes. `bf16` and `f16` are mixed precision
/// as PyTorch's autocast does it: weights, optimizer state, batch-norm and the loss stay in f32;
/// convolutions and matrix products run in the half type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub(crate) fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}
