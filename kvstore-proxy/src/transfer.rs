//! Objects moved between a connection and a shared directory in chunks, so that the proxy
//! never holds a whole object it only passes through (the [`wire`] protocol's raw tails).
//!
//! - [`receive_into`]: a put's tail, chunk by chunk off the connection into an
//!   [`ObjectWriter`] on a blocking thread, committed once every byte arrived. A client that
//!   dies mid-put leaves nothing behind. If a write fails (a full tmpfs), what was written
//!   is read back and the rest is collected in memory, so the object is still stored (in
//!   the store, by the caller) and nothing is lost.
//! - [`send_file`]: a file onto the connection. On Linux the kernel copies it
//!   (`sendfile(2)`, from the page cache to the socket, with no pass through this process);
//!   elsewhere [`send_file_chunks`] reads it on a blocking thread, chunk by chunk.
//!
//! The chunked paths keep at most [`DEPTH`] chunks of [`CHUNK`] bytes in flight between
//! the thread and the connection.
//!
//! [`wire`]: rukong_core::proxy::wire

use bytes::Bytes;
use rukong_core::chunks::CHUNK;
use rukong_core::proxy::shared::ObjectWriter;
use rukong_core::proxy::wire::{self, FrameError};
use std::io::{self, Read};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Chunks in flight between a blocking thread and the connection.
const DEPTH: usize = 8;

/// Where a received object went.
#[derive(Debug)]
pub(crate) enum Received {
    /// Committed under its name in the shared directory.
    Written,
    /// The directory refused it part way: the whole object, to store elsewhere.
    Held(Bytes),
}

/// An object written in pieces and made visible whole: [`ObjectWriter`].
pub(crate) trait Pieces: Send + 'static {
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes the object visible; after a failure, what was written can still be recovered.
    fn commit(&mut self) -> io::Result<()>;
    /// What the writes that succeeded wrote.
    fn recover(self) -> io::Result<Vec<u8>>;
}

impl Pieces for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        ObjectWriter::write(self, data)
    }
    fn commit(&mut self) -> io::Result<()> {
        ObjectWriter::commit(self)
    }
    fn recover(self) -> io::Result<Vec<u8>> {
        ObjectWriter::recover(self)
    }
}

/// What the blocking thread writes to.
enum Sink<P> {
    File(P),
    Spill(Vec<u8>),
}

/// Reads the `len` bytes of a put's tail off `rd` into `writer`, and commits them. An error
/// is the connection's (or the directory failed and what it held could not be read back):
/// the connection must be dropped, and nothing was committed.
pub(crate) async fn receive_into<R: AsyncRead + Unpin, P: Pieces>(
    rd: &mut R,
    writer: P,
    len: usize,
) -> Result<Received, FrameError> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(DEPTH);
    let sink = tokio::task::spawn_blocking(move || -> io::Result<Option<Received>> {
        let mut sink = Sink::File(writer);
        let mut got = 0;
        while let Some(chunk) = rx.blocking_recv() {
            got += chunk.len();
            sink = match sink {
                Sink::File(mut w) => match w.write(&chunk) {
                    Ok(()) => Sink::File(w),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot write a shared object; keeping it for the store");
                        Sink::Spill(spill(w, &chunk, len)?)
                    }
                },
                Sink::Spill(mut held) => {
                    held.extend_from_slice(&chunk);
                    Sink::Spill(held)
                }
            };
        }
        if got != len {
            return Ok(None); // the connection failed: the writer is dropped uncommitted
        }
        match sink {
            Sink::File(mut w) => match w.commit() {
                Ok(()) => Ok(Some(Received::Written)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot commit a shared object; keeping it for the store");
                    Ok(Some(Received::Held(spill(w, &[], len)?.into())))
                }
            },
            Sink::Spill(held) => Ok(Some(Received::Held(held.into()))),
        }
    });
    let mut left = len;
    let mut read = Ok(());
    while left > 0 {
        let n = left.min(CHUNK);
        let buf = match wire::read_tail(rd, n).await {
            Ok(buf) => buf,
            Err(e) => {
                read = Err(e);
                break;
            }
        };
        left -= n;
        if tx.send(buf).await.is_err() {
            break; // the thread failed: its error is below
        }
    }
    drop(tx);
    let sunk = sink.await.map_err(io::Error::other)?;
    read?;
    match sunk? {
        Some(received) => Ok(received),
        None => Err(io::Error::other("the shared-object writer stopped early").into()),
    }
}

/// What `w` wrote, read back, followed by `chunk`, with room for the rest of `len`.
fn spill<P: Pieces>(w: P, chunk: &[u8], len: usize) -> io::Result<Vec<u8>> {
    let mut held = w.recover()?;
    held.reserve_exact(len.saturating_sub(held.len()));
    held.extend_from_slice(chunk);
    Ok(held)
}

