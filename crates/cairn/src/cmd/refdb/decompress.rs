//! Decompressing what Debian ships: `.deb` members and `Packages` indexes (gzip, xz, zstd or none),
//! told apart by name or by magic bytes; and a pipe that decompresses on another thread, so a `.deb`
//! is inflated on one core while its files are hashed on another.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::Scope;

/// A compression format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// gzip (possibly several members).
    Gzip,
    /// xz (possibly several streams).
    Xz,
    /// zstd (possibly several frames).
    Zstd,
}

impl Compression {
    /// From a file or member name's extension (`data.tar.xz`, `Packages.gz`); `None` when the name
    /// has an extension this does not know.
    pub fn from_name(name: &str) -> Option<Compression> {
        Some(match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("gz") => Compression::Gzip,
            Some("xz") => Compression::Xz,
            Some("zst") => Compression::Zstd,
            Some("tar") | None => Compression::None,
            Some(_) => return None,
        })
    }

    /// From the first bytes of the data.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Decompresses all of `input` into `out`.
    pub fn decode<R: Read, W: Write>(self, input: R, out: &mut W) -> io::Result<u64> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        match self {
            Compression::None => io::copy(&mut { input }, out),
            Compression::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(input), out),
            // Several concatenated streams are allowed, as xz(1) allows them.
            Compression::Xz => io::copy(&mut lzma_rust2::XzReader::new(input, true), out),
            Compression::Zstd => {
                let mut src = BufReader::new(input);
                let mut total = 0;
                // One frame per StreamingDecoder; zstd streams may hold several.
                while !src.fill_buf()?.is_empty() {
                    let mut d = ruzstd::decoding::StreamingDecoder::new(&mut src).map_err(|e| invalid(format!("zstd: {e}")))?;
                    total += io::copy(&mut d, out)?;
                }
                Ok(total)
            }
        }
    }

    /// Decompresses a whole buffer.
    pub fn decode_all(self, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decode(input, &mut out)?;
        Ok(out)
    }
}

/// Chunks in flight between the decompressing thread and the reader.
const PIPE_DEPTH: usize = 16;
/// Size of each chunk.
const CHUNK: usize = 256 * 1024;

/// The reading end of [`pipe`].
pub struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // the writer finished
            }
        }
        let avail = self.cur.get(self.pos..).unwrap_or_default();
        let n = avail.len().min(buf.len());
        buf.get_mut(..n).unwrap_or_default().copy_from_slice(avail.get(..n).unwrap_or_default());
        self.pos += n;
        Ok(n)
    }
}

struct PipeWriter {
    tx: SyncSender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"))
    }
}

/// Decompresses `input` on a thread of `scope`; the returned reader yields the decompressed bytes,
/// then the decompression error if there was one. Dropping the reader early stops the thread.
pub fn pipe<'scope, 'env, R>(scope: &'scope Scope<'scope, 'env>, c: Compression, input: R) -> PipeReader
where
    R: Read + Send + 'scope,
{
    let (tx, rx) = sync_channel(PIPE_DEPTH);
    scope.spawn(move || {
        let mut w = PipeWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        let result = c.decode(input, &mut w).and_then(|_| w.flush());
        if let Err(e) = result {
            let _ = tx.send(Err(e)); // the reader may be gone: nothing to tell then
        }
    });
    PipeReader { rx, cur: Vec::new(), pos: 0 }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_and_magic() {
        assert_eq!(Compression::from_name("data.tar.xz"), Some(Compression::Xz));
        assert_eq!(Compression::from_name("control.tar.zst"), Some(Compression::Zstd));
        assert_eq!(Compression::from_name("data.tar"), Some(Compression::None));
        assert_eq!(Compression::from_name("data.tar.bz2"), None);
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"Package: x"), Compression::None);
    }

    #[test]
    fn pipe_carries_everything_and_the_error() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        std::thread::scope(|s| {
            let mut out = Vec::new();
            pipe(s, Compression::Gzip, gz.as_slice()).read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
            let bad = &gz[..gz.len() / 2];
            let mut out = Vec::new();
            assert!(pipe(s, Compression::Gzip, bad).read_to_end(&mut out).is_err());
        });
    }

    #[test]
    fn zstd_streams_of_several_frames() {
        let (a, b) = (vec![1u8; 100_000], b"second frame".to_vec());
        let mut z = ruzstd::encoding::compress_to_vec(a.as_slice(), ruzstd::encoding::CompressionLevel::Fastest);
        z.extend(ruzstd::encoding::compress_to_vec(b.as_slice(), ruzstd::encoding::CompressionLevel::Fastest));
        assert_eq!(Compression::sniff(&z), Compression::Zstd);
        assert_eq!(Compression::Zstd.decode_all(&z).unwrap(), [a, b].concat());
    }
}
