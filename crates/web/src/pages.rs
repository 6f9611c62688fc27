//! The HTML pages: experiments, an experiment (progress, dashboard panels, runs table), the
//! comparison table, a run, a run's files, and the built-in assets.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use oodlab_report::render::NumberStyle;
use oodlab_store::{RunQuery, RunSort};

use crate::api::{compare_query, compare_table, export_format, pairs, run_query};
use crate::charts;
use crate::error::{Error, PageError};
use crate::html::{esc, page, url};
use crate::AppState;

const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

pub async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response(),
        "style.css" => ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS).into_response(),
        _ => PageError(Error::not_found(format!("no asset `{file}`"))).into_response(),
    }
}

pub async fn not_found() -> PageError {
    PageError(Error::not_found("no such page"))
}

fn progress_html(name: &str, p: &oodlab_store::Progress) -> String {
    let pct = |n: i64| if p.total > 0 { 100.0 * n as f64 / p.total as f64 } else { 0.0 };
    format!(
        "<div id=\"progress\" data-poll=\"/api/experiments/{}\" data-state=\"{}\">\
         <div class=\"bar\"><span class=\"done\" style=\"width:{:.1}%\"></span><span class=\"failed\" style=\"width:{:.1}%\"></span><span class=\"running\" style=\"width:{:.1}%\"></span></div>\
         <p><b class=\"count-done\">{}</b> done, <b class=\"count-running\">{}</b> running, <b>{}</b> pending, <b class=\"count-failed\">{}</b> failed, {} interrupted — {} runs</p></div>",
        url(name),
        esc(&serde_json::to_string(p).unwrap_or_default()),
        pct(p.done),
        pct(p.failed),
        pct(p.running),
        p.done,
        p.running,
        p.pending,
        p.failed,
        p.interrupted,
        p.total
    )
}

pub async fn experiments(State(state): State<AppState>) -> Result<Html<String>, PageError> {
    let all = state.store().experiment_summaries().await?;
    let mut body = String::from("<h1>Experiments</h1>");
    if all.is_empty() {
        body.push_str("<p class=\"empty\">No experiment in this store yet: <code>oodlab run SPEC</code> records one.</p>");
    } else {
        body.push_str(
            "<table class=\"experiments\"><thead><tr><th>experiment</th><th>runs</th><th>done</th><th>running</th><th>failed</th>\
             <th>flagged</th><th title=\"the entry with the highest mean MSP AUROC over its finished runs and OOD sets\">best entry (MSP AUROC)</th>\
             <th>updated</th></tr></thead><tbody>",
        );
        for e in &all {
            let flagged = if e.flagged > 0 { format!("<td class=\"flagged\">{}</td>", e.flagged) } else { "<td>0</td>".to_string() };
            let best = e.best.as_ref().map_or(String::from("—"), |b| format!("{} <small>{:.4}</small>", esc(&b.entry), b.auroc));
            body.push_str(&format!(
                "<tr><td><a href=\"/experiments/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{flagged}<td class=\"best\">{best}</td><td>{}</td></tr>",
                url(&e.name),
                esc(&e.name),
                e.progress.total,
                e.progress.done,
                e.progress.running,
                e.progress.failed,
                esc(&e.updated_at)
            ));
        }
        body.push_str("</tbody></table>");
    }
    Ok(Html(page("Experiments", &body)))
}

/// The query string of `pairs` with each of `set` replacing its key (for sort and page links).
fn with(pairs: &[(String, String)], set: &[(&str, &str)]) -> String {
    let mut kept: Vec<(String, String)> = pairs.iter().filter(|(k, _)| !set.iter().any(|(s, _)| s == k)).cloned().collect();
    kept.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    serde_urlencoded::to_string(&kept).unwrap_or_default()
}

