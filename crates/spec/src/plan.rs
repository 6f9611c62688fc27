//! Expansion of a spec into runs: grid points × method entries, merged settings, run identity
//! and the dependency DAG (a fine-tune names the run whose checkpoint it starts from).

use std::collections::{BTreeMap, HashMap, HashSet};

use oodlab_data::split::ClassSplit;
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

use crate::error::{Origin, SpecError};
use crate::locate::{ancestors, Locator};
use crate::position::child;
use crate::types::{DatasetSpec, EvalSettings, InitFrom, ModelSettings, RunSettings, Score, SpecFile, TrainSettings};
use crate::validate;

/// A run's identity: a hash of its semantic configuration only.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The resolved classes of a run's split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitClasses {
    pub id_classes: Vec<u32>,
    pub heldout: Vec<u32>,
    /// Classes of the split's ID set held out of this run's training as its validation OOD set
    /// (a tuning trial judged `on: {classes: N}`, and its parents); empty for every other run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_classes: Vec<u32>,
}

/// Everything a worker needs to train and evaluate one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub run_id: RunId,
    pub experiment: String,
    /// The method entry of the spec this run came from.
    pub entry: String,
    pub seed: u64,
    /// Index into `data.splits`.
    pub split: usize,
    pub classes: SplitClasses,
    pub settings: RunSettings,
    /// The datasets this run reads, with absolute paths.
    pub datasets: BTreeMap<String, DatasetSpec>,
    pub parent: Option<RunId>,
    /// Version of the training code; part of the identity.
    pub code_version: String,
    /// This run's values of the grid axes, for display.
    pub grid: BTreeMap<String, serde_json::Value>,
}

impl RunConfig {
    /// The semantic part of the config that the run id hashes. Paths, the experiment and entry
    /// names, evaluation batch size and resources are left out; outliers count only for methods
    /// that train on them, so a baseline is shared by specs that differ only in outliers.
    pub fn identity(&self) -> serde_json::Value {
        let s = &self.settings;
        let used: Vec<&String> =
            std::iter::once(&s.data.id).chain(s.data.outliers.iter().filter(|_| s.method.uses_outliers())).chain(&s.data.ood).collect();
        let datasets: BTreeMap<&String, serde_json::Value> = used
            .into_iter()
            .map(|n| {
                let ds = &self.datasets[n];
                let mut v = serde_json::json!({"format": ds.format, "classes": ds.classes});
                // Only decoded formats have an image size; IDX datasets hash as before.
                if let Some(image) = ds.image {
                    v["image"] = serde_json::json!(image);
                }
                if let Some(crops) = ds.crops {
                    v["crops"] = serde_json::json!(crops);
                }
                if !ds.exclude_classes.is_empty() {
                    v["exclude_classes"] = serde_json::json!(ds.exclude_classes);
                }
                if !ds.excluded_entries.is_empty() {
                    v["excluded_entries"] = serde_json::json!(ds.excluded_entries);
                }
                (n, v)
            })
            .collect();
        let mut data = serde_json::json!({
            "id": s.data.id,
            "id_classes": self.classes.id_classes,
            "outliers": if s.method.uses_outliers() { s.data.outliers.clone() } else { None },
            "ood": s.data.ood,
            "normalize": s.data.normalize,
            "val_fraction": s.data.val_fraction,
            "train_limit": s.data.train_limit,
            "datasets": datasets,
        });
        // Written only when set, as the val_classes below. Which rules, and which pool the test
        // sets are cleaned against (a run that trains on no outliers has none in its data).
        if !s.data.dedupe.is_empty() {
            data["dedupe"] = serde_json::json!({"rules": s.data.dedupe, "outliers": s.data.outliers});
        }
        // Written only when set: every run before them keeps its id.
        if !self.classes.val_classes.is_empty() {
            data["val_classes"] = serde_json::json!(self.classes.val_classes);
        }
        // The validation slice held out of the outliers changes what a fine-tune trains on (runs
        // made before it existed were trained on the whole pool and keep their ids); a run
        // that trains on no outliers is unchanged by it.
        if let (true, Some(size)) = (s.method.uses_outliers(), s.outlier_holdout()) {
            data["outlier_holdout"] = serde_json::json!(size);
        }
        serde_json::json!({
            "method": s.method,
            "seed": self.seed,
            "data": data,
            // Like datasets, pretrained weights are known by name, not by where they are.
            "model": ModelSettings { pretrained: s.model.pretrained.as_ref().and_then(|p| p.file_name()).map(Into::into), ..s.model.clone() },
            // How often a mid-run checkpoint is written changes no result.
            "train": TrainSettings { checkpoint_every: None, ..s.train.clone() },
            // The evaluation crop changes results and the analyses add artifacts; the batch size
            // changes nothing.
            "eval": eval_identity(&s.eval),
            "parent": self.parent,
            "code_version": self.code_version,
        })
    }

