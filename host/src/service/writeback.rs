//! Loads: a reader's bytes gathered into pieces worth a write and a
//! hash ([`Gather`]), and, into local files, write-behind: the kernel is asked to start
//! writing each finished stretch of the file to disk while the rest is
//! still arriving, so the `sync_all` that makes a load durable waits only
//! for the tail instead of the whole file (measured in BENCHMARKS.md: a
//! 1 GiB fsync took 1.4–1.8 s on this machine's disk).

use super::CHUNK;
use crate::adapter::ObjectReader;
use crate::error::Result;
use bytes::{Bytes, BytesMut};
use std::fs::File;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// Bytes written between two write-behind requests.
pub(super) const WRITE_BEHIND: u64 = 16 << 20;

/// Starts writing `file`'s bytes `from..to` to disk without waiting for
/// them (Linux's `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Only a hint:
/// on other systems, or if it fails, nothing happens and the final sync
/// still writes everything. Blocks while the disk's queue is full, so it
/// belongs on a blocking thread.
pub(super) fn start_writing(file: &File, from: u64, to: u64) {
    #[cfg(target_os = "linux")]
    if to > from {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
            return;
        };
        // SAFETY: a valid descriptor owned by `file` for the whole call; the
        // call reads no memory of ours.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to);
}

/// How far write-behind has gone in a file filled from its start.
#[derive(Default)]
pub(super) struct Behind {
    /// Bytes from the start already asked to be written out.
    started: u64,
}

impl Behind {
    /// Now that the file's first `done` bytes are in the kernel: the
    /// stretch to hand to [`start_writing`], once it is [`WRITE_BEHIND`]
    /// bytes or more.
    pub(super) fn due(&mut self, done: u64) -> Option<(u64, u64)> {
        (done.saturating_sub(self.started) >= WRITE_BEHIND).then(|| (std::mem::replace(&mut self.started, done), done))
    }
}

/// A tokio file written in order, asking for write-behind every
/// [`WRITE_BEHIND`] bytes; `file` is the same open file (a clone of its
/// descriptor).
pub(super) struct WriteBehind<'a> {
    out: &'a mut tokio::fs::File,
    file: Arc<File>,
    /// Bytes accepted by `out`.
    accepted: u64,
    behind: Behind,
}

impl<'a> WriteBehind<'a> {
    pub(super) fn new(out: &'a mut tokio::fs::File, file: File) -> Self {
        WriteBehind {
            out,
            file: Arc::new(file),
            accepted: 0,
            behind: Behind::default(),
        }
    }
}

impl AsyncWrite for WriteBehind<'_> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut *this.out).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            // A tokio file has one write in flight and accepts the next
            // only once it is done: what it accepted before this one is in
            // the kernel now.
            let done = this.accepted;
            this.accepted += n as u64;
            if let Some((from, to)) = this.behind.due(done) {
                let file = this.file.clone();
                // Not awaited: a hint, finished or not by the final sync.
                drop(tokio::task::spawn_blocking(move || start_writing(&file, from, to)));
            }
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().out).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().out).poll_shutdown(cx)
    }
}

/// Bytes handed to a file or the hasher at once, at least (but the last).
pub(super) const GATHER: usize = 1 << 20;

/// A reader's bytes in pieces of at least [`GATHER`] bytes (but the last
/// one). An adapter may answer in small pieces (an HTTP body arrives in
/// frames: a 1 GiB load from s3s-fs came as ~18,800 pieces, half of them
/// under 25 KiB), and each piece written to a file is a trip to the
/// blocking pool and each one hashed a wake-up of the hashing task.
pub(super) struct Gather {
    reader: Box<dyn ObjectReader>,
    ended: bool,
}

impl Gather {
    pub(super) fn new(reader: Box<dyn ObjectReader>) -> Self {
        Gather { reader, ended: false }
    }

    /// The next piece; `None` at the end. Small pieces are copied into
    /// one buffer only once a second one follows.
    pub(super) async fn next(&mut self) -> Result<Option<Bytes>> {
        let Some(first) = self.piece().await? else {
            return Ok(None);
        };
        if first.len() >= GATHER {
            return Ok(Some(first));
        }
        let Some(second) = self.piece().await? else {
            return Ok(Some(first));
        };
        let mut joined = BytesMut::with_capacity(GATHER.max(first.len() + second.len()));
        joined.extend_from_slice(&first);
        joined.extend_from_slice(&second);
        while joined.len() < GATHER {
            let Some(more) = self.piece().await? else { break };
            joined.extend_from_slice(&more);
        }
        Ok(Some(joined.freeze()))
    }

