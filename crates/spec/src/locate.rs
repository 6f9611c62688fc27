//! Turns a field path into an error origin: the `--set` that wrote it, or its place in the file.

use std::path::{Path, PathBuf};

use crate::error::{did_you_mean, Origin, SpecError};
use crate::overrides::Override;
use crate::position::{child, parent, PositionIndex};

pub(crate) struct Locator {
    pub file: PathBuf,
    pub index: PositionIndex,
    pub overrides: Vec<Override>,
}

/// `inner` lies at or below `outer` in the field tree.
fn within(inner: &str, outer: &str) -> bool {
    inner == outer || outer.is_empty() || (inner.starts_with(outer) && matches!(inner.as_bytes().get(outer.len()), Some(b'.') | Some(b'[')))
}

impl Locator {
    pub fn new(file: &Path, text: &str, overrides: Vec<Override>) -> Locator {
        Locator { file: file.to_owned(), index: PositionIndex::build(text), overrides }
    }

    fn override_for(&self, field: &str) -> Option<&Override> {
        // The last override wins, as when they were applied.
        self.overrides.iter().rev().find(|o| within(field, &o.field()))
    }

    /// Whether the file defines `field`, or an override sets it or a mapping that holds it.
    pub fn defines(&self, field: &str) -> bool {
        self.override_for(field).is_some() || self.index.value(field).is_some()
    }

    pub fn origin(&self, field: &str) -> Origin {
        if let Some(o) = self.override_for(field) {
            return Origin::Override(o.raw.clone());
        }
        self.index.nearest(field).map(Origin::File).unwrap_or(Origin::Whole)
    }

    /// Origin of a key (for unknown keys: point at the key, not its value).
    pub fn key_origin(&self, field: &str) -> Origin {
        if let Some(o) = self.override_for(field) {
            return Origin::Override(o.raw.clone());
        }
        self.index.key(field).or_else(|| self.index.nearest(field)).map(Origin::File).unwrap_or(Origin::Whole)
    }

    pub fn error(&self, field: &str, message: impl Into<String>) -> SpecError {
        SpecError { file: self.file.clone(), origin: self.origin(field), field: field.to_string(), message: message.into(), hint: None }
    }

    pub fn error_at(&self, origin: Origin, field: &str, message: impl Into<String>) -> SpecError {
        SpecError { file: self.file.clone(), origin, field: field.to_string(), message: message.into(), hint: None }
    }

    /// Converts a typed-deserialization error found under `prefix` into a located spec error.
    /// `origin_of` maps the field path to an origin (runs place fields by entry and grid).
    pub fn serde_error(
        &self,
        prefix: &str,
        err: serde_path_to_error::Error<serde_yaml::Error>,
        origin_of: &dyn Fn(&str, bool) -> Origin,
    ) -> SpecError {
        let path = err.path().to_string();
        let field = if path == "." {
            prefix.to_string()
        } else if prefix.is_empty() {
            path
        } else {
            format!("{prefix}.{path}")
        };
        self.deserialize_error(field, &err.inner().to_string(), origin_of)
    }

    /// A located error for a deserialization `message` about `field`.
    pub fn deserialize_error(&self, mut field: String, message: &str, origin_of: &dyn Fn(&str, bool) -> Origin) -> SpecError {
        let message = strip_location(message);
        let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
        if let Some(name) = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
            if !field.ends_with(name) {
                field = child(&field, name);
            }
            let expected = &quoted[1..];
            let mut hint = match did_you_mean(name, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? Valid keys here: {}", expected.join(", ")),
                None => format!("valid keys here: {}", expected.join(", ")),
            };
            if field.starts_with("method.") && ["mix_at", "noise", "pair"].contains(&name) {
                hint.push_str(&format!("; `{name}` belongs to the mixing methods, mixoe and lmoe (docs/methods.md, \"Where to mix\")"));
            }
            return self.error_at(origin_of(&field, true), &field, format!("unknown key `{name}`")).with_hint(hint);
        }
        if let Some(name) = message.strip_prefix("unknown variant `").and_then(|r| r.split('`').next()) {
            let expected = &quoted[1..];
            let hint = match did_you_mean(name, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? Expected one of: {}", expected.join(", ")),
                None => format!("expected one of: {}", expected.join(", ")),
            };
            return self.error_at(origin_of(&field, false), &field, format!("unknown value `{name}`")).with_hint(hint);
        }
        if let Some(name) = message.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            let msg = format!("missing required key `{name}`");
            return self.error_at(origin_of(&field, false), &field, msg).with_hint(format!(
                "add `{name}:` under `{}` (see docs/spec.md)",
                if field.is_empty() { "the top level" } else { &field }
            ));
        }
        self.error_at(origin_of(&field, false), &field, message.to_string()).with_hint("see docs/spec.md for the field's type")
    }

    /// The default way to place a field of the file itself.
    pub fn file_origin(&self, field: &str, key: bool) -> Origin {
        if key {
            self.key_origin(field)
        } else {
            self.origin(field)
        }
    }
}

/// serde_yaml appends " at line L column C" to some messages; positions are reported separately.
fn strip_location(message: &str) -> &str {
    match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// Ancestors of a field path, deepest first, ending with the root "".
pub(crate) fn ancestors(field: &str) -> Vec<String> {
    let mut out = vec![field.to_string()];
    let mut p = field.to_string();
    while let Some(up) = parent(&p) {
        out.push(up.clone());
        p = up;
    }
    out
}
