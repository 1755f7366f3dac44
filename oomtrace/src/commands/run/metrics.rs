//! `--metrics ADDR`: a minimal HTTP/1.1 server for `GET /metrics`, on tasks
//! of the run's runtime. The event loop never waits on a scraper: each
//! connection has its own task, a bounded request head and a deadline, and
//! connections past [`Limits::connections`] are closed at once.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use oomtrace_core::output::metrics::{Exposition, Format};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinHandle,
};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of request line and headers; a larger request gets 431.
    pub request_bytes: usize,
    /// For the whole exchange: a client slower than this is dropped.
    pub deadline: Duration,
    /// Scrapes served at once.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_bytes: 8 * 1024,
            deadline: Duration::from_secs(10),
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

/// Serves `exposition` on `listener` until the run's runtime ends.
pub fn serve(listener: TcpListener, exposition: Exposition, limits: Limits) -> JoinHandle<()> {
    tokio::spawn(accept_loop(listener, exposition, limits))
}

async fn accept_loop(listener: TcpListener, exposition: Exposition, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, say: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(limits.deadline, exchange(stream, &exposition, limits)).await;
            drop(slot);
        });
    }
}

/// One request, one response, then the connection is closed.
async fn exchange(mut stream: TcpStream, exposition: &Exposition, limits: Limits) -> Result<()> {
    let response = match read_head(&mut stream, limits.request_bytes).await? {
        Some(head) => respond(&head, exposition),
        None => status(431, "Request Header Fields Too Large"),
    };
    stream.write_all(&response).await?;
    stream.shutdown().await?;
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
            privileges: Default::default(),
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

    /// Oversized, silent and surplus clients get an answer or are closed
    /// within the deadline, and a scrape still works after them.
    #[tokio::test]
    async fn slow_and_hostile_clients_are_bounded() {
        let limits = Limits {
            request_bytes: 256,
            deadline: Duration::from_secs(2),
            connections: 1,
        };
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = serve(listener, exposition(), limits);

        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(4096));
        let response = exchange_with(addr, huge.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 431 "), "{response}");

        // A client that sends half a request holds the only slot (the
        // kernel hands out connections in order) ...
        let mut silent = TcpStream::connect(addr).await.unwrap();
        silent.write_all(b"GET /met").await.unwrap();
        // ... so the next one is closed without an answer, before the
        // silent one's deadline ...
        let started = tokio::time::Instant::now();
        let surplus = exchange_with(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(surplus.is_empty(), "{surplus}");
        assert!(
            started.elapsed() < limits.deadline,
            "{:?}",
            started.elapsed()
        );
        // ... and the silent one is dropped at the deadline.
        let mut rest = Vec::new();
        let _ = silent.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "{}", text(&rest));
        assert!(started.elapsed() < limits.deadline * 4);

        let ok = exchange_with(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        server.abort();
    }
}
