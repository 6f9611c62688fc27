//! The report's "Where to mix" section: the entries of an experiment's mixing methods that differ
//! only in `method.mix_at` form series along the network's stages (docs/methods.md, "Where to
//! mix"); each is measured by AUROC and FPR@95 on every OOD set and by ID accuracy, over the
//! (seed, split) cells every entry of the ablation has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use oodlab_report::along::{Along, AlongSeries, Measure};
use oodlab_report::document::{Block, Document};
use oodlab_report::{CompareTable, Metric};
use oodlab_spec::{Experiment, Stage};
use serde_json::Value;

/// The series of an experiment along `mix_at`, and the cells all their entries are planned in;
/// None when no three entries differ only in where they mix.
pub fn stage_series(exp: &Experiment) -> Option<(Along, BTreeSet<(u64, u64)>)> {
    // Entry → (the settings without where it mixes, the stage, the architecture), from its first run.
    let mut groups: Vec<(Value, Vec<(Stage, String)>)> = Vec::new();
    let mut arch = None;
    let mut seen = BTreeSet::new();
    for run in &exp.runs {
        let Some(place) = run.settings.method.place() else { continue };
        if !seen.insert(run.entry.clone()) {
            continue;
        }
        let mut key = serde_json::to_value(&run.settings).ok()?;
        // `pair` is moot at the input, so an axis through the input mixes pair-less there.
        for field in ["mix_at", "pair"] {
            key["method"].as_object_mut()?.remove(field);
        }
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push((place.at, run.entry.clone())),
            None => groups.push((key, vec![(place.at, run.entry.clone())])),
        }
        arch.get_or_insert(run.settings.model.arch);
    }
    let stages = arch?.stages();
    // A series has three positions or more, each once (two entries at one stage are another ablation).
    groups.retain(|(_, m)| m.len() >= 3 && m.iter().map(|(s, _)| s).collect::<BTreeSet<_>>().len() == m.len());
    if groups.is_empty() {
        return None;
    }
    let labels = labels(&groups.iter().map(|(k, _)| k).collect::<Vec<_>>());
    let series = groups
        .iter()
        .zip(labels)
        .map(|((_, members), label)| {
            let mut entries: Vec<(usize, String)> =
                members.iter().filter_map(|(s, e)| stages.iter().position(|x| x == s).map(|i| (i, e.clone()))).collect();
            entries.sort();
            AlongSeries { label, entries }
        })
        .collect::<Vec<_>>();
    let members: BTreeSet<&str> = series.iter().flat_map(|s| s.entries.iter().map(|(_, e)| e.as_str())).collect();
    let mut cells: Option<BTreeSet<(u64, u64)>> = None;
    for entry in &members {
        let mine: BTreeSet<(u64, u64)> = exp.runs.iter().filter(|r| r.entry == *entry).map(|r| (r.seed, r.split as u64)).collect();
        cells = Some(match cells {
            None => mine,
            Some(c) => c.intersection(&mine).copied().collect(),
        });
    }
    let along = Along { axis: "mix_at".into(), ticks: stages.iter().map(|s| s.name().to_string()).collect(), series };
    Some((along, cells.unwrap_or_default()))
}

/// What sets each series apart: the method's fields (and other settings) whose values differ
/// between the series, as `field: value`; the method's kind when there is one series.
fn labels(keys: &[&Value]) -> Vec<String> {
    let flat: Vec<BTreeMap<String, String>> = keys
        .iter()
        .map(|k| {
            let mut out = BTreeMap::new();
            for (section, v) in k.as_object().into_iter().flatten() {
                match (section.as_str(), v.as_object()) {
                    ("method", Some(fields)) => {
                        for (f, fv) in fields {
                            out.insert(f.clone(), fv.to_string());
                        }
                    }
                    _ => {
                        out.insert(section.clone(), v.to_string());
                    }
                }
            }
            out
        })
        .collect();
    let names: BTreeSet<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    let differing: Vec<&String> = names.into_iter().filter(|n| flat.iter().any(|m| m.get(*n) != flat[0].get(*n))).collect();
    flat.iter()
        .map(|m| {
            if differing.is_empty() {
                return m.get("kind").map_or("the entries".into(), |k| k.trim_matches('"').to_string());
            }
            let parts: Vec<String> =
                differing.iter().map(|n| format!("{n}: {}", m.get(*n).map_or("none", |v| v.as_str()).replace('"', ""))).collect();
            parts.join(", ")
        })
        .collect()
}

