//! Dashboard files: the repo's load, and a broken one is an error naming the file, the line and
//! column, the field, what was expected — and never touches the store.

mod common;

use common::*;
use oodlab_store::Store;

async fn load_one(text: &str) -> Result<Vec<oodlab_web::Dashboard>, String> {
    let (dir, home) = home().await;
    let folder = dir.path().join("dashboards");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("mine.yaml"), text).unwrap();
    let store = Store::open_never_writing(&home.join("oodlab.db")).await.unwrap().unwrap();
    let before = std::fs::read(home.join("oodlab.db")).unwrap();
    let out = oodlab_web::dashboards::load(Some(&folder), &store).await.map_err(|e| e.to_string());
    assert_eq!(std::fs::read(home.join("oodlab.db")).unwrap(), before, "loading never writes the store");
    out.map_err(|e| e.replace(&folder.display().to_string(), "DIR"))
}

const HEAD: &str = "title: Mine\npanels:\n";

#[tokio::test]
async fn the_repos_dashboards_and_the_built_in_ones_load() {
    let (_dir, home) = home().await;
    let store = Store::open_never_writing(&home.join("oodlab.db")).await.unwrap().unwrap();
    let repo = oodlab_web::dashboards::load(Some(&repo_dashboards()), &store).await.unwrap();
    let built_in = oodlab_web::dashboards::load(None, &store).await.unwrap();
    let names = |d: &[oodlab_web::Dashboard]| d.iter().map(|d| (d.name.clone(), d.panels.len())).collect::<Vec<_>>();
    assert_eq!(names(&repo), names(&built_in), "the built-in dashboards are the repo's files");
    assert!(repo.iter().flat_map(|d| &d.panels).any(|p| p.chart == oodlab_web::ChartKind::Roc));
}

#[tokio::test]
async fn broken_dashboards_name_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        // YAML syntax.
        (
            "title: Mine\npanels:\n  - title: [unclosed\n",
            "DIR/mine.yaml:3:12: field `panels[0].title`: invalid type: sequence, expected a string",
        ),
        ("title: Mine\n  panels: []\n", "DIR/mine.yaml:2:9: mapping values are not allowed in this context"),
        // An unknown key, a typo of `chart`.
        (
            &format!("{HEAD}  - title: t\n    view: results\n    chrat: table\n"),
            "DIR/mine.yaml:5:5: field `panels[0].chrat`: unknown field `chrat`, expected one of `title`, `view`",
        ),
        // A view that is not documented, with the likely one.
        (
            &format!("{HEAD}  - title: t\n    view: resuls\n    chart: table\n"),
            "DIR/mine.yaml:4:11: field `panels[0].view`: `resuls` is not a documented view",
        ),
        (
            &format!("{HEAD}  - title: t\n    view: runs\n    chart: table\n"),
            "expected one of results, results_long, seed_stats, method_stats, run_status, epoch_curves",
        ),
        // A column the view lacks, in `where`, `x`, `order`.
        (
            &format!("{HEAD}  - title: t\n    view: results\n    where: {{scroe: msp}}\n    chart: table\n"),
            "DIR/mine.yaml:5:13: field `panels[0].where.scroe`: `scroe` is not a column of `results`",
        ),
        (
            &format!("{HEAD}  - title: t\n    view: epoch_curves\n    chart: line\n    x: epoch\n    y: loss\n"),
            "DIR/mine.yaml:7:8: field `panels[0].y`: `loss` is not a column of `epoch_curves`",
        ),
        (
            &format!("{HEAD}  - title: t\n    view: results\n    order: [-aurok]\n    chart: table\n"),
            "field `panels[0].order[0]`: `aurok` is not a column",
        ),
        // A line chart without its axes; an unknown chart kind.
        (
            &format!("{HEAD}  - title: t\n    view: epoch_curves\n    chart: line\n    y: train_loss\n"),
            "DIR/mine.yaml:5:12: field `panels[0].chart`: a line chart needs `x`",
        ),
        (
            &format!("{HEAD}  - title: t\n    view: results\n    chart: pie\n"),
            "DIR/mine.yaml:5:12: field `panels[0].chart`: unknown variant `pie`",
        ),
        // ROC curves need runs' scores.
        (&format!("{HEAD}  - title: t\n    view: epoch_curves\n    chart: roc\n"), "its rows need `score`; use `results`"),
        // Neither or both of view and query; a query that is not a SELECT, or writes.
        (&format!("{HEAD}  - title: t\n    chart: table\n"), "field `panels[0]`: expected exactly one of `view`"),
        (
            &format!("{HEAD}  - title: t\n    query: DELETE FROM runs\n    chart: table\n"),
            "DIR/mine.yaml:4:12: field `panels[0].query`: expected a SELECT",
        ),
        (
            &format!("{HEAD}  - title: t\n    query: WITH x AS (SELECT 1) DELETE FROM runs\n    chart: table\n"),
            "field `panels[0].query`: the query does not run on this store",
        ),
        (
            &format!("{HEAD}  - title: t\n    view: results\n    chart: table\n    limit: 0\n"),
            "field `panels[0].limit`: expected a number of rows from 1 to 100000",
        ),
    ];
    for (text, expected) in cases {
        let err = load_one(text).await.expect_err(text);
        assert!(err.contains(expected), "{text}\n--> {err}\nexpected: {expected}");
    }
    let err = load_one(&format!("{HEAD}  - title: t\n    view: resuls\n    chart: table\n")).await.unwrap_err();
    assert!(err.contains("did you mean `results`?"), "{err}");
}

#[tokio::test]
async fn a_query_panel_reads_the_views_for_the_experiment_shown() {
    let text = format!(
        "{HEAD}  - title: per run\n    query: SELECT run_id, auroc FROM results WHERE experiment = :experiment ORDER BY run_id\n    chart: table\n"
    );
    let dashboards = load_one(&text).await.unwrap();
    let (_dir, home) = home().await;
    let folder = home.join("dash");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("mine.yaml"), &text).unwrap();
    let state = oodlab_web::AppState::open(&home, Some(&folder)).await.unwrap();
    assert_eq!(dashboards.len(), 1);
    let r = oodlab_web::router(state);
    let v = get_json(&r, "/api/experiments/exp/panels/mine/0").await;
    assert_eq!(v["output"]["rows"], serde_json::json!([{"run_id": "a1", "auroc": 0.875}]));
    let v = get_json(&r, "/api/experiments/other/panels/mine/0").await;
    assert_eq!(v["output"]["rows"], serde_json::json!([{"run_id": "b1", "auroc": 0.6}]));
}
