//! `oodlab audit SPEC`: images that play two data roles in a spec's runs (issue #34;
//! docs/audit.md). The roles are loaded with the loaders the runs use, one split at a time (the
//! split's first run that trains on outliers, else its first run: its seed draws the validation
//! carve-out and the outlier slice), hashed, and every pair of roles counted.

use oodlab_audit::{Findings, Hashed};
use oodlab_spec::{Experiment, RunConfig};

use crate::args::{AuditArgs, Format};

/// One split's roles, audited.
#[derive(serde::Serialize)]
struct SplitAudit {
    split: usize,
    seed: u64,
    run_id: String,
    #[serde(flatten)]
    findings: Findings,
    /// The contact sheet of the closest pairs, when written.
    sheet: Option<String>,
}

pub async fn audit(home: &std::path::Path, a: AuditArgs) -> anyhow::Result<i32> {
    let exp = super::load_spec(&a.spec)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = Vec::new();
    for run in representatives(&exp) {
        let (sets, roles) = hashed_roles(&exp, run, threads)?;
        let near = oodlab_audit::Near { distance: exp.audit.near_distance, correlation: exp.audit.near_correlation };
        let findings = oodlab_audit::audit(&roles, near, exp.audit.show, threads);
        let mut sheet = None;
        if let (Some(dir), false) = (&a.sheets, findings.closest.is_empty()) {
            let path = dir.join(format!("{}-split{}.png", exp.name, run.split));
            write_sheet(&path, &sets, &findings)?;
            sheet = Some(path.display().to_string());
        }
        out.push(SplitAudit { split: run.split, seed: run.seed, run_id: run.run_id.0.clone(), findings, sheet });
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

/// The closest pairs' images side by side, in the listing's order, as a PNG at `path`.
pub(super) fn write_sheet(path: &std::path::Path, sets: &Roles, f: &Findings) -> anyhow::Result<()> {
    let set = |role: &str| &sets.iter().find(|(n, _)| n == role).expect("a listed role was hashed").1;
    let mut pairs = Vec::new();
    for p in &f.closest {
        pairs.push((set(&p.a_role).image(p.a_index)?.into_owned(), set(&p.b_role).image(p.b_index)?.into_owned()));
    }
    let first = &sets[0].1;
    // Small images (28 × 28) drawn 3 × 3 a pixel; large ones as they are.
    let scale = if first.height <= 64 { 3 } else { 1 };
    let sheet = oodlab_audit::sheet::contact_sheet(&pairs, first.channels, first.height, first.width, scale);
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
        out.push_str("no two roles share an image, exactly or nearly\n\n");
        return out;
    }
    out.push_str("closest pairs (role #index in the role, @position in its dataset part):\n");
    for p in &f.closest {
        let kind = if p.exact { "exact".to_string() } else { format!("{} bits, r {:.3}", p.distance, p.correlation) };
        out.push_str(&format!(
            "  {kind:>16}  {} #{} @{}  ~  {} #{} @{}\n",
            p.a_role, p.a_index, p.a_position, p.b_role, p.b_index, p.b_position
        ));
    }
    out.push('\n');
    out
}