/// Adds the section (a table and a figure per measure) to `doc` and writes it alone as
/// `where-to-mix.md`; the number of figures written.
pub async fn section(
    doc: &mut Document,
    out: &Path,
    store: &oodlab_store::Store,
    exp: &Experiment,
    score: &str,
    figure: &dyn Fn(&mut Document, &str, &oodlab_plots::Chart, String) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let Some((along, cells)) = stage_series(exp) else { return Ok(0) };
    let entries: BTreeSet<&str> = along.series.iter().flat_map(|s| s.entries.iter().map(|(_, e)| e.as_str())).collect();
    let table_of = |metric: Metric| {
        let entries = &entries;
        let cells = &cells;
        async move {
            let options =
                oodlab_report::from_store::Options { metric, score, rows: "entry", entry: None, split: None, baseline: None, alpha: 0.05 };
            let mut input =
                oodlab_report::from_store::compare_input(store, &exp.name, &options).await.map_err(super::compare::cli_error)?;
            input.observations.retain(|o| entries.contains(o.row.as_str()) && cells.contains(&o.key));
            input.runs.retain(|(r, _, _)| entries.contains(r.as_str()));
            anyhow::Ok(oodlab_report::compare(&input))
        }
    };
    let (auroc, fpr95, id_acc) = (table_of(Metric::Auroc).await?, table_of(Metric::Fpr95).await?, table_of(Metric::IdAcc).await?);
    let sets = |t: &CompareTable| -> Vec<String> {
        use oodlab_report::ColumnKind::{Far, Near};
        t.columns.iter().filter(|c| matches!(c.kind, Near | Far)).map(|c| c.name.clone()).collect()
    };
    let mut measures = Vec::new();
    for (table, name) in [(&auroc, "AUROC"), (&fpr95, "FPR@95")] {
        for set in sets(table) {
            measures.push(Measure { title: format!("{set} {name} ({score})"), table, column: set });
        }
    }
    for column in id_acc.columns.iter().map(|c| c.name.clone()) {
        measures.push(Measure { title: "ID accuracy".into(), table: &id_acc, column });
    }
    let mut part = Document { title: format!("Where to mix: {}", exp.name), blocks: Vec::new() };
    let cells_text: Vec<String> = cells.iter().map(|(seed, split)| format!("({seed}, {split})")).collect();
    part.push(Block::Paragraph(format!(
        "The entries of `{}` that differ only in where they mix ID images with outliers (`method.mix_at`, docs/methods.md, \
         \"Where to mix\"): each at a stage of the network, from the input (MixOE's mix) to the logits (LMOE's). \
         Over the (seed, split) cells that every one of them has, {} in all: {}.",
        exp.name,
        cells.len(),
        cells_text.join(", ")
    )));
    part.push(Block::Table(oodlab_report::along::table(&along, &measures)));
    let mut figures = Vec::new();
    for m in &measures {
        let stem = format!(
            "where-to-mix-{}",
            m.title.split(' ').take(2).collect::<Vec<_>>().join("-").replace(['@', '(', ')'], "").to_lowercase()
        );
        let chart = oodlab_report::along::chart(&along, m, &format!("{} by where the mix is", m.title));
        figures.push((stem, chart, m.title.clone()));
    }
    doc.push(Block::Heading(2, "Where to mix".into()));
    doc.blocks.extend(part.blocks.iter().cloned());
    for (stem, chart, title) in &figures {
        let caption = format!(
            "{title} of each entry by the stage it mixes at: the mean over the cells above (dots) and its 95% t interval (bars), a line per series."
        );
        figure(doc, stem, chart, caption)?;
        part.push(doc.blocks.last().cloned().expect("the figure just added"));
    }
    std::fs::write(out.join("where-to-mix.md"), part.to_markdown())?;
    Ok(figures.len())
}
