//! The connection loop of `serve`: accepting within the connection limits (all clients, and
//! each client), header and write timeouts, and the graceful shutdown on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower_service::Service as _;

use super::limit::{ConnectionClaim, ConnectionCount};
use super::{router, App, REQUEST_TIMEOUT};
use crate::config::Config;

/// How `run` treats connections, from `[serve]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time for a request's line and headers, counted from the connection's start or from the
    /// previous response, so it also ends idle kept-alive connections.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections one client (IPv4 address, IPv6 /64) may hold open at once.
    pub max_connections_per_client: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(config.serve.header_timeout_secs),
            max_connections: config.serve.max_connections,
            max_connections_per_client: config.serve.max_connections_per_client,
        }
    }
}

/// After SIGTERM, how long requests already under way may take to finish: REQUEST_TIMEOUT
/// bounds the handler, the rest is for writing the answer to a slow reader.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(REQUEST_TIMEOUT.as_secs() + 5);
/// At most one warning per this long that all connection slots are taken.
const FULL_WARNING_GAP: Duration = Duration::from_secs(60);

/// Serves until SIGINT or SIGTERM. `announce` prints the bound address (also with port 0).
///
/// Connections are served by hyper directly rather than `axum::serve`, which sets no timer and
/// so no header timeout: a client trickling its headers in a byte at a time would hold its
/// socket for ever. Beyond `max_connections`, new clients are not accepted and wait in the
/// kernel's listen queue: that costs this process no file descriptor, and the header timeout
/// frees a slot held by a stalled client within `header_timeout`.
///
/// A client (by its peer address: a forwarded address is only known after the headers) that
/// already holds `max_connections_per_client` connections has a new one closed as soon as it
/// is accepted, before it takes a slot, so one client cannot fill the slots and the listen
/// queue ahead of everyone else.
pub async fn run(app: App, listen: &str, limits: Limits, announce: bool) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}: check serve.listen or --listen"))?;
    let addr = listener.local_addr()?;
    let signal = shutdown_signal()?;
    if announce {
        eprintln!("techshack serve: listening on http://{addr}");
    }
    tracing::info!(
        "listening on {addr} (header timeout {} s, at most {} connections, {} per client)",
        limits.header_timeout.as_secs(),
        limits.max_connections,
        limits.max_connections_per_client
    );
    let router = router(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = ConnectionCount::new(limits.max_connections_per_client);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut warned_full: Option<Instant> = None;
    let mut warned_client: Option<Instant> = None;
    // The slot of a connection closed at once for being over its client's cap, kept for the
    // next one.
    let mut spare: Option<OwnedSemaphorePermit> = None;
    tokio::pin!(signal);
    loop {
        let slot = match spare
            .take()
            .map_or_else(|| slots.clone().try_acquire_owned(), Ok)
        {
            Ok(s) => s,
            Err(_) => {
                if warned_full.map_or(true, |t| t.elapsed() >= FULL_WARNING_GAP) {
                    tracing::warn!(
                        "all {} connection slots are in use; new clients wait (serve.max_connections)",
                        limits.max_connections
                    );
                    warned_full = Some(Instant::now());
                }
                tokio::select! {
                    s = slots.clone().acquire_owned() => s.context("the connection slots were closed")?,
                    _ = &mut signal => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Most likely out of file descriptors: retrying at once would spin.
                        tracing::error!("accepting a connection: {e}; retrying in 1 s (raise the open-files limit or lower serve.max_connections)");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = &mut signal => break,
                        }
                    }
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        // Reap finished connections so the set stays as large as the open ones.
        while conns.try_join_next().is_some() {}
        let Some(claim) = per_client.claim(peer.ip()) else {
            // Closed without a word: an answer would mean reading the request first, and
            // closing with it unread resets the connection anyway, so a 503 would mostly be
            // lost; dropping costs the least.
            drop(stream);
            spare = Some(slot);
            if warned_client.map_or(true, |t| t.elapsed() >= FULL_WARNING_GAP) {
                tracing::warn!(
                    "a client already holds {} connections; closing its new ones at once (serve.max_connections_per_client)",
                    limits.max_connections_per_client
                );
                warned_client = Some(Instant::now());
            }
            continue;
        };
        // A client that stops reading its responses leaves hyper blocked in a write, where no
        // header timer runs: a write that makes no progress for the header timeout ends the
        // connection, so such a client cannot keep its slot.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.header_timeout));
        conns.spawn(serve_connection(
            http.clone(),
            Box::pin(stream),
            peer,
            router.clone(),
            stop_rx.clone(),
            (slot, claim),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.try_join_next().is_some() {}
    if !conns.is_empty() {
        tracing::info!(
            "stopping: waiting up to {} s for {} open connection(s)",
            SHUTDOWN_GRACE.as_secs(),
            conns.len()
        );
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "closing {} connection(s) still busy after {} s",
            conns.len(),
            SHUTDOWN_GRACE.as_secs()
        );
        conns.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// One client connection, until it closes, times out, or shutdown ends it. `_places` (its
/// slot, and its place among its client's connections) are held for as long as it is open.
async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    stream: std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<tokio::net::TcpStream>>>,
    peer: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
    _places: (OwnedSemaphorePermit, ConnectionClaim),
) {
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        // What axum's `ConnectInfo<SocketAddr>` extractor reads.
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        router.call(req)
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return log_connection_end(r),
        _ = stop.wait_for(|&s| s) => {}
    }
    if !started.load(Ordering::Relaxed) {
        // No request was ever read whole, so none is under way: hyper would keep reading
        // headers until the header timeout, which only delays the stop.
        return;
    }
    // Lets a request under way finish and closes the connection after its response; an idle
    // kept-alive connection closes at once.
    conn.as_mut().graceful_shutdown();
    log_connection_end(conn.await);
}

fn log_connection_end(r: std::result::Result<(), hyper::Error>) {
    if let Err(e) = r {
        if e.is_timeout() {
            tracing::debug!("closed a connection that sent no complete request headers in time");
        } else {
            tracing::debug!("connection ended: {e}");
        }
    }
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed before this returns, so
/// a signal sent as soon as the address is announced stops the server cleanly instead of
/// killing it.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
