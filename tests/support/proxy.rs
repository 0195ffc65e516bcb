//! A TCP proxy on 127.0.0.1 that injects network faults between a client (the operator) and a
//! server (kube-apiserver): it forwards bytes untouched (TLS passes through, so certificates and
//! identities are the real ones) until told to
//!
//! - [`FaultProxy::reset_all`]: abort every open connection with a TCP RST (SO_LINGER 0), as a
//!   crashed load balancer or a conntrack flush would;
//! - [`FaultProxy::stall`]: for a while, accept connections but forward nothing in either
//!   direction, on new and open connections alike (a black-holed link); the bytes held back are
//!   delivered afterwards, late, as TCP would after a partition heals.
//!
//! It runs on a thread and runtime of its own, so it serves whatever runtime the clients use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// Counts of what the proxy did, for the test's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub connections: u64,
    pub resets: u64,
    pub stalls: u64,
}

pub struct FaultProxy {
    addr: SocketAddr,
    /// Bumped by `reset_all`: every connection opened before the bump is aborted.
    epoch: watch::Sender<u64>,
    /// Nothing is forwarded before this instant.
    stalled_until: watch::Sender<Option<Instant>>,
    connections: Arc<AtomicU64>,
    resets: AtomicU64,
    stalls: AtomicU64,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (epoch, epoch_rx) = watch::channel(0u64);
        let (stalled_until, stall_rx) = watch::channel(None);
        let connections = Arc::new(AtomicU64::new(0));
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let counted = connections.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).unwrap();
                    let accept = async {
                        loop {
                            let Ok((client, _)) = listener.accept().await else {
                                continue;
                            };
                            counted.fetch_add(1, Ordering::SeqCst);
                            tokio::spawn(serve(
                                client,
                                upstream,
                                epoch_rx.clone(),
                                stall_rx.clone(),
                            ));
                        }
                    };
                    tokio::select! {
                        () = accept => {}
                        _ = shutdown_rx => {}
                    }
                });
                // Dropping the runtime drops every connection task and its sockets.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .unwrap();
        FaultProxy {
            addr,
            epoch,
            stalled_until,
            connections,
            resets: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT` clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Aborts every open connection with a RST; new ones are served normally.
    pub fn reset_all(&self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Forwards nothing, on open and new connections, for `duration` from now.
    pub fn stall(&self, duration: Duration) {
        self.stalls.fetch_add(1, Ordering::SeqCst);
        self.stalled_until
            .send_replace(Some(Instant::now() + duration));
    }

    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            connections: self.connections.load(Ordering::SeqCst),
            resets: self.resets.load(Ordering::SeqCst),
            stalls: self.stalls.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One proxied connection: two pumps until either side closes or a reset is ordered.
async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    mut epoch: watch::Receiver<u64>,
    stall: watch::Receiver<Option<Instant>>,
) {
    epoch.mark_unchanged();
    wait_out_stall(&stall).await;
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let reset_ordered = {
        let up = pump(&mut client_read, &mut server_write, &stall);
        let down = pump(&mut server_read, &mut client_write, &stall);
        tokio::select! {
            _ = async { tokio::join!(up, down) } => false,
            _ = epoch.changed() => true,
        }
    };
    if reset_ordered {
        // Reunited to set SO_LINGER 0 on both sockets: closing then sends a RST.
        if let (Ok(c), Ok(s)) = (
            client_read.reunite(client_write),
            server_read.reunite(server_write),
        ) {
            reset(c);
            reset(s);
        }
    }
}

/// Copies `from` to `to` until EOF, holding every chunk while the proxy is stalled.
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    stall: &watch::Receiver<Option<Instant>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        wait_out_stall(stall).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

async fn wait_out_stall(stall: &watch::Receiver<Option<Instant>>) {
    let mut stall = stall.clone();
    loop {
        let until = *stall.borrow_and_update();
        match until {
            Some(at) if at > Instant::now() => {
                // A later, longer stall ordered meanwhile is waited out too.
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    _ = stall.changed() => {}
                }
            }
            _ => return,
        }
    }
}

fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}
