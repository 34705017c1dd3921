//! Percentiles of a sample, nearest-rank.

/// The `q`-quantile (0..=1) of `sorted`, which must be sorted ascending and non-empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn nearest_rank() {
        let sample: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile(&sample, 0.5), 500.0);
        assert_eq!(quantile(&sample, 0.99), 990.0);
        assert_eq!(quantile(&sample, 0.999), 999.0);
        assert_eq!(quantile(&sample, 1.0), 1000.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
    }
}
