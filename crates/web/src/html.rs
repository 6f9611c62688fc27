//! HTML building blocks: escaping, the page frame, tables and the SVG of bar charts and charts.

use crate::charts::{ChartData, PanelOutput};

/// Text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment or query value for a URL.
pub fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The frame of every page: the stylesheet and script built into the binary, nothing remote.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · oodlab</title><link rel=\"stylesheet\" href=\"/assets/style.css\"><script src=\"/assets/app.js\" defer></script></head>\
         <body><header><a class=\"home\" href=\"/\">oodlab</a></header><main>{body}</main></body></html>\n",
        esc(title)
    )
}

/// A JSON value as table text.
pub fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "–".into(),
        serde_json::Value::String(s) => esc(s),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => esc(&other.to_string()),
    }
}

/// A chart drawn as SVG by oodlab-plots, in a figure tagged with its kind.
pub fn chart_figure(kind: &str, c: &ChartData) -> String {
    match oodlab_plots::svg(&c.chart, (640, 400)) {
        Ok(svg) => format!("<figure class=\"chart\" data-kind=\"{kind}\">{svg}</figure>"),
        Err(e) => format!("<figure class=\"chart empty\" data-kind=\"{kind}\"><p>{}</p></figure>", esc(&e.to_string())),
    }
}

/// Colours of series, the same order as oodlab-plots'.
const COLOURS: &[&str] = &["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// Grouped horizontal bars: one group per category, one bar per series, value labels.
pub fn bar_svg(title: &str, categories: &[String], series: &[crate::charts::BarSeries]) -> String {
    let bar_h = 14.0;
    let group_h = bar_h * series.len().max(1) as f64 + 10.0;
    let (left, width) = (130.0, 420.0);
    let legend_h = 18.0 * series.len() as f64;
    let height = 30.0 + group_h * categories.len() as f64 + legend_h + 10.0;
    let max = series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0_f64, |m, v| m.max(v.abs())).max(1e-12);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{height:.0}\" viewBox=\"0 0 640 {height:.0}\" role=\"img\"><title>{}</title>\
         <text x=\"320\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">{}</text>",
        esc(title),
        esc(title)
    );
    for (ci, category) in categories.iter().enumerate() {
        let y0 = 30.0 + ci as f64 * group_h;
        out.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"12\">{}</text>",
            left - 6.0,
            y0 + group_h / 2.0,
            esc(category)
        ));
        for (si, s) in series.iter().enumerate() {
            let Some(v) = s.values.get(ci).copied().flatten() else { continue };
            let w = width * v.abs() / max;
            let y = y0 + si as f64 * bar_h;
            out.push_str(&format!(
                "<rect class=\"bar\" x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v:.4}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{v:.3}</text>",
                bar_h - 2.0,
                COLOURS[si % COLOURS.len()],
                esc(&s.name),
                left + w + 4.0,
                y + bar_h - 4.0
            ));
        }
    }
    let ly = 30.0 + group_h * categories.len() as f64;
    for (si, s) in series.iter().enumerate() {
        let y = ly + 18.0 * si as f64;
        out.push_str(&format!(
            "<rect x=\"{left}\" y=\"{y:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            COLOURS[si % COLOURS.len()],
            left + 18.0,
            y + 10.0,
            esc(&s.name)
        ));
    }
    out.push_str("</svg>");
    out
}

/// A dashboard panel as HTML.
pub fn panel(title: &str, out: &PanelOutput) -> String {
    let body = match out {
        PanelOutput::Table { columns, rows } => {
            let head: String = columns.iter().map(|c| format!("<th>{}</th>", esc(c))).collect();
            let body: String = rows
                .iter()
                .map(|r| {
                    format!(
                        "<tr>{}</tr>",
                        columns
                            .iter()
                            .map(|c| format!("<td>{}</td>", cell(r.get(c).unwrap_or(&serde_json::Value::Null))))
                            .collect::<String>()
                    )
                })
                .collect();
            format!("<table class=\"panel-table\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        }
        PanelOutput::Bar { categories, series, .. } => {
            format!("<figure class=\"chart\" data-kind=\"bar\">{}</figure>", bar_svg(title, categories, series))
        }
        PanelOutput::Chart { chart_kind, chart } => chart_figure(chart_kind.name(), chart),
        PanelOutput::Empty { reason } => format!("<p class=\"empty\">{}</p>", esc(reason)),
    };
    format!("<section class=\"panel\"><h3>{}</h3>{body}</section>", esc(title))
}
