//! CUDA sources compiled for the host by g++, with definitions standing in for CUDA's names, so
//! that the GPU's own kernels (crates/kernels/src/gpu/*.cu) are tested on every machine, GPU or not
//! (cuda_source_on_host.rs, cuda_bn_on_host.rs). A harness's `main` reads its inputs from files,
//! runs the kernels and writes their outputs to files.
#![allow(dead_code)] // each test binary uses its share

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// What every harness needs: the headers, CUDA's keywords and the intrinsics the kernels use, and
/// `read`/`write` of raw little-endian arrays.
pub const COMMON: &str = r#"
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#define __global__
#define __device__
#define __forceinline__ inline
static inline unsigned int __float_as_uint(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(unsigned int u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline unsigned int __float2uint_rn(float f) { return (unsigned int)std::nearbyint(f); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
template <class T> static std::vector<T> read(const char* path) {
    FILE* f = std::fopen(path, "rb");
    if (!f) { std::perror(path); std::exit(2); }
    std::vector<T> v;
    T x;
    while (std::fread(&x, sizeof(T), 1, f) == 1) v.push_back(x);
    std::fclose(f);
    return v;
}
template <class T> static void write(const std::string& path, const std::vector<T>& v) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(v.data(), sizeof(T), v.size(), f) != v.size()) { std::perror(path.c_str()); std::exit(2); }
    std::fclose(f);
}
"#;

/// CUDA's grid as one thread of one block sees it: for kernels whose grid-stride loops then cover
/// everything.
pub const ONE_THREAD: &str = r#"
struct OodlabDim3 { unsigned int x; };
static const OodlabDim3 blockIdx = {0}, blockDim = {1}, gridDim = {1}, threadIdx = {0};
"#;

/// A real grid: `launch(gx, gy, bx, body)` runs `body` as every thread of a (gx, gy) grid of
/// blocks of bx threads, the blocks one after another and each block's threads at once as
/// threads of the host, so that `__shared__` memory (one static array per kernel) and
/// `__syncthreads()` (a barrier of the block's threads) behave as on a GPU.
pub const THREADS: &str = r#"
#include <barrier>
#include <thread>
#define __shared__ static
struct OodlabDim3 { unsigned int x, y, z; };
static OodlabDim3 blockIdx, blockDim, gridDim;
static thread_local OodlabDim3 threadIdx;
static std::barrier<>* oodlab_block_barrier;
static void __syncthreads() { oodlab_block_barrier->arrive_and_wait(); }
template <class F> static void launch(unsigned int gx, unsigned int gy, unsigned int bx, F body) {
    gridDim = {gx, gy, 1};
    blockDim = {bx, 1, 1};
    for (unsigned int y = 0; y < gy; y++) {
        for (unsigned int x = 0; x < gx; x++) {
            blockIdx = {x, y, 0};
            std::barrier<> block(bx);
            oodlab_block_barrier = &block;
            std::vector<std::thread> threads;
            for (unsigned int t = 0; t < bx; t++) {
                threads.emplace_back([t, &body] { threadIdx = {t, 0, 0}; body(); });
            }
            for (auto& thread : threads) thread.join();
        }
    }
}
"#;

/// The binary of `source` (compiled once per test binary under `name`).
pub fn binary(name: &'static str, source: impl FnOnce() -> String) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static BUILT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap()).path();
    let binary = dir.join(name);
    let mut built = BUILT.lock().unwrap();
    if !built.contains(&name) {
        let path = dir.join(format!("{name}.cpp"));
        std::fs::write(&path, source()).unwrap();
        // No fused multiply-adds: the kernels that round every product and sum on their own
        // (`__fmul_rn`, `__fadd_rn`, whose stand-ins here are the plain operators) are compared
        // bit for bit.
        let out = Command::new("g++")
            .args(["-std=c++20", "-pthread", "-O1", "-ffp-contract=off", "-Wall", "-Wno-unused-function", "-o"])
            .arg(&binary)
            .arg(&path)
            .output()
            .expect("g++ (Debian's g++; on every machine of this project) compiles the CUDA kernels for the host");
        assert!(out.status.success(), "g++ failed on the {name} kernels:\n{}", String::from_utf8_lossy(&out.stderr));
        built.push(name);
    }
    binary
}

pub fn run(binary: &Path, args: &[String]) {
    let out = Command::new(binary).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn write_bytes(path: &Path, bytes: impl IntoIterator<Item = [u8; 4]>) {
    std::fs::write(path, bytes.into_iter().flatten().collect::<Vec<u8>>()).unwrap();
}

pub fn write_f32(path: &Path, v: &[f32]) {
    write_bytes(path, v.iter().map(|x| x.to_le_bytes()));
}

pub fn write_u16(path: &Path, v: &[u16]) {
    std::fs::write(path, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

pub fn read_u16(path: &Path) -> Vec<u16> {
    std::fs::read(path).unwrap().chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect()
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}
