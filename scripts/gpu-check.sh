#!/usr/bin/env bash
# The GPU check of docs/gpu.md and issue #17, for a machine with an NVIDIA GPU, CUDA 13 and cuDNN 9
# libraries and PyTorch (no Rust toolchain needed): run from the repository root with the binary
# scripts/build-cuda.sh made. Meant to stay under 8 minutes on one H100/H200.
#
#   scripts/gpu-check.sh [target/cuda/oodlab | target/cuda/oodlab.gz]
#
# 1. the device and the libraries the binary loads;
# 2. `oodlab check-kernels --device cuda`: cuDNN's convolution (forward, input and kernel
#    gradients; f32, TF32, bf16, f16) and batch-norm (f32, and bf16/f16 data via f32, directly by
#    cuDNN: the `bn16` op, and by oodlab's kernels: `bn16k`, neither in the default set yet; batch
#    and running statistics) against candle's CPU ops on fixed inputs,
#    the GPU's ReLU, max-pooling and SGD kernels against PyTorch's rules and the CPU kernels, the
#    fused batch-norm+ReLU ops against the same ops apart, evaluation's one-kernel batch-norm
#    against candle's ops; the ops that pass are used after;
# 3. one ResNet-18 training step on the GPU (TF32 off) and on the CPU from the same weights and
#    inputs: the losses of 4 steps must agree to 1e-3;
# 4. training steps in oodlab and in this machine's PyTorch, alternating: ResNet-18 f32 and bf16
#    (batch 64, 224x224), ResNet-50 bf16 (batch 64, 224x224), ResNet-50 f32 (batch 16, 448x448),
#    and ResNet-18 f32 with candle's own convolutions (OODLAB_GPU_KERNELS=off, the code before) and
#    without the fused batch-norm ops, ResNet-50 bf16 without `bn16k`;
#    oodlab's with the time the host took to queue a step;
# 5. where oodlab's ResNet-18 step spends its time, part by part (f32, bf16);
# 6. the quickstart trained on the GPU, four runs packed on it, cold (empty kernel cache in a new
#    home) then warm (more seeds in the same home), and on the CPU with the same seeds: the GPU's
#    AUROCs against the CPU's, within seed noise (scripts/bench/quickstart_devices.py);
# 7. an epoch of ResNet-18 with the loader over a JPEG folder (streamed and cached) against the
#    bare step;
# 8. torchvision weights converted and loaded; reference values for the CPU tests, written to $OUT;
# 9. the summary; its last line is `ratio oodlab/pytorch = X` (ResNet-18 f32).
set -uo pipefail
bin=$(realpath "${1:-target/cuda/oodlab}")
work=$(mktemp -d)
if [[ $bin == *.gz ]]; then # the copy carried to a lent GPU machine (scripts/build-cuda.sh)
  gunzip -c "$bin" >"$work/oodlab" && chmod +x "$work/oodlab" && bin=$work/oodlab
fi
keep=${OUT:-$work}
py=${PYTHON:-python3}
section() { printf '\n== %s (%d s in)\n' "$*" "$SECONDS"; }
# The whole check has a budget (7 minutes unless GPU_CHECK_BUDGET says otherwise; a lent machine's
# command is killed at its own limit): each command gets its own limit or what is left of the
# budget, less the summary's time, whichever is less, and is skipped when nothing is left. The
# most wanted figures come first, so that a slow section costs the ones after it, not the ratio.
budget=${GPU_CHECK_BUDGET:-420}
within() { # seconds, command...
  local limit=$1 left=$((budget - SECONDS - 15))
  shift
  ((left < limit)) && limit=$left
  if ((limit < 5)); then
    echo "skipped, the check's ${budget} s are spent: ${*:1:3}" >&2
    return 124
  fi
  timeout "$limit" "$@"
}

section "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch, torchvision; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'torchvision', torchvision.__version__)"

