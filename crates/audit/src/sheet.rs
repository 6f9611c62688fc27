//! The contact sheet: the closest pairs side by side, one pair a row (the row's order is the
//! listing's), so that a reader sees at a glance whether a "near duplicate" is one.

use image::{Rgb, RgbImage};

/// Pixels between images and around the sheet, and between a pair's two images.
const GAP: u32 = 4;

/// A sheet of `pairs` (each two planar images of `channels` × `height` × `width`), every pixel
/// drawn `scale` × `scale`; a grey line separates the rows.
pub fn contact_sheet(pairs: &[(Vec<u8>, Vec<u8>)], channels: usize, height: usize, width: usize, scale: u32) -> RgbImage {
    let (h, w) = (height as u32 * scale, width as u32 * scale);
    let rows = pairs.len().max(1) as u32;
    let mut sheet = RgbImage::from_pixel(2 * w + 3 * GAP, rows * (h + GAP) + GAP, Rgb([255, 255, 255]));
    for (k, (a, b)) in pairs.iter().enumerate() {
        let top = GAP + k as u32 * (h + GAP);
        for (col, img) in [(GAP, a), (2 * GAP + w, b)] {
            for y in 0..h {
                for x in 0..w {
                    let i = (y / scale) as usize * width + (x / scale) as usize;
                    let plane = height * width;
                    let px = if channels == 1 { [img[i]; 3] } else { [img[i], img[plane + i], img[2 * plane + i]] };
                    sheet.put_pixel(col + x, top + y, Rgb(px));
                }
            }
        }
        if k > 0 {
            for x in 0..sheet.width() {
                sheet.put_pixel(x, top - GAP / 2, Rgb([200, 200, 200]));
            }
        }
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_drawn_side_by_side_scaled() {
        // One pair of 1 × 2 grey images at scale 2: a is [10, 20], b is [30, 40].
        let sheet = contact_sheet(&[(vec![10, 20], vec![30, 40])], 1, 1, 2, 2);
        assert_eq!(sheet.dimensions(), (2 * 4 + 3 * GAP, 2 + 2 * GAP));
        assert_eq!(sheet.get_pixel(GAP, GAP), &Rgb([10, 10, 10]));
        assert_eq!(sheet.get_pixel(GAP + 3, GAP + 1), &Rgb([20, 20, 20]));
        assert_eq!(sheet.get_pixel(2 * GAP + 4, GAP), &Rgb([30, 30, 30]));
        assert_eq!(sheet.get_pixel(2 * GAP + 7, GAP + 1), &Rgb([40, 40, 40]));
        assert_eq!(sheet.get_pixel(0, 0), &Rgb([255, 255, 255]));
        // Planar RGB: the red, green and blue planes of one pixel.
        let sheet = contact_sheet(&[(vec![1, 2, 3], vec![4, 5, 6])], 3, 1, 1, 1);
        assert_eq!(sheet.get_pixel(GAP, GAP), &Rgb([1, 2, 3]));
        assert_eq!(sheet.get_pixel(2 * GAP + 1, GAP), &Rgb([4, 5, 6]));
    }
}
