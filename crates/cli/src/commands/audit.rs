//! `oodlab audit SPEC`: images that play two data roles in a spec's runs (issue #34;
//! docs/audit.md). The roles are loaded with the loaders the runs use, one split at a time (the
//! split's first run that trains on outliers, else its first run: its seed draws the validation
//! carve-out and the outlier slice), hashed, and every pair of roles counted.

use std::path::{Path, PathBuf};

use oodlab_audit::features::FeatureRole;
use oodlab_audit::{Findings, Hashed};
use oodlab_spec::{Experiment, Method, RunConfig};

use crate::args::{AuditArgs, Format};

/// One split's roles, audited.
#[derive(serde::Serialize)]
struct SplitAudit {
    split: usize,
    seed: u64,
    run_id: String,
    #[serde(flatten)]
    findings: Findings,
    /// The contact sheets of the closest pairs (by hashes, by features), when written.
    sheet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feature_sheet: Option<String>,
}

pub async fn audit(home: &std::path::Path, a: AuditArgs) -> anyhow::Result<i32> {
    let exp = super::load_spec(&a.spec)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = Vec::new();
    for run in representatives(&exp) {
        let (sets, findings) = split_findings(home, &exp, run, exp.audit.show, threads).await?;
        let (mut sheet, mut feature_sheet) = (None, None);
        if let Some(dir) = &a.sheets {
            if !findings.closest.is_empty() {
                let path = dir.join(format!("{}-split{}.png", exp.name, run.split));
                write_sheet(&path, &sets, &hash_pairs(&findings))?;
                sheet = Some(path.display().to_string());
            }
            if let Some(f) = findings.features.as_ref().filter(|f| !f.closest.is_empty()) {
                let path = dir.join(format!("{}-split{}-features.png", exp.name, run.split));
                write_sheet(&path, &sets, &feature_pairs(f))?;
                feature_sheet = Some(path.display().to_string());
            }
        }
        out.push(SplitAudit { split: run.split, seed: run.seed, run_id: run.run_id.0.clone(), findings, sheet, feature_sheet });
    }
    // The dashboard shows the latest audit: recorded where the home has a store (never made for
    // it).
    let db = crate::settings::db_path(home);
    if db.exists() {
        let store = oodlab_store::Store::open(&db).await?;
        for s in &out {
            store.record_audit(&exp.name, s.split as i64, s.seed as i64, &s.run_id, &serde_json::to_string(s)?).await?;
        }
    }
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&serde_json::json!({"experiment": exp.name, "splits": out}))?),
        _ => {
            for s in &out {
                print!("{}", render(s));
                if let Some(p) = &s.sheet {
                    println!("the closest pairs side by side, one a row in the order above: {p}\n");
                }
                if let Some(p) = &s.feature_sheet {
                    println!("the most alike pairs by features side by side, in the order above: {p}\n");
                }
            }
        }
    }
    Ok(0)
}

/// Per split, the run whose data roles stand for the split's: the first that trains on
/// outliers (its pool is the one the methods see), else the first.
pub(super) fn representatives(exp: &Experiment) -> Vec<&RunConfig> {
    let mut splits: Vec<usize> = exp.runs.iter().map(|r| r.split).collect();
    splits.sort_unstable();
    splits.dedup();
    splits
        .into_iter()
        .filter_map(|s| {
            let of_split = || exp.runs.iter().filter(move |r| r.split == s);
            of_split().find(|r| r.settings.method.uses_outliers() && r.settings.data.outliers.is_some()).or_else(|| of_split().next())
        })
        .collect()
}

/// A split's roles, each with its images.
pub(super) type Roles = Vec<(String, oodlab_data::ImageSet)>;

/// The roles of `run`'s data, in the audit's order, hashed.
pub(super) fn hashed_roles(exp: &Experiment, run: &RunConfig, threads: usize) -> anyhow::Result<(Roles, Vec<(String, Hashed)>)> {
    let roles = load_roles(exp, run)?;
    let hashed =
        roles.iter().map(|(name, set)| Ok((name.clone(), oodlab_audit::hash_set(set, threads)?))).collect::<anyhow::Result<_>>()?;
    Ok((roles, hashed))
}

/// A split's roles and what the audit finds in them: by hashes, and by features when the home
/// holds a finished baseline of the split ([`baseline_features`]).
pub(super) async fn split_findings(
    home: &Path,
    exp: &Experiment,
    run: &RunConfig,
    show: usize,
    threads: usize,
) -> anyhow::Result<(Roles, Findings)> {
    let (sets, roles) = hashed_roles(exp, run, threads)?;
    let near = oodlab_audit::Near { distance: exp.audit.near_distance, correlation: exp.audit.near_correlation };
    let mut findings = oodlab_audit::audit(&roles, near, show, threads);
    if let Some((baseline, file)) = baseline_features(home, exp, run).await? {
        let saved = oodlab_train::features::RunFeatures::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (features, centre) = feature_roles(&roles, baseline, &saved);
        let f = oodlab_audit::features::by_features(&baseline.run_id.0, &features, saved.dim, &centre, exp.audit.feature_cosine, show)
            .map_err(|e| anyhow::anyhow!("comparing the features of run {}: {e}", baseline.run_id))?;
        findings.features = Some(f);
    }
    Ok((sets, findings))
}

