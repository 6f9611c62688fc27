//! Where each field of a YAML document stands: field path → (line, column).
//!
//! serde_yaml reports positions only for syntax errors and for errors met while it reads the
//! document, and none at all once `--set` overrides have been merged into a `Value`. Semantic
//! checks run on typed values later, so this index, built from yaml-rust2's marked events, keeps
//! the position of every key and value by the same path syntax serde_path_to_error prints
//! (`train.optimizer.lr`, `data.splits[0].classes`).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn from_marker(m: Marker) -> Position {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Position { line: m.line(), column: m.col() + 1 }
    }
}

#[derive(Debug, Default)]
pub struct PositionIndex {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl PositionIndex {
    /// Indexes `text`; a document yaml-rust2 cannot parse gives an empty index (serde_yaml reports
    /// the syntax error itself).
    pub fn build(text: &str) -> PositionIndex {
        let mut builder = Builder { index: PositionIndex::default(), stack: Vec::new() };
        if Parser::new_from_str(text).load(&mut builder, false).is_err() {
            return PositionIndex::default();
        }
        builder.index
    }

    /// The position of the value at `path`.
    pub fn value(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// The position of the key that names `path` (for unknown keys), else of its value.
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }

    /// The position of `path` or of its nearest indexed ancestor.
    pub fn nearest(&self, path: &str) -> Option<Position> {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.value(&p) {
                return Some(pos);
            }
            p = parent(&p)?;
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → `` (the root) → None.
pub fn parent(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(path[..cut].to_string())
}

/// Appends a map key to a path.
pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

struct Builder {
    index: PositionIndex,
    stack: Vec<Frame>,
}

impl Builder {
    /// Path of the node that starts now, or None when it is a mapping key.
    fn node_path(&mut self, ev: &Event, pos: Position) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                *next += 1;
                Some(format!("{path}[{}]", *next - 1))
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(child(path, &k)),
                None => {
                    // A key: only scalar keys are addressable by a field path.
                    if let Event::Scalar(k, ..) = ev {
                        let p = child(path, k);
                        self.index.keys.insert(p, pos);
                        *key = Some(k.clone());
                    } else {
                        *key = Some(String::from("?"));
                    }
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Position::from_marker(mark);
        match ev {
            Event::Scalar(..) | Event::Alias(..) | Event::MappingStart(..) | Event::SequenceStart(..) => {
                let Some(path) = self.node_path(&ev, pos) else { return };
                self.index.values.insert(path.clone(), pos);
                match ev {
                    Event::MappingStart(..) => self.stack.push(Frame::Map { path, key: None }),
                    Event::SequenceStart(..) => self.stack.push(Frame::Seq { path, next: 0 }),
                    _ => {}
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_keys_and_sequences() {
        let text = "name: x\ntrain:\n  optimizer:\n    lr: 0.1\ndata:\n  splits:\n    - classes: [1, 2]\n";
        let idx = PositionIndex::build(text);
        assert_eq!(idx.value("train.optimizer.lr"), Some(Position { line: 4, column: 9 }));
        assert_eq!(idx.key("train.optimizer.lr"), Some(Position { line: 4, column: 5 }));
        assert_eq!(idx.value("data.splits[0].classes[1]"), Some(Position { line: 7, column: 20 }));
        assert_eq!(idx.nearest("train.optimizer.momentum"), idx.value("train.optimizer"));
    }

    #[test]
    fn parents_walk_up_to_the_root() {
        assert_eq!(parent("a.b[2]").as_deref(), Some("a.b"));
        assert_eq!(parent("a").as_deref(), Some(""));
        assert_eq!(parent(""), None);
    }
}
