//! SplitMix64: a small, seedable, dependency-free generator for simulations and seeded
//! workloads (the GPU policy simulator, the warm-up simulator, benchmarks). Not for
//! anything that needs unpredictability.

/// The SplitMix64 generator (Steele, Lea and Flood): one 64-bit state, advanced by the
/// golden-ratio increment and mixed.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponentially distributed with `rate_per_s` events per second, in microseconds (at
    /// least 1): the gap between two Poisson arrivals.
    pub fn exp_micros(&mut self, rate_per_s: f64) -> u64 {
        let u = 1.0 - self.next_f64(); // (0, 1]
        ((-u.ln() / rate_per_s) * 1e6).round().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_seeded_and_uniform_enough() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(SplitMix64::new(8).next_u64(), SplitMix64::new(7).next_u64());
        let mean = (0..10_000).map(|_| a.next_f64()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!((0..1000).all(|_| a.exp_micros(10.0) >= 1));
    }
}
