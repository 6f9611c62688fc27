//! Dashboards as files: `dashboards/*.yaml` declare panels, each a documented view of the store
//! (or a read-only query over them) drawn as a table, line, bar, ROC or histogram chart. A file is
//! checked when the server starts — its syntax, then every name against the view's columns — and a
//! broken one is an error naming the file, line and column, like a broken spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oodlab_spec::{did_you_mean, Origin, PositionIndex, SpecError};
use oodlab_store::{Store, DOCUMENTED_VIEWS};
use serde::{Deserialize, Serialize};

/// The dashboards of the repo's `dashboards/`, built into the binary for homes without that folder.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("overview.yaml", include_str!("../../../dashboards/overview.yaml")),
    ("training.yaml", include_str!("../../../dashboards/training.yaml")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// The rows as they are (`columns` to choose and order them).
    Table,
    /// `y` against a numeric `x`, one line per value of `series`.
    Line,
    /// `y` per category `x`, one bar per value of `series` in each category.
    Bar,
    /// ROC curves from the saved scores of the rows' runs (rows need run_id, score, ood_set).
    Roc,
    /// Score histograms (ID and every OOD set) from the saved scores of the rows' first run.
    Histogram,
}

/// One panel as written in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    pub title: String,
    /// One of the documented views (docs/store.md).
    #[serde(default)]
    pub view: Option<String>,
    /// A SELECT over the store; `:experiment` is bound to the experiment shown.
    #[serde(default)]
    pub query: Option<String>,
    pub chart: ChartKind,
    /// Column = value filters on the view (values are bound, never spliced into SQL).
    #[serde(default, rename = "where")]
    pub filters: BTreeMap<String, serde_yaml::Value>,
    /// Columns to sort by; `-column` sorts descending.
    #[serde(default)]
    pub order: Vec<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
    /// The column whose values name the lines, bars or curves.
    #[serde(default)]
    pub series: Option<String>,
    /// The table's columns (default: all).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The most rows read (default 2000; ROC: 8 curves).
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardFile {
    title: String,
    #[serde(default)]
    description: Option<String>,
    panels: Vec<Panel>,
}

/// A checked dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// The file name without `.yaml`, used in URLs.
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub panels: Vec<Panel>,
    #[serde(skip)]
    pub file: PathBuf,
}

impl ChartKind {
    pub fn name(self) -> &'static str {
        match self {
            ChartKind::Table => "table",
            ChartKind::Line => "line",
            ChartKind::Bar => "bar",
            ChartKind::Roc => "roc",
            ChartKind::Histogram => "histogram",
        }
    }
}

impl Panel {
    /// Filters as (column, value) for binding.
    pub fn filter_pairs(&self) -> Vec<(String, serde_json::Value)> {
        self.filters.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(serde_json::Value::Null))).collect()
    }

    /// `order` as (column, descending).
    pub fn order_pairs(&self) -> Vec<(String, bool)> {
        self.order.iter().map(|o| o.strip_prefix('-').map_or((o.clone(), false), |c| (c.to_string(), true))).collect()
    }

    pub fn row_limit(&self) -> i64 {
        self.limit.unwrap_or(if self.chart == ChartKind::Roc { 8 } else { 2000 })
    }
}

/// Reads the dashboards of `dir` (every `*.yaml`, by name), or the built-in ones when `dir` is
/// `None`, and checks each against the store's views.
pub async fn load(dir: Option<&Path>, store: &Store) -> Result<Vec<Dashboard>, SpecError> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    match dir {
        None => files.extend(BUILT_IN.iter().map(|(name, text)| (PathBuf::from("dashboards").join(name), text.to_string()))),
        Some(dir) => {
            let whole =
                |message: String| SpecError { file: dir.to_owned(), origin: Origin::Whole, field: String::new(), message, hint: None };
            let entries = std::fs::read_dir(dir).map_err(|e| whole(format!("cannot read the dashboards folder: {e}")))?;
            let mut paths: Vec<PathBuf> =
                entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml")).collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).map_err(|e| SpecError {
                    file: path.clone(),
                    origin: Origin::Whole,
                    field: String::new(),
                    message: format!("cannot read: {e}"),
                    hint: None,
                })?;
                files.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    for (file, text) in files {
        out.push(parse(&file, &text, store).await?);
    }
    Ok(out)
}

