//! `--set` overrides that point a committed spec's datasets (fashion, mnist, animal) at the
//! committed sample in `sample`. Shared by the spec crate's tests and the CLI's (included with
//! `#[path]`).

pub fn sample_sets(sample: &std::path::Path) -> Vec<String> {
    let mut sets = Vec::new();
    for (name, folder, parts) in [
        ("fashion", "fashion-mnist", &["train", "test"][..]),
        ("mnist", "mnist", &["test"][..]),
        ("animal", "animal-mnist", &["train"][..]),
    ] {
        for part in parts {
            let stem = if *part == "train" { "train" } else { "t10k" };
            sets.push(format!("datasets.{name}.{part}.images={}/{folder}/{stem}-images-idx3-ubyte.gz", sample.display()));
            sets.push(format!("datasets.{name}.{part}.labels={}/{folder}/{stem}-labels-idx1-ubyte.gz", sample.display()));
        }
    }
    sets
}