fn runs_table(
    name: &str,
    q: &RunQuery,
    pairs: &[(String, String)],
    total: i64,
    runs: &[oodlab_store::StatusRow],
    flags: &[oodlab_store::FlagRow],
) -> String {
    let sorted_by = match &q.sort {
        RunSort::Column(c) | RunSort::Field(c) => c.clone(),
    };
    let mut out = String::from("<section id=\"runs\"><h2>Runs</h2>");
    // The filter form keeps the dashboard choice; field filters are written `path=value`.
    let field_filter = q.fields.first().map(|(p, v)| (p.clone(), v.clone())).unwrap_or_default();
    out.push_str(&format!(
        "<form class=\"filters\" method=\"get\">{}\
         <label>status <select name=\"status\"><option value=\"\">any</option>{}</select></label>\
         <label>failure contains <input name=\"failure\" value=\"{}\"></label>\
         <label>field <input name=\"field\" placeholder=\"train.optimizer.lr\" value=\"{}\"></label>\
         <label>= <input name=\"value\" value=\"{}\"></label><button type=\"submit\">filter</button></form>",
        pairs
            .iter()
            .find(|(k, _)| k == "dashboard")
            .map(|(_, v)| format!("<input type=\"hidden\" name=\"dashboard\" value=\"{}\">", esc(v)))
            .unwrap_or_default(),
        ["pending", "running", "done", "failed", "interrupted"]
            .iter()
            .map(|s| format!("<option{}>{s}</option>", if q.status.is_some_and(|x| x.as_str() == *s) { " selected" } else { "" }))
            .collect::<String>(),
        esc(q.failure.as_deref().unwrap_or("")),
        esc(&field_filter.0),
        esc(&field_filter.1),
    ));
    let header = |col: &str, label: &str| {
        let desc = if sorted_by == col && !q.descending { "1" } else { "0" };
        let arrow = if sorted_by == col {
            if q.descending {
                " ▾"
            } else {
                " ▴"
            }
        } else {
            ""
        };
        let p = with(pairs, &[("sort", col), ("desc", desc)]);
        format!("<th><a href=\"?{}\">{label}{arrow}</a></th>", esc(&p))
    };
    out.push_str(&format!(
        "<p class=\"count\">{} of {total} runs</p><table class=\"runs\"><thead><tr>{}{}{}{}{}{}{}{}{}<th>flags</th>{}</tr></thead><tbody>",
        runs.len(),
        header("position", "#"),
        header("run_id", "run"),
        header("entry", "entry"),
        header("method", "method"),
        header("seed", "seed"),
        header("split", "split"),
        header("status", "status"),
        header("attempts", "attempts"),
        header("ended_at", "ended"),
        header("failure", "failure"),
    ));
    for r in runs {
        let grid: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_str(&r.grid).unwrap_or_default();
        let grid = grid.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
        let mine: Vec<&oodlab_store::FlagRow> = flags.iter().filter(|f| f.run_id == r.run_id).collect();
        let flag_cell = mine
            .iter()
            .map(|f| format!("<span class=\"flag\" title=\"{}\">{}</span>", esc(&f.detail), esc(&f.flag)))
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!(
            "<tr class=\"status-{}\"><td>{}</td><td><a href=\"/runs/{}\">{}</a></td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"status\">{}</td><td>{}</td><td>{}</td><td class=\"flags\">{}</td><td class=\"failure\">{}</td></tr>",
            r.status.as_str(),
            r.position,
            url(&r.run_id),
            esc(&r.run_id),
            esc(&r.entry),
            if grid.is_empty() { String::new() } else { format!(" <small>[{}]</small>", esc(&grid)) },
            esc(&r.method),
            r.seed,
            r.split,
            r.status.as_str(),
            r.attempts,
            esc(r.ended_at.as_deref().unwrap_or("")),
            flag_cell,
            esc(r.failure.as_deref().unwrap_or("")),
        ));
    }
    out.push_str("</tbody></table><nav class=\"pages\">");
    if q.offset > 0 {
        out.push_str(&format!(
            "<a href=\"?{}\">← previous</a> ",
            esc(&with(pairs, &[("offset", &(q.offset - q.limit).max(0).to_string())]))
        ));
    }
    if q.offset + (runs.len() as i64) < total {
        out.push_str(&format!("<a href=\"?{}\">next →</a>", esc(&with(pairs, &[("offset", &(q.offset + q.limit).to_string())]))));
    }
    out.push_str(&format!(
        "</nav><p><a href=\"/api/experiments/{}/runs?{}\">these runs as JSON</a></p></section>",
        url(name),
        esc(&serde_urlencoded::to_string(pairs).unwrap_or_default())
    ));
    out
}

