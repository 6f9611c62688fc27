//! `oodlab bench-load SPEC`: images/s of the data loader alone (decoding, augmentation, batching
//! on `data.loader.workers` threads) over the first run of a spec, and the process's peak memory,
//! for scripts/bench/loader.sh.

use crate::args::BenchLoadArgs;

pub fn bench_load(a: BenchLoadArgs) -> anyhow::Result<i32> {
    let exp = super::load_spec(&a.spec)?;
    let run = exp.runs.first().ok_or_else(|| crate::invalid("the spec has no runs"))?;
    let t = oodlab_train::bench::loader(run, a.epochs.max(1))?;
    let loader = run.settings.data.loader;
    let ips = t.images as f64 / t.seconds.max(1e-9);
    let rss = crate::settings::peak_rss_mb();
    let mode = if t.streamed { "streamed" } else { "cached" };
    if a.json {
        let v = serde_json::json!({
            "workers": loader.workers, "prefetch": loader.prefetch, "mode": mode, "images": t.images, "batches": t.batches,
            "seconds": t.seconds, "open_seconds": t.open_seconds, "images_per_s": ips, "train_mb": t.train_mb,
            "peak_batches": t.peak_batches, "peak_rss_mb": rss,
        });
        println!("{v}");
    } else {
        println!(
            "loader workers {} prefetch {} ({mode}, training set {:.0} MiB decoded): {ips:.0} images/s, {} images in {} batches in {:.2} s (opening {:.2} s), at most {} batches ahead, peak RSS {:.0} MiB",
            loader.workers, loader.prefetch, t.train_mb, t.images, t.batches, t.seconds, t.open_seconds, t.peak_batches, rss.unwrap_or(f64::NAN)
        );
    }
    Ok(0)
}
