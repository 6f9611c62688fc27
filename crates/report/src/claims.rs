//! Claims as code: what a paper says, written as paired comparisons between method entries
//! (`docs/results/claims.yaml`), checked against an experiment's finished runs. Each test pairs
//! two rows over matched (seed, split) cells — mean difference, bootstrap interval, two-sided
//! Wilcoxon signed-rank test — and gets a verdict that follows the metric's direction; a claim is
//! supported when all its tests are. Every number comes from the store.
//!
//! ```yaml
//! alpha: 0.05
//! claims:
//!   - claim: LMOE detects fine-grained OOD better than OE
//!     measure: AUROC of MSP on the held-out classes
//!     tests:
//!       - {metric: auroc, score: msp, column: heldout, a: lmoe, b: oe}
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::document::{Block, Table, TextCell};
use crate::from_store::{compare_input, CompareError, Options};
use crate::{paired, Metric, PairedComparison};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsFile {
    /// Significance level of every test.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    pub claims: Vec<Claim>,
}

fn default_alpha() -> f64 {
    0.05
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The claim in words, as the paper states it.
    pub claim: String,
    /// How this benchmark measures it, in a sentence.
    #[serde(default)]
    pub measure: Option<String>,
    pub tests: Vec<ClaimTest>,
}

/// The scores a run can be measured by: from logits, then the post-hoc detectors (the names of
/// `oodlab_spec::Score`, which this crate does not depend on).
const SCORES: [&str; 11] = ["msp", "maxlogit", "energy", "gen", "knn", "react", "ash", "mahalanobis", "rmds", "vim", "odin"];

/// `a` is claimed better than `b` on `metric` of `score` in `column` (an OOD set, `near avg` or
/// `far avg`), better following the metric's direction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimTest {
    pub metric: String,
    pub score: String,
    pub column: String,
    pub a: String,
    pub b: String,
}

/// Reads a claims file; an error names the file, the position and what is wrong.
pub fn read(path: &Path) -> Result<ClaimsFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the claims file: {e}", path.display()))?;
    let file: ClaimsFile = serde_yaml::from_str(&text).map_err(|e| {
        let at = e.location().map_or(String::new(), |l| format!(":{}:{}", l.line(), l.column()));
        format!("{}{at}: {e}; expected `claims: [{{claim, measure, tests: [{{metric, score, column, a, b}}]}}]`", path.display())
    })?;
    for (i, c) in file.claims.iter().enumerate() {
        for (j, t) in c.tests.iter().enumerate() {
            if Metric::parse(&t.metric).is_none() {
                let all: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                return Err(format!(
                    "{}: claims[{i}].tests[{j}].metric: `{}` is not a metric; expected one of {}",
                    path.display(),
                    t.metric,
                    all.join(", ")
                ));
            }
            if !SCORES.contains(&t.score.as_str()) {
                return Err(format!(
                    "{}: claims[{i}].tests[{j}].score: `{}`; expected one of {}",
                    path.display(),
                    t.score,
                    SCORES.join(", ")
                ));
            }
        }
    }
    Ok(file)
}

/// What one test found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `a` better than `b`, significant at alpha.
    Supported,
    /// `b` better than `a`, significant at alpha.
    Contradicted,
    /// No significant difference (or no difference at all).
    NotSignificant,
    /// The experiment has no matched cells of both rows.
    NoData,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Contradicted => "contradicted",
            Verdict::NotSignificant => "not significant",
            Verdict::NoData => "no data",
        }
    }
}

/// One test with its comparison (None when there is nothing to compare).
#[derive(Debug, Clone)]
pub struct TestResult {
    pub test: ClaimTest,
    pub comparison: Option<PairedComparison>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone)]
pub struct ClaimResult {
    pub claim: Claim,
    pub tests: Vec<TestResult>,
}

impl ClaimResult {
    /// Supported when every test is; contradicted when any is; partly when some are.
    pub fn verdict(&self) -> &'static str {
        let with_data: Vec<Verdict> = self.tests.iter().map(|t| t.verdict).filter(|v| *v != Verdict::NoData).collect();
        if with_data.is_empty() {
            "not tested (no finished runs to compare)"
        } else if with_data.contains(&Verdict::Contradicted) {
            "contradicted"
        } else if with_data.iter().all(|v| *v == Verdict::Supported) {
            "supported"
        } else if with_data.contains(&Verdict::Supported) {
            "partly supported"
        } else {
            "not supported"
        }
    }
}

/// The verdict of a comparison of `a` against `b` at `alpha`.
pub fn judge(metric: Metric, c: &PairedComparison, alpha: f64) -> Verdict {
    match c.wilcoxon {
        Some(w) if w.p_value < alpha => {
            if metric.better(c.mean_diff, 0.0) {
                Verdict::Supported
            } else {
                Verdict::Contradicted
            }
        }
        _ => Verdict::NotSignificant,
    }
}

/// Every claim's tests on experiment `name`.
pub async fn evaluate(store: &oodlab_store::Store, name: &str, file: &ClaimsFile) -> Result<Vec<ClaimResult>, CompareError> {
    let mut out = Vec::new();
    for claim in &file.claims {
        let mut tests = Vec::new();
        for t in &claim.tests {
            let metric = Metric::parse(&t.metric).expect("checked when read");
            let options = Options { metric, score: &t.score, rows: "entry", entry: None, split: None, baseline: None, alpha: file.alpha };
            let input = compare_input(store, name, &options).await?;
            let comparison = paired(&input, &t.a, &t.b).into_iter().find(|p| p.column == t.column);
            let verdict = comparison.as_ref().map_or(Verdict::NoData, |c| judge(metric, c, file.alpha));
            tests.push(TestResult { test: t.clone(), comparison, verdict });
        }
        out.push(ClaimResult { claim: claim.clone(), tests });
    }
    Ok(out)
}