# The CUDA 13 libraries the binary links (cuBLAS, cuRAND, NVRTC) come with PyTorch's wheels or a
# CUDA toolkit; the driver's libcuda.so.1 is on the loader's path already.
libdirs=$($py - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/nvidia"]
wanted = ["libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13", "libcudart.so.13", "libcuda.so.1", "libcudnn.so.9"]
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
ldd "$bin" | grep -E 'cuda|cublas|curand|nvrtc|cudnn' | sed 's/ (0x.*//'
# The driver's compiled kernels for the commands run directly (the scheduler keeps the home's).
export CUDA_CACHE_PATH=$work/cuda-cache CUDA_CACHE_MAXSIZE=4294967296

section "the GPU ops against the CPU's (oodlab check-kernels)"
within 120 "$bin" check-kernels --device cuda >"$keep/check-kernels.txt" 2>&1
echo "check-kernels exit $?: $(grep -c '^ok ' "$keep/check-kernels.txt") cases within tolerance; the others:"
grep -vE '^ok ' "$keep/check-kernels.txt"
# An op that failed its check is left out of everything after (OODLAB_GPU_KERNELS lists the rest),
# so that the timings still come back; the summary says which.
ops=""
for op in conv bn sgd relu pool fuse bn16 bn16k bneval; do
  case $op in
    conv) pattern='^FAIL +[a-z0-9+]+ +x ' ;;
    bn) pattern='^FAIL +[a-z0-9+]+ +batch-norm x' ;; # f32, and bf16/f16 normalized via f32
    fuse) pattern='^FAIL +[a-z0-9+]+ +fused ' ;;
    bn16) pattern='^FAIL +(bf16|f16) +bn16 ' ;; # cuDNN on bf16/f16 data: off by default until checked here
    bn16k) pattern='^FAIL +(bf16|f16) +bn16k ' ;; # oodlab's kernels on bf16/f16 data: the same
    bneval) pattern='^FAIL +[a-z0-9+]+ +eval batch-norm' ;; # evaluation's one-kernel batch-norm
    sgd) pattern='^FAIL .* sgd' ;;
    relu) pattern='^FAIL .* relu' ;;
    pool) pattern='^FAIL .* max-pool' ;;
  esac
  if grep -qE "$pattern" "$keep/check-kernels.txt" || ! grep -q '^check-kernels: ' "$keep/check-kernels.txt"; then
    echo "GPU op $op left out: it failed its check (or the check did not finish)" | tee -a "$keep/left-out.txt"
  else
    ops=${ops:+$ops,}$op
  fi
done
export OODLAB_GPU_KERNELS=${ops:-off}
echo "OODLAB_GPU_KERNELS=$OODLAB_GPU_KERNELS"

section "one ResNet-18 step on the GPU and on the CPU (same weights and inputs, TF32 off)"
for dev in cuda cpu; do
  within 60 "$bin" bench-step --device $dev --arch resnet18 --batch 8 --image 3x64x64 --classes 10 --tf32 false --warmup 3 --steps 1 --json |
    tail -n 1 | tee "$keep/step-$dev.json" | cut -c1-200
done

section "training steps, oodlab and PyTorch alternating"
ops_without() { # the ops in use less one, as OODLAB_GPU_KERNELS names them
  echo "$OODLAB_GPU_KERNELS" | tr ',' '\n' | grep -vx "$1" | paste -sd, - | sed 's/^$/off/'
}
step() { # oodlab|pytorch|candle|unfused|nobn16k arch precision batch image steps
  local args=(--arch "$2" --batch "$4" --image "$5" --classes 10 --precision "$3" --warmup 3 --steps "$6" --json)
  case $1 in
    oodlab) within 90 "$bin" bench-step --device cuda "${args[@]}" ;;
    candle) within 90 env OODLAB_GPU_KERNELS=off "$bin" bench-step --device cuda "${args[@]}" ;;
    unfused) within 90 env OODLAB_GPU_KERNELS="$(ops_without fuse)" "$bin" bench-step --device cuda "${args[@]}" ;;
    nobn16k) within 90 env OODLAB_GPU_KERNELS="$(ops_without bn16k)" "$bin" bench-step --device cuda "${args[@]}" ;;
    pytorch) within 90 $py scripts/bench/torch_reference.py --device cuda "${args[@]}" ;;
  esac | tail -n 1 | $py -c "import json,sys; t=sys.stdin.read().strip(); r=json.loads(t) if t.startswith('{') else None; r and r.update(who='$1'); r and print(json.dumps(r))" |
    tee -a "$keep/steps.jsonl" | cut -c1-200
}
for rep in 1 2; do
  step oodlab resnet18 f32 64 3x224x224 20
  step pytorch resnet18 f32 64 3x224x224 20
done
step candle resnet18 f32 64 3x224x224 5
step unfused resnet18 f32 64 3x224x224 10 # the same ops without `fuse`: its memory and time
for rep in 1 2; do
  step oodlab resnet18 bf16 64 3x224x224 20
  step pytorch resnet18 bf16 64 3x224x224 20