    pub(crate) fn compute_id(&self) -> RunId {
        let bytes = serde_json::to_vec(&self.identity()).expect("identity serializes");
        let digest = Sha256::digest(&bytes);
        RunId(digest.iter().take(6).map(|b| format!("{b:02x}")).collect())
    }
}

/// The evaluation settings that make a run: the scores computed from logits, and when set the
/// crop and the analyses (fields left at their defaults are left out, so ids made before they
/// existed stay). Post-hoc detectors and saved features are not: `oodlab rescore` adds them to a
/// finished run without making it another run.
fn eval_identity(e: &EvalSettings) -> serde_json::Value {
    let scores: Vec<Score> = e.scores.iter().copied().filter(|s| s.from_logits()).collect();
    let mut v = serde_json::json!({"scores": scores});
    if let Some(crop) = e.crop {
        v["crop"] = serde_json::json!(crop);
    }
    if e.logit_pca {
        v["logit_pca"] = serde_json::json!(true);
    }
    if e.histogram_bins > 0 {
        v["histogram_bins"] = serde_json::json!(e.histogram_bins);
    }
    if let Some(p) = e.paths {
        v["paths"] = serde_json::json!(p);
    }
    if e.tnr95_subsets > 0 {
        v["tnr95_subsets"] = serde_json::json!(e.tnr95_subsets);
    }
    if e.validation_only {
        v["validation_only"] = serde_json::json!(true);
    }
    v
}

/// One grid point: seed, split index and field assignments (path relative to a run, value,
/// the grid field that set it, and the entry it is scoped to).
#[derive(Debug, Clone)]
struct Point {
    seed: u64,
    split: usize,
    /// Index of the grid values (`sets`) among the grid's combinations.
    combo: usize,
    sets: Vec<Assignment>,
}

#[derive(Debug, Clone)]
struct Assignment {
    path: String,
    value: Value,
    grid_field: String,
    only_entry: Option<String>,
}

const RUN_SECTIONS: [&str; 5] = ["method", "data", "model", "train", "eval"];

/// Resolves a grid key to (path within a run, entry it is scoped to).
fn axis_target(key: &str, entries: &BTreeMap<String, crate::types::MethodEntry>) -> Result<(String, Option<String>), String> {
    let (path, entry) = match key.strip_prefix("methods.") {
        Some(rest) => {
            let (entry, path) = rest.split_once('.').ok_or("expected methods.<entry>.<field>")?;
            if !entries.contains_key(entry) {
                return Err(format!("no method entry named `{entry}`"));
            }
            (path.to_string(), Some(entry.to_string()))
        }
        None => (key.to_string(), None),
    };
    let head = path.split(['.', '[']).next().unwrap_or("");
    if !RUN_SECTIONS.contains(&head) {
        return Err(format!(
            "`{key}` is not a field of a run; grid paths start with method, data, model, train or eval (or methods.<entry>.)"
        ));
    }
    Ok((path, entry))
}

