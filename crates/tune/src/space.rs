//! A search space: named fields, each with its distribution, in the order the spec gives them.

use serde_json::Value;

use crate::{invalid, Result};

/// What one field may take.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// One of these values (numbers, strings, anything a spec field takes).
    Choice(Vec<Value>),
    /// A real number drawn uniformly from `[low, high]`.
    Uniform { low: f64, high: f64 },
    /// A real number whose logarithm is uniform over `[ln low, ln high]` (`low > 0`).
    LogUniform { low: f64, high: f64 },
}

impl Dist {
    /// The bounds in the space the samplers work in (the logarithm's for `LogUniform`); None for
    /// a choice.
    pub(crate) fn internal_bounds(&self) -> Option<(f64, f64)> {
        match *self {
            Dist::Choice(_) => None,
            Dist::Uniform { low, high } => Some((low, high)),
            Dist::LogUniform { low, high } => Some((low.ln(), high.ln())),
        }
    }

    /// The value a field takes at `internal` (a choice's index, a number, a logarithm).
    pub(crate) fn value(&self, internal: f64) -> Value {
        match self {
            Dist::Choice(values) => values[internal as usize].clone(),
            Dist::Uniform { .. } => Value::from(internal),
            Dist::LogUniform { .. } => Value::from(internal.exp()),
        }
    }
}

/// The fields searched, each with its distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    fields: Vec<(String, Dist)>,
}

/// One trial's values, field by field in the space's order, in the samplers' own terms: a
/// choice's index, a number, or (for `LogUniform`) its logarithm. [`Space::values`] gives the
/// values a spec field takes.
pub type Point = Vec<f64>;

impl Space {
    /// A space of `fields`; refuses an empty space, a field named twice, a choice of nothing, a
    /// range with `low >= high` or a non-finite bound, and a log range that reaches 0 or below.
    pub fn new(fields: Vec<(String, Dist)>) -> Result<Space> {
        if fields.is_empty() {
            return invalid("the search space is empty: name at least one field and its values");
        }
        for (i, (name, dist)) in fields.iter().enumerate() {
            if fields[..i].iter().any(|(other, _)| other == name) {
                return invalid(format!("`{name}` is named twice in the search space"));
            }
            match *dist {
                Dist::Choice(ref values) if values.is_empty() => {
                    return invalid(format!("`{name}`: a list of values to choose from is empty"))
                }
                Dist::Choice(_) => {}
                Dist::Uniform { low, high } | Dist::LogUniform { low, high } => {
                    if !(low.is_finite() && high.is_finite()) || low >= high {
                        return invalid(format!("`{name}`: the range [{low}, {high}] is empty or not finite; give low < high"));
                    }
                    if matches!(dist, Dist::LogUniform { .. }) && low <= 0.0 {
                        return invalid(format!("`{name}`: a log range must be above 0, found [{low}, {high}]"));
                    }
                }
            }
        }
        Ok(Space { fields })
    }

    pub fn fields(&self) -> &[(String, Dist)] {
        &self.fields
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The values of `point`, as (field, value) pairs in the space's order.
    pub fn values(&self, point: &[f64]) -> Vec<(String, Value)> {
        self.fields.iter().zip(point).map(|((name, dist), &x)| (name.clone(), dist.value(x))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(fields: Vec<(&str, Dist)>) -> String {
        Space::new(fields.into_iter().map(|(n, d)| (n.to_string(), d)).collect()).unwrap_err().to_string()
    }

    #[test]
    fn a_space_that_cannot_be_searched_is_refused_naming_the_field() {
        assert!(err(vec![]).contains("empty"));
        assert!(err(vec![("method.weight", Dist::Choice(vec![]))]).contains("`method.weight`"));
        assert!(err(vec![("lr", Dist::LogUniform { low: 0.0, high: 1.0 })]).contains("above 0"));
        assert!(err(vec![("lr", Dist::LogUniform { low: -1.0, high: 1.0 })]).contains("above 0"));
        assert!(err(vec![("a", Dist::Uniform { low: 2.0, high: 2.0 })]).contains("low < high"));
        assert!(err(vec![("a", Dist::Uniform { low: 0.0, high: f64::INFINITY })]).contains("not finite"));
        let twice = vec![("a", Dist::Uniform { low: 0.0, high: 1.0 }), ("a", Dist::Uniform { low: 0.0, high: 2.0 })];
        assert!(err(twice).contains("named twice"));
    }

    #[test]
    fn a_point_maps_to_the_fields_values() {
        let space = Space::new(vec![
            ("w".into(), Dist::Choice(vec![0.5.into(), "x".into()])),
            ("lr".into(), Dist::LogUniform { low: 1e-3, high: 1e-1 }),
            ("a".into(), Dist::Uniform { low: 0.0, high: 2.0 }),
        ])
        .unwrap();
        let v = space.values(&[1.0, (1e-2f64).ln(), 0.25]);
        assert_eq!(v[0], ("w".to_string(), Value::from("x")));
        assert!((v[1].1.as_f64().unwrap() - 1e-2).abs() < 1e-15);
        assert_eq!(v[2].1, Value::from(0.25));
    }
}
