"""Compiles oodlab's own CUDA kernels (crates/kernels/src/gpu/*.cu) with NVRTC, the compiler the
binary runs at its first launch on a GPU, with the same (default) options, and checks that each
defines the kernels the Rust code loads. Needs no GPU: scripts/build-cuda.sh runs it with the
wheels' libnvrtc, so a source NVRTC refuses fails the build, not a lent GPU's time.

    python3 scripts/nvrtc-check.py LIBNVRTC
"""
import ctypes
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = os.path.join(HERE, "..", "crates", "kernels", "src", "gpu")

# The kernel names that cuda_pool.rs, cuda_relu.rs, cuda_sgd.rs, cudnn_bn.rs and cuda_bn.rs load (their suffixes
# per format).
EXPECTED = {
    "cuda_pool.cu": [f"oodlab_max_pool{part}_{fmt}" for part in ("", "_backward") for fmt in ("f32", "bf16", "f16")],
    "cuda_relu.cu": [f"oodlab_relu{part}_{fmt}" for part in ("", "_backward") for fmt in ("f32", "b16")],
    "cuda_sgd.cu": ["oodlab_sgd"],
    "cuda_bn_running.cu": ["oodlab_bn_running"],
    "cuda_add_relu.cu": [f"oodlab_add_relu_{fmt}" for fmt in ("f32", "bf16", "f16")],
    "cuda_bn.cu": ["oodlab_bn_backward_statistics"]
    + [
        f"oodlab_bn_{part}_{fmt}"
        for part in ("sums", "statistics", "apply", "apply_relu", "apply_add_relu", "backward_sums", "backward_apply")
        for fmt in ("bf16", "f16")
    ]
    + [f"oodlab_bn_eval{part}_{fmt}" for part in ("", "_relu", "_add_relu") for fmt in ("f32", "bf16", "f16")],
}
# The modules whose source begins with the f32/half conversions, as the Rust code compiles them.
WITH_HALF = {"cuda_pool.cu", "cuda_add_relu.cu", "cuda_bn.cu"}


def compile_ptx(lib, name, source):
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), source, name.encode(), 0, None, None) != 0:
        sys.exit(f"nvrtc-check: cannot create the NVRTC program for {name}")
    status = lib.nvrtcCompileProgram(prog, 0, None)  # cudarc's compile_ptx passes no options
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    ptx = ""
    if status == 0:
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, buf)
        ptx = buf.value.decode()
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return status, log.value.decode().strip(), ptx


def main():
    lib = ctypes.CDLL(sys.argv[1])
    failed = 0
    for name, kernels in EXPECTED.items():
        source = b""
        for part in (["cuda_half.cuh"] if name in WITH_HALF else []) + [name]:
            with open(os.path.join(SOURCES, part), "rb") as f:
                source += f.read()
        status, log, ptx = compile_ptx(lib, name, source)
        entries = {line.split()[2].rstrip("(") for line in ptx.splitlines() if line.startswith(".visible .entry")}
        missing = [k for k in kernels if k not in entries]
        if status != 0 or missing:
            failed += 1
            print(f"nvrtc-check: {name}: NVRTC status {status}, missing kernels {missing}\n{log}")
        else:
            print(f"nvrtc-check: {name}: {len(entries)} kernels compiled by NVRTC")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
