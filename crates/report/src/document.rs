//! A report as a list of blocks, written as Markdown and as HTML from the same content: headings,
//! paragraphs, code, tables and figures (an SVG shown, a PNG linked, a numbered caption). Pure: the
//! caller writes the files.

/// A document: a title and its blocks in order.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub title: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
pub enum Block {
    /// Level 2 or 3 (the title is level 1).
    Heading(u8, String),
    /// Plain text; `code` spans in backticks are kept as code.
    Paragraph(String),
    Code {
        lang: String,
        text: String,
    },
    Table(Table),
    Figure(Figure),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<TextCell>>,
    pub caption: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextCell {
    pub text: String,
    pub bold: bool,
}

impl TextCell {
    pub fn plain(text: &str) -> TextCell {
        TextCell { text: text.to_string(), bold: false }
    }
}

/// A figure: its SVG (shown) and PNG (linked), paths relative to the document.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Empty for a figure that is a picture only (a contact sheet of images): its PNG is shown.
    pub svg: String,
    pub png: String,
    pub caption: String,
}

/// Markdown table cells: pipes escaped, line breaks removed.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// HTML of plain text with `code` spans.
fn html_text(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out += &format!("<code>{}</code>", html_escape(part));
        } else {
            out += &html_escape(part);
        }
    }
    out
}

impl Document {
    pub fn push(&mut self, block: Block) {
        self.blocks.push(block);
    }

    /// Figures are numbered in order of appearance.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# {}\n\n", self.title);
        let mut figure = 0;
        for b in &self.blocks {
            match b {
                Block::Heading(level, text) => out += &format!("{} {text}\n\n", "#".repeat(*level as usize)),
                Block::Paragraph(text) => out += &format!("{text}\n\n"),
                Block::Code { lang, text } => out += &format!("```{lang}\n{}\n```\n\n", text.trim_end()),
                Block::Table(t) => {
                    out += &format!("| {} |\n", t.header.iter().map(|h| md_cell(h)).collect::<Vec<_>>().join(" | "));
                    out += &format!("|{}\n", "---|".repeat(t.header.len()));
                    for r in &t.rows {
                        let cells: Vec<String> =
                            r.iter().map(|c| if c.bold { format!("**{}**", md_cell(&c.text)) } else { md_cell(&c.text) }).collect();
                        out += &format!("| {} |\n", cells.join(" | "));
                    }
                    if let Some(c) = &t.caption {
                        out += &format!("\n{c}\n");
                    }
                    out.push('\n');
                }
                Block::Figure(f) if f.svg.is_empty() => {
                    figure += 1;
                    out += &format!("![Figure {figure}]({})\n\n*Figure {figure}.* {}\n\n", f.png, f.caption);
                }
                Block::Figure(f) => {
                    figure += 1;
                    out += &format!("![Figure {figure}]({})\n\n*Figure {figure}.* {} ([PNG]({}))\n\n", f.svg, f.caption, f.png);
                }
            }
        }
        out
    }

    /// A standalone HTML page (inline CSS, images by relative path, nothing fetched).
    pub fn to_html(&self) -> String {
        let mut out = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n{}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
            html_escape(&self.title),
            STYLE,
            html_escape(&self.title)
        );
        let mut figure = 0;
        for b in &self.blocks {
            match b {
                Block::Heading(level, text) => out += &format!("<h{level}>{}</h{level}>\n", html_text(text)),
                Block::Paragraph(text) => out += &format!("<p>{}</p>\n", html_text(text)),
                Block::Code { lang, text } => {
                    out += &format!("<pre><code class=\"language-{}\">{}</code></pre>\n", html_escape(lang), html_escape(text.trim_end()))
                }
                Block::Table(t) => {
                    out += "<table>\n<thead><tr>";
                    for h in &t.header {
                        out += &format!("<th>{}</th>", html_escape(h));
                    }
                    out += "</tr></thead>\n<tbody>\n";
                    for r in &t.rows {
                        out += "<tr>";
                        for c in r {
                            let text = html_escape(&c.text);
                            out += &if c.bold { format!("<td><strong>{text}</strong></td>") } else { format!("<td>{text}</td>") };
                        }
                        out += "</tr>\n";
                    }
                    out += "</tbody>\n</table>\n";
                    if let Some(c) = &t.caption {
                        out += &format!("<p class=\"caption\">{}</p>\n", html_text(c));
                    }
                }
                Block::Figure(f) if f.svg.is_empty() => {
                    figure += 1;
                    out += &format!(
                        "<figure>\n<img src=\"{}\" alt=\"Figure {figure}\">\n<figcaption><b>Figure {figure}.</b> {}</figcaption>\n</figure>\n",
                        html_escape(&f.png),
                        html_text(&f.caption)
                    );
                }
                Block::Figure(f) => {
                    figure += 1;
                    out += &format!(
                        "<figure>\n<img src=\"{}\" alt=\"Figure {figure}\">\n<figcaption><b>Figure {figure}.</b> {} (<a href=\"{}\">PNG</a>)</figcaption>\n</figure>\n",
                        html_escape(&f.svg),
                        html_text(&f.caption),
                        html_escape(&f.png)
                    );
                }
            }
        }
        out + "</body>\n</html>\n"
    }
}

