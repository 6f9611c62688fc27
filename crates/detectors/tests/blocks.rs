//! The detectors work in blocks of queries and tiles of training features; across block
//! boundaries (more than 1,024 training features, more than 512 queries) every score must be the
//! one computed by definition (KNN, by brute force in f64) or for that sample alone (to 1e-12:
//! the matrix-product kernels sum in an order that depends on the block's shape).

use oodlab_detectors::{knn, mahalanobis, nearest, rmds, ClassGaussians, Linear, Rows, Vim};

fn values(n: usize, seed: f64) -> Vec<f32> {
    (0..n).map(|i| ((i as f64 * 0.618 + seed).sin() * 2.0 + (i as f64 * 0.1).cos()) as f32).collect()
}

#[test]
fn knn_across_tiles_matches_brute_force() {
    let d = 8;
    let (train, queries) = (values(5000 * d, 0.3), values(600 * d, 1.7));
    let (t, q) = (Rows::new(&train, d).unwrap(), Rows::new(&queries, d).unwrap());
    let unit = |x: &[f32]| {
        let n = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        x.iter().map(|&v| v as f64 / n).collect::<Vec<f64>>()
    };
    let bank: Vec<Vec<f64>> = t.iter().map(unit).collect();
    for k in [1, 50] {
        let got = knn(t, q, k).unwrap();
        for (i, qi) in q.iter().enumerate() {
            let u = unit(qi);
            let mut d: Vec<f64> = bank.iter().map(|b| b.iter().zip(&u).map(|(a, b)| (a - b) * (a - b)).sum()).collect();
            d.sort_by(|a, b| a.total_cmp(b));
            assert!((got[i] + d[k - 1]).abs() < 1e-5, "k {k} query {i}: {}, by definition {}", got[i], -d[k - 1]);
        }
    }
}

#[test]
fn nearest_across_tiles_matches_brute_force() {
    let d = 8;
    let (mut train, queries) = (values(5000 * d, 0.3), values(600 * d, 1.7));
    // Query 7 planted twice in the last tile (rows 4100 and 4900), scaled: distance 0 at the
    // first of them.
    for row in [4100, 4900] {
        for p in 0..d {
            train[row * d + p] = 3.0 * queries[7 * d + p];
        }
    }
    let (t, q) = (Rows::new(&train, d).unwrap(), Rows::new(&queries, d).unwrap());
    let unit = |x: &[f32]| {
        let n = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        x.iter().map(|&v| v as f64 / n).collect::<Vec<f64>>()
    };
    let bank: Vec<Vec<f64>> = t.iter().map(unit).collect();
    let got = nearest(t, q).unwrap();
    for (i, qi) in q.iter().enumerate() {
        let u = unit(qi);
        let d: Vec<f64> = bank.iter().map(|b| b.iter().zip(&u).map(|(a, b)| (a - b) * (a - b)).sum()).collect();
        let best = d.iter().copied().fold(f64::INFINITY, f64::min);
        let (j, dj) = got[i];
        // The row found is at the smallest distance (ties within f32 rounding either way).
        assert!((dj - best).abs() < 1e-5 && (d[j] - best).abs() < 1e-5, "query {i}: row {j} at {dj}, the nearest at {best}");
    }
    assert_eq!(got[7].0, 4100, "the first of two equal rows");
    assert!(got[7].1 < 1e-6);
    assert!(nearest(Rows::new(&[], d).unwrap(), q).is_err(), "no training row to be nearest");
}

#[test]
fn blocked_scores_equal_one_sample_at_a_time() {
    let (d, classes) = (6, 3);
    let (train, queries) = (values(900 * d, 0.9), values(1100 * d, 2.2));
    let labels: Vec<usize> = (0..900).map(|i| i % classes).collect();
    let (t, q) = (Rows::new(&train, d).unwrap(), Rows::new(&queries, d).unwrap());
    let g = ClassGaussians::fit(t, &labels, classes).unwrap();
    let last = Linear::new(values(classes * d, 4.0), values(classes, 5.0), d).unwrap();
    let vim = Vim::fit(t, &last, 3).unwrap();
    let (m, r, v) = (mahalanobis(&g, q).unwrap(), rmds(&g, q).unwrap(), vim.scores(q).unwrap());
    let same = |what: &str, a: f64, b: f64| assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{what}: {a} alone, {b} in a block");
    for (i, x) in q.iter().enumerate() {
        let one = Rows::new(x, d).unwrap();
        same(&format!("mahalanobis {i}"), mahalanobis(&g, one).unwrap()[0], m[i]);
        same(&format!("rmds {i}"), rmds(&g, one).unwrap()[0], r[i]);
        same(&format!("vim {i}"), vim.scores(one).unwrap()[0], v[i]);
    }
}