pub async fn experiment(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Html<String>, PageError> {
    let mut pairs = pairs(&raw)?;
    // The form's `field`/`value` pair is the API's `f.<field>=value`.
    if let Some((_, field)) = pairs.iter().find(|(k, _)| k == "field").cloned() {
        let value = pairs.iter().find(|(k, _)| k == "value").map(|(_, v)| v.clone()).unwrap_or_default();
        pairs.retain(|(k, _)| k != "field" && k != "value");
        if !field.is_empty() {
            pairs.push((format!("f.{field}"), value));
        }
    }
    let q = run_query(&pairs)?;
    let store = state.store();
    let progress = store.progress(&name).await?.ok_or_else(|| Error::not_found(format!("no experiment `{name}`")))?;
    let dashboard_name = pairs.iter().find(|(k, _)| k == "dashboard").map(|(_, v)| v.as_str());
    let dashboard = match dashboard_name {
        Some(d) => Some(state.dashboards().iter().find(|x| x.name == d).ok_or_else(|| Error::not_found(format!("no dashboard `{d}`")))?),
        None => state.dashboards().first(),
    };
    let (total, runs) = store.runs_page(&name, &q).await?;
    let flags = store.experiment_flags(&name).await?;

    // The overview, above the fold: progress and the comparison (MSP AUROC per entry and OOD
    // set) beside the flagged runs; one column on a narrow window.
    let mut body =
        format!("<h1>{}</h1><div class=\"overview\"><div class=\"overview-main\">{}", esc(&name), progress_html(&name, &progress));
    body.push_str(&summary_table(&state, &name).await?);
    body.push_str("</div>");
    if flags.is_empty() {
        body.push_str(
            "<aside id=\"flags\" class=\"none\"><h2>Flagged runs</h2><p class=\"empty\">None: no finished run is flagged.</p></aside>",
        );
    } else {
        // Collapse is never silent: finished runs the store flags, beside the comparison.
        body.push_str(&format!("<aside id=\"flags\"><h2>Flagged runs <small>({})</small></h2><ul class=\"flags\">", flags.len()));
        for f in &flags {
            body.push_str(&format!(
                "<li><a href=\"/runs/{}\">{}</a> <span class=\"flag\">{}</span> {}</li>",
                url(&f.run_id),
                esc(&f.run_id),
                esc(&f.flag),
                esc(&f.detail)
            ));
        }
        body.push_str("</ul></aside>");
    }
    body.push_str("</div>");
    body.push_str("<nav class=\"dashboards\">");
    for d in state.dashboards() {
        let current = dashboard.is_some_and(|x| x.name == d.name);
        body.push_str(&format!(
            "<a href=\"?dashboard={}\"{}>{}</a> ",
            url(&d.name),
            if current { " class=\"current\"" } else { "" },
            esc(&d.title)
        ));
    }
    body.push_str(&format!("<a href=\"/experiments/{}/compare\">Comparison table</a></nav>", url(&name)));
    // The dashboard's description above its grid of panels, not in one of its cells.
    if let Some(desc) = dashboard.and_then(|d| d.description.as_ref()) {
        body.push_str(&format!("<p class=\"description\">{}</p>", esc(desc)));
    }
    body.push_str("<section id=\"panels\">");
    if let Some(d) = dashboard {
        // Panels are independent reads: evaluated concurrently (the reader pool has a connection
        // per core), drawn in the file's order.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, p) in d.panels.iter().enumerate() {
            let (state, name, p) = (state.clone(), name.clone(), p.clone());
            tasks.spawn(async move { (i, charts::panel(&state, &name, &p).await.map(|out| charts::panel_html(&p.title, &out))) });
        }
        let mut drawn: Vec<(usize, String)> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (i, html) = joined.map_err(|e| Error::internal(&e))?;
            drawn.push((i, html?));
        }
        drawn.sort_by_key(|(i, _)| *i);
        body.extend(drawn.into_iter().map(|(_, html)| html));
    }
    body.push_str("</section>");
    // The tuned entries' searches (issue #33), when the experiment has any.
    body.push_str(&crate::tuning::section(&store.tuning_rungs(&name).await?, &store.choices(&name).await?));
    // The latest audit of its data roles (issue #34), when `oodlab audit` has run on this home.
    body.push_str(&crate::audit::section(&store.audits(&name).await?));
    body.push_str(&runs_table(&name, &q, &pairs, total, &runs, &flags));
    Ok(Html(page(&name, &body)))
}

