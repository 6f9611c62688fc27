//! Tables as aligned text, CSV or Markdown; JSON comes from the row types themselves.

use crate::args::Format;

pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Table {
        Table { headers, rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Renders as `format`; JSON is not a table format and is handled by callers.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Csv => {
                let mut out = self.headers.join(",") + "\n";
                for r in &self.rows {
                    out += &r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",");
                    out.push('\n');
                }
                out
            }
            Format::Markdown => {
                let mut out = format!("| {} |\n|{}|\n", self.headers.join(" | "), vec![" --- "; self.headers.len()].join("|"));
                for r in &self.rows {
                    out += &format!("| {} |\n", r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "));
                }
                out
            }
            Format::Table | Format::Json => {
                let widths: Vec<usize> = (0..self.headers.len())
                    .map(|i| self.rows.iter().map(|r| r[i].chars().count()).chain([self.headers[i].len()]).max().unwrap_or(0))
                    .collect();
                let line = |cells: Vec<&str>| {
                    cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string() + "\n"
                };
                let mut out = line(self.headers.clone());
                for r in &self.rows {
                    out += &line(r.iter().map(String::as_str).collect());
                }
                out
            }
        }
    }
}

fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

pub fn num(v: f64) -> String {
    format!("{v:.4}")
}

pub fn opt_num(v: Option<f64>) -> String {
    v.map_or("-".into(), num)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_format() {
        let mut t = Table::new(vec!["a", "bb"]);
        t.push(vec!["x,y".into(), "1".into()]);
        assert_eq!(t.render(Format::Csv), "a,bb\n\"x,y\",1\n");
        assert_eq!(t.render(Format::Markdown), "| a | bb |\n| --- | --- |\n| x,y | 1 |\n");
        assert_eq!(t.render(Format::Table), "a    bb\nx,y  1\n");
    }
}
