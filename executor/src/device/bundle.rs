//! Choosing a bundle size (WiseFuse): how many queued invocations of one function a GPU
//! slot runs as one `call_batch`.
//!
//! Pure functions over a measured profile: the latency of one launch at each batch size
//! (profile sizes 1, 2, 4, …, 64). Throughput `b / t(b)` first grows (the launch overhead
//! is shared) and then flattens or falls (the device saturates, stragglers, memory), the
//! U-shaped per-item latency curve. [`choose`] picks the size with the best throughput,
//! and prefers the smallest size within `tolerance` of it, since a bigger bundle makes its
//! first invocation wait longer for no real gain. A latency cap drops sizes whose single
//! launch is too slow.
//!
//! [`BundleConfig`] is the setting (`size: 8` or `size: "auto"`, `max_size`, `linger_ms`:
//! how long a slot may hold a partial bundle waiting for more invocations).

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The bundle-size setting: a fixed size, or `"auto"` (chosen from the profile).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BundleSize {
    Fixed(usize),
    #[default]
    Auto,
}

impl Serialize for BundleSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BundleSize::Fixed(b) => s.serialize_u64(*b as u64),
            BundleSize::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for BundleSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = BundleSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bundle size ≥ 1 or \"auto\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<BundleSize, E> {
                match usize::try_from(v) {
                    Ok(b) if b >= 1 => Ok(BundleSize::Fixed(b)),
                    _ => Err(E::custom(format!(
                        "bundle size must be ≥ 1 (or \"auto\"), got {v}"
                    ))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<BundleSize, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!(
                        "bundle size must be ≥ 1 (or \"auto\"), got {v}"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BundleSize, E> {
                if v.eq_ignore_ascii_case("auto") {
                    Ok(BundleSize::Auto)
                } else {
                    Err(E::custom(format!(
                        "bundle size must be an integer ≥ 1 or \"auto\", got {v:?}"
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// How a GPU slot bundles invocations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BundleConfig {
    pub size: BundleSize,
    /// The largest bundle `auto` may pick (and the largest profiled size).
    pub max_size: usize,
    /// How long a slot may hold a partial bundle waiting for more invocations, in ms
    /// (fractions allowed).
    #[serde(rename = "linger_ms", with = "millis")]
    pub linger: Duration,
    /// `auto` prefers the smallest size within this fraction of the best throughput.
    pub tolerance: f64,
    /// `auto` ignores sizes whose one launch takes longer than this (ms); none if unset.
    #[serde(rename = "max_latency_ms", with = "opt_millis")]
    pub max_latency: Option<Duration>,
}

impl Default for BundleConfig {
    fn default() -> Self {
        BundleConfig {
            size: BundleSize::Auto,
            max_size: 64,
            linger: Duration::from_millis(1),
            tolerance: 0.05,
            max_latency: None,
        }
    }
}

impl BundleConfig {
    /// Rejects a zero `max_size`, a fixed size of 0 and a tolerance outside [0, 1).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_size == 0 {
            return Err("bundle: max_size must be ≥ 1".to_owned());
        }
        if self.size == BundleSize::Fixed(0) {
            return Err("bundle: size must be ≥ 1 or \"auto\"".to_owned());
        }
        if !(0.0..1.0).contains(&self.tolerance) {
            return Err(format!(
                "bundle: tolerance must be in [0, 1), got {}",
                self.tolerance
            ));
        }
        Ok(())
    }

    /// The bundle size to use: the fixed one, or the [`choose`]n one for `profile`
    /// (1 while there is no profile yet).
    pub fn resolve(&self, profile: &[(usize, Duration)]) -> usize {
        match self.size {
            BundleSize::Fixed(b) => b.max(1),
            BundleSize::Auto => choose(profile, self).map_or(1, |c| c.size),
        }
    }
}

/// The sizes to profile: 1, 2, 4, … up to `max` (and `max` itself if not a power of 2).
pub fn profile_sizes(max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut b = 1usize;
    while b <= max {
        out.push(b);
        match b.checked_mul(2) {
            Some(n) => b = n,
            None => break,
        }
    }
    if max >= 1 && out.last() != Some(&max) {
        out.push(max);
    }
    out
}

/// The chosen bundle size and what the profile says about it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub size: usize,
    /// Invocations per second at this size.
    pub throughput: f64,
    /// Launch time divided by size.
    pub per_item: Duration,
    /// The best throughput over all admissible sizes.
    pub best_throughput: f64,
}

/// Mean launch latency per size (sizes of 0 dropped), sorted by size.
pub fn summarize(profile: &[(usize, Duration)]) -> Vec<(usize, Duration)> {
    let mut by_size: BTreeMap<usize, (Duration, u32)> = BTreeMap::new();
    for &(b, t) in profile.iter().filter(|(b, _)| *b > 0) {
        let e = by_size.entry(b).or_default();
        e.0 = e.0.saturating_add(t);
        e.1 += 1;
    }
    by_size
        .into_iter()
        .map(|(b, (sum, n))| (b, sum / n))
        .collect()
}

/// The bundle size that maximises throughput, preferring the smallest size within
/// `cfg.tolerance` of the best, among sizes ≤ `cfg.max_size` whose launch latency is
/// within `cfg.max_latency`. `None` when no profiled size qualifies.
pub fn choose(profile: &[(usize, Duration)], cfg: &BundleConfig) -> Option<Choice> {
    let rows: Vec<(usize, Duration, f64)> = summarize(profile)
        .into_iter()
        .filter(|(b, t)| *b <= cfg.max_size && cfg.max_latency.is_none_or(|m| *t <= m))
        .map(|(b, t)| {
            let secs = t.as_secs_f64().max(1e-9);
            (b, t, b as f64 / secs)
        })
        .collect();
    let best = rows.iter().map(|r| r.2).fold(f64::NEG_INFINITY, f64::max);
    let tol = if cfg.tolerance.is_finite() {
        cfg.tolerance.clamp(0.0, 0.999)
    } else {
        0.0
    };
    let (size, t, throughput) = rows.into_iter().find(|r| r.2 >= best * (1.0 - tol))?;
    Some(Choice {
        size,
        throughput,
        per_item: t / size as u32,
        best_throughput: best,
    })
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        super::ms_to_duration(ms).map_err(serde::de::Error::custom)
    }
}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1e3)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            Some(ms) => super::ms_to_duration(ms)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

fn ms_to_duration(ms: f64) -> Result<Duration, String> {
    if (0.0..1e12).contains(&ms) {
        Ok(Duration::from_secs_f64(ms / 1e3))
    } else {
        Err(format!(
            "a time in ms must be finite and non-negative, got {ms}"
        ))
    }
}

#[cfg(test)]
mod tests;
