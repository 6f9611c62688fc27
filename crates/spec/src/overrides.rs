//! Hydra-style command-line overrides: `--set train.epochs=3`, values parsed as YAML.

use serde_yaml::{Mapping, Value};

/// One parsed `path=value` override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The text as typed, for error messages.
    pub raw: String,
    /// Field path segments: map keys, or list indices written `name[2]` or `name.2`.
    pub path: Vec<Segment>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl Override {
    /// The path in the field-path syntax of errors (`a.b[2]`).
    pub fn field(&self) -> String {
        let mut out = String::new();
        for s in &self.path {
            match s {
                Segment::Key(k) if out.is_empty() => out.push_str(k),
                Segment::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// Parses `path=value`; the error says what is wrong with the text.
pub fn parse(raw: &str) -> Result<Override, String> {
    let (path, value) = raw.split_once('=').ok_or("expected PATH=VALUE, for example train.epochs=3")?;
    if path.is_empty() {
        return Err("the field path before `=` is empty".into());
    }
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            match name.parse::<usize>() {
                Ok(i) => segments.push(Segment::Index(i)),
                Err(_) => segments.push(Segment::Key(name.to_string())),
            }
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let i = idx.trim_end_matches(']').parse().map_err(|_| format!("`[{idx}` is not a list index"))?;
            segments.push(Segment::Index(i));
        }
        if name.is_empty() && rest.is_empty() {
            return Err(format!("empty segment in field path `{path}`"));
        }
    }
    let value = if value.is_empty() {
        Value::Null
    } else {
        serde_yaml::from_str(value).map_err(|e| format!("value `{value}` is not valid YAML: {e}"))?
    };
    Ok(Override { raw: raw.to_string(), path: segments, value })
}

/// Sets the override's value in `root`, creating missing mappings on the way.
pub fn apply(root: &mut Value, o: &Override) -> Result<(), String> {
    let mut node = root;
    for (depth, seg) in o.path.iter().enumerate() {
        let last = depth + 1 == o.path.len();
        node = match seg {
            Segment::Key(k) => {
                if node.is_null() {
                    *node = Value::Mapping(Mapping::new());
                }
                let map = node.as_mapping_mut().ok_or_else(|| format!("`{k}` is set inside a value that is not a mapping"))?;
                let key = Value::String(k.clone());
                if !map.contains_key(&key) {
                    map.insert(key.clone(), Value::Null);
                }
                map.get_mut(&key).unwrap()
            }
            Segment::Index(i) => {
                let seq = node.as_sequence_mut().ok_or_else(|| format!("index [{i}] is used on a value that is not a list"))?;
                let len = seq.len();
                seq.get_mut(*i).ok_or_else(|| format!("index [{i}] is past the end of a list of {len}"))?
            }
        };
        if last {
            *node = o.value.clone();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_values_and_list_items() {
        let mut root: Value = serde_yaml::from_str("train: {epochs: 8}\ngrid: {seeds: [0, 1]}").unwrap();
        apply(&mut root, &parse("train.epochs=3").unwrap()).unwrap();
        apply(&mut root, &parse("grid.seeds[1]=5").unwrap()).unwrap();
        apply(&mut root, &parse("train.optimizer.lr=0.1").unwrap()).unwrap();
        let want: Value = serde_yaml::from_str("train: {epochs: 3, optimizer: {lr: 0.1}}\ngrid: {seeds: [0, 5]}").unwrap();
        assert_eq!(root, want);
    }

    #[test]
    fn rejects_malformed_overrides() {
        assert!(parse("train.epochs").is_err());
        assert!(parse("=3").is_err());
        let mut root: Value = serde_yaml::from_str("grid: {seeds: [0]}").unwrap();
        assert!(apply(&mut root, &parse("grid.seeds[4]=1").unwrap()).unwrap_err().contains("past the end"));
        assert_eq!(parse("a.b[2]=x").unwrap().field(), "a.b[2]");
    }
}
