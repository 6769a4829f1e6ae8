//! Non-blocking socket I/O for the native transport: `recv` into a caller's buffer, `sendmsg`
//! at once with the unsent tail queued here, and flushing that queue when the socket becomes
//! writable again.
//!
//! Owns the system calls only. It never blocks and never decides anything about the protocol:
//! end of stream, "would block" and every OS error come back as values ([`Received`],
//! `io::Result`), never as panics, and the caller (the Python transport, driven by the event
//! loop's readiness callbacks) decides what they mean for the connection.
//!
//! The file descriptor is borrowed: the Python socket object that the transport keeps owns
//! it and closes it after [`SocketIo::close`], which makes every later call fail with `EBADF`
//! instead of reaching a descriptor number the process may have reused.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

/// Most buffers passed to one `sendmsg` call (Linux's `UIO_MAXIOV` is 1024; a queue rarely
/// holds more than a few, and 64 keeps the `iovec` array on the stack).
const MAX_IOVECS: usize = 64;

#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
// Elsewhere SIGPIPE is ignored by CPython at startup, so EPIPE comes back as an error.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

/// What one `recv` call gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// This many bytes (at least one).
    Data(usize),
    /// The peer closed its side: no more data will come.
    Eof,
    /// Nothing to read now (`EAGAIN`): the readiness event was spurious.
    WouldBlock,
}

/// One connected, non-blocking stream socket (TCP or Unix) and the bytes not sent yet.
#[derive(Debug)]
pub struct SocketIo {
    /// The descriptor, or -1 after [`close`](Self::close).
    fd: RawFd,
    /// Bytes the kernel did not take yet, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// How much of `queue.front()` was sent already.
    sent: usize,
    /// Total bytes in `queue` not sent yet.
    pending: usize,
}

fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

impl SocketIo {
    /// Wrap `fd`, a connected stream socket in non-blocking mode, borrowed (see the module
    /// documentation).
    pub fn new(fd: RawFd) -> Self {
        Self {
            fd,
            queue: VecDeque::new(),
            sent: 0,
            pending: 0,
        }
    }

    /// The descriptor, -1 once closed.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Bytes queued and not sent yet.
    pub fn pending(&self) -> usize {
        self.pending
    }

    fn open_fd(&self) -> io::Result<RawFd> {
        if self.fd < 0 {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        } else {
            Ok(self.fd)
        }
    }

