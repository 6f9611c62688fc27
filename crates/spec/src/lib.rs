//! Experiment specs: YAML types, validation with file:line:column and field path, grid and zip
//! expansion, run identity and the run DAG. The main entry point is [`load`], which returns an
//! [`Experiment`] whose runs are ready to schedule, parents before children.
//!
//! ```no_run
//! let exp = oodlab_spec::load("experiments/quickstart.yaml".as_ref(), &["train.epochs=1".into()], "1").unwrap();
//! for run in &exp.runs {
//!     println!("{} {} seed={} split={}", run.run_id, run.settings.method.name(), run.seed, run.split);
//! }
//! ```

mod error;
mod locate;
mod method;
mod mixing;
mod overrides;
mod plan;
mod position;
mod tuning;
mod types;
mod validate;

use std::path::{Path, PathBuf};

pub use error::{did_you_mean, Origin, SpecError};
pub use method::*;
pub use mixing::{Noise, Pair, Stage};
pub use oodlab_tune::{asha::Asha, Dist, Space};
pub use plan::{RunConfig, RunId, SplitClasses};
pub use position::{Position, PositionIndex};
pub use tuning::{HeldClasses, TunePlan};
pub use types::*;

use locate::Locator;

/// A validated, expanded experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The spec file, as given.
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    /// The spec after `--set` overrides, as YAML, for the record.
    pub resolved_yaml: String,
    pub resources: ResourcesSpec,
    /// Who to tell when the grid finishes or a run fails or stalls.
    pub notify: Option<NotifySpec>,
    /// Unique runs in dependency order: a run's parent comes before it.
    pub runs: Vec<RunConfig>,
    /// The entries searched before their runs (`tune:`), each with the runs that wait for its
    /// choice.
    pub tuning: Vec<TunePlan>,
    /// How `oodlab audit` looks for images in two data roles.
    pub audit: AuditSpec,
}

/// How many levels of anchors merging anchors a spec may chain.
const MERGE_DEPTH: usize = 16;

/// Whether a `<<` key is left anywhere in `v`.
fn has_merge_key(v: &serde_yaml::Value) -> bool {
    match v {
        serde_yaml::Value::Mapping(m) => m.iter().any(|(k, v)| k.as_str() == Some("<<") || has_merge_key(v)),
        serde_yaml::Value::Sequence(s) => s.iter().any(has_merge_key),
        serde_yaml::Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

fn whole(file: &Path, message: String) -> SpecError {
    SpecError { file: file.to_owned(), origin: Origin::Whole, field: String::new(), message, hint: None }
}

/// The home's own settings (`<home>/oodlab.yaml`), for every grid of the home.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeConfig {
    /// Whom to tell about grids whose spec has no `notify` of its own.
    #[serde(default)]
    pub notify: Option<NotifySpec>,
    /// The store's own upkeep: backups taken by the scheduler as runs finish.
    #[serde(default)]
    pub store: Option<StoreSettings>,
}

/// `store:` in a home's `oodlab.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// A backup of the store (`VACUUM INTO`, as `oodlab store backup`) into `<home>/backups/`
    /// after every this many runs the scheduler finishes.
    pub backup_every: u32,
    /// How many of those backups are kept (the oldest go first).
    #[serde(default = "three_backups")]
    pub keep: u32,
}

fn three_backups() -> u32 {
    3
}

/// The file of [`HomeConfig`] in a home.
pub const HOME_CONFIG: &str = "oodlab.yaml";

/// Reads `<home>/oodlab.yaml`: `Ok(None)` when there is none; errors name the file, line and
/// column or field, as a spec's do.
pub fn load_home_config(home: &Path) -> Result<Option<HomeConfig>, SpecError> {
    let path = home.join(HOME_CONFIG);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(whole(&path, format!("cannot read the home's settings: {e}"))),
    };
    let root: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let origin = e.location().map_or(Origin::Whole, |l| Origin::File(Position { line: l.line(), column: l.column() }));
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        SpecError { file: path.clone(), origin, field: String::new(), message: format!("invalid YAML: {message}"), hint: None }
    })?;
    if root.is_null() {
        return Ok(Some(HomeConfig::default()));
    }
    let loc = Locator::new(&path, &text, Vec::new());
    let config: HomeConfig =
        serde_path_to_error::deserialize(root).map_err(|e| loc.serde_error("", e, &|f, key| loc.file_origin(f, key)))?;
    if let Some(n) = &config.notify {
        check_notify(n, &loc)?;
    }
    if let Some(s) = &config.store {
        if s.backup_every == 0 {
            return Err(loc
                .error("store.backup_every", "must be at least 1 (runs finished between two backups)")
                .with_hint("remove `store` for no backups"));
        }
        if s.keep == 0 {
            return Err(loc.error("store.keep", "must be at least 1 (backups kept)"));
        }
    }
    Ok(Some(config))
}

