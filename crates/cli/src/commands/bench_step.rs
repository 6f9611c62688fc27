//! `oodlab bench-step`: images/s of a network's training step, printed for the benchmark scripts
//! (scripts/bench/train-step.sh, scripts/gpu-check.sh).

use oodlab_spec::{Arch, ModelSettings, Precision};
use oodlab_train::bench::{train_step, StepBench};
use oodlab_train::device::Placement;

use crate::args::BenchStepArgs;

fn parse<T: serde::de::DeserializeOwned>(what: &str, value: &str, choices: &str) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::String(value.into()))
        .map_err(|_| crate::invalid(format!("--{what} {value}: expected one of {choices}")))
}

/// The device `--device` names: `cpu`, or `cuda`, which opens device 0 of what
/// `CUDA_VISIBLE_DEVICES` shows (as a worker on a GPU slot does).
pub fn open_device(name: &str) -> anyhow::Result<Placement> {
    match name {
        "cpu" => Ok(oodlab_train::device::select(None)?),
        "cuda" => {
            let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| "0".into());
            let p = oodlab_train::device::select(Some(&visible))?;
            if !p.device.is_cuda() {
                return Err(crate::invalid("--device cuda: this oodlab was built without CUDA (scripts/build-cuda.sh builds one)"));
            }
            Ok(p)
        }
        other => Err(crate::invalid(format!("--device {other}: expected cpu or cuda"))),
    }
}

pub fn bench_step(a: BenchStepArgs) -> anyhow::Result<i32> {
    let arch: Arch = parse("arch", &a.arch, "cnn, resnet18, resnet50")?;
    let precision: Precision = parse("precision", &a.precision, "f32, bf16, f16")?;
    let dims: Vec<usize> = a.image.split('x').map(str::parse).collect::<Result<_, _>>().unwrap_or_default();
    let [c, h, w] = dims[..] else {
        return Err(crate::invalid(format!("--image {}: expected CxHxW, such as 3x224x224", a.image)));
    };
    let placement = open_device(&a.device)?;
    let bench = StepBench {
        model: ModelSettings { arch, channels: a.channels.clone(), pretrained: None },
        precision,
        batch: a.batch,
        image: (c, h, w),
        classes: a.classes,
        warmup: a.warmup,
        steps: a.steps.max(1),
        pretrained: a.pretrained.clone(),
    };
    oodlab_kernels::set_tf32(a.tf32);
    if a.profile {
        oodlab_kernels::profile::set_enabled(true);
    }
    let times = train_step(&bench, &placement.device)?;
    let steps = times.seconds.len() as f64;
    // Milliseconds and calls per timed step of each part, the longest first.
    let profile: Vec<(&str, f64, f64)> = times.profile.iter().map(|p| (p.name, p.seconds * 1e3 / steps, p.calls as f64 / steps)).collect();
    let median_ms = median(&times.seconds) * 1e3;
    let queued_ms = median(&times.queued) * 1e3;
    let ips = times.images_per_second(a.batch);
    let mb = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let gpu_mb = oodlab_train::device::gpu_memory_used(&placement.device).map(mb);
    // This process's own peaks in the memory pool: comparable with PyTorch's max_memory_reserved
    // and max_memory_allocated (gpu_mem_mb is the device's, the CUDA context included).
    let pool = oodlab_kernels::gpu::pool_peaks(&placement.device);
    let rss_mb = crate::settings::peak_rss_mb();
    if a.json {
        let v = serde_json::json!({
            "arch": arch.name(), "precision": a.precision, "tf32": a.tf32, "gpu_kernels": if placement.device.is_cuda() { oodlab_kernels::gpu_ops_in_use() } else { "off".into() }, "batch": a.batch, "image": a.image, "device": placement.description,
            "steps": times.seconds.len(), "images_per_s": ips, "median_step_ms": median_ms, "median_queued_ms": queued_ms, "peak_rss_mb": rss_mb, "gpu_mem_mb": gpu_mb, "gpu_pool_reserved_mb": pool.map(|p| mb(p.0)), "gpu_pool_used_mb": pool.map(|p| mb(p.1)), "losses": times.losses,
            "profile": profile.iter().map(|(name, ms, calls)| serde_json::json!({"part": name, "ms_per_step": ms, "calls_per_step": calls})).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        let gpu = gpu_mb.map(|m| format!(", GPU memory in use {m:.0} MiB")).unwrap_or_default();
        // On a GPU: how long the host took to queue a step, against the step.
        let queued = if placement.device.is_cuda() { format!(", queued by the host in {queued_ms:.2} ms") } else { String::new() };
        println!(
            "oodlab {} {} batch {} {} on {}: {ips:.1} images/s (median step {median_ms:.2} ms{queued}, {} steps), peak RSS {:.0} MiB{gpu}",
            arch.name(),
            a.precision,
            a.batch,
            a.image,
            placement.description,
            times.seconds.len(),
            rss_mb.unwrap_or(f64::NAN),
        );
        if !profile.is_empty() {
            let how = if placement.device.is_cuda() {
                "CUDA events before and after each part: the GPU's time for what it queued, parts nested"
            } else {
                "each part waited for the device before and after"
            };
            println!("profile ({how}; ms per step, calls per step):");
            for (name, ms, calls) in &profile {
                println!("  {name:<45} {ms:9.2} ms  {calls:6.1} calls");
            }
        }
    }
    Ok(0)
}

/// The median of `values` (not empty).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
