//! Where and how the mixing methods (`mixoe`, `lmoe`) mix an ID image with an outlier: the stage
//! of the network whose output is mixed (`mix_at`), the noise on the mix (`noise`) and how the
//! two inputs of a representation mix go through the network (`pair`). Input mixing (MixOE) and
//! logit mixing (LMOE) are the two ends of one family (docs/methods.md, "Where to mix").

use serde::{Deserialize, Serialize};

/// A point of a network's forward pass: its input, the output of a named stage, the pooled
/// features or the logits. A stage means its output, as `--feature_layer` of the LMOE authors'
/// public code (`shinohara-git/feature_MixOE`, `utils/resnet50.py`): its `conv1` is the stem's
/// output after the max-pool, its `layer4` the last stage's before the average pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The normalized images: mixing here is MixOE's input mix.
    Input,
    /// The CNN's first conv+BN+ReLU+max-pool.
    Block1,
    /// The CNN's second conv+BN+ReLU+max-pool.
    Block2,
    /// The CNN's third conv+ReLU, before the global average pool.
    Block3,
    /// A ResNet's conv1+BN+ReLU+max-pool (the authors' `conv1`).
    Stem,
    Layer1,
    Layer2,
    Layer3,
    /// A ResNet's last stage, before the average pool (the authors' `layer4`).
    Layer4,
    /// The pooled penultimate features, the input of the last linear layer.
    Features,
    /// The logits (the authors' `fc`): mixing here is LMOE's logit mix.
    Logits,
}

impl Stage {
    const CNN: [Stage; 6] = [Stage::Input, Stage::Block1, Stage::Block2, Stage::Block3, Stage::Features, Stage::Logits];
    const RESNET: [Stage; 8] =
        [Stage::Input, Stage::Stem, Stage::Layer1, Stage::Layer2, Stage::Layer3, Stage::Layer4, Stage::Features, Stage::Logits];

    /// The CNN's stages, in order.
    pub fn cnn() -> &'static [Stage] {
        &Self::CNN
    }

    /// A ResNet's stages (18 and 50 alike), in order.
    pub fn resnet() -> &'static [Stage] {
        &Self::RESNET
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::Block1 => "block1",
            Stage::Block2 => "block2",
            Stage::Block3 => "block3",
            Stage::Stem => "stem",
            Stage::Layer1 => "layer1",
            Stage::Layer2 => "layer2",
            Stage::Layer3 => "layer3",
            Stage::Layer4 => "layer4",
            Stage::Features => "features",
            Stage::Logits => "logits",
        }
    }
}

/// How the two inputs of a representation mix go through the layers before the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pair {
    /// The ID side is the ID images' own pass (the one the cross-entropy reads), the outliers
    /// have a pass of their own: LMOE's `f(x_in)`, `f(x_out)`.
    #[default]
    Separate,
    /// One training-mode pass over `cat(x_in, x_out)`, besides the cross-entropy's pass over
    /// `x_in`: the authors' `net(torch.cat((x, oe_x)), lam, mix=True)`.
    Joint,
}

/// NoisyMix's noise on the mixed representation `r`, as the authors' `_noise`:
/// `(mult · Beta(2,5) · U(−1, 1) + 1) · r + add · Beta(2,5) · N(0, 1)`, one Beta draw per step
/// for each of the two, the uniform and normal values drawn per element. A level of 0 draws
/// nothing (as that code). The authors' defaults are `add: 0.4`, `mult: 0.2`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    #[serde(default)]
    pub add: f64,
    #[serde(default)]
    pub mult: f64,
}

impl Noise {
    /// Whether it changes anything.
    pub fn is_on(&self) -> bool {
        self.add != 0.0 || self.mult != 0.0
    }
}
