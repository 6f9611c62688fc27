//! oodlab's perceptual hash against imagededup's own (fixture from
//! scripts/reference/phash_imagededup.py: imagededup 0.3.3, Pillow 13): the 32 × 32 grey
//! thumbnail pixel for pixel, and the 64-bit hash bit for bit, on grey 28 × 28 images (resized up)
//! and RGB 24 × 40 ones (down along the rows, up down the columns).

use oodlab_audit::phash::phash_and_thumbnail;

/// imagededup's hex string: `np.packbits` of the 8 × 8 bits row by row, the first column the most
/// significant bit of its byte.
fn hex(hash: u64) -> String {
    (0..8)
        .map(|r| {
            let byte = (0..8).fold(0u8, |b, c| if hash >> (8 * r + c) & 1 == 1 { b | 1 << (7 - c) } else { b });
            format!("{byte:02x}")
        })
        .collect()
}

#[test]
fn thumbnails_and_hashes_are_imagededups() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/phash_imagededup.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let images = fixture["images"].as_array().unwrap();
    assert_eq!(images.len(), 16);
    for (i, img) in images.iter().enumerate() {
        let u = |k: &str| img[k].as_u64().unwrap() as usize;
        let bytes = |k: &str| img[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect::<Vec<u8>>();
        let (hash, thumb) = phash_and_thumbnail(&bytes("pixels"), u("channels"), u("height"), u("width"));
        assert_eq!(thumb, bytes("thumbnail"), "image {i}: the thumbnail");
        assert_eq!(hex(hash), img["hash"].as_str().unwrap(), "image {i}: the hash");
    }
}