const STYLE: &str = "body { font-family: sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, .caption { font-size: 0.9em; color: #444; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
code { font-family: monospace; }";

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Document {
        let mut d = Document { title: "Report: x".into(), blocks: Vec::new() };
        d.push(Block::Heading(2, "Results".into()));
        d.push(Block::Paragraph("The `baseline` entry & <others>.".into()));
        d.push(Block::Table(Table {
            header: vec!["method".into(), "heldout".into()],
            rows: vec![vec![TextCell::plain("ce|x"), TextCell { text: "0.9".into(), bold: true }]],
            caption: Some("AUROC".into()),
        }));
        d.push(Block::Figure(Figure { svg: "figures/a.svg".into(), png: "figures/a.png".into(), caption: "ROC of `ce`.".into() }));
        d.push(Block::Code { lang: "yaml".into(), text: "name: x\n".into() });
        d
    }

    #[test]
    fn markdown_by_hand() {
        let md = sample().to_markdown();
        assert!(md.starts_with("# Report: x\n\n## Results\n\nThe `baseline` entry & <others>.\n\n"), "{md}");
        assert!(md.contains("| method | heldout |\n|---|---|\n| ce\\|x | **0.9** |\n\nAUROC\n"), "{md}");
        assert!(md.contains("![Figure 1](figures/a.svg)\n\n*Figure 1.* ROC of `ce`. ([PNG](figures/a.png))"), "{md}");
        assert!(md.contains("```yaml\nname: x\n```"), "{md}");
    }

    #[test]
    fn html_escapes_and_keeps_code_spans() {
        let html = sample().to_html();
        assert!(html.contains("<p>The <code>baseline</code> entry &amp; &lt;others&gt;.</p>"), "{html}");
        assert!(html.contains("<td>ce|x</td><td><strong>0.9</strong></td>"), "{html}");
        assert!(html.contains("<img src=\"figures/a.svg\" alt=\"Figure 1\">"), "{html}");
        assert!(html.contains("<a href=\"figures/a.png\">PNG</a>"), "{html}");
        assert!(!html.contains("http"), "nothing fetched");
    }

    #[test]
    fn a_picture_only_figure_shows_its_png_without_a_second_link() {
        let mut d = Document { title: "x".into(), blocks: Vec::new() };
        d.push(Block::Figure(Figure { svg: String::new(), png: "figures/s.png".into(), caption: "Pairs.".into() }));
        assert!(d.to_markdown().contains("![Figure 1](figures/s.png)\n\n*Figure 1.* Pairs.\n\n"), "{}", d.to_markdown());
        let html = d.to_html();
        assert!(html.contains("<img src=\"figures/s.png\" alt=\"Figure 1\">\n<figcaption><b>Figure 1.</b> Pairs.</figcaption>"), "{html}");
    }
}