/// The smallest two-sided p-value an exact Wilcoxon test can reach with `n` non-zero
/// differences: `2 / 2^n`.
fn smallest_p(n: usize) -> f64 {
    2.0 / 2f64.powi(n as i32)
}

/// The claims as document blocks: per claim its verdict, what measures it, and a table of its
/// tests.
pub fn blocks(results: &[ClaimResult], alpha: f64) -> Vec<Block> {
    let mut out = Vec::new();
    for (i, r) in results.iter().enumerate() {
        out.push(Block::Heading(3, format!("Claim {}: {} — {}", i + 1, r.claim.claim, r.verdict())));
        if let Some(m) = &r.claim.measure {
            out.push(Block::Paragraph(m.clone()));
        }
        let header = ["a vs b", "metric (score)", "column", "n", "mean a − b", "95% CI", "Wilcoxon p", "W/T/L", "verdict"]
            .map(String::from)
            .to_vec();
        let mut rows = Vec::new();
        let mut unreachable = false;
        for t in &r.tests {
            let x = &t.test;
            let mut row = vec![format!("{} vs {}", x.a, x.b), format!("{} ({})", x.metric, x.score), x.column.clone()];
            match &t.comparison {
                Some(c) => {
                    let p = c.wilcoxon.map_or("-".to_string(), |w| format!("{:.4}", w.p_value));
                    unreachable |= smallest_p(c.n) >= alpha;
                    row.extend([
                        c.n.to_string(),
                        format!("{:+.4}", c.mean_diff),
                        format!("[{:+.4}, {:+.4}]", c.ci95.0, c.ci95.1),
                        p,
                        format!("{}/{}/{}", c.wins, c.ties, c.losses),
                    ]);
                }
                None => row.extend(["0", "-", "-", "-", "-"].map(String::from)),
            }
            row.push(t.verdict.text().to_string());
            rows.push(row.iter().map(|s| TextCell::plain(s)).collect());
        }
        let mut caption = format!(
            "Paired over matched (seed, split) cells: mean difference a − b, 95% bootstrap interval, two-sided Wilcoxon signed-rank test; W/T/L = cells where a is better/equal/worse. A test supports the claim when a is better with p < {alpha}, contradicts it when b is."
        );
        if unreachable {
            caption.push_str(&format!(
                " With n ≤ {} matched cells an exact Wilcoxon test cannot reach p < {alpha} (its smallest p is 2/2^n): such a comparison cannot support or contradict anything, whatever the differences.",
                (1..64).take_while(|&n| smallest_p(n) >= alpha).last().unwrap_or(0)
            ));
        }
        out.push(Block::Table(Table { header, rows, caption: Some(caption) }));
    }
    out
}

#[cfg(test)]
mod tests {
    use oodlab_metrics::stats::wilcoxon;

    use super::*;

    fn comparison(d: &[f64]) -> PairedComparison {
        PairedComparison {
            a: "a".into(),
            b: "b".into(),
            column: "heldout".into(),
            n: d.len(),
            mean_diff: d.iter().sum::<f64>() / d.len() as f64,
            ci95: (0.0, 0.0),
            wilcoxon: wilcoxon(d),
            wins: 0,
            ties: 0,
            losses: 0,
        }
    }

    #[test]
    fn verdicts_follow_the_metrics_direction_and_the_level() {
        // Nine positive differences: exact p = 2/512 < 0.05.
        let up = comparison(&[0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09]);
        assert_eq!(judge(Metric::Auroc, &up, 0.05), Verdict::Supported);
        // For FPR@95 lower is better: a higher FPR of `a` contradicts "a is better".
        assert_eq!(judge(Metric::Fpr95, &up, 0.05), Verdict::Contradicted);
        // Two cells: the smallest p is 2/4 = 0.5, never significant.
        let two = comparison(&[0.05, 0.07]);
        assert_eq!(judge(Metric::Auroc, &two, 0.05), Verdict::NotSignificant);
        assert!(smallest_p(2) >= 0.05 && smallest_p(5) < 0.1 && smallest_p(6) < 0.05 && smallest_p(5) >= 0.05);
    }

    #[test]
    fn a_claim_is_supported_only_when_every_test_is() {
        let claim = Claim { claim: "x".into(), measure: None, tests: vec![] };
        let test = ClaimTest { metric: "auroc".into(), score: "msp".into(), column: "heldout".into(), a: "a".into(), b: "b".into() };
        let result = |verdicts: &[Verdict]| ClaimResult {
            claim: claim.clone(),
            tests: verdicts.iter().map(|v| TestResult { test: test.clone(), comparison: None, verdict: *v }).collect(),
        };
        assert_eq!(result(&[Verdict::Supported, Verdict::Supported]).verdict(), "supported");
        assert_eq!(result(&[Verdict::Supported, Verdict::NotSignificant]).verdict(), "partly supported");
        assert_eq!(result(&[Verdict::Supported, Verdict::Contradicted]).verdict(), "contradicted");
        assert_eq!(result(&[Verdict::NotSignificant, Verdict::NoData]).verdict(), "not supported");
        assert_eq!(result(&[Verdict::NoData]).verdict(), "not tested (no finished runs to compare)");
    }

    #[test]
    fn a_bad_claims_file_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claims.yaml");
        std::fs::write(&path, "claims:\n  - claim: x\n    tests:\n      - {metric: aurocc, score: msp, column: heldout, a: a, b: b}\n")
            .unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("claims[0].tests[0].metric: `aurocc` is not a metric"), "{e}");
        std::fs::write(&path, "claims:\n  - claim: x\n    test: []\n").unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("claims.yaml:3:5") && e.contains("unknown field `test`"), "{e}");
    }
}
