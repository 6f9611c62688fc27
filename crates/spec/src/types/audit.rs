//! `audit:`: how `oodlab audit` looks for images that play two data roles (docs/audit.md).

use serde::{Deserialize, Serialize};

/// The audit's settings; every field has a default, so a spec without `audit:` is audited too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSpec {
    /// Two images whose 64-bit perceptual hashes differ in at most this many bits are near
    /// duplicates (imagededup's PHash default: 10).
    #[serde(default = "ten")]
    pub near_distance: u32,
    /// ... and whose 32 × 32 grey thumbnails' pixels correlate at least this much (Pearson's r):
    /// on small images the hash alone calls two photos of one kind of thing alike (-1: the hash
    /// alone judges, as imagededup does).
    #[serde(default = "near_correlation")]
    pub near_correlation: f64,
    /// With a finished baseline of the split: two images whose penultimate features (centred on
    /// the ID training sample's mean) have at least this cosine are near duplicates by features.
    #[serde(default = "feature_cosine")]
    pub feature_cosine: f64,
    /// The roles audited (default all): `id_train`, `id_val`, `id_test`, `heldout`, `outliers`,
    /// `val_ood` and each `data.ood` set by its name.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The closest cross-role pairs listed (and shown side by side).
    #[serde(default = "twenty")]
    pub show: usize,
    /// `oodlab run` and `queue add` refuse to queue the spec while two of its data roles share
    /// an image pixel for pixel (they warn otherwise).
    #[serde(default)]
    pub strict: bool,
}

fn ten() -> u32 {
    10
}
fn twenty() -> usize {
    20
}
fn near_correlation() -> f64 {
    0.99
}
fn feature_cosine() -> f64 {
    0.9999
}

impl Default for AuditSpec {
    fn default() -> Self {
        AuditSpec {
            near_distance: ten(),
            near_correlation: near_correlation(),
            feature_cosine: feature_cosine(),
            roles: None,
            show: twenty(),
            strict: false,
        }
    }
}

/// The fixed roles, in the order tables list them; each `data.ood` set follows as a role of its
/// own name.
pub const AUDIT_ROLES: [&str; 6] = ["id_train", "id_val", "id_test", "heldout", "outliers", "val_ood"];

/// The most bits a near-duplicate threshold may allow: at 32 of 64, unrelated images match about
/// half the time.
pub const MAX_NEAR_DISTANCE: u32 = 24;
