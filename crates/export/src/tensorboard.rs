//! TensorBoard event files: each run a folder `<out>/<entry>/seed<S>-split<P>-<run id>` (so
//! TensorBoard's run selector groups runs by entry) holding one event file of scalars — each
//! epoch's at its epoch, the final metrics at the last epoch.
//!
//! The format is TensorFlow's: a TFRecord file (each record its length, a masked CRC-32C of the
//! length, the bytes, a masked CRC-32C of the bytes) of `Event` protocol buffers
//! (`tensorflow/core/util/event.proto`), the first naming the file version, each next one a
//! `Summary` of `simple_value`s. Written by hand (a few fields of two messages) rather than with a
//! protobuf crate. The file's name is fixed per run, not timestamped as TensorFlow's writer does,
//! so that a second export rewrites the same file instead of adding a second stream of the same
//! points; the content is the same each time (wall times come from the run's recorded times).

use std::path::{Path, PathBuf};

use crate::{io, Result, RunRecord};

/// The event file's name (TensorBoard reads any file whose name holds `tfevents`).
pub const FILE: &str = "events.out.tfevents.0.oodlab";

/// Writes each run's event file under `out`; returns the files written, in the runs' order.
pub fn write(out: &Path, runs: &[RunRecord]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for run in runs {
        let dir = out.join(&run.entry).join(format!("seed{}-split{}-{}", run.seed, run.split, run.run_id));
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(FILE);
        let bytes = events(run);
        // Through a temporary name: TensorBoard watching the folder never reads half a file.
        let tmp = dir.join(format!(".{FILE}.tmp"));
        std::fs::write(&tmp, &bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// The run's events, as TFRecords.
pub fn events(run: &RunRecord) -> Vec<u8> {
    let start = run.started_ms.unwrap_or(0) as f64 / 1000.0;
    let mut out = Vec::new();
    record(&mut out, &event(start, 0, Payload::FileVersion("brain.Event:2")));
    for (ms, step, values) in run.timeline() {
        let values: Vec<(&str, f32)> = values.into_iter().map(|(k, v)| (k, v as f32)).collect();
        record(&mut out, &event(ms / 1000.0, step, Payload::Scalars(&values)));
    }
    out
}

enum Payload<'a> {
    FileVersion(&'a str),
    Scalars(&'a [(&'a str, f32)]),
}

/// An `Event`: wall_time (1, double), step (2, int64), then file_version (3, string) or summary
/// (5, `Summary`: repeated value (1, `Value`: tag (1, string), simple_value (2, float))).
fn event(wall_time: f64, step: i64, payload: Payload) -> Vec<u8> {
    let mut e = Vec::new();
    key(&mut e, 1, 1);
    e.extend(wall_time.to_le_bytes());
    key(&mut e, 2, 0);
    varint(&mut e, step as u64);
    match payload {
        Payload::FileVersion(v) => bytes(&mut e, 3, v.as_bytes()),
        Payload::Scalars(values) => {
            let mut summary = Vec::new();
            for (tag, v) in values {
                let mut value = Vec::new();
                bytes(&mut value, 1, tag.as_bytes());
                key(&mut value, 2, 5);
                value.extend(v.to_le_bytes());
                bytes(&mut summary, 1, &value);
            }
            bytes(&mut e, 5, &summary);
        }
    }
    e
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend(b);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One TFRecord: length (u64), its masked CRC, the data, the data's masked CRC, little-endian.
fn record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend(len);
    out.extend(masked_crc(&len).to_le_bytes());
    out.extend(data);
    out.extend(masked_crc(data).to_le_bytes());
}

/// TFRecord's CRC mask: rotated right by 15 bits plus a constant (so that a CRC of data holding
/// CRCs is not degenerate).
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78), a byte at a time by table.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_of_known_strings() {
        // RFC 3720 (iSCSI), appendix B.4: 32 bytes of zeros, of 0xff, and the check value of
        // "123456789" every CRC-32C table lists.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn an_event_encodes_field_by_field() {
        // wall_time 1.5 (0x09 + 8 bytes), step 300 (0x10, varint 0xAC 0x02), file_version "v"
        // (0x1A, 1, 'v').
        let e = event(1.5, 300, Payload::FileVersion("v"));
        let mut want = vec![0x09];
        want.extend(1.5f64.to_le_bytes());
        want.extend([0x10, 0xAC, 0x02, 0x1A, 0x01, b'v']);
        assert_eq!(e, want);
        // A summary of one value: 0x2A 10 [0x0A 8 [0x0A 1 'a' 0x15 f32]] (a value of 3 + 1 + 4
        // bytes, a summary of 2 + 8).
        let e = event(0.0, 0, Payload::Scalars(&[("a", 2.0)]));
        let tail = &e[e.len() - 12..];
        let mut want = vec![0x2A, 10, 0x0A, 8, 0x0A, 1, b'a', 0x15];
        want.extend(2.0f32.to_le_bytes());
        assert_eq!(tail, &want[..]);
    }
}
