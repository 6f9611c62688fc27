//! `oodlab report`: every figure for every method entry, as SVG and decodable PNG with drawn
//! pixels; the Markdown and HTML links resolve; the tables are those of `oodlab compare`.

mod common;

use std::path::Path;

use common::*;

/// Targets of `](...)` links in Markdown and of `src="..."`/`href="..."` in HTML.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (open, close) in [("](", ")"), ("src=\"", "\""), ("href=\"", "\"")] {
        let mut rest = text;
        while let Some(i) = rest.find(open) {
            let after = &rest[i + open.len()..];
            let end = after.find(close).unwrap();
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// Pixels of the PNG that are neither white nor grey (the series' colours): the legend alone has
/// fewer than 300.
fn coloured_pixels(path: &Path) -> usize {
    let img = image::open(path).unwrap().to_rgb8();
    img.pixels().filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 60).count()
}

#[test]
fn the_report_has_every_figure_of_every_entry_and_its_links_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let s = sample().display().to_string();
    let extra = format!(
        "  animal:\n    format: idx\n    classes: 10\n    train: {{images: {s}/animal-mnist/train-images-idx3-ubyte.gz, labels: {s}/animal-mnist/train-labels-idx1-ubyte.gz}}"
    );
    let methods = "  baseline: {method: ce}\n  oe: {method: oe, init_from: baseline}";
    let mut yaml = spec_text("rep", methods, "  seeds: [0, 1]", &extra);
    yaml = yaml.replace("  ood: [mnist]\n", "  ood: [mnist]\n  outliers: animal\n");
    yaml.push_str("eval: {scores: [msp, energy], paths: {pairs: 4, points: 5}}\n");
    let spec = write_spec(dir.path(), &yaml);
    run_ok(oodlab(&home).arg("run").arg(&spec));

    let out = dir.path().join("report");
    let printed = run_ok(oodlab(&home).arg("report").arg(&spec).arg("--out").arg(&out));
    // Per entry: histogram, PCA and paths; per OOD set: one ROC figure with a curve per entry.
    let mut expected: Vec<String> = Vec::new();
    for entry in ["baseline", "oe"] {
        for kind in ["hist", "pca", "paths"] {
            expected.push(format!("{kind}-{entry}"));
        }
    }
    for set in ["heldout", "mnist"] {
        expected.push(format!("roc-{set}"));
    }
    // And the contact sheet of the data roles' shared images (Animal-MNIST's pool holds copies).
    assert!(text(&printed.stdout).contains(&format!("{} figures", expected.len() + 1)), "{}", text(&printed.stdout));
    let sheet = image::open(out.join("figures/audit-split0.png")).unwrap();
    assert_eq!(sheet.width(), 2 * 84 + 12);
    for stem in &expected {
        let svg = std::fs::read_to_string(out.join(format!("figures/{stem}.svg"))).unwrap_or_else(|e| panic!("{stem}.svg: {e}"));
        assert!(svg.starts_with("<svg") && svg.contains("<text"), "{stem}.svg");
        let png = out.join(format!("figures/{stem}.png"));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{stem}.png does not decode: {e}"));
        assert_eq!((img.width(), img.height()), (760, 480));
        assert!(coloured_pixels(&png) > 1000, "{stem}.png has {} coloured pixels", coloured_pixels(&png));
    }

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for (name, doc) in [("report.md", &md), ("report.html", &html)] {
        let targets = links(doc);
        assert_eq!(targets.iter().filter(|t| t.ends_with(".png")).count(), expected.len() + 1, "{name}: {targets:?}");
        for t in &targets {
            assert!(out.join(t).is_file(), "{name} links {t}, which is not there");
        }
        // Each figure's caption says which runs it shows.
        assert!(doc.matches("Figure ").count() >= expected.len(), "{name}");
    }
    // Captions name the runs: every done run id of the first seed appears.
    let status = run_ok(oodlab(&home).args(["status", "rep", "--format", "json"]));
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&status.stdout).unwrap();
    for r in runs.iter().filter(|r| r["seed"] == 0) {
        assert!(md.contains(&format!("run `{}` (seed 0, split 0", r["run_id"].as_str().unwrap())), "{md}");
    }
    // The AUROC table is the one `oodlab compare` prints as Markdown.
    let compare = run_ok(oodlab(&home).args(["compare", "rep", "--metric", "auroc", "--score", "msp", "--format", "markdown"]));
    let first_row = text(&compare.stdout).lines().nth(2).unwrap().to_string();
    let name_cell = first_row.split('|').nth(1).unwrap().trim().to_string();
    let md_row = md.lines().find(|l| l.starts_with(&format!("| {name_cell} |"))).unwrap();
    let strip = |s: &str| s.replace("**", "").replace(' ', "");
    assert_eq!(strip(md_row), strip(&first_row));
    assert!(md.contains("### path.logit.jump_mean"), "path statistics are tabled when measured");
    assert!(md.contains("```yaml\nname: rep"), "the resolved spec is included");
    // The data roles: the audit's table, as `oodlab audit` counts them.
    let audit = run_ok(oodlab(&home).arg("audit").arg(&spec).args(["--format", "json"]));
    let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let cell =
        audit["splits"][0]["cells"].as_array().unwrap().iter().find(|c| c["a"] == "outliers" && c["b"] == "val_ood").unwrap().clone();
    let roles = &md[md.find("## Data roles").expect("a Data roles section")..];
    let row = roles.lines().find(|l| l.starts_with("| outliers |")).unwrap();
    assert!(row.contains(&format!("| {} / {} |", cell["exact_pairs"], cell["near_pairs"])), "{row}");
    assert!(cell["exact_pairs"].as_u64().unwrap() > 0);

    // Another score, and bad input.
    run_ok(oodlab(&home).arg("report").arg(&spec).arg("--out").arg(dir.path().join("energy")).args(["--score", "energy"]));
    assert!(std::fs::read_to_string(dir.path().join("energy/report.md")).unwrap().contains("`energy` score"));
    let bad = oodlab(&home).arg("report").arg(&spec).arg("--out").arg(&out).args(["--score", "nope"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--score nope: expected one of msp, maxlogit, energy, gen"));
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    let other = write_spec(&dir.path().join("x"), &spec_text("never-run", "  baseline: {method: ce}", "  seeds: [0]", ""));
    let none = oodlab(&home).arg("report").arg(&other).arg("--out").arg(&out).output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none.stderr).contains("no runs of experiment `never-run` in the store"), "{}", text(&none.stderr));
}

