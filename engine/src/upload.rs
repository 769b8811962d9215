//! DAG bodies decoded while they arrive.
//!
//! A MessagePack or compact body (a 1,000,000-task DAG is some 24 MB of it) is not
//! collected first: its chunks go, as they come off the connection, to a decoder on a
//! blocking thread, so the engine never holds the body and the DAG at once, and decoding
//! overlaps the transfer. JSON and YAML are read whole (their parsers report positions in
//! the text) and then parsed. Either way the body may be at most `max` bytes.

use bytes::Bytes;
use futures_util::StreamExt;
use rukong_core::DagError;
use rukong_core::chunks::ChunkReader;
use rukong_core::dag::DagSpec;
use std::io;
use thiserror::Error;

/// How a body is decoded, from its content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// The compact form ([`rukong_core::dag::compact::CONTENT_TYPE`]), streamed.
    Compact,
    /// MessagePack with named fields, streamed.
    Msgpack,
    /// JSON or YAML (by content type, else sniffed), read whole.
    Text,
}

impl BodyKind {
    /// The kind for a media type ([`media_type`]).
    pub fn of(ctype: &str) -> BodyKind {
        if ctype == rukong_core::dag::compact::CONTENT_TYPE {
            BodyKind::Compact
        } else if matches!(
            ctype,
            "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack"
        ) {
            BodyKind::Msgpack
        } else {
            BodyKind::Text
        }
    }
}

/// A `Content-Type` header's media type, lowercased, its parameters left out.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Why a streamed body was not decoded.
#[derive(Debug, Error)]
pub enum UploadError {
    #[error("the body is over the limit of {max} bytes (engine.max_body)")]
    TooLarge { max: usize },
    #[error("reading the body failed: {0}")]
    Read(String),
    #[error(transparent)]
    Dag(#[from] DagError),
}

/// Collects a (`Text`) body of at most `max` bytes.
pub async fn collect<E: std::fmt::Display>(
    mut body: impl futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    max: usize,
) -> Result<Vec<u8>, UploadError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| UploadError::Read(e.to_string()))?;
        if out.len().saturating_add(chunk.len()) > max {
            return Err(UploadError::TooLarge { max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Chunks waiting between the connection and the decoder: at most this many.
const DEPTH: usize = 16;

/// Decodes a streamed (`Compact` or `Msgpack`) body of at most `max` bytes as its chunks
/// arrive from `body`.
pub async fn decode_streamed<E: std::fmt::Display>(
    kind: BodyKind,
    body: impl futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    max: usize,
) -> Result<DagSpec, UploadError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(DEPTH);
    let decoder = tokio::task::spawn_blocking(move || {
        let r = ChunkReader::new(move || rx.blocking_recv());
        match kind {
            BodyKind::Compact => rukong_core::dag::CompactDag::decode_from(r),
            _ => DagSpec::from_msgpack_reader(r),
        }
    });
    let mut body = body;
    let mut total = 0usize;
    let mut failed = None;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failed = Some(UploadError::Read(e.to_string()));
                break;
            }
        };
        total = total.saturating_add(chunk.len());
        if total > max {
            failed = Some(UploadError::TooLarge { max });
            break;
        }
        if tx.send(Ok(chunk)).await.is_err() {
            break; // the decoder is done (an error, or the DAG ended before the body)
        }
    }
    if failed.is_some() {
        let _ = tx
            .send(Err(io::Error::other("the body was cut short")))
            .await;
    }
    drop(tx);
    let decoded = decoder
        .await
        .map_err(|e| UploadError::Read(format!("the decoder failed: {e}")))?;
    match failed {
        Some(e) => Err(e),
        None => Ok(decoded?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rukong_core::dag::CompactDag;

    fn spec() -> DagSpec {
        let mut yaml = String::from("name: wide\ntasks:\n  - {id: src, fn: const, args: [1]}\n");
        for i in 0..5000 {
            yaml.push_str(&format!("  - {{id: c{i}, fn: identity, deps: [src]}}\n"));
        }
        DagSpec::from_yaml_str(&yaml).unwrap()
    }

    fn chunked(
        bytes: &[u8],
        size: usize,
    ) -> impl futures_util::Stream<Item = Result<Bytes, String>> + Unpin + use<> {
        let parts: Vec<Result<Bytes, String>> = bytes
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(parts)
    }

    #[tokio::test]
    async fn streamed_bodies_decode_to_the_same_dag() {
        let s = spec();
        let compact = CompactDag::from_spec(&s).unwrap().to_msgpack();
        let got = decode_streamed(BodyKind::Compact, chunked(&compact, 777), 1 << 30)
            .await
            .unwrap();
        assert_eq!(got, s);
        let named = s.to_msgpack();
        let got = decode_streamed(BodyKind::Msgpack, chunked(&named, 4096), 1 << 30)
            .await
            .unwrap();
        assert_eq!(got, s);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_by_its_size() {
        let compact = CompactDag::from_spec(&spec()).unwrap().to_msgpack();
        let err = decode_streamed(BodyKind::Compact, chunked(&compact, 1000), 10_000)
            .await
            .unwrap_err();
        assert!(
            matches!(err, UploadError::TooLarge { max: 10_000 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_cut_or_failed_body_is_an_error_that_says_so() {
        let compact = CompactDag::from_spec(&spec()).unwrap().to_msgpack();
        let err = decode_streamed(
            BodyKind::Compact,
            chunked(&compact[..compact.len() / 2], 1000),
            1 << 30,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("compact MessagePack"), "{err}");
        let mut parts: Vec<Result<Bytes, String>> =
            vec![Ok(Bytes::copy_from_slice(&compact[..100]))];
        parts.push(Err("connection reset".into()));
        let err = decode_streamed(
            BodyKind::Compact,
            futures_util::stream::iter(parts),
            1 << 30,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("connection reset"), "{err}");
    }

    #[tokio::test]
    async fn text_bodies_are_collected_up_to_the_limit() {
        let got = collect(chunked(b"name: x\ntasks: []\n", 5), 100)
            .await
            .unwrap();
        assert_eq!(got, b"name: x\ntasks: []\n");
        let err = collect(chunked(&[b' '; 101], 10), 100).await.unwrap_err();
        assert!(matches!(err, UploadError::TooLarge { max: 100 }), "{err}");
    }

    #[test]
    fn kinds_follow_the_content_type() {
        assert_eq!(
            BodyKind::of("application/vnd.rukong.dag+msgpack"),
            BodyKind::Compact
        );
        assert_eq!(
            BodyKind::of(&media_type("Application/MsgPack; charset=x")),
            BodyKind::Msgpack
        );
        assert_eq!(BodyKind::of("application/json"), BodyKind::Text);
        assert_eq!(BodyKind::of(""), BodyKind::Text);
    }
}