/// The finished baseline of `run`'s split and seed (a `ce` entry trained from scratch: its
/// seed drew the same validation carve-out and outlier slice), with the features file it saved,
/// when the home's store has one.
pub(super) async fn baseline_features<'a>(
    home: &Path,
    exp: &'a Experiment,
    run: &RunConfig,
) -> anyhow::Result<Option<(&'a RunConfig, PathBuf)>> {
    let candidates: Vec<&RunConfig> = exp
        .runs
        .iter()
        .filter(|r| r.split == run.split && r.seed == run.seed && r.parent.is_none() && matches!(r.settings.method, Method::Ce(_)))
        .collect();
    if candidates.is_empty() || !crate::settings::db_path(home).exists() {
        return Ok(None);
    }
    let store = super::read_store(home).await?;
    let ids: Vec<String> = candidates.iter().map(|r| r.run_id.0.clone()).collect();
    let (statuses, dirs) = (store.statuses(&ids).await?, store.run_dirs(&ids).await?);
    Ok(candidates.into_iter().find_map(|r| {
        let done = statuses.get(&r.run_id.0) == Some(&oodlab_store::RunStatus::Done);
        let file = Path::new(dirs.get(&r.run_id.0)?).join(oodlab_train::features::FEATURES);
        (done && file.exists()).then_some((r, file))
    }))
}

/// The baseline's saved sets matched to the audit's roles, in the roles' order, and the ID
/// training sample's mean to centre them on. The file names them `id_train` (the baseline's
/// sample of the role: `eval.train_sample` images drawn with its seed), `id_val`, `id` (the ID
/// test set), `val_ood` and each OOD set (`heldout` among them); the outlier pool has none. A set
/// whose rows are not its role's images in number (the data changed since the baseline ran) is
/// left out rather than matched wrongly.
fn feature_roles(
    roles: &[(String, Hashed)],
    baseline: &RunConfig,
    saved: &oodlab_train::features::RunFeatures,
) -> (Vec<FeatureRole>, Vec<f32>) {
    let dim = saved.dim;
    let mut out = Vec::new();
    for (name, hashed) in roles {
        let n = hashed.positions.len();
        let (set, indices) = match name.as_str() {
            "id_train" => (Some(&saved.train), oodlab_data::order::subset(n, baseline.settings.eval.train_sample, baseline.seed)),
            "id_val" => (saved.val.as_ref().map(|v| &v.0), (0..n).collect()),
            "val_ood" => (saved.val.as_ref().map(|v| &v.1), (0..n).collect()),
            other => {
                let key = if other == "id_test" { "id" } else { other };
                (saved.sets.iter().find(|(k, _)| k == key).map(|(_, s)| s), (0..n).collect())
            }
        };
        let Some(set) = set.filter(|s| s.labels.len() == indices.len()) else { continue };
        let positions = indices.iter().map(|&i| hashed.positions[i]).collect();
        out.push(FeatureRole { name: name.clone(), features: set.features.clone(), indices, positions });
    }
    (out, oodlab_audit::features::mean(&saved.train.features, dim))
}

/// The roles of `run`'s data, in the audit's order, without those `audit.roles` leaves out or
/// that hold no image.
pub(super) fn load_roles(exp: &Experiment, run: &RunConfig) -> anyhow::Result<Roles> {
    let wanted = |name: &str| exp.audit.roles.as_ref().is_none_or(|r| r.iter().any(|x| x == name));
    let mut cfg = run.clone();
    // Every role is read, validation and test alike.
    cfg.settings.eval.validation_only = false;
    let sets = oodlab_train::sets::load_sets(&cfg).map_err(|e| anyhow::anyhow!("loading the data of run {}: {e}", run.run_id))?;
    let mut roles: Vec<(String, oodlab_data::ImageSet)> =
        vec![("id_train".into(), sets.train), ("id_val".into(), sets.val), ("id_test".into(), sets.id_test)];
    let mut coarse = Vec::new();
    for (name, set) in sets.ood {
        if name == oodlab_train::sets::HELDOUT {
            roles.push(("heldout".into(), set));
        } else {
            coarse.push((name, set));
        }
    }
    if let Some(o) = sets.outliers {
        roles.push(("outliers".into(), o));
    }
    if let Some(v) =
        oodlab_train::sets::load_val_ood(&cfg).map_err(|e| anyhow::anyhow!("loading the validation OOD set of run {}: {e}", run.run_id))?
    {
        roles.push(("val_ood".into(), v));
    }
    roles.extend(coarse);
    roles.retain(|(name, set)| wanted(name) && !set.is_empty());
    Ok(roles)
}

