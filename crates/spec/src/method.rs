//! Training methods and their parameters, with the defaults of DESIGN.md ("The methods").
//! One variant per method; the train crate has one file per variant.

use serde::{Deserialize, Serialize};

use crate::mixing::{Noise, Pair, Stage};

/// The training method of a run, written `method: NAME` or `method: {kind: NAME, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Method {
    /// Cross-entropy on the ID classes: the baseline.
    Ce(CeParams),
    /// Outlier Exposure: `CE + weight * SoftCE(f(x_out), U)`.
    Oe(OeParams),
    /// Energy-bounded OE: `CE + weight * (mean relu(E_in - m_in)^2 + mean relu(m_out - E_out)^2)`.
    EnergyOe(EnergyOeParams),
    /// Mixture Outlier Exposure: `CE + weight * SoftCE(f(x_mix), lam onehot(y) + (1 - lam) U)`.
    Mixoe(MixoeParams),
    /// Logit-space mixing: `CE + weight * SoftCE(z_lmix, t) + c * D(f(x_mix), z_lmix)`, with
    /// `z_lmix = lam f(x_in) + (1 - lam) f(x_out)`.
    Lmoe(LmoeParams),
}

/// The same variants, externally tagged. serde reads an internally tagged enum through a buffer
/// that hides the path of an error inside it; reading the method again in this form gives the
/// path (`method.consistency.loss`) for the error message.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum MethodByName {
    Ce(#[allow(dead_code)] CeParams),
    Oe(#[allow(dead_code)] OeParams),
    EnergyOe(#[allow(dead_code)] EnergyOeParams),
    Mixoe(#[allow(dead_code)] MixoeParams),
    Lmoe(#[allow(dead_code)] LmoeParams),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeParams {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OeParams {
    #[serde(default = "oe_weight")]
    pub weight: f64,
    /// How the ID and outlier batches go through the network; default `joint`, as OE's code.
    #[serde(default)]
    pub forward: Option<Forward>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyOeParams {
    #[serde(default = "energy_weight")]
    pub weight: f64,
    #[serde(default = "m_in")]
    pub m_in: f64,
    #[serde(default = "m_out")]
    pub m_out: f64,
    /// Default `joint`, as the energy-OE code (MixOE's `train_oe.py`).
    #[serde(default)]
    pub forward: Option<Forward>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixoeParams {
    #[serde(default)]
    pub mix: Mix,
    /// Beta(alpha, alpha) for lambda; default 1 for mixup, 2 for cutmix.
    #[serde(default)]
    pub alpha: Option<f64>,
    #[serde(default = "mix_weight")]
    pub weight: f64,
    /// Default `separate` (ID batch, then mixed batch), as MixOE's `train_mixoe.py`.
    #[serde(default)]
    pub forward: Option<Forward>,
    /// Where `x_in` and `x_out` are mixed: the output of this stage (docs/methods.md, "Where to
    /// mix"). Default: `input`, MixOE's mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix_at: Option<Stage>,
    /// NoisyMix's noise on the mixed representation; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    /// How the two inputs of a representation mix go through the layers before `mix_at`;
    /// default `separate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<Pair>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmoeParams {
    /// The input-space mix compared with the logit mix.
    #[serde(default)]
    pub mix: Mix,
    #[serde(default)]
    pub alpha: Option<f64>,
    /// Weight of `SoftCE(z_lmix, t)` (and of the input-mix term when it is on).
    #[serde(default = "mix_weight")]
    pub weight: f64,
    #[serde(default)]
    pub consistency: Consistency,
    /// Also keep MixOE's `SoftCE(f(x_mix), t)` term.
    #[serde(default, alias = "input-mix-ce")]
    pub input_mix_ce: bool,
    /// One lambda per batch (as MixOE) or one per sample.
    #[serde(default, alias = "lam-per")]
    pub lam_per: LamPer,
    /// Default `separate`: ID, outlier and input-mix batches in three passes.
    #[serde(default)]
    pub forward: Option<Forward>,
    /// Where `x_in` and `x_out` are mixed: the output of this stage (docs/methods.md, "Where to
    /// mix"). Default: `logits`, the logit mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix_at: Option<Stage>,
    /// NoisyMix's noise on the mixed representation; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    /// How the two inputs of a representation mix go through the layers before `mix_at`;
    /// default `separate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<Pair>,
}

/// How a step's inputs go through a network with batch-norm. A training-mode pass normalizes
/// with its own batch's statistics and updates the running statistics used at evaluation, so
/// the grouping changes what is trained (docs/methods.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Forward {
    /// One pass over the inputs concatenated along the batch (OE's `net(torch.cat((x, oe_x)))`).
    Joint,
    /// One pass per input, ID first (MixOE's `net(x)`, then `net(mixed_x)`).
    Separate,
}

impl MixoeParams {
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(self.mix.default_alpha())
    }

    pub fn place(&self) -> MixPlace {
        MixPlace::new(self.mix_at, self.noise, self.pair, Stage::Input)
    }
}

impl LmoeParams {
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(self.mix.default_alpha())
    }

    /// Whether the input-space mix is used at all (besides a mix at `input`).
    pub fn needs_input_mix(&self) -> bool {
        self.input_mix_ce || self.consistency.loss != ConsistencyLoss::None
    }

    pub fn place(&self) -> MixPlace {
        MixPlace::new(self.mix_at, self.noise, self.pair, Stage::Logits)
    }
}

/// Where and how a mixing method mixes, its defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixPlace {
    pub at: Stage,
    /// Present only when it changes something.
    pub noise: Option<Noise>,
    /// `separate` wherever the two are the same computation (at `input` nothing runs before the mix).
    pub pair: Pair,
}

impl MixPlace {
    fn new(at: Option<Stage>, noise: Option<Noise>, pair: Option<Pair>, default: Stage) -> MixPlace {
        let at = at.unwrap_or(default);
        let pair = if at == Stage::Input { Pair::Separate } else { pair.unwrap_or_default() };
        MixPlace { at, noise: noise.filter(Noise::is_on), pair }
    }

    /// The fields as a spec writes them, defaults left out, so that a spec that spells a default
    /// out and one that leaves it out are one run (and runs made before these fields existed
    /// keep their ids).
    fn written(&self, default: Stage) -> (Option<Stage>, Option<Noise>, Option<Pair>) {
        ((self.at != default).then_some(self.at), self.noise, (self.pair != Pair::Separate).then_some(self.pair))
    }

    /// Problems with the fields: (field below `method`, message).
    fn problem(&self, forward: Forward) -> Option<(String, String)> {
        if let Some(n) = self.noise {
            for (field, v) in [("noise.add", n.add), ("noise.mult", n.mult)] {
                if !(v >= 0.0 && v.is_finite()) {
                    return Some((
                        field.into(),
                        format!("must be a noise level >= 0, found {v} (the authors' code uses add 0.4, mult 0.2)"),
                    ));
                }
            }
        }
        (forward == Forward::Joint && self.pair == Pair::Joint).then(|| {
            (
                "pair".into(),
                "`pair: joint` runs the mix's two inputs in a pass of their own beside the ID images' pass, but \
                 `forward: joint` puts every input in one pass: choose one (`forward: separate` with `pair: joint` is \
                 the LMOE authors' code)"
                    .into(),
            )
        })
    }
}

/// LMOE's consistency term `c * D(f(x_mix), z_lmix)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Consistency {
    pub loss: ConsistencyLoss,
    /// The weight `c`.
    pub weight: f64,
    /// Which side is a fixed target (no gradient flows into it through D).
    pub detach: Detach,
    /// What D compares: raw logits, logits minus their per-sample mean, or log-softmax.
    pub space: ConsistencySpace,
}

impl Default for Consistency {
    fn default() -> Self {
        Consistency { loss: ConsistencyLoss::Mse, weight: 1.0, detach: Detach::LogitMix, space: ConsistencySpace::Logits }
    }
}

/// The space of LMOE's consistency term. MSE on raw logits penalizes a per-sample constant shift
/// that softmax (MSP) ignores but energy and max-logit do not; the other two spaces remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsistencySpace {
    /// The logits as they are.
    #[default]
    Logits,
    /// `z - mean_k z_k` per sample.
    Centered,
    /// `log softmax(z)` per sample.
    LogSoftmax,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsistencyLoss {
    /// Mean squared difference of the logits.
    Mse,
    /// KL(softmax(target) || softmax(other)), averaged over the batch.
    Kl,
    /// No consistency term.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detach {
    /// The logit mix is the fixed target; gradients reach the network through `f(x_mix)`.
    LogitMix,
    /// The input mix is the fixed target; gradients reach it through `f(x_in)`, `f(x_out)`.
    InputMix,
    /// Gradients flow into both sides.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mix {
    /// `x_mix = lam x_in + (1 - lam) x_out`.
    #[default]
    Mixup,
    /// A box of `x_out` with area `1 - lam` pasted into `x_in`; lam becomes the exact kept share.
    Cutmix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LamPer {
    #[default]
    Batch,
    Sample,
}

fn oe_weight() -> f64 {
    0.5
}
fn energy_weight() -> f64 {
    0.1
}
fn m_in() -> f64 {
    -13.0
}
fn m_out() -> f64 {
    -6.0
}
fn mix_weight() -> f64 {
    5.0
}

impl Mix {
    /// DESIGN.md's Beta parameter for this mix: 1 for mixup, 2 for cutmix.
    pub fn default_alpha(self) -> f64 {
        match self {
            Mix::Mixup => 1.0,
            Mix::Cutmix => 2.0,
        }
    }
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Ce(_) => "ce",
            Method::Oe(_) => "oe",
            Method::EnergyOe(_) => "energy-oe",
            Method::Mixoe(_) => "mixoe",
            Method::Lmoe(_) => "lmoe",
        }
    }

    /// Whether the method trains on auxiliary outliers.
    pub fn uses_outliers(&self) -> bool {
        !matches!(self, Method::Ce(_))
    }

    /// Whether it mixes ID and outlier images pairwise (outlier batches must match ID batches).
    pub fn mixes(&self) -> bool {
        matches!(self, Method::Mixoe(_) | Method::Lmoe(_))
    }

    /// The reference code's grouping of forward passes: OE's and energy-OE's code run
    /// `cat(x_in, x_out)` as one pass; MixOE's runs `x_in` and `x_mix` separately, and LMOE's
    /// three inputs go separately too (one joint pass collapses it: docs/methods.md).
    pub fn default_forward(&self) -> Forward {
        match self {
            Method::Ce(_) | Method::Oe(_) | Method::EnergyOe(_) => Forward::Joint,
            Method::Mixoe(_) | Method::Lmoe(_) => Forward::Separate,
        }
    }

    /// The grouping of forward passes this method trains with.
    pub fn forward(&self) -> Forward {
        let set = match self {
            Method::Ce(_) => None,
            Method::Oe(p) => p.forward,
            Method::EnergyOe(p) => p.forward,
            Method::Mixoe(p) => p.forward,
            Method::Lmoe(p) => p.forward,
        };
        set.unwrap_or_else(|| self.default_forward())
    }

    /// Outliers per ID image when `train.outlier_ratio` is not set: the OE family's reference
    /// codes draw `2 * batch_size` outliers a step; the mixing methods pair one with each ID
    /// image.
    pub fn default_outlier_ratio(&self) -> Option<f64> {
        match self {
            Method::Ce(_) => None,
            Method::Oe(_) | Method::EnergyOe(_) => Some(2.0),
            Method::Mixoe(_) | Method::Lmoe(_) => Some(1.0),
        }
    }

    /// The method with defaults that depend on other fields filled in, so that equal methods
    /// serialize (and hash) equally.
    pub fn resolved(mut self) -> Method {
        let forward = Some(self.forward());
        match &mut self {
            Method::Ce(_) => {}
            Method::Oe(p) => p.forward = forward,
            Method::EnergyOe(p) => p.forward = forward,
            Method::Mixoe(p) => {
                p.alpha = Some(p.alpha());
                p.forward = forward;
                (p.mix_at, p.noise, p.pair) = p.place().written(Stage::Input);
            }
            Method::Lmoe(p) => {
                p.alpha = Some(p.alpha());
                p.forward = forward;
                (p.mix_at, p.noise, p.pair) = p.place().written(Stage::Logits);
            }
        }
        self
    }

    /// Where and how a mixing method mixes (None for the others).
    pub fn place(&self) -> Option<MixPlace> {
        match self {
            Method::Mixoe(p) => Some(p.place()),
            Method::Lmoe(p) => Some(p.place()),
            _ => None,
        }
    }

    /// Problems with the parameters: (field below `method`, message).
    pub fn problem(&self) -> Option<(String, String)> {
        let positive = |field: &str, v: f64| {
            (!(v > 0.0 && v.is_finite())).then(|| (field.to_string(), format!("must be a positive number, found {v}")))
        };
        let non_negative =
            |field: &str, v: f64| (!(v >= 0.0 && v.is_finite())).then(|| (field.to_string(), format!("must be >= 0, found {v}")));
        match self {
            Method::Ce(_) => None,
            Method::Oe(p) => non_negative("weight", p.weight),
            Method::EnergyOe(p) => non_negative("weight", p.weight).or_else(|| {
                (p.m_in >= p.m_out).then(|| {
                    ("m_in".to_string(), format!("the ID margin m_in ({}) must be below the OOD margin m_out ({})", p.m_in, p.m_out))
                })
            }),
            Method::Mixoe(p) => p
                .alpha
                .and_then(|a| positive("alpha", a))
                .or_else(|| non_negative("weight", p.weight))
                .or_else(|| p.place().problem(self.forward()))
                .or_else(|| {
                    let at = p.place().at;
                    (p.mix == Mix::Cutmix && at != Stage::Input).then(|| {
                        let msg = format!(
                            "cutmix pastes a box of pixels, so it mixes at the input only; at `mix_at: {}` the \
                             representations are mixed by interpolation: use `mix: mixup`, or `mix_at: input`",
                            at.name()
                        );
                        ("mix".to_string(), msg)
                    })
                }),
            Method::Lmoe(p) => p
                .alpha
                .and_then(|a| positive("alpha", a))
                .or_else(|| non_negative("weight", p.weight))
                .or_else(|| non_negative("consistency.weight", p.consistency.weight))
                .or_else(|| p.place().problem(self.forward()))
                .or_else(|| {
                    (p.needs_input_mix() && p.place().at == Stage::Input).then(|| {
                        let msg = "at `mix_at: input` the mix is the input mix itself, so the consistency term and \
                                   `input_mix_ce` would compare f(x_mix) with itself: set `consistency: {loss: none}` \
                                   and `input_mix_ce: false`, or mix at another stage";
                        ("mix_at".to_string(), msg.to_string())
                    })
                }),
        }
    }
}