    /// One `recv` into `buf`.
    ///
    /// # Errors
    ///
    /// The OS error of `recv` other than `EAGAIN`/`EINTR` (`ECONNRESET`...), `EBADF` once
    /// closed.
    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<Received> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
        unsafe { self.recv_raw(buf.as_mut_ptr(), buf.len()) }
    }

    /// One `recv` into the `len` bytes at `ptr`, which may be uninitialised.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for writes of `len` bytes for the duration of the call.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub unsafe fn recv_raw(&mut self, ptr: *mut u8, len: usize) -> io::Result<Received> {
        let fd = self.open_fd()?;
        if len == 0 {
            return Ok(Received::WouldBlock);
        }
        // SAFETY: the caller guarantees `ptr` is writable for `len` bytes; `recv` writes at
        // most `len` bytes there and keeps no reference after it returns.
        let result = retry_eintr(|| unsafe { libc::recv(fd, ptr.cast(), len, 0) });
        match result {
            Ok(0) => Ok(Received::Eof),
            // `recv` never reports more than `len`; the bound makes `buf[..n]` safe regardless.
            Ok(n) => Ok(Received::Data(n.min(len))),
            Err(err) if would_block(&err) => Ok(Received::WouldBlock),
            Err(err) => Err(err),
        }
    }

    /// Send `bufs` (in order) at once if nothing is queued, else queue them behind what is.
    /// Returns whether everything is sent; if not, the rest is queued and the caller waits
    /// for the socket to be writable, then calls [`flush`](Self::flush).
    ///
    /// # Errors
    ///
    /// The OS error of `sendmsg` other than `EAGAIN`/`EINTR` (`EPIPE`, `ECONNRESET`...),
    /// `EBADF` once closed; nothing is queued then.
    pub fn write(&mut self, bufs: &[&[u8]]) -> io::Result<bool> {
        let fd = self.open_fd()?;
        let mut sent = 0;
        if self.queue.is_empty() {
            sent = send_vectored(fd, bufs.iter().copied())?;
        }
        // Queue what the kernel did not take (all of it if something was queued already).
        for buf in bufs {
            if sent >= buf.len() {
                sent -= buf.len();
                continue;
            }
            let tail = &buf[sent..];
            sent = 0;
            self.pending += tail.len();
            self.queue.push_back(tail.to_vec());
        }
        Ok(self.queue.is_empty())
    }

    /// Send what is queued, until the queue is empty or the kernel takes no more. Returns
    /// whether the queue is empty.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write); the queue is left as it was.
    pub fn flush(&mut self) -> io::Result<bool> {
        let fd = self.open_fd()?;
        while !self.queue.is_empty() {
            let skip = self.sent;
            let batch = || {
                self.queue
                    .iter()
                    .take(MAX_IOVECS)
                    .enumerate()
                    .map(move |(i, buf)| if i == 0 { &buf[skip..] } else { &buf[..] })
            };
            let offered: usize = batch().map(<[u8]>::len).sum();
            let sent = send_vectored(fd, batch())?;
            self.consume(sent);
            if sent < offered {
                // The kernel took less than it was offered: it is full for now.
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Drop the first `n` bytes of the queue, which the kernel took.
    fn consume(&mut self, mut n: usize) {
        self.pending -= n;
        while n > 0 {
            let Some(front) = self.queue.front() else {
                return; // not reached: `pending` counts the queue
            };
            let left = front.len() - self.sent;
            if n < left {
                self.sent += n;
                return;
            }
            n -= left;
            self.sent = 0;
            self.queue.pop_front();
        }
    }

    /// Half-close: send FIN after what the kernel holds (`shutdown(SHUT_WR)`). Call it once
    /// the queue is empty.
    ///
    /// # Errors
    ///
    /// The OS error of `shutdown` (`ENOTCONN` when the peer reset the connection), `EBADF`
    /// once closed.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        let fd = self.open_fd()?;
        // SAFETY: `shutdown` takes a descriptor number and no memory.
        if unsafe { libc::shutdown(fd, libc::SHUT_WR) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Forget the descriptor and drop what is queued; later calls fail with `EBADF`. The
    /// owner of the descriptor closes it afterwards.
    pub fn close(&mut self) {
        self.fd = -1;
        self.queue = VecDeque::new();
        self.sent = 0;
        self.pending = 0;
    }
}

/// One `sendmsg` of `bufs` (at most [`MAX_IOVECS`]); returns how many bytes the kernel took,
/// 0 when it would block.
fn send_vectored<'a>(fd: RawFd, bufs: impl Iterator<Item = &'a [u8]>) -> io::Result<usize> {
    let mut iovecs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOVECS];
    let mut count = 0;
    for buf in bufs.filter(|buf| !buf.is_empty()).take(MAX_IOVECS) {
        iovecs[count] = libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        count += 1;
    }
    if count == 0 {
        return Ok(0);
    }
    // SAFETY: an all-zero `msghdr` is valid (no name, no control data); the fields set below
    // point at `iovecs`, which lives until the call returns.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iovecs.as_mut_ptr();
    // The field's type differs between platforms (usize on glibc, c_int on musl and BSDs).
    #[allow(clippy::useless_conversion, clippy::cast_possible_truncation)]
    {
        msg.msg_iovlen = count as _;
    }
    // SAFETY: the first `count` iovecs point at live slices borrowed for this call, which the
    // kernel only reads (`iov_base` is `*mut` by C's signature only).
    let result = retry_eintr(|| unsafe { libc::sendmsg(fd, &raw const msg, SEND_FLAGS) });
    match result {
        Ok(n) => Ok(n),
        Err(err) if would_block(&err) => Ok(0),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// A connected pair of non-blocking Unix stream sockets.
    fn pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors `socketpair` writes.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        // SAFETY: `socketpair` succeeded: both descriptors are new and owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn read_all(io: &mut SocketIo) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0; 1 << 16];
        while let Received::Data(n) = io.recv(&mut buf).unwrap() {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn write_then_recv() {
        let (a, b) = pair();
        let mut left = SocketIo::new(a.as_raw_fd());
        let mut right = SocketIo::new(b.as_raw_fd());
        let mut buf = [0; 16];
        assert_eq!(right.recv(&mut buf).unwrap(), Received::WouldBlock);
        assert!(left.write(&[b"hello ", b"", b"world"]).unwrap());
        assert_eq!(left.pending(), 0);
        assert_eq!(right.recv(&mut buf).unwrap(), Received::Data(11));
        assert_eq!(&buf[..11], b"hello world");
        // An empty buffer reads nothing.
        assert_eq!(right.recv(&mut []).unwrap(), Received::WouldBlock);
    }

    #[test]
    fn queue_when_the_kernel_is_full_then_flush() {
        let (a, b) = pair();
        let mut left = SocketIo::new(a.as_raw_fd());
        let mut right = SocketIo::new(b.as_raw_fd());
        let chunk: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let mut expected = Vec::new();
        // Fill the socket buffers until a write is queued, then queue more behind it.
        let mut writes = 0;
        while left.write(&[&chunk]).unwrap() {
            expected.extend_from_slice(&chunk);
            writes += 1;
            assert!(writes < 1000, "the socket never filled up");
        }
        expected.extend_from_slice(&chunk);
        assert!(left.pending() > 0);
        assert!(!left.write(&[b"tail"]).unwrap());
        expected.extend_from_slice(b"tail");
        let mut received = Vec::new();
        while !left.flush().unwrap() {
            received.extend(read_all(&mut right));
        }
        assert_eq!(left.pending(), 0);
        received.extend(read_all(&mut right));
        assert_eq!(received, expected);
        // Flushing an empty queue sends nothing.
        assert!(left.flush().unwrap());
    }

    #[test]
    fn many_small_queued_writes_are_flushed_in_batches() {
        let (a, b) = pair();
        let mut left = SocketIo::new(a.as_raw_fd());
        let mut right = SocketIo::new(b.as_raw_fd());
        let big = vec![7u8; 1 << 20];
        while left.write(&[&big]).unwrap() {}
        // More queued buffers than one sendmsg takes.
        for i in 0..200u8 {
            assert!(!left.write(&[&[i]]).unwrap());
        }
        let mut received = Vec::new();
        while !left.flush().unwrap() {
            received.extend(read_all(&mut right));
        }
        received.extend(read_all(&mut right));
        let tail: Vec<u8> = (0..200u8).collect();
        assert!(received.ends_with(&tail));
    }

    #[test]
    fn eof_and_broken_pipe_are_values() {
        let (a, b) = pair();
        let mut left = SocketIo::new(a.as_raw_fd());
        drop(b);
        let mut buf = [0; 8];
        assert_eq!(left.recv(&mut buf).unwrap(), Received::Eof);
        let err = left.write(&[b"x"]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        assert_eq!(left.pending(), 0);
    }

    #[test]
    fn half_close() {
        let (a, b) = pair();
        let mut left = SocketIo::new(a.as_raw_fd());
        let mut right = SocketIo::new(b.as_raw_fd());
        assert!(left.write(&[b"bye"]).unwrap());
        left.shutdown_write().unwrap();
        let mut buf = [0; 8];
        assert_eq!(right.recv(&mut buf).unwrap(), Received::Data(3));
        assert_eq!(right.recv(&mut buf).unwrap(), Received::Eof);
        // The other direction still works.
        assert!(right.write(&[b"ok"]).unwrap());
        assert_eq!(left.recv(&mut buf).unwrap(), Received::Data(2));
    }

    #[test]
    fn closed_fails_with_ebadf() {
        let (a, _b) = pair();
        let mut io = SocketIo::new(a.as_raw_fd());
        let big = vec![0u8; 1 << 22];
        assert!(!io.write(&[&big]).unwrap());
        io.close();
        assert_eq!(io.fd(), -1);
        assert_eq!(io.pending(), 0);
        let mut buf = [0; 4];
        for err in [
            io.recv(&mut buf).unwrap_err(),
            io.write(&[b"x"]).unwrap_err(),
            io.flush().unwrap_err(),
            io.shutdown_write().unwrap_err(),
        ] {
            assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        }
    }

    #[test]
    fn shutdown_of_a_non_socket_is_an_error() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe` writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: `pipe` succeeded: both descriptors are new and owned by nobody else.
        let (r, _w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut io = SocketIo::new(r.as_raw_fd());
        assert_eq!(
            io.shutdown_write().unwrap_err().raw_os_error(),
            Some(libc::ENOTSOCK)
        );
        let mut buf = [0; 4];
        assert_eq!(
            io.recv(&mut buf).unwrap_err().raw_os_error(),
            Some(libc::ENOTSOCK)
        );
    }
}