/// Reads, overrides, validates and expands the spec at `path`. `overrides` are `path=value`
/// strings as given to `--set`; `code_version` is the training code's version, part of run ids.
pub fn load(path: &Path, overrides: &[String], code_version: &str) -> Result<Experiment, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| whole(path, format!("cannot read the spec: {e}")).with_hint("check the path to the YAML file"))?;
    load_text(path, &text, overrides, code_version)
}

/// [`load`] of the spec `text`, as if read from `path` (whose folder relative data paths start
/// from): how the scheduler plans a queued experiment again from the spec the store recorded.
pub fn load_text(path: &Path, text: &str, overrides: &[String], code_version: &str) -> Result<Experiment, SpecError> {
    let text = text.to_string();
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut root: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let origin = e.location().map_or(Origin::Whole, |l| Origin::File(Position { line: l.line(), column: l.column() }));
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        SpecError {
            file: path.to_owned(),
            origin,
            field: String::new(),
            message: format!("invalid YAML: {message}"),
            hint: Some("fix the YAML syntax at this position".into()),
        }
    })?;
    // YAML merge keys (`<<: *anchor`) are resolved before anything reads the document. An anchored
    // mapping that merges another (`&quiet {<<: *authors, ...}`) arrives through its alias with
    // its own `<<` still in it, so merging repeats until none is left.
    for _ in 0..MERGE_DEPTH {
        root.apply_merge().map_err(|e| {
            whole(path, format!("invalid YAML merge key: {e}")).with_hint("`<<` takes an alias of a mapping or a list of them")
        })?;
        if !has_merge_key(&root) {
            break;
        }
    }
    if has_merge_key(&root) {
        let msg = format!("YAML merge keys (`<<`) nested more than {MERGE_DEPTH} deep");
        return Err(whole(path, msg).with_hint("merge from an anchor that merges fewer others"));
    }
    if !root.is_mapping() {
        return Err(whole(path, "the spec must be a YAML mapping with name, datasets, data and methods".into()));
    }

    let mut parsed = Vec::new();
    for raw in overrides {
        let o = overrides::parse(raw).map_err(|m| SpecError {
            file: path.to_owned(),
            origin: Origin::Override(raw.clone()),
            field: String::new(),
            message: m,
            hint: None,
        })?;
        overrides::apply(&mut root, &o).map_err(|m| SpecError {
            file: path.to_owned(),
            origin: Origin::Override(raw.clone()),
            field: o.field(),
            message: m,
            hint: None,
        })?;
        parsed.push(o);
    }
    let loc = Locator::new(path, &text, parsed);

    let resolved_yaml = serde_yaml::to_string(&root).unwrap_or_default();
    // The method entries in the order the file writes them (the typed spec keeps them sorted).
    let written: Vec<String> = root
        .get("methods")
        .and_then(serde_yaml::Value::as_mapping)
        .map(|m| m.keys().filter_map(|k| k.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let spec: SpecFile = serde_path_to_error::deserialize(root).map_err(|e| loc.serde_error("", e, &|f, key| loc.file_origin(f, key)))?;
    if spec.name.is_empty() || !spec.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(loc
            .error("name", format!("`{}` is not a valid experiment name", spec.name))
            .with_hint("use letters, digits, `-`, `_` and `.`; it names a folder under runs/"));
    }
    let datasets = validate::datasets(&spec.datasets, &base_dir, &loc)?;
    check_resources(&spec.resources, &loc)?;
    if let Some(n) = &spec.notify {
        check_notify(n, &loc)?;
    }
    check_audit(&spec.audit, &spec, &loc)?;
    let runs = plan::expand(&spec, &written, &datasets, &loc, &base_dir, code_version)?;
    let tuning = tuning::plans(&spec, &runs, &datasets, &loc)?;
    Ok(Experiment {
        path: path.to_owned(),
        name: spec.name,
        description: spec.description,
        resolved_yaml,
        resources: spec.resources,
        notify: spec.notify,
        runs,
        tuning,
        audit: spec.audit,
    })
}

