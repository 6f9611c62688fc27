//! Rendering comparison tables: aligned text, Markdown, CSV, LaTeX (booktabs) and JSON.

use crate::{Cell, CompareTable, PairedComparison};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Latex,
    Json,
}

/// How numbers are written: `scale` multiplies values (100 for percentages), `decimals` digits.
#[derive(Debug, Clone, Copy)]
pub struct NumberStyle {
    pub scale: f64,
    pub decimals: usize,
}

impl Default for NumberStyle {
    fn default() -> Self {
        NumberStyle { scale: 1.0, decimals: 3 }
    }
}

/// Text for LaTeX: special characters escaped, the symbols of captions as math.
fn tex(s: &str) -> String {
    s.replace('\\', "\\textbackslash{}")
        .replace('%', "\\%")
        .replace('&', "\\&")
        .replace('_', "\\_")
        .replace('#', "\\#")
        .replace('`', "")
        .replace(" < ", " $<$ ")
        .replace('±', "$\\pm$")
        .replace('†', "$^\\dagger$")
        .replace('‡', "$^\\ddagger$")
        .replace('§', "\\S{}")
        .replace('−', "$-$")
}

fn num(v: f64, s: NumberStyle) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{:.*}", s.decimals, v * s.scale)
    }
}

/// `mean ± std (n)`, or `pending` for a cell with no finished run.
fn cell_text(c: &Cell, s: NumberStyle, pm: &str) -> String {
    match c.summary {
        None => "pending".into(),
        Some(x) => format!("{} {pm} {} ({})", num(x.mean, s), num(x.std, s), x.n),
    }
}

/// A cell with its marks: `bold` wraps the best value, `dagger` follows a significant one, and
/// ` ‡` one holding flagged runs (`ddagger` in LaTeX).
fn marked(c: &Cell, s: NumberStyle, pm: &str, bold: impl Fn(String) -> String, dagger: &str) -> String {
    let mut text = cell_text(c, s, pm);
    if c.best {
        text = bold(text);
    }
    if c.significant {
        text.push_str(dagger);
    }
    if c.flagged > 0 {
        text.push_str(if dagger.starts_with('$') { "$^\\ddagger$" } else { " ‡" });
    }
    text
}

fn direction(t: &CompareTable) -> &'static str {
    if t.lower_is_better {
        "lower is better"
    } else {
        "higher is better"
    }
}

fn caption(t: &CompareTable) -> String {
    let base = match &t.baseline {
        Some(b) => format!("; † = Wilcoxon signed-rank p < {} against `{b}` over matched (seed, split) cells", t.alpha),
        None => String::new(),
    };
    let flagged = if t.rows.iter().any(|r| r.cells.iter().any(|c| c.flagged > 0)) {
        "; ‡ = includes runs flagged as collapsed or unstable (`oodlab status` lists them)"
    } else {
        ""
    };
    let budget = match t.rows.iter().filter_map(|r| r.budget).max() {
        Some(largest) if t.rows.iter().any(|r| r.smaller_budget) => format!(
            "; § = tuned with a smaller budget than another row's {largest} epochs of trials, or not tuned (`oodlab status EXPERIMENT --tune ENTRY`)"
        ),
        _ => String::new(),
    };
    format!(
        "{} ({}); mean ± sample std (ddof = 1) over seeds and splits, (n) runs; best in bold{base}{flagged}{budget}",
        t.metric.name(),
        direction(t)
    )
}

/// A row's name, with ` §` when another row was tuned with a larger budget.
fn row_name(r: &crate::Row) -> String {
    if r.smaller_budget {
        format!("{} §", r.name)
    } else {
        r.name.clone()
    }
}

fn runs_text(r: &crate::Row) -> String {
    if r.runs_done == r.runs_planned {
        format!("{}", r.runs_done)
    } else {
        format!("{}/{} done", r.runs_done, r.runs_planned)
    }
}

pub fn table(t: &CompareTable, format: Format, style: NumberStyle) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(t).expect("tables serialize"),
        Format::Csv => {
            let mut out = String::from("row,column,n,mean,std,ci95,best,p_vs_baseline,significant,runs_done,runs_planned,flagged\n");
            for r in &t.rows {
                for (c, cell) in t.columns.iter().zip(&r.cells) {
                    let (n, mean, std, ci) = cell.summary.map_or((0, f64::NAN, f64::NAN, f64::NAN), |s| (s.n, s.mean, s.std, s.ci95));
                    let p = cell.vs_baseline.map_or(String::new(), |w| w.p_value.to_string());
                    let f = |v: f64| if v.is_nan() { String::new() } else { (v * style.scale).to_string() };
                    out += &format!(
                        "{},{},{n},{},{},{},{},{p},{},{},{},{}\n",
                        r.name,
                        c.name,
                        f(mean),
                        f(std),
                        f(ci),
                        cell.best,
                        cell.significant,
                        r.runs_done,
                        r.runs_planned,
                        cell.flagged
                    );
                }
            }
            out
        }
        Format::Markdown => {
            let mut out =
                format!("| {} | {} | runs |\n", t.row_header, t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(" | "));
            out += &format!("|---|{}---:|\n", "---:|".repeat(t.columns.len()));
            for r in &t.rows {
                let cells: Vec<String> = r.cells.iter().map(|c| marked(c, style, "±", |s| format!("**{s}**"), " †")).collect();
                out += &format!("| {} | {} | {} |\n", row_name(r), cells.join(" | "), runs_text(r));
            }
            out + &format!("\n{}\n", caption(t))
        }
        Format::Latex => {
            let esc = tex;
            let mut out = format!("\\begin{{table}}[t]\n\\centering\n\\caption{{{}}}\n", tex(&caption(t)));
            out += &format!("\\begin{{tabular}}{{l{}r}}\n\\toprule\n", "c".repeat(t.columns.len()));
            out += &format!(
                "{} & {} & Runs \\\\\n\\midrule\n",
                capitalized(&t.row_header),
                t.columns.iter().map(|c| esc(&c.name)).collect::<Vec<_>>().join(" & ")
            );
            for r in &t.rows {
                let cells: Vec<String> =
                    r.cells.iter().map(|c| marked(c, style, "$\\pm$", |s| format!("\\textbf{{{s}}}"), "$^\\dagger$")).collect();
                out += &format!("{} & {} & {} \\\\\n", esc(&row_name(r)), cells.join(" & "), runs_text(r));
            }
            out + "\\bottomrule\n\\end{tabular}\n\\end{table}\n"
        }
        Format::Table => {
            let header: Vec<String> =
                std::iter::once(t.row_header.clone()).chain(t.columns.iter().map(|c| c.name.clone())).chain(["runs".to_string()]).collect();
            let mut rows: Vec<Vec<String>> = vec![header];
            for r in &t.rows {
                let mut line = vec![row_name(r)];
                line.extend(r.cells.iter().map(|c| marked(c, style, "±", |s| format!("[{s}]"), " †")));
                line.push(runs_text(r));
                rows.push(line);
            }
            aligned(&rows) + &format!("{}; [best]\n", caption(t).replace("; best in bold", ""))
        }
    }
}