done
step oodlab resnet50 bf16 64 3x224x224 10
step pytorch resnet50 bf16 64 3x224x224 20
# bf16 batch-norms by cuDNN (bn16, or via f32) instead of oodlab's kernels: what bn16k gives.
[[ ,$OODLAB_GPU_KERNELS, == *,bn16k,* ]] && step nobn16k resnet50 bf16 64 3x224x224 10
step oodlab resnet50 f32 16 3x448x448 10
step pytorch resnet50 f32 16 3x448x448 20

section "where oodlab's step time goes (bench-step --profile: CUDA events around each part and op)"
for precision in f32 bf16; do
  within 90 "$bin" bench-step --device cuda --arch resnet18 --batch 64 --image 3x224x224 --precision $precision --warmup 3 --steps 5 --profile 2>&1 | tee "$keep/profile-resnet18-$precision.txt"
done

section "quickstart on the GPU (4 runs packed on it), cold then warm"
home=$work/home
quickstart() { # label, extra arguments
  local label=$1 t0 t1 rc
  shift
  t0=$(date +%s.%N)
  # Without this script's cache variables the scheduler keeps the driver's compiled kernels in
  # the home (<home>/cache/cuda): empty for the first run, filled for the second.
  within 120 env -u CUDA_CACHE_PATH -u CUDA_CACHE_MAXSIZE "$bin" --home "$home" run experiments/quickstart.yaml \
    --set resources.runs_per_gpu=4 "$@" </dev/null 2>&1 | tail -n 4
  rc=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  echo "quickstart $label exit $rc, wall time $($py -c "print(round($t1 - $t0, 1))") s" | tee -a "$keep/quickstart.txt"
}
quickstart "cold (empty kernel cache)"
# The plan grows to seeds 0-3: seeds 0 and 1 are done, so only 2 and 3 train (warm).
quickstart "warm (seeds 2 and 3, same home)" --set 'grid.seeds=[0, 1, 2, 3]'
echo "compiled kernels kept in the home: $(du -sh "$home/cache/cuda" 2>/dev/null | cut -f1)"
$py - "$home/oodlab.db" <<'PYEOF'
import os, sqlite3, sys
if not os.path.exists(sys.argv[1]):
    sys.exit("the quickstart on the GPU left no store")
db = sqlite3.connect(sys.argv[1])
rows = db.execute("""SELECT r.id, r.method, r.seed, r.status, r.slot, r.device,
    (SELECT value FROM run_metrics WHERE run_id = r.id AND name = 'gpu_mem_mb'),
    (SELECT value FROM run_metrics WHERE run_id = r.id AND name = 'peak_rss_mb'),
    (SELECT value FROM run_metrics WHERE run_id = r.id AND name = 'gpu_pool_peak_mb'),
    (SELECT SUM(seconds) FROM epochs WHERE run_id = r.id)
    FROM runs r ORDER BY r.started_at""").fetchall()
for r in rows:
    # A run the budget cut short has no slot or device yet: shown as "-".
    r = ["-" if v is None and i < 6 else v for i, v in enumerate(r)]
    print(f"{r[0]} {r[1]:<6} seed {r[2]} {r[3]:<6} slot {r[4]:<10} {r[5]}  gpu_mem {r[6] or 0:.0f} MiB (the run's own peak {r[8] or 0:.0f} MiB)  rss {r[7] or 0:.0f} MiB  epochs {r[9] or 0:.1f} s")
PYEOF
"$bin" --home "$home" compare quickstart --metric auroc --score msp 2>&1 | head -n 14
"$bin" --home "$home" results quickstart --format json >"$keep/quickstart-gpu.json"

section "quickstart on this machine's CPU (same seeds 0-3), against the GPU's"
t0=$(date +%s.%N)
within 120 "$bin" --home "$work/home-cpu" run experiments/quickstart.yaml --gpus none --set 'grid.seeds=[0, 1, 2, 3]' </dev/null 2>&1 | tail -n 2
echo "quickstart on the CPU ($(nproc) cores) exit ${PIPESTATUS[0]}, wall time $($py -c "print(round($(date +%s.%N) - $t0, 1))") s" | tee -a "$keep/quickstart.txt"
"$bin" --home "$work/home-cpu" results quickstart --format json >"$keep/quickstart-cpu.json"
$py scripts/bench/quickstart_devices.py "$keep/quickstart-cpu.json" "$keep/quickstart-gpu.json" | tee "$keep/quickstart-devices.txt"