/// The experiment page's comparison: the comparison page's default table (MSP AUROC, mean ± std
/// per entry and OOD set, best marked), compact, with a link to the full page.
async fn summary_table(state: &AppState, name: &str) -> Result<String, Error> {
    let table = compare_table(state, name, &compare_query(&[])?).await?;
    let t = oodlab_report::render::text_table(&table, NumberStyle::default());
    let mut out = format!(
        "<section id=\"summary\"><h2>Comparison <small>MSP AUROC — <a href=\"/experiments/{}/compare\">other metrics and scores</a></small></h2>",
        url(name)
    );
    if t.rows.is_empty() {
        out.push_str("<p class=\"empty\">No finished run yet.</p></section>");
        return Ok(out);
    }
    out.push_str(&table_html("compare summary", &t));
    out.push_str("</section>");
    Ok(out)
}

/// A rendered comparison table as HTML (bold where the renderer marks the best).
fn table_html(class: &str, t: &oodlab_report::document::Table) -> String {
    let mut out = format!("<table class=\"{class}\"><thead><tr>");
    for h in &t.header {
        out.push_str(&format!("<th>{}</th>", esc(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        out.push_str("<tr>");
        for c in row {
            out.push_str(&if c.bold { format!("<td><b>{}</b></td>", esc(&c.text)) } else { format!("<td>{}</td>", esc(&c.text)) });
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    if let Some(caption) = &t.caption {
        out.push_str(&format!("<p class=\"caption\">{}</p>", esc(caption)));
    }
    out
}

pub async fn compare(State(state): State<AppState>, Path(name): Path<String>, RawQuery(raw): RawQuery) -> Result<Response, PageError> {
    let pairs = pairs(&raw)?;
    let q = compare_query(&pairs)?;
    let table = compare_table(&state, &name, &q).await?;
    if let Some(f) = pairs.iter().find(|(k, _)| k == "format").map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()) {
        // The same text as `oodlab compare --format F`, as a download.
        let (format, mime, ext) = export_format(f)?;
        let text = oodlab_report::render::table(&table, format, NumberStyle::default());
        let disposition = format!("attachment; filename=\"{}-{}-{}.{ext}\"", name.replace(['"', '\\', '/'], "_"), q.metric.name(), q.score);
        return Ok(([(header::CONTENT_TYPE, mime.to_string()), (header::CONTENT_DISPOSITION, disposition)], text).into_response());
    }
    let select = |key: &str, options: &[&str], current: &str| {
        format!(
            "<label>{key} <select name=\"{key}\">{}</select></label>",
            options.iter().map(|o| format!("<option{}>{o}</option>", if *o == current { " selected" } else { "" })).collect::<String>()
        )
    };
    let metrics: Vec<&str> = oodlab_report::Metric::ALL.iter().map(|m| m.name()).collect();
    let mut body = format!(
        "<h1>{} — comparison</h1><p><a href=\"/experiments/{}\">← experiment</a></p><form class=\"filters\" method=\"get\">{}{}\
         <label>rows <input name=\"rows\" value=\"{}\"></label><button type=\"submit\">show</button></form>",
        esc(&name),
        url(&name),
        select("metric", &metrics, q.metric.name()),
        select("score", &crate::api::score_names(), &q.score),
        esc(&q.rows),
    );
    let t = oodlab_report::render::text_table(&table, NumberStyle::default());
    body.push_str(&table_html("compare", &t));
    body.push_str("<p class=\"export\">Export: ");
    for f in ["csv", "markdown", "latex", "json"] {
        body.push_str(&format!("<a href=\"?{}\">{f}</a> ", esc(&with(&pairs, &[("format", f)]))));
    }
    body.push_str("</p>");
    Ok(Html(page(&format!("{name} comparison"), &body)).into_response())
}

pub async fn run(State(state): State<AppState>, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Result<Html<String>, PageError> {
    let pairs = pairs(&raw)?;
    let score = crate::api::score_param(&pairs)?;
    let store = state.store();
    let d = store.run_detail(&id).await?.ok_or_else(|| Error::not_found(format!("no run `{id}`")))?;
    let (config, experiments) = store.run_config(&id).await?.unwrap_or_default();
    let config = serde_json::from_str::<serde_json::Value>(&config).and_then(|v| serde_json::to_string_pretty(&v)).unwrap_or(config);
    let mut body = format!("<h1>Run {}</h1><p>", esc(&id));
    for e in &experiments {
        body.push_str(&format!("<a href=\"/experiments/{}\">← {}</a> ", url(e), esc(e)));
    }
    body.push_str("</p><table class=\"detail\">");
    let mut row = |k: &str, v: String| body.push_str(&format!("<tr><th>{k}</th><td>{}</td></tr>", esc(&v)));
    row("method", d.method.clone());
    row("seed, split", format!("{}, {}", d.seed, d.split));
    row("status", format!("{} (attempts {})", d.status.as_str(), d.attempts));
    row("started, ended", format!("{} – {}", d.started_at.as_deref().unwrap_or(""), d.ended_at.as_deref().unwrap_or("")));
    row("where", format!("{} {} {}", d.host.as_deref().unwrap_or(""), d.slot.as_deref().unwrap_or(""), d.device.as_deref().unwrap_or("")));
    if let Some(f) = &d.failure {
        row("failure", f.clone());
    }
    for f in store.run_flags(&id).await? {
        row("flagged", format!("{}: {}", f.flag, f.detail));
    }
    body.push_str("</table>");
    if let Some(tail) = &d.stderr_tail {
        body.push_str(&format!("<h2>stderr (last lines)</h2><pre class=\"stderr\">{}</pre>", esc(tail)));
    }
    body.push_str(&format!(
        "<nav class=\"scores\">score: {}</nav><section id=\"charts\">",
        crate::api::score_names()
            .iter()
            .map(|s| if *s == score { format!("<b>{s}</b>") } else { format!("<a href=\"?score={s}\">{s}</a>") })
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let charts = charts::run_charts(&state, &id, &score).await?;
    if charts.is_empty() {
        body.push_str("<p class=\"empty\">No epochs or saved scores yet.</p>");
    }
    for (kind, c) in &charts {
        body.push_str(&charts::chart_figure(kind, c));
    }
    body.push_str("</section>");
    if let Some(dir) = charts::run_folder(&state, &d.run_dir) {
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .map(|it| it.flatten().filter(|e| e.path().is_file()).map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        files.sort();
        body.push_str("<h2>Files</h2><ul class=\"files\">");
        for f in files {
            body.push_str(&format!("<li><a href=\"/runs/{}/files/{}\">{}</a></li>", url(&id), url(&f), esc(&f)));
        }
        body.push_str("</ul>");
    }
    body.push_str(&format!("<h2>Config</h2><pre class=\"config\">{}</pre>", esc(&config)));
    Ok(Html(page(&format!("run {id}"), &body)))
}

/// A file of a run's folder. Only plain names below the folder: `..`, absolute paths and links
/// that lead outside it are refused.
pub async fn run_file(State(state): State<AppState>, Path((id, path)): Path<(String, String)>) -> Result<Response, PageError> {
    let d = state.store().run_detail(&id).await?.ok_or_else(|| Error::not_found(format!("no run `{id}`")))?;
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        return Err(Error::bad_request("a file path inside the run's folder, without `..`").into());
    }
    let dir = charts::run_folder(&state, &d.run_dir).ok_or_else(|| Error::not_found("the run has no folder in this home"))?;
    let file = dir.join(&path).canonicalize().map_err(|_| Error::not_found(format!("no file `{path}` in run {id}")))?;
    if !file.starts_with(&dir) || !file.is_file() {
        return Err(Error::not_found(format!("no file `{path}` in run {id}")).into());
    }
    let bytes = tokio::fs::read(&file).await.map_err(|e| Error::internal(&e))?;
    let mime = match file.extension().and_then(|e| e.to_str()) {
        Some("json" | "jsonl") => "application/json",
        Some("log" | "txt" | "yaml") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, mime)], bytes).into_response())
}