fn expand_points(spec: &SpecFile, n_splits: usize, loc: &Locator) -> Result<Vec<Point>, SpecError> {
    let g = &spec.grid;
    if g.seeds.is_empty() {
        return Err(loc.error("grid.seeds", "the grid is empty: no seeds").with_hint("list at least one seed, for example [0, 1, 2]"));
    }
    let splits: Vec<usize> = g.splits.clone().unwrap_or_else(|| (0..n_splits).collect());
    if splits.is_empty() {
        return Err(loc.error("grid.splits", "the grid is empty: no splits").with_hint("remove `splits` to use all of data.splits"));
    }
    for (i, &s) in splits.iter().enumerate() {
        if s >= n_splits {
            return Err(loc.error(&format!("grid.splits[{i}]"), format!("split {s} does not exist; data.splits has {n_splits}")));
        }
    }
    // Each axis (and each zipped group) is a list of alternatives; the grid is their product.
    let mut factors: Vec<Vec<Vec<Assignment>>> = Vec::new();
    for (key, values) in &g.axes {
        let field = child("grid.axes", key);
        let (path, only_entry) = axis_target(key, &spec.methods).map_err(|m| loc.error(&field, m))?;
        if values.is_empty() {
            return Err(loc
                .error(&field, "the grid is empty: this axis has no values")
                .with_hint("give at least one value or remove the axis"));
        }
        factors.push(
            values
                .iter()
                .map(|v| {
                    vec![Assignment { path: path.clone(), value: v.clone(), grid_field: field.clone(), only_entry: only_entry.clone() }]
                })
                .collect(),
        );
    }
    for (gi, group) in g.zip.iter().enumerate() {
        let gfield = format!("grid.zip[{gi}]");
        let len = group.values().next().map_or(0, Vec::len);
        if len == 0 {
            return Err(loc.error(&gfield, "the grid is empty: this zipped group has no values"));
        }
        let mut alternatives = vec![Vec::new(); len];
        for (key, values) in group {
            let field = child(&gfield, key);
            let (path, only_entry) = axis_target(key, &spec.methods).map_err(|m| loc.error(&field, m))?;
            if values.len() != len {
                return Err(loc.error(
                    &field,
                    format!("zipped lists must be equally long: this one has {}, the group's first has {len}", values.len()),
                ));
            }
            for (alt, v) in alternatives.iter_mut().zip(values) {
                alt.push(Assignment { path: path.clone(), value: v.clone(), grid_field: field.clone(), only_entry: only_entry.clone() });
            }
        }
        factors.push(alternatives);
    }
    let mut combos: Vec<Vec<Assignment>> = vec![Vec::new()];
    for factor in &factors {
        combos = combos.iter().flat_map(|c| factor.iter().map(move |alt| [c.clone(), alt.clone()].concat())).collect();
    }
    let mut points = Vec::new();
    for &seed in &g.seeds {
        for &split in &splits {
            for (combo, sets) in combos.iter().enumerate() {
                points.push(Point { seed, split, combo, sets: sets.clone() });
            }
        }
    }
    Ok(points)
}

fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => merge(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Mapping(out)
        }
        _ => over.clone(),
    }
}

/// Reads `{kind: K, ...rest}` as `!K rest` into the externally tagged mirror of `Method`, whose
/// errors carry the path below the method. Returns the field path (`method.consistency.loss`,
/// `method.kind`) and the message.
pub(crate) fn method_by_name_error(v: &Value) -> Option<(String, String)> {
    let map = v.as_mapping()?;
    let kind = map.get("kind")?.as_str()?.to_string();
    let mut rest = map.clone();
    rest.remove("kind");
    let tagged = serde_yaml::value::TaggedValue { tag: serde_yaml::value::Tag::new(&kind), value: Value::Mapping(rest) };
    let err = serde_path_to_error::deserialize::<_, crate::method::MethodByName>(Value::Tagged(Box::new(tagged))).err()?;
    // The path starts with the variant (`lmoe.consistency.loss`); an unknown variant is the kind.
    let path = err.path().to_string();
    let field = match path.strip_prefix(&kind) {
        Some(rest) if !rest.is_empty() => format!("method{rest}"),
        _ => "method.kind".to_string(),
    };
    Some((field, err.inner().to_string()))
}

/// `method: ce` is short for `method: {kind: ce}`.
fn normalize_method(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let mut m = Mapping::new();
            m.insert(Value::String("kind".into()), Value::String(s.clone()));
            Value::Mapping(m)
        }
        other => other.clone(),
    }
}

pub(crate) fn set_path(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let o = crate::overrides::parse(&format!("{path}=x"))?;
    crate::overrides::apply(root, &crate::overrides::Override { value, ..o })
}

