//! `--metrics ADDR`: a minimal HTTP/1.1 server for `GET /metrics`, on tasks
//! of the run's runtime. The event loop never waits on a scraper, and no
//! client can starve the scraper: each connection has its own task and must
//! send its request head, bounded in bytes, within a short deadline. When
//! all [`Limits::connections`] slots are taken, a new connection evicts the
//! oldest one still sending its head (a half-sent request costs a client
//! nothing, so holding one earns no slot); one being answered is kept (its
//! write has a deadline of its own), and only when every slot is answering
//! is the new connection closed at once.
use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result};
use oomtrace_core::output::metrics::{Exposition, Format};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::{AbortHandle, JoinHandle},
    time::timeout,
};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of request line and headers; a larger request gets 431.
    pub request_bytes: usize,
    /// To send the request head: a client slower than this is dropped.
    pub head_deadline: Duration,
    /// To take the response: a client that reads slower is dropped.
    pub write_deadline: Duration,
    /// Connections served at once.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_bytes: 8 * 1024,
            // A scraper sends its head in one packet, at once.
            head_deadline: Duration::from_secs(2),
            write_deadline: Duration::from_secs(10),
            connections: 8,
        }
    }
}

/// Binds `addr` now, so that a bad or busy address fails the run before
/// tracing starts. Needs the runtime.
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("--metrics: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

/// Serves `exposition` on `listener` until the run's runtime ends (or the
/// handle is aborted: its connections are closed with it).
pub fn serve(listener: TcpListener, exposition: Exposition, limits: Limits) -> JoinHandle<()> {
    tokio::spawn(accept_loop(listener, exposition, limits))
}

/// A connection's task, closed when dropped, and whether it is still
/// sending its request head.
struct Connection {
    task: AbortHandle,
    sending_head: Arc<AtomicBool>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, exposition: Exposition, limits: Limits) {
    // Oldest first.
    let mut open: VecDeque<Connection> = VecDeque::with_capacity(limits.connections);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, say: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        open.retain(|c| !c.task.is_finished());
        if open.len() >= limits.connections && !evict_oldest_sending_head(&mut open) {
            continue; // every slot is answering: this one is closed at once
        }
        let sending_head = Arc::new(AtomicBool::new(true));
        let task = tokio::spawn(exchange(
            stream,
            exposition.clone(),
            limits,
            sending_head.clone(),
        ));
        open.push_back(Connection {
            task: task.abort_handle(),
            sending_head,
        });
    }
}

/// Closes the oldest connection that has not sent its whole request head;
/// false when there is none.
fn evict_oldest_sending_head(open: &mut VecDeque<Connection>) -> bool {
    let oldest = open
        .iter()
        .position(|c| c.sending_head.load(Ordering::Acquire));
    oldest.and_then(|i| open.remove(i)).is_some()
}

/// One request, one response, then the connection is closed.
async fn exchange(
    mut stream: TcpStream,
    exposition: Exposition,
    limits: Limits,
    sending_head: Arc<AtomicBool>,
) -> Result<()> {
    let head = timeout(
        limits.head_deadline,
        read_head(&mut stream, limits.request_bytes),
    )
    .await??;
    sending_head.store(false, Ordering::Release);
    let response = match head {
        Some(head) => respond(&head, &exposition),
        None => status(431, "Request Header Fields Too Large"),
    };
    timeout(limits.write_deadline, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await??;
    Ok(())
}

/// The request line and headers, up to the blank line; `None` when they
/// do not fit in `max` bytes. A body is never read (GET has none).
async fn read_head(stream: &mut TcpStream, max: usize) -> Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "connection closed mid-request");
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            head.truncate(end);
            return Ok((end <= max).then_some(head));
        }
        if head.len() > max {
            return Ok(None);
        }
    }
}

/// The response to a request head: the metrics for `GET /metrics` (`HEAD`
/// too, without the body), else the fitting error.
pub fn respond(head: &[u8], exposition: &Exposition) -> Vec<u8> {
    let Ok(head) = std::str::from_utf8(head) else {
        return status(400, "Bad Request");
    };
    let mut lines = head.split("\r\n");
    let request: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let [method, target, version] = request[..] else {
        return status(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return status(505, "HTTP Version Not Supported");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return status(404, "Not Found");
    }
    if method != "GET" && method != "HEAD" {
        return status(405, "Method Not Allowed");
    }
    let accept = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("accept")
            .then(|| value.trim())
    });
    let format = Format::negotiate(accept);
    let body = exposition.render(format);
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        format.content_type(),
        body.len()
    )
    .into_bytes();
    if method == "GET" {
        response.extend_from_slice(body.as_bytes());
    }
    response
}

