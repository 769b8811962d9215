//! MessagePack decoding, with one nesting limit for everything rukong reads: DAG bodies,
//! stored plans and invocations, values and the proxy's frames.
//!
//! The decoder's own default (1,024 levels) lets a hostile body overflow a thread's stack
//! before it is refused; 128 is the limit JSON and YAML parsing already have.

use serde::Deserialize;

/// The deepest nesting of arrays and maps (structs and enums count) that is decoded.
pub const MAX_DEPTH: usize = 128;

/// Decodes `bytes` (as `rmp_serde::from_slice` does), refusing nesting deeper than
/// [`MAX_DEPTH`] with a "depth limit exceeded" error.
pub fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, rmp_serde::decode::Error> {
    let mut d = rmp_serde::Deserializer::from_read_ref(bytes);
    d.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut d)
}

/// As [`from_slice`], reading the encoding from `r` as it arrives (a streamed body), with
/// the same nesting limit. A declared string or byte length is read as far as `r` goes,
/// never allocated up front.
pub fn from_read<T: serde::de::DeserializeOwned>(
    r: impl std::io::Read,
) -> Result<T, rmp_serde::decode::Error> {
    let mut d = rmp_serde::Deserializer::new(r);
    d.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn nested(depth: usize) -> Vec<u8> {
        let mut b = vec![0x91; depth]; // fixarray of one element
        b.push(0xc0); // nil
        b
    }

    #[test]
    fn nesting_up_to_the_limit_decodes_and_deeper_is_refused() {
        let v: Value = from_slice(&nested(MAX_DEPTH - 1)).unwrap();
        let mut depth = 0;
        let mut at = &v;
        while let Value::Array(a) = at {
            depth += 1;
            at = &a[0];
        }
        assert_eq!(depth, MAX_DEPTH - 1);
        let err = from_slice::<Value>(&nested(100_000)).unwrap_err();
        assert!(err.to_string().contains("depth limit"), "{err}");
        let err = from_read::<Value>(&nested(100_000)[..]).unwrap_err();
        assert!(err.to_string().contains("depth limit"), "{err}");
        let v2: Value = from_read(&nested(MAX_DEPTH - 1)[..]).unwrap();
        assert_eq!(v2, v);
    }

    #[test]
    fn a_declared_length_past_the_stream_is_an_error_not_an_allocation() {
        // bin32 of 4 GiB - 1, then three bytes.
        let body = [0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(from_read::<Value>(&body[..]).is_err());
    }
}
