//! 2-D convolution (square kernel, stride, zero padding; no bias, no groups) by im2col and gemm.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use crate::{output, slice, unpack, with_scratch, SharedMut};

/// `x` (n, c, h, w) convolved with `w` (o, c, k, k), plus `bias` (o) if given: (n, o, ho, wo), as
/// PyTorch's conv2d with `groups = dilation = 1`. The bias is added in the same pass, and its
/// gradient comes with the others.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    let bias = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device())?,
    };
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias, Conv { stride, padding })
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) n: usize,
    c: usize,
    h: usize,
    w: usize,
    pub(crate) o: usize,
    k: usize,
    stride: usize,
    padding: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
}

impl Geometry {
    pub(crate) fn new(x: &Layout, w: &Layout, stride: usize, padding: usize) -> Result<Geometry> {
        let (n, c, h, wd) = x.shape().dims4()?;
        let (o, ci, k, k2) = w.shape().dims4()?;
        if ci != c || k != k2 || h + 2 * padding < k || wd + 2 * padding < k || stride == 0 {
            candle_core::bail!("conv2d: input {:?} and kernel {:?} do not fit (stride {stride}, padding {padding})", x.dims(), w.dims());
        }
        let (ho, wo) = ((h + 2 * padding - k) / stride + 1, (wd + 2 * padding - k) / stride + 1);
        Ok(Geometry { n, c, h, w: wd, o, k, stride, padding, ho, wo })
    }

