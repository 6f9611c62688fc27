//! The experiments committed in experiments/ are valid specs.

use std::path::Path;

fn experiments() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments")
}

#[test]
fn quickstart_is_valid_with_two_seeds_of_every_entry() {
    let exp = oodlab_spec::load(&experiments().join("quickstart.yaml"), &[], "v").unwrap();
    assert_eq!(exp.name, "quickstart");
    let seeds: std::collections::BTreeSet<u64> = exp.runs.iter().map(|r| r.seed).collect();
    assert!(seeds.len() >= 2);
    assert_eq!(exp.runs[0].classes.id_classes, vec![0, 1, 3, 5, 8, 9]);
    assert_eq!(exp.runs[0].classes.heldout, vec![2, 4, 6, 7]);
}

#[test]
fn paper_benchmark_is_valid_or_asks_for_the_full_data() {
    let path = experiments().join("paper-fmnist.yaml");
    let full = experiments().join("../datasets/full/fashion-mnist/train-images-idx3-ubyte.gz");
    match oodlab_spec::load(&path, &[], "v") {
        Ok(exp) => {
            assert!(full.exists());
            // 3 splits × 3 seeds of a baseline and 11 OE-family fine-tunes of it.
            assert_eq!(exp.runs.len(), 9 * 12);
            assert!(exp.runs.iter().all(|r| r.classes.id_classes.len() == 6));
            assert_eq!(exp.runs.iter().filter(|r| r.parent.is_none()).count(), 9);
        }
        Err(e) => {
            assert!(!full.exists(), "{e}");
            assert!(e.message.contains("file not found") && e.hint.as_deref().unwrap().contains("fetch-data.sh"), "{e}");
        }
    }
}
