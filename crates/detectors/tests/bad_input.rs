//! Inputs that do not fit get an error saying what, never NaN scores or a panic.

use oodlab_detectors::{ash, gen, knn, percentile, Ash, ClassGaussians, DetectorError, Linear, Rows, Vim};

fn message<T: std::fmt::Debug>(r: Result<T, DetectorError>) -> String {
    match r.expect_err("an error") {
        DetectorError::Invalid(m) => m,
    }
}

#[test]
fn shapes_and_parameters_that_do_not_fit_are_refused_with_what_was_expected() {
    assert!(message(Rows::new(&[1.0; 7], 3)).contains("7 values are not whole rows of 3"));
    assert!(message(Linear::new(vec![0.0; 6], vec![0.0; 2], 4)).contains("6 weights and 2 biases"));
    let feats = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
    let rows = Rows::new(&feats, 2).unwrap();
    assert!(message(gen(rows, 0.0, 2)).contains("gamma > 0"));
    assert!(message(knn(rows, rows, 4)).contains("1 <= k <= 3"));
    let last = Linear::new(vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0], 2).unwrap();
    assert!(message(ash(rows, &last, Ash::B { percentile: 100.0 })).contains("keeping at least one"));
    assert!(message(percentile(&[], 50.0)).contains("needs values"));
    assert!(message(ClassGaussians::fit(rows, &[0, 0, 0], 2)).contains("class 1 has no training features"));
    assert!(message(ClassGaussians::fit(rows, &[0, 1, 2], 2)).contains("label 2 is not one of the 2 classes"));
    let wide = [1.0f32; 9];
    assert!(message(Vim::fit(Rows::new(&wide, 3).unwrap(), &last, 1)).contains("features of 3 values, but the last layer takes 2"));
}

#[test]
fn knn_of_a_hand_worked_example() {
    // Unit vectors at 0°, 90° and 180°; the query at 45°: squared distances 2 - 2 cos(45°) to the
    // first two, 2 + 2 cos(45°) to the third.
    let train = [1.0f32, 0.0, 0.0, 2.0, -3.0, 0.0];
    let query = [5.0f32, 5.0];
    let (t, q) = (Rows::new(&train, 2).unwrap(), Rows::new(&query, 2).unwrap());
    let c = std::f64::consts::FRAC_1_SQRT_2;
    for (k, want) in [(1, 2.0 - 2.0 * c), (2, 2.0 - 2.0 * c), (3, 2.0 + 2.0 * c)] {
        let got = knn(t, q, k).unwrap()[0];
        // Dot products in f32, as faiss's flat index.
        assert!((got + want).abs() < 1e-6, "k {k}: {got}, expected {}", -want);
    }
}
