//! Byte streams that travel in chunks between a thread that reads or writes them whole
//! (a decoder, an encoder) and the code that moves them (an HTTP body), so that neither
//! side holds the whole stream.
//!
//! [`ChunkReader`] is a [`Read`] over chunks handed out by a function (a channel's receive,
//! say); [`ChunkWriter`] is a [`Write`] that hands out chunks of [`CHUNK`] bytes.
//! [`pipe`] joins the two with a bounded channel, for an encoder on one thread and a
//! sender on another.

use bytes::Bytes;
use std::io::{self, Read, Write};
use std::sync::mpsc;

/// The size of the chunks a [`ChunkWriter`] hands out.
pub const CHUNK: usize = 256 << 10;

/// A [`Read`] over the chunks `next` returns: `None` is the end of the stream, an error
/// is returned to the reader as it is.
pub struct ChunkReader<F> {
    next: F,
    cur: Bytes,
    done: bool,
    /// Bytes handed to the reader so far.
    read: u64,
}

impl<F: FnMut() -> Option<io::Result<Bytes>>> ChunkReader<F> {
    pub fn new(next: F) -> Self {
        ChunkReader {
            next,
            cur: Bytes::new(),
            done: false,
            read: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

impl<F: FnMut() -> Option<io::Result<Bytes>>> Read for ChunkReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match (self.next)() {
                Some(Ok(chunk)) => self.cur = chunk,
                Some(Err(e)) => return Err(e),
                None => self.done = true,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        self.read += n as u64;
        Ok(n)
    }
}

/// A [`Write`] that collects bytes and hands them to `send` in chunks of [`CHUNK`] bytes;
/// [`ChunkWriter::finish`] hands out the rest. A `send` that fails (the reader went away)
/// fails the write with [`io::ErrorKind::BrokenPipe`].
pub struct ChunkWriter<F> {
    send: F,
    buf: Vec<u8>,
}

impl<F: FnMut(Bytes) -> bool> ChunkWriter<F> {
    pub fn new(send: F) -> Self {
        ChunkWriter {
            send,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn hand_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        if (self.send)(Bytes::from(chunk)) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the reader of the stream went away",
            ))
        }
    }

    /// Hands out what is left.
    pub fn finish(mut self) -> io::Result<()> {
        self.hand_out()
    }
}

impl<F: FnMut(Bytes) -> bool> Write for ChunkWriter<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.hand_out()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader fed by `produce`, which runs on a thread of its own and writes the stream into
/// the writer it is given; at most `depth` chunks wait between the two. An error from
/// `produce` reaches the reader after the chunks written before it.
pub fn pipe(
    depth: usize,
    produce: impl FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static,
) -> ChunkReader<impl FnMut() -> Option<io::Result<Bytes>>> {
    let (tx, rx) = mpsc::sync_channel::<io::Result<Bytes>>(depth.max(1));
    std::thread::spawn(move || {
        let mut w = ChunkWriter::new(|chunk| tx.send(Ok(chunk)).is_ok());
        let produced = produce(&mut w);
        let r = w.finish().and(produced);
        if let Err(e) = r {
            // The reader may be gone already; then nobody needs the error.
            let _ = tx.send(Err(e));
        }
    });
    ChunkReader::new(move || rx.recv().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piped_stream_arrives_whole_and_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 7 % 251) as u8).collect();
        let expect = data.clone();
        let mut r = pipe(2, move |w| {
            for part in data.chunks(1000) {
                w.write_all(part)?;
            }
            Ok(())
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, expect);
        assert_eq!(r.bytes_read(), expect.len() as u64);
    }

    #[test]
    fn a_failed_producer_fails_the_reader_after_what_it_wrote() {
        let mut r = pipe(1, |w| {
            w.write_all(b"head")?;
            Err(io::Error::other("encoder failed"))
        });
        let mut got = Vec::new();
        let err = r.read_to_end(&mut got).unwrap_err();
        assert_eq!(err.to_string(), "encoder failed");
        assert_eq!(got, b"head");
    }

    #[test]
    fn a_writer_whose_reader_left_gets_a_broken_pipe() {
        let mut w = ChunkWriter::new(|_| false);
        let err = w.write_all(&vec![0u8; CHUNK]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn chunks_from_a_function_read_across_boundaries() {
        let mut parts = vec![
            Ok(Bytes::from_static(b"ab")),
            Ok(Bytes::new()),
            Ok(Bytes::from_static(b"cde")),
        ]
        .into_iter();
        let mut r = ChunkReader::new(move || parts.next());
        let mut buf = [0u8; 4];
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        r.read_exact(&mut buf[..3]).unwrap();
        assert_eq!(&buf[..3], b"cde");
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }
}