section "an epoch of ResNet-18 with the loader: JPEG folder, 256x256 files, random crop 224 and flip, batch 64"
epoch_dir=$work/epoch
within 60 $py scripts/bench/jpeg_folder.py "$epoch_dir/train" 9600 256 && within 20 $py scripts/bench/jpeg_folder.py "$epoch_dir/test" 256 256
cat >"$epoch_dir/epoch.yaml" <<'YAML'
name: loader-epoch
datasets:
  photos:
    format: folder
    classes: 4
    train: {dir: train}
    test: {dir: test}
    image: {size: [256, 256], channels: 3}
data:
  id: photos
  splits: [{classes: [0, 1, 2]}]
  normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
  val_fraction: 0.0
model: {arch: resnet18}
train: {epochs: 1, batch_size: 64, augment: {hflip: true, crop: {size: [224, 224], padding: 0}}}
eval: {batch_size: 128, scores: [msp]}
methods:
  baseline: {method: ce}
YAML
workers=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
for mode in streamed cached; do
  cache=0
  [ $mode = cached ] && cache=8192
  within 120 "$bin" --home "$epoch_dir/home-$mode" run "$epoch_dir/epoch.yaml" --set data.loader.workers=$workers --set data.loader.cache_mb=$cache \
    --set data.loader.prefetch=8 </dev/null >"$epoch_dir/run-$mode.log" 2>&1
  echo "epoch $mode: exit $?"
  tail -n 40 "$epoch_dir/run-$mode.log" >"$keep/epoch-run-$mode.log" # comes back with $OUT
  $py - "$epoch_dir/home-$mode/oodlab.db" "$mode" "$workers" <<'PYEOF' | tee -a "$keep/epoch.txt"
import os, sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute("SELECT seconds FROM epochs").fetchone() if os.path.exists(sys.argv[1]) else None
# 7,200 ID training images (classes 0-2 of 9,600), 112 full batches of 64.
if row is None:
    print(f"epoch {sys.argv[2]} ({sys.argv[3]} loader workers): no epoch finished (see epoch-run-{sys.argv[2]}.log)")
else:
    print(f"epoch {sys.argv[2]} ({sys.argv[3]} loader workers): 7168 images in {row[0]:.2f} s = {7168 / row[0]:.1f} images/s")
PYEOF
done

section "torchvision weights loaded by oodlab"
within 60 $py scripts/torchvision_to_safetensors.py --arch resnet18 --init-seed 0 --out "$work/resnet18.safetensors" &&
  within 60 "$bin" bench-step --device cuda --arch resnet18 --pretrained "$work/resnet18.safetensors" --batch 8 --image 3x64x64 --warmup 0 --steps 1

section "reference values (crates/train/tests/fixtures/resnet_torchvision.json)"
within 90 $py scripts/reference/resnet_torchvision.py >"$keep/resnet_torchvision.json" && echo "written to $keep/resnet_torchvision.json"

section "summary"
$py - "$keep" <<'PYEOF'
import json, os, sys
keep = sys.argv[1]
def lines(name):  # a file of an earlier section, or nothing if that section failed
    path = os.path.join(keep, name)
    return [l.rstrip() for l in open(path)] if os.path.exists(path) else []
rows = [json.loads(l) for l in lines("steps.jsonl") if l.startswith("{")]
best, mem, held = {}, {}, {}
for r in rows:
    key = (r["who"], r["arch"], r["precision"], r["batch"], r["image"])
    best[key] = max(best.get(key, 0), r["images_per_s"])
    # The whole device's memory in use, the CUDA context included, for both.
    used = r.get("gpu_device_used_mb") if r["who"] == "pytorch" else r.get("gpu_mem_mb")
    mem[key] = max(mem.get(key, 0), used or 0)
    # The process's allocator at its peak: reserved from the driver (PyTorch's caching allocator,
    # oodlab's memory pool) and in use by tensors.
    pool = (r.get("gpu_reserved_mb"), r.get("gpu_mem_mb")) if r["who"] == "pytorch" else (r.get("gpu_pool_reserved_mb"), r.get("gpu_pool_used_mb"))
    if pool[0]:
        held[key] = pool
    # oodlab's steps: how long the host took to queue a step; near the step itself, the GPU waited
    # for launches (host-bound) rather than the host for the GPU.
    queued = f"  host queued it in {r['median_queued_ms']:.2f} ms" if "median_queued_ms" in r else ""
    print(f"{r['who']:<8} {r['arch']:<9} {r['precision']:<5} batch {r['batch']:<3} {r['image']:<10} {r['images_per_s']:8.1f} images/s"
          f"  median step {r['median_step_ms']:8.2f} ms  GPU memory in use {used or 0:6.0f} MiB{queued}")
