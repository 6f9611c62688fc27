#!/usr/bin/env bash
# The GPU check of docs/gpu.md, for a machine with an NVIDIA GPU, CUDA 13 libraries and PyTorch
# (no Rust toolchain needed): run from the repository root with the binary scripts/build-cuda.sh
# made. Under 8 minutes on one H100.
#
#   scripts/gpu-check.sh [target/cuda/oodlab]
#
# 1. the device and the libraries the binary loads;
# 2. the quickstart trained on the GPU, four runs packed on it (wall time, device and GPU memory
#    per run, the comparison table);
# 3. one training step of ResNet-18, batch 64, 3x224x224, in oodlab and in this machine's PyTorch,
#    alternating, f32 then bf16 mixed precision; the last line is `ratio oodlab/pytorch = X` (f32);
# 4. torchvision weights converted with scripts/torchvision_to_safetensors.py and loaded;
# 5. reference values for crates/train/tests/resnet_reference.rs, written to $OUT when it is set.
set -uo pipefail
bin=$(realpath "${1:-target/cuda/oodlab}")
work=$(mktemp -d)
keep=${OUT:-$work}
py=${PYTHON:-python3}
section() { printf '\n== %s\n' "$*"; }

section "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch, torchvision; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'torchvision', torchvision.__version__)"

# The CUDA 13 libraries the binary links (cuBLAS, cuRAND, NVRTC) come with PyTorch's wheels or a
# CUDA toolkit; the driver's libcuda.so.1 is on the loader's path already.
libdirs=$($py - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/nvidia"]
wanted = ["libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13", "libcudart.so.13", "libcuda.so.1"]
dirs = []
for root in roots:
    for name in wanted:
        for hit in glob.glob(os.path.join(root, "**", name), recursive=True):
            d = os.path.dirname(hit)
            if d not in dirs:
                dirs.append(d)
print(":".join(dirs))
EOF
)
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$bin" | grep 'not found'; then
  echo "error: libraries missing for $bin (searched: $libdirs)" >&2
  exit 1
fi
ldd "$bin" | grep -E 'cuda|cublas|curand|nvrtc' | sed 's/ (0x.*//'

section "quickstart on the GPU (4 runs packed on it)"
home=$work/home
t0=$(date +%s.%N)
timeout 300 "$bin" --home "$home" run experiments/quickstart.yaml --set resources.runs_per_gpu=4 </dev/null 2>&1 | tail -n 4
rc=${PIPESTATUS[0]}
t1=$(date +%s.%N)
echo "quickstart exit $rc, wall time $($py -c "print(round($t1 - $t0, 1))") s"
$py - "$home/oodlab.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("""SELECT r.id, r.method, r.seed, r.status, r.slot, r.device,
    (SELECT value FROM run_metrics WHERE run_id = r.id AND name = 'gpu_mem_mb'),
    (SELECT value FROM run_metrics WHERE run_id = r.id AND name = 'peak_rss_mb'),
    (SELECT SUM(seconds) FROM epochs WHERE run_id = r.id)
    FROM runs r ORDER BY r.started_at""").fetchall()
for r in rows:
    print(f"{r[0]} {r[1]:<6} seed {r[2]} {r[3]:<6} slot {r[4]:<10} {r[5]}  gpu_mem {r[6] or 0:.0f} MiB  rss {r[7] or 0:.0f} MiB  epochs {r[8] or 0:.1f} s")
EOF
"$bin" --home "$home" compare quickstart --metric auroc --score msp 2>&1 | head -n 12

section "ResNet-18 training step, batch 64, 3x224x224"
step() { # oodlab|pytorch precision steps
  local args=(--arch resnet18 --batch 64 --image 3x224x224 --classes 10 --precision "$2" --warmup 3 --steps "$3" --json)
  if [ "$1" = oodlab ]; then
    timeout 120 "$bin" bench-step --device cuda "${args[@]}"
  else
    timeout 120 $py scripts/bench/torch_reference.py --device cuda "${args[@]}"
  fi | tail -n 1 | tee -a "$keep/resnet18-steps.jsonl"
}
for precision in f32 bf16; do
  for rep in 1 2; do
    step oodlab "$precision" 10
    step pytorch "$precision" 20
  done
done
# ResNet-50, bf16, as the paper's fine-tuning runs it.
timeout 120 "$bin" bench-step --device cuda --arch resnet50 --batch 64 --image 3x224x224 --precision bf16 --warmup 3 --steps 10
timeout 120 $py scripts/bench/torch_reference.py --device cuda --arch resnet50 --batch 64 --image 3x224x224 --precision bf16 --warmup 3 --steps 20

section "torchvision weights loaded by oodlab"
$py scripts/torchvision_to_safetensors.py --arch resnet18 --init-seed 0 --out "$work/resnet18.safetensors" &&
  timeout 60 "$bin" bench-step --device cuda --arch resnet18 --pretrained "$work/resnet18.safetensors" --batch 8 --image 3x64x64 --warmup 0 --steps 1

section "reference values (crates/train/tests/fixtures/resnet_torchvision.json)"
$py scripts/reference/resnet_torchvision.py >"$keep/resnet_torchvision.json" && echo "written to $keep/resnet_torchvision.json"

section "summary"
$py - "$keep/resnet18-steps.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
best = {}
for r in rows:
    who = "oodlab" if "torch" not in r else "pytorch"
    key = (who, r["precision"])
    best[key] = max(best.get(key, 0), r["images_per_s"])
    mem = r.get("gpu_mem_mb")
    print(f"{who:<8} {r['precision']:<5} {r['images_per_s']:8.1f} images/s  median step {r['median_step_ms']:7.2f} ms  GPU memory {mem or 0:.0f} MiB")
for p in ["bf16", "f32"]:
    if ("oodlab", p) in best and ("pytorch", p) in best:
        print(f"ratio oodlab/pytorch{'' if p == 'f32' else ' (' + p + ')'} = {best[('oodlab', p)] / best[('pytorch', p)]:.3f}")
EOF
