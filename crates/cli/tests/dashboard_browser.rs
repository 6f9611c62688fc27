//! The dashboard in a real browser: headless Chromium driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`, which .ci/run installs). The experiment page of the committed
//! quickstart is opened while the grid runs; it must follow the grid live to the end without a
//! reload, then show every run in its table, a drawn ROC chart and a drawn training curve; at
//! 1400 and 800 px wide, the comparison and the flagged runs above the fold and the panels laid
//! out to the window. Screenshots are kept under the test's output folder.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// Kills a child process when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// The quickstart's runs: five method entries, two seeds.
const RUNS: usize = 10;

#[test]
fn the_experiment_page_follows_a_quickstart_live_and_draws_its_runs_roc_and_training_curve() {
    let chromedriver = Path::new("/usr/bin/chromedriver");
    assert!(chromedriver.exists(), "this test needs Debian's chromium and chromium-driver; `bash .ci/run` installs them");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");

    // The committed quickstart, as a researcher runs it, in the background.
    let run = Reaped(
        oodlab(&home)
            .arg("run")
            .arg(repo.join("experiments/quickstart.yaml"))
            .args(["--jobs", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the quickstart to be planned", Duration::from_secs(120), || try_statuses(&home, "quickstart").len() == RUNS);

    // The server, from the repo (its dashboards/), on a free port that its first line names.
    let mut serve =
        Reaped(oodlab(&home).args(["serve", "--addr", "127.0.0.1:0"]).current_dir(&repo).stdout(Stdio::piped()).spawn().unwrap());
    let mut first = String::new();
    let mut banner = BufReader::new(serve.0.stdout.take().unwrap());
    banner.read_line(&mut first).unwrap();
    // The rest of its output is drained, so that the server never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut banner, &mut std::io::sink()));
    let base =
        first.trim().strip_prefix("oodlab serve: ").unwrap_or_else(|| panic!("first line: {first}")).trim_end_matches('/').to_string();

    let port = free_port();
    let _driver =
        Reaped(Command::new(chromedriver).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    wait_until("chromedriver", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&out_dir).unwrap();
    let screenshot = out_dir.join("quickstart-experiment.png");
    let _ = std::fs::remove_file(&screenshot);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut run = run;
    rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,2200"]}),
        );
        let http = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(http).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")).await.expect("a WebDriver session");
        client.goto(&format!("{base}/experiments/quickstart")).await.unwrap();
        let done_now = |c: Client| async move { js(&c, "return Number(document.querySelector('.count-done').textContent)").await.as_i64().unwrap() };
        let done_at_open = done_now(client.clone()).await;
        assert!(done_at_open < RUNS as i64, "the page was opened while the grid ran ({done_at_open} of {RUNS} done)");
        // Mark the document: a reload would lose the mark, so seeing it at the end shows that the
        // page followed the grid by itself.
        js(&client, "window.oodlabMark = 'opened'; return true").await;

        let status = tokio::task::spawn_blocking(move || run.0.wait().unwrap()).await.unwrap();
        assert!(status.success(), "oodlab run: {status}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while done_now(client.clone()).await < RUNS as i64 {
            assert!(Instant::now() < deadline, "the page did not follow the grid to its end");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(js(&client, "return window.oodlabMark || null").await, json!("opened"), "updated in place, not reloaded");

        // The runs table: the ten runs of the store, each done.
        let ids: Vec<String> = statuses(&home, "quickstart").iter().map(|r| r["run_id"].as_str().unwrap().to_string()).collect();
        let rows = js(&client, "return [...document.querySelectorAll('#runs table.runs tbody tr')].map(tr => [tr.cells[1].textContent, tr.querySelector('td.status').textContent])").await;
        let mut shown: Vec<String> = rows.as_array().unwrap().iter().map(|r| r[0].as_str().unwrap().to_string()).collect();
        assert!(rows.as_array().unwrap().iter().all(|r| r[1] == "done"), "{rows}");
        shown.sort();
        let mut ids_sorted = ids.clone();
        ids_sorted.sort();
        assert_eq!(shown, ids_sorted);

        // Charts as the browser laid them out: a curve is a polyline with many points and a real
        // width on screen (the diagonal of a ROC chart has two points).
        let drawn = |kind: &str| {
            format!(
                "return [...document.querySelectorAll('figure[data-kind={kind}] svg polyline')]
                   .map(p => [p.points.length, p.getBoundingClientRect().width])
                   .filter(([n, w]) => n >= 5 && w > 100).length"
            )
        };
        let roc_curves = js(&client, &drawn("roc")).await.as_i64().unwrap();
        assert!(roc_curves >= 5, "one ROC curve per method, drawn: {roc_curves}");
        let panels = js(&client, "return [...document.querySelectorAll('section.panel h3')].map(h => h.textContent)").await;
        assert!(panels.as_array().unwrap().iter().any(|t| t == "Training loss per epoch"), "{panels}");
        // The training curves: a line through the baselines' five epochs, a dot on each epoch of
        // every run (the fine-tunes train one epoch: a dot each).
        let training = js(
            &client,
            "const s = [...document.querySelectorAll('section.panel')].find(s => s.querySelector('h3').textContent === 'Training loss per epoch');
             const f = s.querySelector('figure[data-kind=line] svg');
             return [[...f.querySelectorAll('polyline')].filter(p => p.points.length >= 5 && p.getBoundingClientRect().width > 100).length,
                     [...f.querySelectorAll('circle')].filter(c => c.getBoundingClientRect().width > 2).length]",
        )
        .await;
        let (lines, dots) = (training[0].as_i64().unwrap(), training[1].as_i64().unwrap());
        assert!(lines >= 2, "a training curve per baseline, drawn: {training}");
        assert!(dots >= (2 * 5 + 8), "a dot per run and epoch: {training}");

        std::fs::write(&screenshot, client.screenshot().await.unwrap()).unwrap();

        // The window used, at 1400 and at 800 px: the comparison and the flagged runs above the
        // fold; the panels side by side when wide, one a row when narrow, never wider than the
        // window. A screenshot of each.
        for (width, columns_wide) in [(1400u32, true), (800, false)] {
            client.set_window_size(width, 900).await.unwrap();
            client.goto(&format!("{base}/experiments/quickstart")).await.unwrap();
            let layout = js(
                &client,
                "const r = s => document.querySelector(s).getBoundingClientRect();
                 const tops = [...document.querySelectorAll('section.panel')].map(p => Math.round(p.getBoundingClientRect().top));
                 return {inner: [window.innerWidth, window.innerHeight], scroll: document.documentElement.scrollWidth,
                         summary: r('#summary table.summary').bottom, summaryRows: document.querySelectorAll('#summary table.summary tbody tr').length,
                         flags: r('#flags').bottom, panels: tops.length, rows: new Set(tops).size}",
            )
            .await;
            let inner_h = layout["inner"][1].as_f64().unwrap();
            let inner_w = layout["inner"][0].as_f64().unwrap();
            assert!(layout["summary"].as_f64().unwrap() <= inner_h && layout["flags"].as_f64().unwrap() <= inner_h, "{width}: {layout}");
            assert_eq!(layout["summaryRows"], json!(5), "one row per entry: {layout}");
            assert!(layout["scroll"].as_f64().unwrap() <= inner_w + 1.0, "{width}: wider than the window: {layout}");
            let (panels, rows) = (layout["panels"].as_i64().unwrap(), layout["rows"].as_i64().unwrap());
            assert!(panels >= 2, "{layout}");
            if columns_wide {
                assert!(rows < panels, "{width}: panels side by side: {layout}");
            } else {
                assert_eq!(rows, panels, "{width}: one panel a row: {layout}");
            }
            let shot = client.screenshot().await.unwrap();
            let png = image::load_from_memory(&shot).unwrap();
            assert_eq!(png.width() as f64, inner_w, "the screenshot is the window");
            std::fs::write(out_dir.join(format!("quickstart-experiment-{width}.png")), shot).unwrap();
        }
        // The landing page: each experiment's flagged count and best entry, the entry with the
        // highest mean MSP AUROC, worked out here from `oodlab results`.
        let res: Vec<Value> = serde_json::from_slice(&run_ok(oodlab(&home).args(["results", "quickstart", "--format", "json"])).stdout).unwrap();
        let mut by_entry: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
        for r in res.iter().filter(|r| r["score"] == "msp") {
            let e = by_entry.entry(r["entry"].as_str().unwrap().to_string()).or_default();
            e.0 += r["auroc"].as_f64().unwrap();
            e.1 += 1.0;
        }
        let best = by_entry.iter().max_by(|a, b| (a.1 .0 / a.1 .1).total_cmp(&(b.1 .0 / b.1 .1))).unwrap();
        client.goto(&format!("{base}/")).await.unwrap();
        let row = js(&client, "return [...document.querySelector('table.experiments tbody tr').cells].map(c => c.textContent)").await;
        let flagged = run_ok(oodlab(&home).args(["status", "quickstart", "--format", "json"]));
        let flagged = text(&flagged.stdout);
        assert_eq!(row[5], json!(statuses(&home, "quickstart").iter().filter(|r| r["flags"].as_array().is_some_and(|f| !f.is_empty())).count().to_string()), "{row} {flagged}");
        assert_eq!(row[6], json!(format!("{} {:.4}", best.0, best.1 .0 / best.1 .1)), "{row}");

        // A run's page from its link: its own ROC and curves.
        client.goto(&format!("{base}/runs/{}", ids[0])).await.unwrap();
        // Laid out by the browser: on a loaded machine that can trail the page's load event.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let curves = js(&client, &drawn("roc")).await.as_i64().unwrap();
            if curves >= 1 {
                break;
            }
            assert!(Instant::now() < deadline, "run {}: no ROC curve drawn on its page", ids[0]);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }

        // The comparison page: pick a metric with its selector, and export as the CLI does.
        client.goto(&format!("{base}/experiments/quickstart/compare")).await.unwrap();
        js(&client, "document.querySelector('select[name=metric]').value = 'fpr95'; document.querySelector('form.filters').submit(); return true").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !client.current_url().await.unwrap().as_str().contains("metric=fpr95") {
            assert!(Instant::now() < deadline, "the metric selector did not reload the table");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let heading = js(&client, "return [...document.querySelectorAll('table.compare thead th')].map(h => h.textContent)").await;
        let rows = js(&client, "return [...document.querySelectorAll('table.compare tbody tr')].map(tr => tr.cells[0].textContent)").await;
        // Rows follow the spec's entries in the order quickstart.yaml writes them.
        assert_eq!(rows, json!(["baseline", "oe", "mixoe", "lmoe", "lmoe-authors-code"]), "{heading}");
        for format in ["csv", "markdown", "latex"] {
            let uri = format!("/experiments/quickstart/compare?metric=fpr95&score=energy&baseline=baseline&format={format}");
            let served = js(&client, &format!("return fetch('{uri}').then(r => r.text())")).await;
            let cli = run_ok(oodlab(&home).args(["compare", "quickstart", "--metric", "fpr95", "--score", "energy", "--baseline", "baseline", "--format", format]));
            assert_eq!(served.as_str().unwrap(), text(&cli.stdout), "{format}");
        }
        client.close().await.unwrap();
    });

    let png = image::open(&screenshot).expect("a PNG screenshot").to_rgb8();
    assert!(png.width() >= 1000 && png.height() >= 1000, "{}x{}", png.width(), png.height());
    let colours: std::collections::HashSet<[u8; 3]> = png.pixels().step_by(7).map(|p| p.0).collect();
    assert!(colours.len() > 20, "a drawn page, not a blank one ({} colours)", colours.len());

    // SIGTERM stops the server cleanly.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(serve.0.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(serve.0.wait().unwrap().success());
}