/// Pairs of images to draw: (role, index in the role) twice.
pub(super) type Drawn = Vec<(String, usize, String, usize)>;

/// The closest pairs by hashes, in the listing's order.
pub(super) fn hash_pairs(f: &Findings) -> Drawn {
    f.closest.iter().map(|p| (p.a_role.clone(), p.a_index, p.b_role.clone(), p.b_index)).collect()
}

/// The most alike pairs by features, in the listing's order.
pub(super) fn feature_pairs(f: &oodlab_audit::features::ByFeatures) -> Drawn {
    f.closest.iter().map(|p| (p.a_role.clone(), p.a_index, p.b_role.clone(), p.b_index)).collect()
}

/// `pairs`' images side by side, one pair a row, as a PNG at `path`.
pub(super) fn write_sheet(path: &std::path::Path, sets: &Roles, pairs: &Drawn) -> anyhow::Result<()> {
    let set = |role: &str| &sets.iter().find(|(n, _)| n == role).expect("a listed role was loaded").1;
    let mut images = Vec::new();
    for (a, i, b, j) in pairs {
        images.push((set(a).image(*i)?.into_owned(), set(b).image(*j)?.into_owned()));
    }
    let first = &sets[0].1;
    // Small images (28 × 28) drawn 3 × 3 a pixel; large ones as they are.
    let scale = if first.height <= 64 { 3 } else { 1 };
    let sheet = oodlab_audit::sheet::contact_sheet(&images, first.channels, first.height, first.width, scale);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    sheet.save(path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// The roles × roles table (upper triangle: exact / near pairs) and the closest pairs.
fn render(s: &SplitAudit) -> String {
    let f = &s.findings;
    let mut out = format!(
        "split {} (seed {}, the data of run {}): pairs of images in two roles, exact / near (perceptual hashes within {} of 64 bits, pixels correlating ≥ {})\n",
        s.split, s.seed, s.run_id, f.near.distance, f.near.correlation
    );
    let names: Vec<&str> = f.roles.iter().map(|(n, _)| n.as_str()).collect();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(11);
    out.push_str(&format!("{:width$}  {:>8}", "", "images"));
    for n in &names {
        out.push_str(&format!("  {n:>width$}"));
    }
    out.push('\n');
    // The upper triangle; on the diagonal, a role's pairs with itself.
    for (a, size, row) in f.matrix() {
        out.push_str(&format!("{a:width$}  {size:>8}"));
        for cell in row {
            let cell = cell.map_or(String::new(), |c| format!("{} / {}", c.exact_pairs, c.near_pairs));
            out.push_str(&format!("  {cell:>width$}"));
        }
        out.push('\n');
    }
    out.push_str("(the diagonal: pairs within one role, a dataset's own duplicates; the rest are leaks between roles)\n");
    if f.closest.is_empty() {
        out.push_str("no two roles share an image, exactly or nearly\n");
    }
    if !f.closest.is_empty() {
        out.push_str("closest pairs (role #index in the role, @position in its dataset part):\n");
        for p in &f.closest {
            let kind = if p.exact { "exact".to_string() } else { format!("{} bits, r {:.3}", p.distance, p.correlation) };
            out.push_str(&format!(
                "  {kind:>16}  {} #{} @{}  ~  {} #{} @{}\n",
                p.a_role, p.a_index, p.a_position, p.b_role, p.b_index, p.b_position
            ));
        }
    }
    match &f.features {
        Some(by) => out.push_str(&render_features(by, width)),
        None => out.push_str("(no finished baseline of this split and seed in the home: no comparison by features)\n"),
    }
    out.push('\n');
    out
}

/// The comparison by a baseline's features: per pair of roles, the images of the column's role
/// whose nearest image of the row's role is that alike; then the most alike pairs.
fn render_features(by: &oodlab_audit::features::ByFeatures, width: usize) -> String {
    let mut out = format!(
        "by the features of baseline run {} (centred cosine ≥ {}): images of the column's role whose nearest image of the row's role is that alike\n",
        by.run_id, by.cosine
    );
    out.push_str(&format!("{:width$}  {:>8}", "", "images"));
    for (n, _) in &by.roles {
        out.push_str(&format!("  {n:>width$}"));
    }
    out.push('\n');
    for (a, size, row) in by.matrix() {
        out.push_str(&format!("{a:width$}  {size:>8}"));
        for cell in row {
            let cell = cell.map_or(String::new(), |c| c.b_near.to_string());
            out.push_str(&format!("  {cell:>width$}"));
        }
        out.push('\n');
    }
    if by.closest.is_empty() {
        out.push_str("no image of one role has so alike an image in another\n");
    } else {
        out.push_str("most alike by features:\n");
        for p in &by.closest {
            out.push_str(&format!(
                "  cos {:.5}  {} #{} @{}  ~  {} #{} @{}\n",
                p.cosine, p.a_role, p.a_index, p.a_position, p.b_role, p.b_index, p.b_position
            ));
        }
    }
    out
}