fn status(code: u16, reason: &str) -> Vec<u8> {
    let body = format!("{code} {reason}\n");
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use oomtrace_core::{
        base::Envelope,
        output::{StartRecord, metrics::Metrics},
    };

    use super::*;

    fn exposition() -> Exposition {
        Metrics::new(&StartRecord {
            envelope: Envelope::now("start"),
            backend: "tracepoint",
            kernel_release: "6.18.0",
            hooks: &[],
            unavailable_fields: &[],
            cgroups: vec![],
            kernel_report: true,
            oom_score_adj: None,
            nice: None,
            privileges: Default::default(),
            recovery: None,
        })
        .exposition()
    }

    fn text(response: &[u8]) -> String {
        String::from_utf8(response.to_vec()).unwrap()
    }

    #[test]
    fn get_metrics_in_the_format_asked_for() {
        let e = exposition();
        let plain = text(&respond(b"GET /metrics HTTP/1.1\r\nHost: x", &e));
        assert!(plain.starts_with("HTTP/1.1 200 OK\r\n"), "{plain}");
        assert!(
            plain.contains("Content-Type: text/plain; version=0.0.4"),
            "{plain}"
        );
        assert!(plain.contains("\r\n\r\n# HELP "), "{plain}");
        let (head, body) = plain.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{plain}"
        );

        let open = text(&respond(
            b"GET /metrics?x=1 HTTP/1.1\r\nACCEPT: application/openmetrics-text;version=1.0.0",
            &e,
        ));
        assert!(
            open.contains("Content-Type: application/openmetrics-text"),
            "{open}"
        );
        assert!(open.ends_with("# EOF\n"), "{open}");

        let head_only = text(&respond(b"HEAD /metrics HTTP/1.0", &e));
        assert!(head_only.starts_with("HTTP/1.1 200 OK") && head_only.ends_with("\r\n\r\n"));
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        let e = exposition();
        for (request, code) in [
            (&b"GET / HTTP/1.1"[..], "404"),
            (b"GET /metricsx HTTP/1.1", "404"),
            (b"POST /metrics HTTP/1.1", "405"),
            (b"GET /metrics HTTP/2", "505"),
            (b"GET /metrics", "400"),
            (b"", "400"),
            (b"\xff\xfe /metrics HTTP/1.1", "400"),
        ] {
            let response = text(&respond(request, &e));
            assert!(
                response.starts_with(&format!("HTTP/1.1 {code} ")),
                "{request:?}: {response}"
            );
        }
    }

    async fn exchange_with(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        text(&response)
    }

    /// A connection that sent `part` of a request and holds.
    async fn half_sent(addr: SocketAddr, part: &[u8]) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(part).await.unwrap();
        stream
    }

    /// Sends the rest of its request on `stream`: the answer, if any.
    async fn finish(mut stream: TcpStream, rest: &[u8]) -> String {
        // The server may have closed it: then the write fails, or the read.
        let _ = stream.write_all(rest).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        text(&response)
    }

    fn serve_on_loopback(e: &Exposition, limits: Limits) -> (SocketAddr, JoinHandle<()>) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        (addr, serve(listener, e.clone(), limits))
    }

    const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\n\r\n";

    #[tokio::test]
    async fn an_oversized_request_gets_431() {
        let limits = Limits {
            request_bytes: 256,
            ..Limits::default()
        };
        let (addr, server) = serve_on_loopback(&exposition(), limits);
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(4096));
        let response = exchange_with(addr, huge.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
        server.abort();
    }

    /// All slots held by half-sent requests: a scrape takes the oldest's
    /// slot, and the others keep theirs. The deadline is far off, so only
    /// the eviction can close a connection here.
    #[tokio::test]
    async fn a_scrape_evicts_the_oldest_half_sent_request() {
        let limits = Limits {
            head_deadline: Duration::from_secs(3600),
            connections: 2,
            ..Limits::default()
        };
        let (addr, server) = serve_on_loopback(&exposition(), limits);
        let oldest = half_sent(addr, b"GET /met").await;
        let newer = half_sent(addr, b"GET /met").await;

        let scrape = exchange_with(addr, SCRAPE).await;
        assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
        let newer = finish(newer, b"rics HTTP/1.1\r\n\r\n").await;
        assert!(newer.starts_with("HTTP/1.1 200 OK\r\n"), "{newer}");
        let oldest = finish(oldest, b"rics HTTP/1.1\r\n\r\n").await;
        assert!(oldest.is_empty(), "the oldest was answered: {oldest}");
        server.abort();
    }

    /// A half-sent request alone is dropped unanswered at its deadline, and
    /// the next scrape is answered. The clock is paused: it moves only when
    /// every task waits, straight to the next timer, so the server's
    /// deadline comes before this test's (twice as long) unless it is
    /// missing.
    #[tokio::test(start_paused = true)]
    async fn a_half_sent_request_is_dropped_at_its_deadline() {
        let limits = Limits::default();
        let (addr, server) = serve_on_loopback(&exposition(), limits);
        let mut silent = half_sent(addr, b"GET /met").await;
        let mut rest = Vec::new();
        timeout(limits.head_deadline * 2, silent.read_to_end(&mut rest))
            .await
            .expect("the half-sent request was not dropped at its deadline")
            .unwrap();
        assert!(rest.is_empty(), "{}", text(&rest));

        let scrape = exchange_with(addr, SCRAPE).await;
        assert!(scrape.starts_with("HTTP/1.1 200 OK\r\n"), "{scrape}");
        server.abort();
    }

    /// Half-sent requests, many more than the slots and held open, cannot
    /// starve the scraper: it is answered, with the whole exposition.
    #[tokio::test]
    async fn held_half_requests_do_not_starve_a_scrape() {
        let e = exposition();
        let (addr, server) = serve_on_loopback(&e, Limits::default());
        let mut held = Vec::new();
        for _ in 0..64 {
            held.push(half_sent(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await);
        }
        let response = exchange_with(addr, SCRAPE).await;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no answer: {response:?}"));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, e.render(Format::PrometheusText));
        drop(held);
        server.abort();
    }
}