/// Writes the first `len` bytes of `file` to the socket. A file shorter than `len` (it
/// cannot be, since objects are replaced by renames, not rewritten) is an error.
#[cfg(target_os = "linux")]
pub(crate) async fn send_file(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    file: std::fs::File,
    len: u64,
) -> Result<(), FrameError> {
    /// At most this much per call, so that one transfer does not hold a runtime thread
    /// for long (the directory is a tmpfs: the kernel copies from memory).
    const STEP: u64 = 4 << 20;
    let sock: &tokio::net::TcpStream = wr.as_ref();
    let mut offset = 0u64;
    while offset < len {
        sock.writable().await?;
        let want = (len - offset).min(STEP) as usize;
        let sent = sock.try_io(tokio::io::Interest::WRITABLE, || {
            rustix::fs::sendfile(sock, &file, Some(&mut offset), want).map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the object's file is shorter than its length",
                )
                .into());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// [`send_file`] where the kernel cannot copy a file to a socket.
#[cfg(not(target_os = "linux"))]
pub(crate) async fn send_file(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    file: std::fs::File,
    len: u64,
) -> Result<(), FrameError> {
    send_file_chunks(wr, file, len).await
}

/// Writes the first `len` bytes of `file` to `wr` in chunks read on a blocking thread, and
/// flushes. A file shorter than `len` is an error.
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) async fn send_file_chunks<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut file: std::fs::File,
    len: u64,
) -> Result<(), FrameError> {
    let (tx, mut rx) = mpsc::channel::<io::Result<Vec<u8>>>(DEPTH);
    let reader = tokio::task::spawn_blocking(move || {
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; n];
            let chunk = file.read_exact(&mut buf).map(|()| buf);
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
            left -= n as u64;
        }
    });
    let mut sent = Ok(());
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Ok(c) => {
                if let Err(e) = wr.write_all(&c).await {
                    sent = Err(e);
                    break;
                }
            }
            Err(e) => {
                sent = Err(e);
                break;
            }
        }
    }
    drop(rx);
    reader.await.map_err(io::Error::other)?;
    sent?;
    wr.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rukong_core::JobId;
    use rukong_core::ids::TaskIdx;
    use rukong_core::messages::ObjectKey;
    use rukong_core::proxy::shared::SharedDir;
    use tokio::io::AsyncReadExt;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 253) as u8).collect()
    }

    #[tokio::test]
    async fn a_tail_is_committed_whole_or_not_at_all() {
        let t = tempfile::tempdir().unwrap();
        let (dir, _) = SharedDir::create(&t.path().join("o")).unwrap();
        let key = ObjectKey::for_output(&JobId::new("j"), TaskIdx(1));
        let body = data(3 * CHUNK + 17);

        let mut r = &body[..];
        let w = dir.writer(&key).unwrap().unwrap();
        let got = receive_into(&mut r, w, body.len()).await.unwrap();
        assert!(matches!(got, Received::Written));
        assert_eq!(dir.get(&key).unwrap().unwrap(), body);

        // Cut short: an error, and the old object stays as it was.
        let other = data(2 * CHUNK);
        let mut r = &other[..CHUNK + 5];
        let w = dir.writer(&key).unwrap().unwrap();
        assert!(receive_into(&mut r, w, other.len()).await.is_err());
        assert_eq!(dir.get(&key).unwrap().unwrap(), body);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("j")).unwrap().collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");

        // And back out, whole.
        let (file, len) = dir.open_object(&key).unwrap().unwrap();
        let mut out = Vec::new();
        send_file_chunks(&mut out, file, len).await.unwrap();
        assert_eq!(out, body);
        // A length past the file's end fails rather than sending short.
        let (file, len) = dir.open_object(&key).unwrap().unwrap();
        let mut out = Vec::new();
        assert!(send_file_chunks(&mut out, file, len + 1).await.is_err());

        // Onto a socket: whole, or an error for a length past the file's end.
        for extra in [0, 1] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let reader = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                got
            });
            let (_rd, mut wr) = tokio::net::TcpStream::connect(addr)
                .await
                .unwrap()
                .into_split();
            let (file, len) = dir.open_object(&key).unwrap().unwrap();
            let sent = send_file(&mut wr, file, len + extra).await;
            drop(wr);
            drop(_rd);
            let got = reader.await.unwrap();
            match extra {
                0 => {
                    sent.unwrap();
                    assert_eq!(got, body);
                }
                _ => assert!(sent.is_err(), "a short file was sent as whole"),
            }
        }
    }

    /// A directory that fills up after `room` bytes, like a full tmpfs.
    struct Filling {
        room: usize,
        held: Vec<u8>,
        fail_commit: bool,
    }

    impl Pieces for Filling {
        fn write(&mut self, data: &[u8]) -> io::Result<()> {
            if self.held.len() + data.len() > self.room {
                return Err(io::Error::other("no space left on device"));
            }
            self.held.extend_from_slice(data);
            Ok(())
        }
        fn commit(&mut self) -> io::Result<()> {
            match self.fail_commit {
                true => Err(io::Error::other("cannot rename")),
                false => Ok(()),
            }
        }
        fn recover(self) -> io::Result<Vec<u8>> {
            Ok(self.held)
        }
    }

    #[tokio::test]
    async fn a_failed_write_keeps_the_whole_object_in_memory() {
        let body = data(4 * CHUNK + 3);
        for (room, fail_commit) in [(CHUNK + 1, false), (0, false), (usize::MAX, true)] {
            let w = Filling {
                room,
                held: Vec::new(),
                fail_commit,
            };
            let mut r = &body[..];
            match receive_into(&mut r, w, body.len()).await.unwrap() {
                Received::Held(held) => assert!(held[..] == body[..], "room {room}"),
                Received::Written => panic!("a failed write was committed (room {room})"),
            }
        }
        let w = Filling {
            room: usize::MAX,
            held: Vec::new(),
            fail_commit: false,
        };
        let mut r = &body[..];
        let got = receive_into(&mut r, w, body.len()).await.unwrap();
        assert!(matches!(got, Received::Written));
    }
}