/// The table as text cells for a document ([`crate::document`]): a header, rows whose best cells
/// are marked bold (significance daggers in the text), and the caption.
pub fn text_table(t: &CompareTable, style: NumberStyle) -> crate::document::Table {
    use crate::document::TextCell;
    let header =
        std::iter::once(t.row_header.clone()).chain(t.columns.iter().map(|c| c.name.clone())).chain(["runs".to_string()]).collect();
    let rows = t
        .rows
        .iter()
        .map(|r| {
            let mut line = vec![TextCell::plain(&row_name(r))];
            line.extend(r.cells.iter().map(|c| TextCell { text: marked(c, style, "±", |s| s, " †"), bold: c.best }));
            line.push(TextCell::plain(&runs_text(r)));
            line
        })
        .collect();
    crate::document::Table { header, rows, caption: Some(caption(t)) }
}

fn aligned(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    out
}

/// Paired comparisons (`a − b` on each column).
pub fn paired(pairs: &[PairedComparison], lower_is_better: bool, format: Format, style: NumberStyle) -> String {
    if format == Format::Json {
        return serde_json::to_string_pretty(pairs).expect("comparisons serialize");
    }
    let Some(first) = pairs.first() else { return "no matched (seed, split) cells to compare\n".into() };
    let better = if lower_is_better { "lower" } else { "higher" };
    let title = format!(
        "{} vs {}: mean difference ({} − {}; {better} is better), 95% bootstrap CI ({} resamples, seed {}), two-sided Wilcoxon signed-rank test, wins/ties/losses of {} over matched (seed, split) cells",
        first.a, first.b, first.a, first.b, crate::paired::RESAMPLES, crate::paired::SEED, first.a
    );
    let header = ["column", "n", "mean diff", "95% CI", "W", "p", "test", "W/T/L"];
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .map(|p| {
            let (w, pv, method) = p.wilcoxon.map_or(("-".into(), "-".into(), "-".into()), |w| {
                (format!("{}", w.statistic), format!("{:.4}", w.p_value), format!("{:?}", w.method).to_lowercase())
            });
            vec![
                p.column.clone(),
                p.n.to_string(),
                num(p.mean_diff, style),
                format!("[{}, {}]", num(p.ci95.0, style), num(p.ci95.1, style)),
                w,
                pv,
                method,
                format!("{}/{}/{}", p.wins, p.ties, p.losses),
            ]
        })
        .collect();
    match format {
        Format::Csv => {
            let mut out = "a,b,column,n,mean_diff,ci_low,ci_high,statistic,p_value,test,wins,ties,losses\n".to_string();
            for p in pairs {
                let (w, pv, m) = p.wilcoxon.map_or((String::new(), String::new(), String::new()), |w| {
                    (w.statistic.to_string(), w.p_value.to_string(), format!("{:?}", w.method).to_lowercase())
                });
                out += &format!(
                    "{},{},{},{},{},{},{},{w},{pv},{m},{},{},{}\n",
                    p.a,
                    p.b,
                    p.column,
                    p.n,
                    p.mean_diff * style.scale,
                    p.ci95.0 * style.scale,
                    p.ci95.1 * style.scale,
                    p.wins,
                    p.ties,
                    p.losses
                );
            }
            out
        }
        Format::Markdown => {
            let mut out = format!("{title}\n\n| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
            for r in &rows {
                out += &format!("| {} |\n", r.join(" | "));
            }
            out
        }
        Format::Latex => {
            let esc = tex;
            let mut out =
                format!("\\begin{{table}}[t]\n\\centering\n\\caption{{{}}}\n\\begin{{tabular}}{{lrrrrrlr}}\n\\toprule\n", tex(&title));
            out += "Column & $n$ & Mean diff & 95\\% CI & $W$ & $p$ & Test & W/T/L \\\\\n\\midrule\n";
            for r in &rows {
                out += &format!("{} \\\\\n", r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" & "));
            }
            out + "\\bottomrule\n\\end{tabular}\n\\end{table}\n"
        }
        Format::Table | Format::Json => {
            let mut all = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
            all.extend(rows);
            format!("{title}\n{}", aligned(&all))
        }
    }
}

/// `method` → `Method`, for LaTeX headers.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}