/// Finds where a field of entry `entry`'s runs is written: a grid axis, the entry, or the top.
fn run_origin(loc: &Locator, entry: &str, sets: &[&Assignment], field: &str, key: bool) -> Origin {
    for a in sets {
        if field == a.path || field.starts_with(&format!("{}.", a.path)) || a.path.starts_with(&format!("{field}.")) {
            return loc.key_origin(&a.grid_field);
        }
    }
    for anc in ancestors(field) {
        let in_entry = if anc.is_empty() { format!("methods.{entry}") } else { format!("methods.{entry}.{anc}") };
        for candidate in [in_entry, anc.clone()] {
            if loc.defines(&candidate) {
                let exact = if candidate.starts_with("methods.") { format!("methods.{entry}.{field}") } else { field.to_string() };
                return if key { loc.key_origin(&exact) } else { loc.origin(&exact) };
            }
        }
    }
    Origin::Whole
}

/// The entries with every parent before its fine-tunes, otherwise in the order the file writes
/// them (`written`).
fn entry_order(spec: &SpecFile, written: &[String], loc: &Locator) -> Result<Vec<String>, SpecError> {
    for (name, e) in &spec.methods {
        if let Some(p) = e.init_from.as_ref().map(InitFrom::entry) {
            if !spec.methods.contains_key(p) {
                let hint = match crate::error::did_you_mean(p, spec.methods.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("method entries: {}", spec.methods.keys().cloned().collect::<Vec<_>>().join(", ")),
                };
                return Err(loc.error(&format!("methods.{name}.init_from"), format!("no method entry named `{p}`")).with_hint(hint));
            }
        }
    }
    // Depth-first topological order; a node met again while on the path closes a cycle.
    fn visit(
        n: &str,
        spec: &SpecFile,
        on_path: &mut Vec<String>,
        done: &mut HashSet<String>,
        out: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        if done.contains(n) {
            return Ok(());
        }
        if let Some(i) = on_path.iter().position(|p| p == n) {
            let mut cycle = on_path[i..].to_vec();
            cycle.push(n.to_string());
            return Err(cycle);
        }
        on_path.push(n.to_string());
        if let Some(p) = &spec.methods[n].init_from {
            visit(p.entry(), spec, on_path, done, out)?;
        }
        on_path.pop();
        done.insert(n.to_string());
        out.push(n.to_string());
        Ok(())
    }
    let (mut done, mut out) = (HashSet::new(), Vec::new());
    let names = written.iter().filter(|n| spec.methods.contains_key(*n)).chain(spec.methods.keys());
    for name in names {
        if let Err(cycle) = visit(name, spec, &mut Vec::new(), &mut done, &mut out) {
            let field = format!("methods.{}.init_from", cycle[cycle.len() - 2]);
            return Err(loc
                .error(&field, format!("dependency cycle: {}", cycle.join(" -> ")))
                .with_hint("a run can only start from an entry that does not depend on it"));
        }
    }
    Ok(out)
}