/// Parses and checks one dashboard file.
pub async fn parse(file: &Path, text: &str, store: &Store) -> Result<Dashboard, SpecError> {
    let index = PositionIndex::build(text);
    let error = |field: &str, message: String| SpecError {
        file: file.to_owned(),
        origin: index.nearest(field).map(Origin::File).unwrap_or(Origin::Whole),
        field: field.to_string(),
        message,
        hint: None,
    };
    let de = serde_yaml::Deserializer::from_str(text);
    let parsed: DashboardFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let origin = e
            .inner()
            .location()
            .map(|l| Origin::File(oodlab_spec::Position { line: l.line(), column: l.column() }))
            .or_else(|| index.nearest(&field).map(Origin::File))
            .unwrap_or(Origin::Whole);
        // serde_yaml's message repeats the path and the position, which the error names already.
        let mut message = e.inner().to_string();
        if let Some(l) = e.inner().location() {
            message = message.trim_end_matches(&format!(" at line {} column {}", l.line(), l.column())).to_string();
        }
        let message = match message.split_once(": ") {
            Some((head, rest)) if field.starts_with(head) => rest.to_string(),
            _ => message,
        };
        SpecError {
            file: file.to_owned(),
            origin,
            field: if field == "." || field == "?" { String::new() } else { field },
            message,
            hint: None,
        }
    })?;
    for (i, p) in parsed.panels.iter().enumerate() {
        let at = |key: &str| format!("panels[{i}].{key}");
        let columns: Vec<String> = match (&p.view, &p.query) {
            (Some(view), None) => {
                if !DOCUMENTED_VIEWS.contains(&view.as_str()) {
                    let mut e =
                        error(&at("view"), format!("`{view}` is not a documented view; expected one of {}", DOCUMENTED_VIEWS.join(", ")));
                    if let Some(s) = did_you_mean(view, DOCUMENTED_VIEWS.iter().copied()) {
                        e = e.with_hint(format!("did you mean `{s}`?"));
                    }
                    return Err(e);
                }
                store.view_columns(view).await.map_err(|e| error(&at("view"), e.to_string()))?
            }
            (None, Some(query)) => {
                let trimmed = query.trim_start().to_ascii_lowercase();
                if !(trimmed.starts_with("select") || trimmed.starts_with("with")) {
                    return Err(error(&at("query"), "expected a SELECT (or WITH ... SELECT) over the store's views".into()));
                }
                // The columns are known once it runs; a query that does not run is reported now.
                let rows = store
                    .query_rows(query, "", 0)
                    .await
                    .map_err(|e| error(&at("query"), format!("the query does not run on this store: {e}")))?;
                drop(rows);
                Vec::new()
            }
            _ => return Err(error(&format!("panels[{i}]"), "expected exactly one of `view` (a documented view) or `query`".into())),
        };
        let known = |field: &str, column: &str| -> Result<(), SpecError> {
            if columns.is_empty() || columns.iter().any(|c| c == column) {
                return Ok(());
            }
            let mut e = error(
                field,
                format!("`{column}` is not a column of `{}`; its columns are {}", p.view.as_deref().unwrap_or(""), columns.join(", ")),
            );
            if let Some(s) = did_you_mean(column, columns.iter().map(String::as_str)) {
                e = e.with_hint(format!("did you mean `{s}`?"));
            }
            Err(e)
        };
        if p.query.is_some() && !p.filters.is_empty() {
            return Err(error(&at("where"), "`where` filters a view; write the condition into the query instead".into()));
        }
        for key in p.filters.keys() {
            let field = format!("{}.{key}", at("where"));
            // Point at the key (the column name), not at its value.
            known(&field, key).map_err(|mut e| {
                if let Some(pos) = index.key(&field) {
                    e.origin = Origin::File(pos);
                }
                e
            })?;
        }
        for (j, (c, _)) in p.order_pairs().iter().enumerate() {
            known(&format!("{}[{j}]", at("order")), c)?;
        }
        for (key, value) in [("x", &p.x), ("y", &p.y), ("series", &p.series)] {
            if let Some(c) = value {
                known(&at(key), c)?;
            }
        }
        for (j, c) in p.columns.iter().flatten().enumerate() {
            known(&format!("{}[{j}]", at("columns")), c)?;
        }
        match p.chart {
            ChartKind::Line | ChartKind::Bar => {
                for (key, value) in [("x", &p.x), ("y", &p.y)] {
                    if value.is_none() {
                        return Err(error(&at("chart"), format!("a {} chart needs `{key}`: the column on its {key} axis", p.chart.name())));
                    }
                }
            }
            ChartKind::Roc | ChartKind::Histogram => {
                for needed in ["run_id", "score", "ood_set"] {
                    if !columns.is_empty() && !columns.iter().any(|c| c == needed) {
                        return Err(error(
                            &at("view"),
                            format!(
                                "a {} chart draws the saved scores of the rows' runs, so its rows need `{needed}`; use `results`",
                                p.chart.name()
                            ),
                        ));
                    }
                }
            }
            ChartKind::Table => {}
        }
        if p.limit.is_some_and(|l| !(1..=100_000).contains(&l)) {
            return Err(error(&at("limit"), "expected a number of rows from 1 to 100000".into()));
        }
    }
    let name = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    Ok(Dashboard { name, title: parsed.title, description: parsed.description, panels: parsed.panels, file: file.to_owned() })
}
