//! The gRPC listener: a bounded number of connections, each closed when its client stays
//! silent, and an accept loop that backs off when the process runs out of descriptors.
//!
//! tonic's own incoming stream keeps no count of connections, never closes a silent one,
//! and retries a failed `accept` at once: with the descriptors exhausted (EMFILE) the
//! listening socket stays readable, so that loop spun a core while every new client was
//! refused.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// First pause after an `accept` that failed for lack of resources; it doubles up to
/// [`MAX_BACKOFF`] while the failures go on.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between two `accept` attempts that fail for lack of resources.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The limits of the listener (`[node]` in the config).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Most connections open at once; a connection past it is closed as soon as accepted.
    pub max_connections: usize,
    /// How long a new connection may stay silent before its first bytes arrive.
    pub handshake_timeout: Duration,
    /// How long a connection may go without receiving a byte before it is closed.
    pub idle_timeout: Duration,
}

/// Accepted connections, within `limits`, as tonic's `serve_with_incoming` takes them.
/// Never yields an error: failed accepts are logged and retried (after a pause when the
/// process lacks descriptors or memory).
pub fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
) -> impl Stream<Item = Result<Connection, io::Error>> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    futures::stream::unfold(
        (listener, slots, FIRST_BACKOFF),
        move |(listener, slots, mut backoff)| async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        backoff = FIRST_BACKOFF;
                        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                            tracing::warn!(
                                %peer,
                                max = limits.max_connections,
                                "connection refused: node.max_connections are open"
                            );
                            drop(stream);
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let connection = Connection::new(stream, permit, limits);
                        return Some((Ok(connection), (listener, slots, backoff)));
                    }
                    Err(e) if lacks_resources(&e) => {
                        tracing::warn!(
                            error = %e,
                            pause = ?backoff,
                            "accept failed for lack of resources; pausing before the next"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    // The peer gave up before it was accepted (ECONNABORTED, ...): next.
                    Err(e) => tracing::debug!(error = %e, "accept failed"),
                }
            }
        },
    )
}

/// Whether a failed `accept` failed for lack of process or system resources, which
/// retrying at once cannot fix.
fn lacks_resources(e: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    e.kind() == io::ErrorKind::OutOfMemory
        || matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM))
}

/// One accepted connection: it holds its slot, and reading fails with `TimedOut` (which
/// closes it) once the client has sent nothing for the idle timeout (the handshake timeout
/// before its first bytes). Only bytes received count: a client that answers the server's
/// HTTP/2 keepalive pings is alive and keeps its connection; one that is gone does not.
pub struct Connection {
    stream: TcpStream,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, limits: ConnectionLimits) -> Self {
        Self {
            stream,
            idle_timeout: limits.idle_timeout,
            deadline: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
            _slot: slot,
        }
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + this.idle_timeout;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent nothing for the idle timeout (node.idle_timeout, \
                     node.handshake_timeout)",
                ))),
                Poll::Pending => Poll::Pending,
            },
            other @ Poll::Ready(Err(_)) => other,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lack_of_resources_pauses_the_accept_loop() {
        for code in [24, 23, 105, 12] {
            assert!(
                lacks_resources(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        // ECONNABORTED, EPROTO: the peer's problem, accept the next at once.
        for code in [103, 71] {
            assert!(
                !lacks_resources(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
    }
}
