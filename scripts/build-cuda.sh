#!/usr/bin/env bash
# Builds the CUDA-enabled oodlab binary at target/cuda/oodlab, on a machine without a GPU or a
# CUDA installation (docs/gpu.md).
#
#   scripts/build-cuda.sh            # idempotent: reuses the toolkit, the stub and the build
#
# 1. CUDA 13.0's compiler, headers and libraries come from NVIDIA's PyPI wheels, installed into
#    target/cuda/venv. 13.0 exactly: the lent GPU machines' driver supports CUDA 13.0 and refuses
#    PTX from a newer nvcc.
# 2. The link needs libcuda.so, which only a GPU driver installs. A stub with soname libcuda.so.1
#    defines the driver functions the link asks for; at run time the real driver library is loaded
#    in its place. The functions are found by linking against an empty stub first and reading the
#    undefined references from the linker's errors.
# 3. candle is built with its `cuda` feature (its kernels compiled by nvcc for compute capability
#    CUDA_COMPUTE_CAP, default 90 = H100/H200) in its own target folder, so the CPU build in
#    target/release stays as it is.
# 4. oodlab's own CUDA kernels (crates/kernels/src/gpu/*.cu) compiled by NVRTC, as the binary compiles
#    them on a GPU, and their kernel names checked (scripts/nvrtc-check.py).
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/cuda
venv=$out/venv
stub=$out/stub
log=$out/build.log
mkdir -p "$out" "$stub"

wheels=(
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.88
  nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.0.2.14 nvidia-curand nvidia-cuda-cccl==13.0.85
  nvidia-cudnn-cu13==9.27.0.42
)
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
cu13=$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)
cudnn_lib() { ls "$venv"/lib/python3*/site-packages/nvidia/*/lib/libcudnn.so.9 2>/dev/null | head -n 1; }
if [ ! -x "$cu13/bin/nvcc" ] || [ ! -e "$cu13/lib/libcublas.so.13" ] || [ ! -e "$cu13/include/cuda.h" ] || [ -z "$(cudnn_lib)" ]; then
  echo "installing CUDA 13.0 wheels into $venv"
  "$venv/bin/pip" install -q "${wheels[@]}"
  cu13=$(echo "$venv"/lib/python3*/site-packages/nvidia/cu13)
fi
cu13=$(cd "$cu13" && pwd)
"$cu13/bin/nvcc" --version | tail -n 2

# Unversioned names for the linker (the wheels ship only the sonames).
for lib in cublas cublasLt cudart nvrtc curand; do
  real=$(ls "$cu13"/lib/lib$lib.so.* 2>/dev/null | sort | head -n 1)
  [ -n "$real" ] || { echo "error: lib$lib.so.* missing in $cu13/lib; remove $venv and run again" >&2; exit 1; }
  ln -sf "$(basename "$real")" "$cu13/lib/lib$lib.so"
done
# cuDNN (the convolutions of crates/kernels/src/gpu/cudnn) comes in its own wheel and folder.
cudnn=$(cudnn_lib)
[ -n "$cudnn" ] || { echo "error: libcudnn.so.9 missing in $venv; remove $venv and run again" >&2; exit 1; }
cudnn=$(cd "$(dirname "$cudnn")" && pwd)
ln -sf libcudnn.so.9 "$cudnn/libcudnn.so"

make_stub() { # names of driver functions on stdin
  {
    echo "/* Link-time stand-in for the NVIDIA driver library; never loaded at run time. */"
    sort -u | sed 's/.*/void &(void) {}/'
  } >"$stub/stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/stub.c"
}
[ -e "$stub/libcuda.so" ] || make_stub </dev/null

export PATH="$cu13/bin:$PATH" CUDA_ROOT="$cu13" CUDA_PATH="$cu13" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export LIBRARY_PATH="$cu13/lib:$cudnn:$(cd "$stub" && pwd)${LIBRARY_PATH:+:$LIBRARY_PATH}"
build() {
  local status=0
  cargo build --release -p oodlab-cli --features cuda --target-dir "$out/build" >"$log" 2>&1 || status=$?
  grep -E '^error|Compiling (candle|cudarc|oodlab)|Finished' "$log" || true
  return $status
}
if ! build; then
  # The first build stops at the link (the stub is empty). The driver functions are those cudarc's
  # compiled code calls: `cu` and a capital letter (cuBLAS, cuRAND, NVRTC and the runtime are
  # real libraries from the wheels).
  rlib=$(ls -t "$out"/build/release/deps/libcudarc-*.rlib 2>/dev/null | head -n 1)
  if ! grep -qE "undefined (symbol: |reference to .)cu[A-Z]" "$log" || [ -z "$rlib" ]; then
    echo "error: the CUDA build failed; see $log" >&2
    exit 1
  fi
  nm -u "$rlib" 2>/dev/null | grep -oE '\bcu[A-Z][A-Za-z0-9_]*$' | make_stub
  echo "stub: $(grep -c '^void' "$stub/stub.c") driver functions"
  build || { echo "error: the CUDA build failed; see $log" >&2; exit 1; }
fi

# Without its symbol table the binary is about 70 MB (most of it candle's compiled kernels, PTX
# text). A GPU machine lent to a session takes at most 64 MiB of files along (the device tool's
# `carry`), so a gzip copy (about 20 MB) is made too; scripts/gpu-check.sh takes either.
strip -o "$out/oodlab" "$out/build/release/oodlab"
gzip -6 -c "$out/oodlab" >"$out/oodlab.gz"
echo "built $out/oodlab ($(du -h "$out/oodlab" | cut -f1); $out/oodlab.gz $(du -h "$out/oodlab.gz" | cut -f1)); needs at run time: $(readelf -d "$out/oodlab" | grep -o 'lib[a-zA-Z]*\.so[.0-9]*' | tr '\n' ' ')"
# oodlab's own kernels (crates/kernels/src/gpu/*.cu) are compiled by NVRTC on the GPU machine at
# their first launch; compile them here with the same NVRTC so that a source it refuses stops the
# build rather than a lent GPU's run.
LD_LIBRARY_PATH="$cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" python3 scripts/nvrtc-check.py "$cu13/lib/libnvrtc.so.13"
