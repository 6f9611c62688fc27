//! Places to run: CPU slots with a thread budget, or GPUs discovered with `nvidia-smi`.

use std::process::Command;

use oodlab_protocol::env;

/// One place a run can execute, with the environment that confines the worker to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// `cpu:N` or `gpu:ID`.
    pub name: String,
    pub env: Vec<(String, String)>,
}

/// A GPU as `nvidia-smi` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub index: u32,
    pub uuid: String,
}

fn thread_env(threads: usize) -> Vec<(String, String)> {
    vec![(env::THREADS.into(), threads.to_string()), (env::RAYON_THREADS.into(), threads.to_string())]
}

/// `jobs` CPU slots of `threads` threads each. Workers on CPU slots see no GPU.
pub fn cpu_slots(jobs: usize, threads: usize) -> Vec<Slot> {
    (0..jobs)
        .map(|i| {
            let mut env = thread_env(threads);
            env.push((env::CUDA_VISIBLE_DEVICES.into(), String::new()));
            Slot { name: format!("cpu:{i}"), env }
        })
        .collect()
}

/// One slot per GPU and packed run, confined with `CUDA_VISIBLE_DEVICES` set to the GPU's UUID:
/// `nvidia-smi` numbers GPUs in PCI order while CUDA by default numbers the fastest first, so an
/// index could name another device; a UUID cannot.
pub fn gpu_slots(gpus: &[Gpu], runs_per_gpu: usize, threads: usize) -> Vec<Slot> {
    let mut slots = Vec::new();
    // Round-robin over GPUs so that a grid smaller than the slot count spreads over devices.
    for k in 0..runs_per_gpu {
        for g in gpus {
            let mut env = thread_env(threads);
            env.push((env::CUDA_VISIBLE_DEVICES.into(), g.uuid.clone()));
            env.push(("CUDA_DEVICE_ORDER".into(), "PCI_BUS_ID".into()));
            let name = if runs_per_gpu == 1 { format!("gpu:{}", g.index) } else { format!("gpu:{}#{k}", g.index) };
            slots.push(Slot { name, env });
        }
    }
    slots
}

/// GPUs reported by `nvidia-smi` (found on PATH); none when it is missing or fails.
pub fn discover_gpus() -> Vec<Gpu> {
    let out = Command::new("nvidia-smi").args(["--query-gpu=index,uuid", "--format=csv,noheader,nounits"]).output();
    match out {
        Ok(o) if o.status.success() => parse_gpu_list(&String::from_utf8_lossy(&o.stdout)),
        _ => Vec::new(),
    }
}

/// Parses `index, uuid` lines.
pub fn parse_gpu_list(text: &str) -> Vec<Gpu> {
    text.lines()
        .filter_map(|line| {
            let (index, uuid) = line.split_once(',')?;
            Some(Gpu { index: index.trim().parse().ok()?, uuid: uuid.trim().to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_csv() {
        let gpus = parse_gpu_list("0, GPU-aaa\n1, GPU-bbb\n\n");
        assert_eq!(gpus, vec![Gpu { index: 0, uuid: "GPU-aaa".into() }, Gpu { index: 1, uuid: "GPU-bbb".into() }]);
        let slots = gpu_slots(&gpus, 2, 4);
        assert_eq!(slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["gpu:0#0", "gpu:1#0", "gpu:0#1", "gpu:1#1"]);
        assert!(slots[1].env.contains(&("CUDA_VISIBLE_DEVICES".into(), "GPU-bbb".into())));
    }
}