    /// The reader's next piece; `None` from its end on (an empty piece is
    /// the end, as in the adapter contract).
    async fn piece(&mut self) -> Result<Option<Bytes>> {
        if !self.ended {
            match self.reader.next_chunk(CHUNK).await? {
                Some(c) if !c.is_empty() => return Ok(Some(c)),
                _ => self.ended = true,
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::{GATHER, Gather, WRITE_BEHIND, WriteBehind, start_writing};
    use crate::adapter::ObjectReader;
    use crate::error::Result;
    use async_trait::async_trait;
    use bytes::Bytes;
    use std::collections::VecDeque;
    use tokio::io::AsyncWriteExt;

    /// Answers with the given pieces, then `None` (an empty piece too).
    struct Pieces(VecDeque<Bytes>);

    #[async_trait]
    impl ObjectReader for Pieces {
        async fn next_chunk(&mut self, _max: usize) -> Result<Option<Bytes>> {
            Ok(self.0.pop_front().filter(|p| !p.is_empty()))
        }
    }

    #[tokio::test]
    async fn small_pieces_are_gathered_big_ones_pass_untouched() {
        let data: Vec<u8> = (0..(3 * GATHER + 999)).map(|i| (i % 251) as u8).collect();
        // Uneven small pieces: 1 B to ~40 KiB.
        let mut pieces = VecDeque::new();
        let (mut at, mut k) = (0, 1usize);
        while at < data.len() {
            let n = (k * 7919 % 40_000 + 1).min(data.len() - at);
            pieces.push_back(Bytes::copy_from_slice(&data[at..at + n]));
            (at, k) = (at + n, k + 1);
        }
        let mut g = Gather::new(Box::new(Pieces(pieces)));
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Some(b) = g.next().await.unwrap() {
            sizes.push(b.len());
            got.extend_from_slice(&b);
        }
        assert!(got == data, "gathered bytes differ");
        // Every piece but the last has GATHER bytes or a little more.
        assert!((3..=4).contains(&sizes.len()), "{sizes:?}");
        let (last, full) = sizes.split_last().unwrap();
        assert!(
            full.iter().all(|&n| (GATHER..GATHER + 40_000).contains(&n)),
            "{sizes:?}"
        );
        assert!(*last > 0);
        assert!(g.next().await.unwrap().is_none(), "stays at the end");

        // A piece of GATHER or more is handed on as it is, not copied.
        let big = Bytes::from(vec![7u8; GATHER + 1]);
        let ptr = big.as_ptr();
        let mut g = Gather::new(Box::new(Pieces(VecDeque::from([big, Bytes::from_static(b"x")]))));
        assert_eq!(g.next().await.unwrap().unwrap().as_ptr(), ptr);
        assert_eq!(&g.next().await.unwrap().unwrap()[..], b"x");
        assert!(g.next().await.unwrap().is_none());
        // An empty piece ends the stream, as in the adapter contract.
        let mut g = Gather::new(Box::new(Pieces(VecDeque::from([
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"never"),
        ]))));
        assert_eq!(&g.next().await.unwrap().unwrap()[..], b"ab");
        assert!(g.next().await.unwrap().is_none());
    }

    /// Bytes through [`WriteBehind`] land as written, across several
    /// write-behind requests and an uneven tail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_behind_without_changing_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut out = tokio::fs::File::create(&path).await.unwrap();
        out.set_max_buf_size(4 << 20);
        let clone = out.try_clone().await.unwrap().into_std().await;
        let data: Vec<u8> = (0..(3 * WRITE_BEHIND as usize + 12_345))
            .map(|i| (i * 7 + i / 4093) as u8)
            .collect();
        let mut w = WriteBehind::new(&mut out, clone);
        for piece in data.chunks((4 << 20) - 1) {
            w.write_all(piece).await.unwrap();
        }
        w.flush().await.unwrap();
        assert!(
            w.behind.started >= 2 * WRITE_BEHIND,
            "asked for write-behind up to {}",
            w.behind.started
        );
        assert_eq!(w.accepted, data.len() as u64);
        out.sync_all().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        // A range past the end, or empty, is no error.
        let f = std::fs::File::open(&path).unwrap();
        start_writing(&f, 0, 1 << 40);
        start_writing(&f, 5, 5);
    }
}
