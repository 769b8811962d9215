//! Flag values for the benchmark binaries: a parsed value or a millisecond duration, with
//! an error that names the flag and repeats the usage line.

use anyhow::{Context, Result, bail};

/// `v` (the word after `flag`) parsed as a `T`.
pub fn value<T: std::str::FromStr>(flag: &str, v: Option<String>, usage: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let v = v.with_context(|| format!("{flag} needs a value\n{usage}"))?;
    v.parse::<T>()
        .map_err(|e| anyhow::anyhow!("{flag} {v}: {e}\n{usage}"))
}

/// `v` as a non-negative number of milliseconds (fractions allowed), in microseconds.
pub fn ms(flag: &str, v: Option<String>, usage: &str) -> Result<u64> {
    let x: f64 = value(flag, v, usage)?;
    if !(x.is_finite() && x >= 0.0) {
        bail!("{flag} must be a non-negative number of milliseconds, got {x}");
    }
    Ok((x * 1e3).round() as u64)
}