fn check_audit(a: &AuditSpec, spec: &SpecFile, loc: &Locator) -> Result<(), SpecError> {
    if a.near_distance > MAX_NEAR_DISTANCE {
        return Err(loc
            .error("audit.near_distance", format!("must be between 0 and {MAX_NEAR_DISTANCE} bits of 64, found {}", a.near_distance))
            .with_hint("10 is imagededup's default for its PHash; 0 finds only images whose hashes are equal"));
    }
    if !(-1.0..=1.0).contains(&a.near_correlation) {
        return Err(loc
            .error("audit.near_correlation", format!("must be in [-1, 1], found {}", a.near_correlation))
            .with_hint("the least correlation of two near duplicates' pixels; -1 leaves the hash alone to judge (imagededup's way)"));
    }
    if !(a.feature_cosine > 0.0 && a.feature_cosine <= 1.0) {
        return Err(loc
            .error("audit.feature_cosine", format!("must be in (0, 1], found {}", a.feature_cosine))
            .with_hint("the least cosine of two near duplicates' centred features; 0.9999 by default (docs/audit.md)"));
    }
    if a.show == 0 {
        return Err(loc.error("audit.show", "must be at least 1").with_hint("the number of closest pairs listed; default 20"));
    }
    let ood: Vec<String> = spec
        .data
        .get("ood")
        .and_then(|v| v.as_sequence())
        .map_or(Vec::new(), |s| s.iter().filter_map(|v| v.as_str().map(String::from)).collect());
    let known: Vec<String> = AUDIT_ROLES.iter().map(|r| r.to_string()).chain(ood).collect();
    for (i, role) in a.roles.iter().flatten().enumerate() {
        if !known.contains(role) {
            let mut e = loc.error(&format!("audit.roles[{i}]"), format!("unknown role `{role}`"));
            e = match did_you_mean(role, known.iter().map(String::as_str)) {
                Some(m) => e.with_hint(format!("did you mean `{m}`? The roles: {}", known.join(", "))),
                None => e.with_hint(format!("the roles: {}", known.join(", "))),
            };
            return Err(e);
        }
    }
    Ok(())
}

fn check_notify(n: &NotifySpec, loc: &Locator) -> Result<(), SpecError> {
    if n.command.is_none() && n.url.is_none() {
        return Err(loc
            .error("notify", "names neither a `command` nor a `url`: nobody would be told")
            .with_hint("add `url: https://...` (a JSON POST) or `command: ...` (run with the event's JSON on stdin), or remove `notify`"));
    }
    if let Some(url) = &n.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len() {
            return Err(loc.error("notify.url", format!("expected an http:// or https:// URL, found `{url}`")));
        }
    }
    if n.on.is_empty() {
        return Err(loc
            .error("notify.on", "is empty")
            .with_hint("list some of grid_finished, run_failed, run_stalled, or leave it out for all"));
    }
    Ok(())
}

fn check_resources(r: &ResourcesSpec, loc: &Locator) -> Result<(), SpecError> {
    if r.jobs == Some(0) {
        return Err(loc.error("resources.jobs", "must be at least 1"));
    }
    if r.threads_per_job == 0 {
        return Err(loc.error("resources.threads_per_job", "must be at least 1"));
    }
    if r.runs_per_gpu == 0 {
        return Err(loc.error("resources.runs_per_gpu", "must be at least 1"));
    }
    if !(r.stall_timeout > 0.0 && r.stall_timeout.is_finite()) {
        return Err(loc.error(
            "resources.stall_timeout",
            format!(
                "must be a positive number of seconds, found {} (default 600: a worker silent for 10 minutes is stalled)",
                r.stall_timeout
            ),
        ));
    }
    if !(r.retry_delay >= 0.0 && r.retry_delay.is_finite()) {
        return Err(loc.error(
            "resources.retry_delay",
            format!("must be a non-negative number of seconds, found {} (default 10; 0 retries at once)", r.retry_delay),
        ));
    }
    if !(r.grace_seconds >= 0.0 && r.grace_seconds.is_finite()) {
        return Err(loc.error("resources.grace_seconds", format!("must be a non-negative number of seconds, found {}", r.grace_seconds)));
    }
    Ok(())
}