    /// Rows of an image's column matrix: one per (channel, kernel row, kernel column).
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }

    /// Output positions of one image: the columns of its column matrix.
    pub(crate) fn cols(&self) -> usize {
        self.ho * self.wo
    }

    fn image(&self) -> usize {
        self.c * self.h * self.w
    }

    /// For kernel offset `d` along an axis of `size` input positions: the output positions whose
    /// input position `pos * stride + d - padding` is inside, as a range.
    fn valid(&self, d: usize, size: usize, out: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.stride, self.padding);
        // pos * s + d >= p  and  pos * s + d - p < size
        let lo = if d >= p { 0 } else { (p - d).div_ceil(s) };
        let hi = if size + p > d { ((size + p - d - 1) / s + 1).min(out) } else { 0 };
        lo.min(hi)..hi
    }

    /// Images per matrix product: enough that the product has a few hundred columns (small
    /// late-layer images alone make thin, slow products), at most 8; fixed by the geometry, so
    /// the order of every sum is too.
    fn group(&self) -> usize {
        (512 / self.cols()).clamp(1, 8)
    }

    /// One image's column matrix (rows × cols) from its (c, h, w) pixels, written at column
    /// `offset` of a matrix whose rows are `ld` long; padding reads as 0.
    fn im2col(&self, x: &[f32], col: &mut [f32], ld: usize, offset: usize) {
        if self.same() {
            return self.im2col_same(x, col, ld, offset);
        }
        let (k, l) = (self.k, self.cols());
        for r in 0..self.rows() {
            let row = &mut col[r * ld + offset..r * ld + offset + l];
            let (ch, di, dj) = (r / (k * k), (r / k) % k, r % k);
            let plane = &x[ch * self.h * self.w..(ch + 1) * self.h * self.w];
            let (rows, cols) = (self.valid(di, self.h, self.ho), self.valid(dj, self.w, self.wo));
            for (i, out) in row.chunks_exact_mut(self.wo).enumerate() {
                if !rows.contains(&i) {
                    out.fill(0.0);
                    continue;
                }
                let src = &plane[(i * self.stride + di - self.padding) * self.w..][..self.w];
                out[..cols.start].fill(0.0);
                out[cols.end..].fill(0.0);
                if self.stride == 1 {
                    let first = cols.start + dj - self.padding;
                    out[cols.clone()].copy_from_slice(&src[first..first + cols.len()]);
                } else {
                    for j in cols.clone() {
                        out[j] = src[j * self.stride + dj - self.padding];
                    }
                }
            }
        }
    }

    /// Adds a column matrix (at column `offset` of rows `ld` long) back onto an image's pixels
    /// (the adjoint of `im2col`).
    fn col2im(&self, col: &mut [f32], ld: usize, offset: usize, x: &mut [f32]) {
        if self.same() {
            return self.col2im_same(col, ld, offset, x);
        }
        let (k, l) = (self.k, self.cols());
        for r in 0..self.rows() {
            let row = &col[r * ld + offset..r * ld + offset + l];
            let (ch, di, dj) = (r / (k * k), (r / k) % k, r % k);
            let plane = &mut x[ch * self.h * self.w..(ch + 1) * self.h * self.w];
            let (rows, cols) = (self.valid(di, self.h, self.ho), self.valid(dj, self.w, self.wo));
            for i in rows {
                let dst = &mut plane[(i * self.stride + di - self.padding) * self.w..][..self.w];
                let src = &row[i * self.wo..(i + 1) * self.wo];
                for j in cols.clone() {
                    dst[j * self.stride + dj - self.padding] += src[j];
                }
            }
        }
    }

    /// Stride 1 and the output the input's size (padding (k - 1) / 2): then a row of an image's
    /// column matrix is its channel's plane shifted by a fixed offset, with zeros where the
    /// window leaves the plane. Copied whole instead of image row by image row (the late layers'
    /// rows are 7 values long: per-row copies were mostly call overhead).
    fn same(&self) -> bool {
        self.stride == 1 && self.ho == self.h && self.wo == self.w
    }

    /// For kernel offset `kk` (= di k + dj) of a `same` convolution: the offset from an output
    /// position to the pixel it reads, the positions whose pixel is in the plane and whose row is
    /// valid (one range), and the valid output rows and columns. The same for every channel:
    /// made once per image, not once per column-matrix row.
    fn shift(&self, kk: usize) -> (isize, std::ops::Range<usize>, std::ops::Range<usize>, std::ops::Range<usize>) {
        let (k, w, hw) = (self.k, self.w, self.h * self.w);
        let (di, dj) = (kk / k, kk % k);
        let p = self.padding as isize;
        let delta = (di as isize - p) * w as isize + (dj as isize - p);
        let (rows, cols) = (self.valid(di, self.h, self.ho), self.valid(dj, self.w, self.wo));
        let lo = (rows.start * w).max((-delta).max(0) as usize).min(hw);
        let hi = (rows.end * w).min((hw as isize - delta).max(0) as usize);
        (delta, lo..hi.max(lo), rows, cols)
    }

    fn im2col_same(&self, x: &[f32], col: &mut [f32], ld: usize, offset: usize) {
        let (kk_count, w, hw) = (self.k * self.k, self.w, self.h * self.w);
        for kk in 0..kk_count {
            let (delta, span, rows, cols) = self.shift(kk);
            let from = (span.start as isize + delta) as usize;
            for ch in 0..self.c {
                let out = &mut col[(ch * kk_count + kk) * ld + offset..][..hw];
                let plane = &x[ch * hw..(ch + 1) * hw];
                out[..span.start].fill(0.0);
                out[span.end..].fill(0.0);
                if !span.is_empty() {
                    out[span.clone()].copy_from_slice(&plane[from..from + span.len()]);
                }
                // Columns outside the plane read a neighbouring row's pixel in the copy: zeros.
                zero_outside(out, w, rows.clone(), &cols);
            }
        }
    }

    /// `col2im` of a `same` convolution; zeroes the entries of `col` that fall outside the plane
    /// so that each row adds in one contiguous pass.
    fn col2im_same(&self, col: &mut [f32], ld: usize, offset: usize, x: &mut [f32]) {
        let (kk_count, w, hw) = (self.k * self.k, self.w, self.h * self.w);
        for kk in 0..kk_count {
            let (delta, span, rows, cols) = self.shift(kk);
            let from = (span.start as isize + delta) as usize;
            for ch in 0..self.c {
                let row = &mut col[(ch * kk_count + kk) * ld + offset..][..hw];
                zero_outside(row, w, rows.clone(), &cols);
                if span.is_empty() {
                    continue;
                }
                let plane = &mut x[ch * hw..(ch + 1) * hw];
                for (d, &v) in plane[from..from + span.len()].iter_mut().zip(&row[span.clone()]) {
                    *d += v;
                }
            }
        }
    }
}