pub(crate) fn expand(
    spec: &SpecFile,
    written: &[String],
    datasets: &BTreeMap<String, DatasetSpec>,
    loc: &Locator,
    base_dir: &std::path::Path,
    code_version: &str,
) -> Result<Vec<RunConfig>, SpecError> {
    if spec.methods.is_empty() {
        return Err(loc.error("methods", "no method entries; nothing to run").with_hint("add one, for example `baseline: {method: ce}`"));
    }
    let order = entry_order(spec, written, loc)?;
    let n_splits = spec.data.get("splits").and_then(Value::as_sequence).map_or(0, Vec::len);
    let points = expand_points(spec, n_splits.max(1), loc)?;

    let mut runs: Vec<RunConfig> = Vec::new();
    // Each run's place in the served order: its grid point, then its entry.
    let mut places: Vec<(usize, usize)> = Vec::new();
    let mut seen: HashSet<RunId> = HashSet::new();
    // (entry, seed, split, grid values) → run id, to find a fine-tune's parent.
    let mut by_point: HashMap<(String, u64, usize, usize), RunId> = HashMap::new();
    for (rank, entry_name) in order.iter().enumerate() {
        let entry = &spec.methods[entry_name];
        if let Some(seeds) = &entry.seeds {
            let field = format!("methods.{entry_name}.seeds");
            if seeds.is_empty() {
                return Err(loc.error(&field, "lists no seeds").with_hint("remove `seeds` to run every seed of grid.seeds"));
            }
            if let Some((i, s)) = seeds.iter().enumerate().find(|(_, s)| !spec.grid.seeds.contains(s)) {
                return Err(loc
                    .error(&format!("{field}[{i}]"), format!("seed {s} is not in grid.seeds {:?}", spec.grid.seeds))
                    .with_hint("an entry's seeds are a subset of the grid's"));
            }
        }
        if let Some(splits) = &entry.splits {
            let field = format!("methods.{entry_name}.splits");
            let grid_splits: Vec<usize> = spec.grid.splits.clone().unwrap_or_else(|| (0..n_splits.max(1)).collect());
            if splits.is_empty() {
                return Err(loc.error(&field, "lists no splits").with_hint("remove `splits` to run every split of the grid"));
            }
            if let Some((i, s)) = splits.iter().enumerate().find(|(_, s)| !grid_splits.contains(s)) {
                return Err(loc
                    .error(&format!("{field}[{i}]"), format!("split {s} is not among the grid's splits {grid_splits:?}"))
                    .with_hint("an entry's splits are indices into data.splits, a subset of the grid's"));
            }
        }
        if let Some(InitFrom::FixedSeed { entry: parent, seed }) = &entry.init_from {
            let parent_seeds = spec.methods[parent].seeds.as_ref().unwrap_or(&spec.grid.seeds);
            if !parent_seeds.contains(seed) {
                return Err(loc
                    .error(&format!("methods.{entry_name}.init_from.seed"), format!("entry `{parent}` has no run of seed {seed}"))
                    .with_hint(format!("its seeds are {parent_seeds:?}")));
            }
        }
        for (pi, point) in points.iter().enumerate() {
            if entry.seeds.as_ref().is_some_and(|s| !s.contains(&point.seed))
                || entry.splits.as_ref().is_some_and(|s| !s.contains(&point.split))
            {
                continue;
            }
            let sets: Vec<&Assignment> = point.sets.iter().filter(|a| a.only_entry.as_ref().is_none_or(|e| e == entry_name)).collect();
            let origin_of = |field: &str, key: bool| run_origin(loc, entry_name, &sets, field, key);
            let mut merged = Mapping::new();
            merged.insert("method".into(), normalize_method(&entry.method));
            for (section, base, over) in [
                ("data", &spec.data, &entry.data),
                ("model", &spec.model, &entry.model),
                ("train", &spec.train, &entry.train),
                ("eval", &spec.eval, &entry.eval),
            ] {
                let v = over.as_ref().map_or_else(|| base.clone(), |o| merge(base, o));
                merged.insert(section.into(), v);
            }
            let mut merged = Value::Mapping(merged);
            for a in &sets {
                set_path(&mut merged, &a.path, a.value.clone()).map_err(|m| loc.error(&a.grid_field, m))?;
            }
            let method_value = merged.get("method").cloned();
            let mut settings: RunSettings = serde_path_to_error::deserialize(merged).map_err(|e| {
                // An error inside the method has no inner path; read it again by name to get one.
                let inner =
                    if e.path().to_string().starts_with("method") { method_value.as_ref().and_then(method_by_name_error) } else { None };
                match inner {
                    Some((field, message)) => loc.deserialize_error(field, &message, &origin_of),
                    None => loc.serde_error("", e, &origin_of),
                }
            })?;
            settings.method = settings.method.resolved();
            // Outlier settings are the method's: filled with its default where they are not
            // given, and dropped for methods without outliers (a baseline is the same run
            // whatever the fine-tunes draw).
            if settings.method.uses_outliers() {
                settings.train.outlier_ratio = settings.train.outlier_ratio.or(settings.method.default_outlier_ratio());
            } else {
                settings.train.outlier_ratio = None;
                settings.train.outlier_batch_size = None;
            }
            if let Some((field, message, hint)) = validate::run_settings(&settings, datasets) {
                let mut err = loc.error_at(origin_of(&field, false), &field, message);
                err.hint = hint;
                return Err(err);
            }
            if let Some(rel) = settings.model.pretrained.take() {
                let full = base_dir.join(&rel);
                if !full.is_file() {
                    let msg = format!("file not found: {}", full.display());
                    let hint =
                        "paths are relative to the spec file's folder; scripts/torchvision_to_safetensors.py converts torchvision weights";
                    return Err(loc.error_at(origin_of("model.pretrained", false), "model.pretrained", msg).with_hint(hint));
                }
                settings.model.pretrained = Some(std::path::absolute(&full).unwrap_or(full));
            }
            let id_ds = &datasets[&settings.data.id];
            let Some(split_spec) = settings.data.splits.get(point.split) else {
                let msg =
                    format!("the grid asks for split {} but this entry's data.splits has {}", point.split, settings.data.splits.len());
                let hint = "give every entry the same number of splits, or list the ones to run in grid.splits";
                return Err(loc.error_at(origin_of("data.splits", false), "data.splits", msg).with_hint(hint));
            };
            let split = match (&split_spec.classes, split_spec.draw) {
                (Some(list), _) => ClassSplit::explicit(id_ds.classes, list.clone()),
                (None, Some(k)) => ClassSplit::draw_excluding(id_ds.classes, k, split_spec.seed, &id_ds.exclude_classes),
                (None, None) => unreachable!("validated: a split has classes or draw"),
            };
            // Excluded classes have no images: they are neither ID nor held out.
            let split = ClassSplit { heldout: split.heldout.into_iter().filter(|c| !id_ds.exclude_classes.contains(c)).collect(), ..split };
            let parent = match &entry.init_from {
                None => None,
                Some(p) => {
                    let key = (p.entry().to_string(), p.seed(point.seed), point.split, point.combo);
                    let Some(id) = by_point.get(&key) else {
                        let field = format!("methods.{entry_name}.init_from");
                        let msg = format!("entry `{}` has no run of seed {} to start from", p.entry(), point.seed);
                        let hint = format!(
                            "name one of its seeds: `init_from: {{entry: {}, seed: N}}`, or give both entries the same seeds",
                            p.entry()
                        );
                        return Err(loc.error(&field, msg).with_hint(hint));
                    };
                    Some(id.clone())
                }
            };
            let used: BTreeMap<String, DatasetSpec> = std::iter::once(&settings.data.id)
                .chain(&settings.data.outliers)
                .chain(&settings.data.ood)
                .chain(&settings.eval.val_ood)
                .map(|n| (n.clone(), datasets[n].clone()))
                .collect();
            let grid = sets.iter().map(|a| (a.path.clone(), serde_json::to_value(&a.value).unwrap_or_default())).collect();
            let mut run = RunConfig {
                run_id: RunId(String::new()),
                experiment: spec.name.clone(),
                entry: entry_name.clone(),
                seed: point.seed,
                split: point.split,
                classes: SplitClasses { id_classes: split.id_classes, heldout: split.heldout, val_classes: Vec::new() },
                settings,
                datasets: used,
                parent,
                code_version: code_version.to_string(),
                grid,
            };
            run.run_id = run.compute_id();
            by_point.insert((entry_name.clone(), point.seed, point.split, point.combo), run.run_id.clone());
            // Identical semantic configs are one run, trained once.
            if seen.insert(run.run_id.clone()) {
                runs.push(run);
                places.push((pi, rank));
            }
        }
    }
    Ok(served_order(runs, &places))
}

