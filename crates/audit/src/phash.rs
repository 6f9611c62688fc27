//! The perceptual hash: imagededup's PHash (imagededup/methods/hashing.py, `PHash._hash_algo`,
//! and `utils/image_utils.py` `preprocess_image`): the image resized to 32 × 32 with PIL's Lanczos
//! filter, made grey, its 2-D DCT-II, the top-left 8 × 8 coefficients, one bit per coefficient at or
//! above the median of the 63 that are not the DC term. Two images whose hashes differ in few bits
//! look alike at that scale whatever their exact pixels (a re-encode, a small shift of brightness).
//! Checked bit for bit against imagededup 0.3.3 and Pillow 13 (tests/imagededup.rs).

/// Side of the resized image, and of the block of coefficients kept.
const SIDE: usize = 32;
const KEPT: usize = 8;

/// The 64-bit hash of one planar image (`channels` planes of `height` × `width`), bit `8·r + c`
/// for coefficient (r, c).
pub fn phash(pixels: &[u8], channels: usize, height: usize, width: usize) -> u64 {
    phash_and_thumbnail(pixels, channels, height, width).0
}

/// The hash, and the 32 × 32 grey image it was computed from: what a near pair's pixels are
/// compared on. As imagededup: each channel resized with PIL's Lanczos filter (8-bit, fixed
/// point), then the channels made grey as PIL's `convert("L")`.
pub fn phash_and_thumbnail(pixels: &[u8], channels: usize, height: usize, width: usize) -> (u64, Vec<u8>) {
    let plane = height * width;
    let planes: Vec<Vec<u8>> = (0..channels).map(|c| resize(&pixels[c * plane..(c + 1) * plane], height, width, SIDE, SIDE)).collect();
    let thumb = if channels == 1 { planes.into_iter().next().expect("one plane") } else { grey(&planes) };
    let small: Vec<f64> = thumb.iter().map(|&v| f64::from(v)).collect();
    (hash_of(&small), thumb)
}

/// Correlation (Pearson's) of two thumbnails' pixels: 1 for the same image under any change of
/// brightness and contrast; 0 when either is flat and the other is not, 1 when both are.
pub fn correlation(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|&v| f64::from(v)).sum::<f64>() / n, b.iter().map(|&v| f64::from(v)).sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    match (saa > 0.0, sbb > 0.0) {
        (true, true) => sab / (saa * sbb).sqrt(),
        (false, false) => 1.0,
        _ => 0.0,
    }
}

fn hash_of(small: &[f64]) -> u64 {
    let coef = dct_block(small);
    let mut rest: Vec<f64> = coef[1..].to_vec();
    rest.sort_by(f64::total_cmp);
    // numpy's median of 63 values: the middle one.
    let median = rest[rest.len() / 2];
    coef.iter().enumerate().fold(0u64, |h, (i, &c)| if c >= median { h | 1 << i } else { h })
}

/// Luminance as PIL's `convert("L")` of RGB planes: (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16.
fn grey(planes: &[Vec<u8>]) -> Vec<u8> {
    (0..planes[0].len())
        .map(|i| {
            let (r, g, b) = (u32::from(planes[0][i]), u32::from(planes[1][i]), u32::from(planes[2][i]));
            ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
        })
        .collect()
}

/// PIL's `resize(…, Image.LANCZOS)` of one 8-bit plane (Pillow's `Resample.c`): the horizontal
/// pass, then the vertical one, each through an 8-bit image, with coefficients in fixed point.
fn resize(src: &[u8], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<u8> {
    let across = if out_w == w { src.to_vec() } else { pass(src, h, w, out_w, true) };
    if out_h == h {
        across
    } else {
        pass(&across, h, out_w, out_h, false)
    }
}

/// Bits of a coefficient's fraction (Pillow's PRECISION_BITS for 8-bit images).
const PRECISION: u32 = 32 - 8 - 2;

/// One resampling pass: along the rows (`horizontal`) to `out` columns, or down the columns to
/// `out` rows.
fn pass(src: &[u8], h: usize, w: usize, out: usize, horizontal: bool) -> Vec<u8> {
    let coeffs = coefficients(if horizontal { w } else { h }, out);
    let (oh, ow) = if horizontal { (h, out) } else { (out, w) };
    let mut dst = vec![0u8; oh * ow];
    for y in 0..oh {
        for x in 0..ow {
            let (i, o) = if horizontal { (x, y) } else { (y, x) };
            let (start, ks) = &coeffs[i];
            let mut ss: i64 = 1 << (PRECISION - 1);
            for (k, c) in ks.iter().enumerate() {
                let px = if horizontal { src[o * w + start + k] } else { src[(start + k) * w + o] };
                ss += i64::from(px) * i64::from(*c);
            }
            dst[y * ow + x] = (ss >> PRECISION).clamp(0, 255) as u8;
        }
    }
    dst
}

/// Lanczos with 3 lobes.
fn lanczos(x: f64) -> f64 {
    let sinc = |x: f64| if x == 0.0 { 1.0 } else { (x * std::f64::consts::PI).sin() / (x * std::f64::consts::PI) };
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// For each output index: the first input index it reads and its fixed-point coefficients
/// (Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc`).
fn coefficients(len: usize, out: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = len as f64 / out as f64;
    let filterscale = scale.max(1.0);
    let support = 3.0 * filterscale;
    (0..out)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(len as i64) as usize;
            let ws: Vec<f64> = (lo..hi).map(|j| lanczos((j as f64 - center + 0.5) / filterscale)).collect();
            let total: f64 = ws.iter().sum();
            let fixed = ws
                .iter()
                .map(|w| {
                    let k = w / total * f64::from(1u32 << PRECISION);
                    (if k < 0.0 { k - 0.5 } else { k + 0.5 }) as i32
                })
                .collect();
            (lo, fixed)
        })
        .collect()
}