def ratio(who, arch, precision, batch, image):
    a, b = best.get((who, arch, precision, batch, image)), best.get(("pytorch", arch, precision, batch, image))
    return a / b if a and b else float("nan")
def memory(arch, precision, batch, image):
    a, b = mem.get(("oodlab", arch, precision, batch, image)), mem.get(("pytorch", arch, precision, batch, image))
    line = f"GPU memory oodlab/pytorch = {a / b:.2f} ({a:.0f} vs {b:.0f} MiB in use on the device)" if a and b else "GPU memory: n/a"
    p, q = held.get(("oodlab", arch, precision, batch, image)), held.get(("pytorch", arch, precision, batch, image))
    if p and q:
        line += f"; peak reserved oodlab/pytorch = {p[0] / q[0]:.2f} ({p[0]:.0f} vs {q[0]:.0f} MiB; in tensors {p[1]:.0f} vs {q[1]:.0f} MiB; goal <= 1.25)"
    return line
try:
    steps = {d: json.load(open(os.path.join(keep, f"step-{d}.json"))) for d in ("cuda", "cpu")}
    diffs = [abs(g - c) / max(abs(c), 1e-12) for g, c in zip(steps["cuda"]["losses"], steps["cpu"]["losses"])]
    verdict = "ok" if max(diffs) <= 1e-3 else "FAIL"
    print(f"ResNet-18 steps GPU vs CPU (TF32 off): largest relative loss difference {max(diffs):.2e} over {len(diffs)} steps ({verdict}, limit 1e-3)")
except Exception as e:
    print(f"ResNet-18 steps GPU vs CPU: not available ({e})")
for line in lines("quickstart.txt"):
    print(line)
print((lines("quickstart-devices.txt") or ["quickstart GPU vs CPU: not available"])[-1])
bare = best.get(("oodlab", "resnet18", "f32", 64, "3x224x224"))
for line in lines("epoch.txt"):
    if "images/s" not in line:
        print(line)
        continue
    rate = float(line.split("=")[1].split()[0])
    print(f"{line}; epoch/bare step = {rate / bare:.2f} (bare step {bare:.0f} images/s; goal >= 0.80)" if bare else line)
print((lines("check-kernels.txt") or ["check-kernels: no output"])[-1])
for line in lines("left-out.txt"):
    print(line)
print(f"candle's own convolutions (before), resnet18 f32 batch 64: ratio candle/pytorch = {ratio('candle', 'resnet18', 'f32', 64, '3x224x224'):.3f}")
k = ("resnet18", "f32", 64, "3x224x224")
if held.get(("unfused",) + k) and held.get(("oodlab",) + k):
    print(f"resnet18 f32 batch 64 without `fuse`: ratio unfused/pytorch = {ratio('unfused', *k):.3f}; peak reserved {held[('unfused',) + k][0]:.0f} MiB against {held[('oodlab',) + k][0]:.0f} MiB with it")
k = ("resnet50", "bf16", 64, "3x224x224")
if best.get(("nobn16k",) + k):
    print(f"resnet50 bf16 batch 64 without `bn16k`: ratio nobn16k/pytorch = {ratio('nobn16k', *k):.3f} (with it {ratio('oodlab', *k):.3f})")
for arch, precision, batch, image in [("resnet18", "bf16", 64, "3x224x224"), ("resnet50", "bf16", 64, "3x224x224"), ("resnet50", "f32", 16, "3x448x448")]:
    print(f"{arch} {precision} batch {batch} {image}: ratio oodlab/pytorch = {ratio('oodlab', arch, precision, batch, image):.3f}; {memory(arch, precision, batch, image)}")
print(f"resnet18 f32 batch 64 3x224x224: {memory('resnet18', 'f32', 64, '3x224x224')}")
print(f"ratio oodlab/pytorch = {ratio('oodlab', 'resnet18', 'f32', 64, '3x224x224'):.3f}")
PYEOF
