//! The experiment page's "Tuning" section (issue #33): each search of a tuned entry as the store
//! records it — the epochs its trials spent of its budget, the choice, and every trial rung with
//! its values, runs done and objective. Drawn from the store alone (the search's metric, score
//! and budget are on its rows), so it needs neither the spec nor the training code.

use oodlab_store::{ChoiceRow, TuningRung};

use crate::html::esc;

/// `[[field, value], ...]` as `field=value, ...`.
fn values(json: &str) -> String {
    let pairs: Vec<(String, serde_json::Value)> = serde_json::from_str(json).unwrap_or_default();
    pairs.iter().map(|(f, v)| format!("{f}={v}")).collect::<Vec<_>>().join(", ")
}

/// The section, or nothing when the experiment has no search.
pub fn section(rungs: &[TuningRung], choices: &[ChoiceRow]) -> String {
    if rungs.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section id=\"tuning\"><h2>Tuning</h2>");
    for search in rungs.chunk_by(|a, b| a.search == b.search) {
        let first = &search[0];
        // Epochs spent: each trial's highest rung, on each of its runs.
        let mut spent = 0;
        for r in search {
            let top = search.iter().filter(|o| o.trial == r.trial).map(|o| o.rung).max();
            if top == Some(r.rung) {
                spent += r.epochs * r.runs;
            }
        }
        let chosen = match choices.iter().find(|c| c.search == first.search) {
            Some(ChoiceRow { trial: Some(t), field_values: Some(v), objective, .. }) => {
                format!("chosen: trial {t}, {} (objective {})", values(v), objective.map_or("-".into(), |o| format!("{o:.4}")))
            }
            Some(_) => "chosen: none (no trial was eligible); the entry ran with its written values".into(),
            None => "not chosen yet".into(),
        };
        out.push_str(&format!(
            "<h3>{} <small>search {}</small></h3><p class=\"tuning\">{spent} of {} epochs spent; objective: {} of {} on the validation OOD set; <b>{}</b></p>",
            esc(&first.entry),
            esc(&first.search),
            first.budget_epochs,
            esc(&first.metric),
            esc(&first.score),
            esc(&chosen)
        ));
        out.push_str("<table class=\"tuning\"><tr><th>trial</th><th>rung</th><th>epochs</th><th>values</th><th>runs done</th><th>objective</th></tr>");
        for r in search {
            let objective = match r.objective {
                Some(o) if r.done == r.runs => format!("{o:.4}"),
                _ => "-".into(),
            };
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{objective}</td></tr>",
                r.trial,
                r.rung,
                r.epochs,
                esc(&values(&r.field_values)),
                r.done,
                r.runs
            ));
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
    out
}