#[test]
fn claims_are_tested_with_the_numbers_of_oodlab_compare() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let s = sample().display().to_string();
    let extra = format!(
        "  animal:\n    format: idx\n    classes: 10\n    train: {{images: {s}/animal-mnist/train-images-idx3-ubyte.gz, labels: {s}/animal-mnist/train-labels-idx1-ubyte.gz}}"
    );
    let methods = "  baseline: {method: ce}\n  oe: {method: oe, init_from: baseline}\n  tuned: {method: ce, init_from: baseline}";
    // Six seeds: enough matched cells for an exact Wilcoxon p below 0.05 (2/64).
    let mut yaml = spec_text("claims", methods, "  seeds: [0, 1, 2, 3, 4, 5]", &extra);
    yaml = yaml.replace("  ood: [mnist]\n", "  ood: [mnist]\n  outliers: animal\n");
    let spec = write_spec(dir.path(), &yaml);
    run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "2"]));
    let claims = dir.path().join("claims.yaml");
    std::fs::write(
        &claims,
        "claims:\n  - claim: OE beats a plain fine-tune on held-out classes\n    measure: AUROC of MSP.\n    tests:\n      - {metric: auroc, score: msp, column: heldout, a: oe, b: tuned}\n      - {metric: fpr95, score: msp, column: mnist, a: oe, b: nothing}\n",
    )
    .unwrap();
    let out = dir.path().join("report");
    run_ok(oodlab(&home).arg("report").arg(&spec).arg("--out").arg(&out).arg("--claims").arg(&claims).args(["--pair", "oe:tuned"]));
    let md = std::fs::read_to_string(out.join("claims.md")).unwrap();

    // The mean difference by hand from `oodlab results`, and p from `oodlab compare --pair`.
    let results = run_ok(oodlab(&home).args(["results", "claims", "--format", "json", "--score", "msp"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&results.stdout).unwrap();
    let auroc = |entry: &str, seed: i64| {
        rows.iter().find(|r| r["entry"] == entry && r["seed"] == seed && r["ood_set"] == "heldout").unwrap()["auroc"].as_f64().unwrap()
    };
    let diff: f64 = (0..6).map(|s| auroc("oe", s) - auroc("tuned", s)).sum::<f64>() / 6.0;
    let compare = run_ok(oodlab(&home).args(["compare", "claims", "--metric", "auroc", "--pair", "oe:tuned", "--format", "json"]));
    let text_out = text(&compare.stdout);
    let pairs: Vec<serde_json::Value> = serde_json::from_str(text_out.split("\n\n").nth(1).unwrap()).unwrap();
    let heldout = pairs.iter().find(|p| p["column"] == "heldout").unwrap();
    let p = heldout["wilcoxon"]["p_value"].as_f64().unwrap();
    let row = md.lines().find(|l| l.starts_with("| oe vs tuned | auroc (msp) | heldout |")).unwrap_or_else(|| panic!("{md}"));
    assert!(row.contains(&format!("| 6 | {diff:+.4} |")), "{row} vs {diff}");
    assert!(row.contains(&format!("| {p:.4} |")), "{row} vs p {p}");
    let verdict = if p < 0.05 && diff > 0.0 {
        "supported"
    } else if p < 0.05 {
        "contradicted"
    } else {
        "not significant"
    };
    assert!(row.ends_with(&format!("| {verdict} |")), "{row}");
    // A row the experiment does not have: no data, which does not count for the verdict.
    assert!(md.contains("| oe vs nothing | fpr95 (msp) | mnist | 0 | - | - | - | - | no data |"), "{md}");
    let claim_verdict = match verdict {
        "supported" => "supported",
        "contradicted" => "contradicted",
        _ => "not supported",
    };
    assert!(md.contains(&format!("### Claim 1: OE beats a plain fine-tune on held-out classes — {claim_verdict}")), "{md}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Claims") && report.contains("## Paired comparisons") && report.contains("### oe vs tuned: auroc (msp)"));

    // A bad claims file is an input error naming the file and the field.
    std::fs::write(&claims, "claims:\n  - claim: x\n    tests: [{metric: auroc, score: nope, column: heldout, a: oe, b: tuned}]\n")
        .unwrap();
    let bad = oodlab(&home).arg("report").arg(&spec).arg("--out").arg(&out).arg("--claims").arg(&claims).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("claims[0].tests[0].score: `nope`"), "{}", text(&bad.stderr));
}