/// The top-left `KEPT` × `KEPT` coefficients of the unnormalized 2-D DCT-II (scipy's
/// `dct(dct(x, axis=0), axis=1)`), row-major.
fn dct_block(img: &[f64]) -> Vec<f64> {
    let basis: Vec<f64> = (0..KEPT)
        .flat_map(|k| (0..SIDE).map(move |n| 2.0 * (std::f64::consts::PI * k as f64 * (2 * n + 1) as f64 / (2 * SIDE) as f64).cos()))
        .collect();
    // Down the columns first (axis 0), then along the rows.
    let mut down = vec![0.0; KEPT * SIDE];
    for k in 0..KEPT {
        for x in 0..SIDE {
            down[k * SIDE + x] = (0..SIDE).map(|y| basis[k * SIDE + y] * img[y * SIDE + x]).sum();
        }
    }
    let mut out = vec![0.0; KEPT * KEPT];
    for r in 0..KEPT {
        for c in 0..KEPT {
            out[r * KEPT + c] = (0..SIDE).map(|x| basis[c * SIDE + x] * down[r * SIDE + x]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_image_has_its_energy_in_the_dc_term_alone() {
        // Every AC coefficient of a constant image is 0 (to rounding): all at or above the median.
        let coef = dct_block(&[7.0; SIDE * SIDE]);
        assert!((coef[0] - 4.0 * 7.0 * (SIDE * SIDE) as f64).abs() < 1e-6, "{}", coef[0]);
        assert!(coef[1..].iter().all(|c| c.abs() < 1e-9));
    }

    #[test]
    fn resizing_keeps_a_constant_and_a_same_size_copy() {
        assert!(resize(&[3; 28 * 28], 28, 28, 32, 32).iter().all(|&v| v == 3));
        let ramp: Vec<u8> = (0..SIDE * SIDE).map(|i| (i % 256) as u8).collect();
        assert_eq!(resize(&ramp, SIDE, SIDE, SIDE, SIDE), ramp);
    }

    #[test]
    fn correlation_worked_by_hand() {
        // [1, 2, 3] against [2, 4, 6]: 1; against [3, 2, 1]: -1; [1, 2, 3] and [1, 3, 2]: 0.5.
        assert!((correlation(&[1, 2, 3], &[2, 4, 6]) - 1.0).abs() < 1e-12);
        assert!((correlation(&[1, 2, 3], &[3, 2, 1]) + 1.0).abs() < 1e-12);
        assert!((correlation(&[1, 2, 3], &[1, 3, 2]) - 0.5).abs() < 1e-12);
        assert_eq!((correlation(&[5, 5], &[5, 5]), correlation(&[5, 5], &[1, 2])), (1.0, 0.0));
    }

    #[test]
    fn grey_is_pils_luminance() {
        // Pure red, green, blue and white pixels: 76, 150, 29, 255 (PIL's L values).
        let planes = vec![vec![255, 0, 0, 255], vec![0, 255, 0, 255], vec![0, 0, 255, 255]];
        assert_eq!(grey(&planes), vec![76, 150, 29, 255]);
    }

    #[test]
    fn a_brighter_copy_hashes_alike_and_another_image_does_not() {
        // Smooth patterns with energy across frequencies (a ramp alone leaves most coefficients
        // at 0, where the median is, and any rounding flips their bits).
        let pattern = |fx: f64, fy: f64| -> Vec<u8> {
            (0..28 * 28)
                .map(|i| {
                    let (x, y) = ((i % 28) as f64, (i / 28) as f64);
                    (120.0 + 50.0 * (x / fx).sin() * (y / fy).cos() + 30.0 * ((x + 2.0 * y) / 7.0).sin()) as u8
                })
                .collect()
        };
        let a = pattern(3.0, 5.0);
        // Brighter: the DC term moves, which the hash leaves out.
        let brighter: Vec<u8> = a.iter().map(|&p| p + 12).collect();
        let other = pattern(5.0, 2.0);
        let (ha, hb, ho) = (phash(&a, 1, 28, 28), phash(&brighter, 1, 28, 28), phash(&other, 1, 28, 28));
        assert!((ha ^ hb).count_ones() <= 2, "{}", (ha ^ hb).count_ones());
        assert!((ha ^ ho).count_ones() > 10, "{}", (ha ^ ho).count_ones());
    }
}
