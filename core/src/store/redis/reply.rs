//! Parsing of stream replies (`XRANGE`, `XREAD`, `XREADGROUP`) and stream ids.

use redis::Value;

/// One stream entry: its id and its field/value pairs (`None` for an entry deleted while
/// pending, which older servers report without fields).
pub(super) struct Entry {
    pub id: (u64, u64),
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Entry {
    pub fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .as_ref()?
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// `ms-seq`.
pub(super) fn parse_id(s: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(s).ok()?;
    let (ms, seq) = s.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

pub(super) fn format_id(id: (u64, u64)) -> String {
    format!("{}-{}", id.0, id.1)
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

fn entry(v: Value) -> Option<Entry> {
    let mut it = items(v).into_iter();
    let id = parse_id(&bytes(it.next()?)?)?;
    let fields = match it.next() {
        None | Some(Value::Nil) => None,
        Some(f) => {
            let mut flat = items(f).into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((bytes(k).unwrap_or_default(), bytes(v).unwrap_or_default()));
            }
            Some(pairs)
        }
    };
    Some(Entry { id, fields })
}

/// The entries of an `XRANGE` reply (or of one stream of an `XREAD` reply).
pub(super) fn entries(v: Value) -> Vec<Entry> {
    items(v).into_iter().filter_map(entry).collect()
}

/// The entries of an `XREAD`/`XREADGROUP` reply for a single stream (nil when the block
/// timed out).
pub(super) fn read_entries(v: Value) -> Vec<Entry> {
    match v {
        Value::Nil => Vec::new(),
        // RESP3: stream name → entries.
        Value::Map(m) => m.into_iter().flat_map(|(_, e)| entries(e)).collect(),
        // RESP2: [[stream name, entries], …].
        other => items(other)
            .into_iter()
            .flat_map(|s| items(s).into_iter().nth(1).map(entries).unwrap_or_default())
            .collect(),
    }
}

/// The flat array a script returned.
pub(super) fn flat(v: Value) -> Vec<Value> {
    items(v)
}

pub(super) fn as_bytes(v: Value) -> Option<Vec<u8>> {
    bytes(v)
}

pub(super) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}