/// Zeroes the entries of `rows` of a plane (rows `w` long) that lie outside columns `cols`.
fn zero_outside(plane: &mut [f32], w: usize, rows: std::ops::Range<usize>, cols: &std::ops::Range<usize>) {
    for i in rows {
        for j in (0..cols.start).chain(cols.end..w) {
            plane[i * w + j] = 0.0;
        }
    }
}

/// dst (m × n, row-major) = a (m × k) · b (k × n), each given with its row and column strides;
/// `accumulate` adds to dst instead.
#[allow(clippy::too_many_arguments, unsafe_code)]
fn matmul(
    dst: &mut [f32],
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: the strides and sizes describe the slices' own elements (checked by the callers'
    // geometry), and dst does not alias a or b.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// The convolution of `x` by `w` plus `bias`, (n, o, ho, wo) flat.
pub(crate) fn forward(g: &Geometry, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
    let (per_out, l, gs) = (g.o * g.cols(), g.cols(), g.group());
    let mut y = vec![0f32; g.n * per_out];
    // A group of images per task: their column matrices side by side (rows × gs·cols), one
    // product, then each image's block of the result copied to its place. A group of one image
    // (a large one, as the first layer's) has the output's layout: its product is written there.
    y.par_chunks_mut(gs * per_out).enumerate().for_each(|(group, y)| {
        let count = y.len() / per_out;
        let ld = count * l;
        let product = |col: &mut [f32], out: &mut [f32]| {
            for t in 0..count {
                let img = group * gs + t;
                g.im2col(&x[img * g.image()..(img + 1) * g.image()], col, ld, t * l);
            }
            for (row, &b) in out.chunks_exact_mut(ld).zip(bias) {
                row.fill(b);
            }
            matmul(out, w, g.rows(), 1, col, ld, 1, g.o, ld, g.rows(), true);
        };
        if count == 1 {
            return with_scratch(g.rows() * ld, 0, |col, _| product(col, y));
        }
        with_scratch(g.rows() * ld, g.o * ld, |col, out| {
            product(col, out);
            for (t, y) in y.chunks_exact_mut(per_out).enumerate() {
                for (o, dst) in y.chunks_exact_mut(l).enumerate() {
                    dst.copy_from_slice(&out[o * ld + t * l..o * ld + (t + 1) * l]);
                }
            }
        })
    });
    y
}

/// Gradients of a convolution's input (if `need_dx`), kernel and bias, packed [dx | dw | db] in a
/// vector with room for `tail` more values. `fill(img, gyg, ld, at)` writes image `img`'s output
/// gradient into the group matrix `gyg` (o rows `ld` long) at column `at`: a copy of the op's
/// incoming gradient, or (conv + batch-norm) the gradient computed there from the batch-norm's.
pub(crate) fn backward(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    need_dx: bool,
    tail: usize,
    fill: impl Fn(usize, &mut [f32], usize, usize) + Sync,
) -> Vec<f32> {
    let nw = g.o * g.rows();
    let dx_len = if need_dx { g.n * g.image() } else { 0 };
    let mut packed = Vec::with_capacity(dx_len + nw + g.o + tail);
    packed.resize(dx_len + nw + g.o, 0f32);
    let dx = SharedMut(packed.as_mut_ptr());
    // Per group of images (as the forward pass): gy and the column matrices side by side,
    // dw += gy · colᵀ, dcol = wᵀ · gy, each image's block of dcol added back onto its dx.
    // The kernel's and bias's gradients are summed per group, then the groups' sums in order:
    // the result does not depend on how rayon shares the work, so runs repeat bit for bit.
    let (l, gs) = (g.cols(), g.group());
    let partials: Vec<Vec<f32>> = (0..g.n.div_ceil(gs))
        .into_par_iter()
        .map(|group| {
            let imgs = group * gs..((group + 1) * gs).min(g.n);
            let ld = imgs.len() * l;
            let mut dw = vec![0f32; nw + g.o];
            with_scratch(g.rows() * ld, g.o * ld, |col, gyg| {
                for (t, img) in imgs.clone().enumerate() {
                    fill(img, gyg, ld, t * l);
                    g.im2col(&x[img * g.image()..(img + 1) * g.image()], col, ld, t * l);
                }
                for (db, row) in dw[nw..].iter_mut().zip(gyg.chunks_exact(ld)) {
                    *db = row.iter().sum::<f32>();
                }
                // dw (o × rows) = gy (o × ld) · colᵀ (ld × rows)
                matmul(&mut dw[..nw], gyg, ld, 1, col, 1, ld, g.o, g.rows(), ld, false);
                if need_dx {
                    // dcol (rows × ld) = wᵀ (rows × o) · gy (o × ld)
                    matmul(col, w, 1, g.rows(), gyg, ld, 1, g.rows(), ld, g.o, false);
                    for (t, img) in imgs.enumerate() {
                        // SAFETY: image `img`'s gradient is written by this task only.
                        #[allow(unsafe_code)]
                        g.col2im(&mut *col, ld, t * l, unsafe { dx.part(img * g.image(), g.image()) });
                    }
                }
            });
            dw
        })
        .collect();
    let dw = &mut packed[dx_len..];
    for part in &partials {
        dw.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    packed
}

struct Conv {
    stride: usize,
    padding: usize,
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "oodlab-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl, wl, self.stride, self.padding)?;
        let y = forward(&g, slice(xs, xl)?, slice(ws, wl)?, slice(bs, bl)?);
        output(y, (g.n, g.o, g.ho, g.wo))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The input's gradient is skipped when nothing needs it (the images of a first layer).
        let need_dx = x.track_op();
        let op = ConvBackward { stride: self.stride, padding: self.padding, need_dx };
        let packed = x.apply_op3_no_bwd(w, &gy.contiguous()?, &op)?;
        if need_dx {
            let mut parts = unpack(&packed, &[x.dims(), w.dims(), b.dims()])?.into_iter();
            Ok((parts.next(), parts.next(), parts.next()))
        } else {
            let mut parts = unpack(&packed, &[w.dims(), b.dims()])?.into_iter();
            Ok((None, parts.next(), parts.next()))
        }
    }
}

/// Gradients of the input, the kernel and the bias, packed: [dx | dw | db].
struct ConvBackward {
    stride: usize,
    padding: usize,
    /// Whether to compute dx; without it the output is [dw | db].
    need_dx: bool,
}

impl CustomOp3 for ConvBackward {
    fn name(&self) -> &'static str {
        "oodlab-conv2d-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl, wl, self.stride, self.padding)?;
        let gy = slice(gs, gl)?;
        let per_out = g.o * g.cols();
        let l = g.cols();
        // Each image's output gradient copied into its block of the group's matrix.
        let fill = |img: usize, gyg: &mut [f32], ld: usize, at: usize| {
            for (o, row) in gy[img * per_out..(img + 1) * per_out].chunks_exact(l).enumerate() {
                gyg[o * ld + at..o * ld + at + l].copy_from_slice(row);
            }
        };
        let packed = backward(&g, slice(xs, xl)?, slice(ws, wl)?, self.need_dx, 0, fill);
        let len = packed.len();
        output(packed, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_by_hand() {
        let l = Layout::contiguous((1, 1, 5, 5));
        let wl = Layout::contiguous((1, 1, 3, 3));
        let g = Geometry::new(&l, &wl, 2, 1).unwrap();
        assert_eq!((g.ho, g.wo), (3, 3));
        // input row = 2 i + d - 1 must be in 0..5
        assert_eq!(g.valid(0, 5, 3), 1..3); // i = 0 reads row -1
        assert_eq!(g.valid(1, 5, 3), 0..3);
        assert_eq!(g.valid(2, 5, 3), 0..2); // i = 2 reads row 5
    }
}