/// Entries that differ only in `mix_at` make the report's "Where to mix": a row per stage with
/// the numbers of `oodlab compare` (mean and 95% t interval), a figure per measure, and the
/// section alone in `where-to-mix.md`.
#[test]
fn where_to_mix_tables_each_stage_with_the_numbers_of_oodlab_compare() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let s = sample().display().to_string();
    let extra = format!(
        "  animal:\n    format: idx\n    classes: 10\n    train: {{images: {s}/animal-mnist/train-images-idx3-ubyte.gz, labels: {s}/animal-mnist/train-labels-idx1-ubyte.gz}}"
    );
    let mix = "kind: lmoe, weight: 1.0, consistency: {loss: none}, pair: joint";
    let methods = format!(
        "  baseline: {{method: ce}}\n  at-input: {{method: {{{mix}, mix_at: input}}, init_from: baseline}}\n  at-block2: {{method: {{{mix}, mix_at: block2}}, init_from: baseline}}\n  at-logits: {{method: {{{mix}}}, init_from: baseline}}\n  noisy: {{method: {{{mix}, noise: {{add: 0.4}}}}, init_from: baseline}}"
    );
    let mut yaml = spec_text("wtm", &methods, "  seeds: [0, 1]", &extra);
    yaml = yaml.replace("  ood: [mnist]\n", "  ood: [mnist]\n  outliers: animal\n");
    let spec = write_spec(dir.path(), &yaml);
    run_ok(oodlab(&home).arg("run").arg(&spec).args(["--jobs", "2"]));
    let out = dir.path().join("report");
    let printed = run_ok(oodlab(&home).arg("report").arg(&spec).arg("--out").arg(&out));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Where to mix"), "{md}");

    // The AUROC cells of the three stages, from `oodlab compare`'s JSON.
    let compare = run_ok(oodlab(&home).args(["compare", "wtm", "--metric", "auroc", "--score", "msp", "--format", "json"]));
    let table: serde_json::Value = serde_json::from_slice(&compare.stdout).unwrap();
    let column = table["columns"].as_array().unwrap().iter().position(|c| c["name"] == "heldout").unwrap();
    let cell = |entry: &str| {
        let row = table["rows"].as_array().unwrap().iter().find(|r| r["name"] == entry).unwrap();
        let s = &row["cells"][column]["summary"];
        let (mean, ci, n) = (s["mean"].as_f64().unwrap(), s["ci95"].as_f64().unwrap(), s["n"].as_u64().unwrap());
        format!("{mean:.3} [{:.3}, {:.3}] ({n})", mean - ci, mean + ci)
    };
    // The one series: three stages in the network's order; `noisy` is at the logits too, so it is
    // another series of one point, not shown.
    let rows: Vec<&str> =
        md.lines().filter(|l| l.starts_with("| input |") || l.starts_with("| block2 |") || l.starts_with("| logits |")).collect();
    assert_eq!(rows.len(), 3, "{md}");
    for (row, (stage, entry)) in rows.iter().zip([("input", "at-input"), ("block2", "at-block2"), ("logits", "at-logits")]) {
        assert!(row.starts_with(&format!("| {stage} | lmoe | {entry} | {} |", cell(entry))), "{row}");
    }
    // Five measures (AUROC and FPR@95 on two sets, ID accuracy), a figure each, in the section's file too.
    let alone = std::fs::read_to_string(out.join("where-to-mix.md")).unwrap();
    assert!(!alone.contains("noisy"), "{alone}");
    let figures: Vec<String> = links(&alone).into_iter().filter(|l| l.ends_with(".png")).collect();
    assert_eq!(figures.len(), 5, "{alone}");
    for f in &figures {
        assert!(coloured_pixels(&out.join(f)) > 1000, "{f}");
        let svg = std::fs::read_to_string(out.join(f.replace(".png", ".svg"))).unwrap();
        assert!(["input", "block2", "logits"].iter().all(|t| svg.contains(&format!("\n{t}\n"))), "{f}: stage names on the axis");
    }
    assert!(text(&printed.stdout).contains("figures"), "{}", text(&printed.stdout));
}
