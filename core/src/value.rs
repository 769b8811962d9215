//! The values that flow between tasks.
//!
//! A [`Value`] is JSON plus raw bytes. Bytes are reference-counted ([`bytes::Bytes`]), so a
//! fan-out of a large blob to many children shares one buffer. On the wire (MessagePack) bytes
//! are a `bin`; in the CLI's JSON output they render as `{"bytes": N, "sha256": "hex"}`.

use bytes::Bytes;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Bytes),
    Array(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// The kind's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "object",
        }
    }

    /// An estimate of the encoded size in bytes, used for the inline threshold. Cheap for
    /// scalars, strings and bytes; linear in the number of elements for containers.
    pub fn approx_size(&self) -> usize {
        match self {
            Value::Null | Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 9,
            Value::Str(s) => s.len() + 5,
            Value::Bytes(b) => b.len() + 5,
            Value::Array(a) => 5 + a.iter().map(Value::approx_size).sum::<usize>(),
            Value::Map(m) => {
                5 + m
                    .iter()
                    .map(|(k, v)| k.len() + 5 + v.approx_size())
                    .sum::<usize>()
            }
        }
    }

    /// Converts a JSON value (from a DAG file's `args`) into a `Value`. Integers that do not
    /// fit in an i64 become floats.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::Array(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The JSON form the CLI prints (`docs/dag-format.md`): bytes render as `{"bytes": N, "sha256":
    /// hex}`; non-finite floats render as `null`.
    pub fn to_output_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Bytes(b) => {
                let mut o = serde_json::Map::new();
                o.insert("bytes".into(), J::from(b.len()));
                o.insert("sha256".into(), J::String(sha256_hex(b)));
                J::Object(o)
            }
            Value::Array(a) => J::Array(a.iter().map(Value::to_output_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.to_output_json()))
                    .collect(),
            ),
        }
    }

    /// MessagePack encoding (the wire and store form).
    pub fn to_msgpack(&self) -> Vec<u8> {
        // Sized up front (`approx_size` bounds the encoding from above for strings and
        // bytes), so a large blob is copied once, not once per doubling of the buffer.
        let mut buf = Vec::with_capacity(self.approx_size());
        // Serializing a Value into a Vec cannot fail: every variant maps to a MessagePack type.
        match rmp_serde::encode::write(&mut buf, self) {
            Ok(()) => buf,
            Err(_) => Vec::new(),
        }
    }

    pub fn from_msgpack(bytes: &[u8]) -> Result<Value, rmp_serde::decode::Error> {
        crate::msgpack::from_slice(bytes)
    }

    /// As [`Value::from_msgpack`], for an encoding held in shared [`Bytes`] (an object
    /// fetched from the store): a value that is one byte string (MessagePack `bin`, how
    /// large blobs travel) shares its bytes with `bytes` instead of copying them.
    pub fn from_msgpack_shared(bytes: &Bytes) -> Result<Value, rmp_serde::decode::Error> {
        let header = match bytes.first() {
            Some(0xc4) if bytes.len() >= 2 => Some((2, usize::from(bytes[1]))),
            Some(0xc5) if bytes.len() >= 3 => {
                Some((3, usize::from(u16::from_be_bytes([bytes[1], bytes[2]]))))
            }
            Some(0xc6) if bytes.len() >= 5 => Some((
                5,
                u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize,
            )),
            _ => None,
        };
        match header {
            Some((h, len)) if h + len == bytes.len() => Ok(Value::Bytes(bytes.slice(h..))),
            _ => Self::from_msgpack(bytes),
        }
    }
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lowercase hex of `data`.
pub fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Bytes> for Value {
    fn from(v: Bytes) -> Self {
        Value::Bytes(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::Array(a) => a.serialize(s),
            Value::Map(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value or bytes")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            out.insert(k, v);
        }
        Ok(Value::Map(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_round_trip_keeps_bytes_as_bytes() {
        let v = Value::Array(vec![
            Value::Int(-3),
            Value::Float(1.5),
            Value::Str("x".into()),
            Value::Bytes(Bytes::from_static(&[0, 1, 255])),
            Value::Null,
            Value::Map([("k".to_string(), Value::Bool(true))].into()),
        ]);
        let back = Value::from_msgpack(&v.to_msgpack()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn bytes_render_as_length_and_digest() {
        let j = Value::Bytes(Bytes::new()).to_output_json();
        assert_eq!(
            j,
            serde_json::json!({"bytes": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})
        );
    }

    #[test]
    fn huge_json_integers_become_floats() {
        let v = Value::from_json(&serde_json::json!(18446744073709551615u64));
        assert!(matches!(v, Value::Float(_)));
    }

    #[test]
    fn a_shared_decode_of_a_byte_string_shares_it_and_matches_the_copying_one() {
        for n in [0usize, 1, 255, 256, 65_535, 65_536, 300_000] {
            let v = Value::Bytes(Bytes::from(vec![7u8; n]));
            let enc = Bytes::from(v.to_msgpack());
            let shared = Value::from_msgpack_shared(&enc).unwrap();
            assert_eq!(shared, v, "{n} bytes");
            assert_eq!(shared, Value::from_msgpack(&enc).unwrap());
            if let Value::Bytes(b) = &shared
                && n > 0
            {
                let inside = enc.as_ptr() as usize..enc.as_ptr() as usize + enc.len();
                assert!(
                    inside.contains(&(b.as_ptr() as usize)),
                    "{n} bytes were copied"
                );
            }
        }
        // Anything else decodes as before, and a bad length is not taken for a blob.
        for v in [
            Value::Int(3),
            Value::Array(vec![Value::Bytes(Bytes::from_static(b"x"))]),
        ] {
            let enc = Bytes::from(v.to_msgpack());
            assert_eq!(Value::from_msgpack_shared(&enc).unwrap(), v);
        }
        let short = Bytes::from_static(&[0xc4, 9, 1, 2]);
        assert!(Value::from_msgpack_shared(&short).is_err());
    }
}
