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
    assert!(text(&printed.stdout).contains(&format!("{} figures", expected.len())), "{}", text(&printed.stdout));
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
        assert_eq!(targets.iter().filter(|t| t.ends_with(".png")).count(), expected.len(), "{name}: {targets:?}");
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

    // Another score, and bad input.
    run_ok(oodlab(&home).arg("report").arg(&spec).arg("--out").arg(dir.path().join("energy")).args(["--score", "energy"]));
    assert!(std::fs::read_to_string(dir.path().join("energy/report.md")).unwrap().contains("`energy` score"));
    let bad = oodlab(&home).arg("report").arg(&spec).arg("--out").arg(&out).args(["--score", "nope"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--score nope: expected msp, maxlogit or energy"));
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    let other = write_spec(&dir.path().join("x"), &spec_text("never-run", "  baseline: {method: ce}", "  seeds: [0]", ""));
    let none = oodlab(&home).arg("report").arg(&other).arg("--out").arg(&out).output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none.stderr).contains("no runs of experiment `never-run` in the store"), "{}", text(&none.stderr));
}
