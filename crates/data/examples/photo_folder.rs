//! Writes an image folder of `COUNT` JPEG files of `SIZE`×`SIZE` RGB pixels, windows of the
//! committed scikit-image photos (datasets/sample/images/photos), one class per photo, for the
//! loader benchmark (scripts/bench/loader.sh):
//!
//! ```sh
//! cargo run --release -p oodlab-data --example photo_folder -- OUT COUNT SIZE
//! ```

// A command-line program: its usage line goes to stderr.
#![allow(clippy::print_stderr)]

use std::path::Path;

use image::imageops::FilterType;
use rand::Rng;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, count, size] = &args[..] else {
        eprintln!("usage: photo_folder OUT COUNT SIZE");
        std::process::exit(2);
    };
    let (count, size): (usize, u32) = (count.parse().expect("COUNT is a number"), size.parse().expect("SIZE is a number"));
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sample/images/photos");
    let mut names: Vec<_> = std::fs::read_dir(&photos).expect("the committed photos").map(|e| e.unwrap().path()).collect();
    names.sort();
    let images: Vec<image::RgbImage> = names.iter().map(|p| image::open(p).expect("a photo").to_rgb8()).collect();
    let mut rng = oodlab_data::order::rng(0, "photo-folder");
    for i in 0..count {
        let class = i % images.len();
        let photo = &images[class];
        // A window of 60% of the photo's shorter side, at a seeded position, resized to SIZE.
        let side = photo.width().min(photo.height()) * 3 / 5;
        let (x, y) = (rng.random_range(0..=photo.width() - side), rng.random_range(0..=photo.height() - side));
        let window = image::imageops::crop_imm(photo, x, y, side, side).to_image();
        let img = image::imageops::resize(&window, size, size, FilterType::Triangle);
        let stem = names[class].file_stem().unwrap().to_string_lossy();
        let dir = Path::new(out).join(format!("{class}-{stem}"));
        std::fs::create_dir_all(&dir).unwrap();
        img.save(dir.join(format!("{i:06}.jpg"))).unwrap();
    }
}
