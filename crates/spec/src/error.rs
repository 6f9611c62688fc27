//! Spec errors that name the file, the position or the `--set` that caused them, the field path,
//! what was expected and what to do.

use std::fmt;
use std::path::PathBuf;

use crate::position::Position;

/// Where a faulty value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line and column of the spec file.
    File(Position),
    /// A command-line override (`--set path=value`), as typed.
    Override(String),
    /// The file as a whole (it could not be read or the field has no position).
    Whole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub file: PathBuf,
    pub origin: Origin,
    /// Field path such as `train.optimizer.lr`; empty for the whole document.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl SpecError {
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match &self.origin {
            Origin::File(p) => write!(f, "{file}:{}:{}: ", p.line, p.column)?,
            Origin::Override(raw) => write!(f, "{file}: (from --set {raw}) ")?,
            Origin::Whole => write!(f, "{file}: ")?,
        }
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  help: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions of
/// neighbours (`gird` → `grid`) each cost 1.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("epoch", ["epochs", "batch_size"]), Some("epochs"));
        assert_eq!(did_you_mean("lr", ["momentum", "nesterov"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("gird", "grid"), 1);
    }
}