/// The runs grid point by grid point (seed, then split, then grid values), the entries of a point
/// in the file's order, every parent before its fine-tunes. A scheduler serves them in this order,
/// so a long grid completes whole (seed, split) cells of every method one after another, and a
/// comparison made halfway pairs complete cells (entry by entry, the methods written last would
/// have started only at the end).
fn served_order(runs: Vec<RunConfig>, places: &[(usize, usize)]) -> Vec<RunConfig> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Kahn's algorithm, taking the ready run of the smallest place first: a parent at a later
    // place (a fixed-seed parent with seeds listed out of order) still comes first.
    let index: HashMap<&RunId, usize> = runs.iter().enumerate().map(|(i, r)| (&r.run_id, i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); runs.len()];
    let mut ready = BinaryHeap::new();
    for (i, r) in runs.iter().enumerate() {
        match r.parent.as_ref().and_then(|p| index.get(p)) {
            Some(&p) => children[p].push(i),
            None => ready.push(Reverse((places[i], i))),
        }
    }
    let mut order = Vec::with_capacity(runs.len());
    while let Some(Reverse((_, i))) = ready.pop() {
        order.push(i);
        for &c in &children[i] {
            ready.push(Reverse((places[c], c)));
        }
    }
    let mut slots: Vec<Option<RunConfig>> = runs.into_iter().map(Some).collect();
    order.into_iter().map(|i| slots[i].take().expect("each run once")).collect()
}
