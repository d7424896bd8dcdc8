//! A latency proxy for the benchmark (`make bench`): it stands between the
//! AWS clients and moto on 127.0.0.1 and holds every whole HTTP request for
//! a fixed delay before passing it on, to stand in for the round trip to a
//! real AWS endpoint. Both tools under test go through it.
//!
//! - Client connections are kept alive (HTTP/1.1), as they are to AWS, so
//!   a client that reuses connections gains what it would gain there.
//! - TCP_NODELAY on both sides and TCP_QUICKACK after every read, so that
//!   Nagle's algorithm and delayed ACKs (40 ms on Linux) do not add to the
//!   small delays being measured.
//! - Every request is counted by service, action and Region (from the
//!   SigV4 scope and the X-Amz-Target header or the query `Action=`).
//!
//! Control, on the same port (paths no AWS API uses):
//! - `POST /__proxy/delay?ms=N` sets the delay;
//! - `GET /__proxy/stats` returns `{"delay_ms", "connections", "requests", "calls": {"service:Action@region": n}}`
//!   (connections: client connections opened, counted at their first AWS request);
//! - `POST /__proxy/reset` zeroes the counters.
//!
//! Usage: latency_proxy UPSTREAM_PORT [DELAY_MS]   (prints the port it listens on)

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Stats {
    delay_ms: AtomicU64,
    connections: AtomicU64,
    requests: AtomicU64,
    calls: Mutex<BTreeMap<String, u64>>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // Exit with the process that started us (the benchmark harness).
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    let mut args = std::env::args().skip(1);
    let upstream_port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: latency_proxy UPSTREAM_PORT [DELAY_MS]");
    let delay: u64 = args.next().and_then(|d| d.parse().ok()).unwrap_or(0);
    let upstream = format!("127.0.0.1:{upstream_port}");
    let stats = Arc::new(Stats::default());
    stats.delay_ms.store(delay, Ordering::Relaxed);

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    loop {
        let (client, _) = listener.accept().await?;
        let (stats, upstream) = (stats.clone(), upstream.clone());
        tokio::spawn(async move {
            let _ = serve(client, &upstream, &stats).await;
        });
    }
}

/// Serve one client connection: request after request until it closes.
async fn serve(mut client: TcpStream, upstream: &str, stats: &Stats) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut buf = Vec::new();
    // Connections are counted by their first AWS request, so that the
    // harness's own control requests never count.
    let mut counted = false;
    loop {
        let Some(request) = read_message(&mut client, &mut buf).await? else {
            return Ok(());
        };
        let head = head_of(&request);
        let request_line = head.lines().next().unwrap_or("");
        if request_line.contains(" /__proxy/") {
            control(&mut client, request_line, stats).await?;
            continue;
        }
        if !counted {
            stats.connections.fetch_add(1, Ordering::Relaxed);
            counted = true;
        }
        stats.requests.fetch_add(1, Ordering::Relaxed);
        *stats
            .calls
            .lock()
            .unwrap()
            .entry(call_name(&request))
            .or_default() += 1;
        let delay = stats.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let response = forward(upstream, &request).await?;
        client.write_all(&response).await?;
    }
}

/// Read one whole HTTP/1.1 message (head and Content-Length body) from a
/// kept-alive connection; `None` when the client closed between requests.
async fn read_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let len = content_length(&head_of(&buf[..end + 4])).unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let rest = buf.split_off(end + 4 + len);
                return Ok(Some(std::mem::replace(buf, rest)));
            }
        }
        let n = stream.read(&mut chunk).await?;
        quickack(stream);
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Send the request to moto on a fresh connection (`Connection: close`),
/// read the whole answer, and frame it for a kept-alive client.
async fn forward(upstream: &str, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    up.write_all(&with_headers(request, None, "close")).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    let end = find(&response, b"\r\n\r\n").ok_or(std::io::ErrorKind::InvalidData)? + 4;
    let head = head_of(&response[..end]);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let length = if chunked || content_length(&head).is_some() {
        None
    } else {
        Some(response.len() - end)
    };
    let mut out = with_headers(&response, length, "keep-alive");
    if out.starts_with(b"HTTP/1.0") {
        out[5..8].copy_from_slice(b"1.1");
    }
    Ok(out)
}

async fn control(client: &mut TcpStream, request_line: &str, stats: &Stats) -> std::io::Result<()> {
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let body = if let Some(ms) = path.strip_prefix("/__proxy/delay?ms=") {
        let ms: u64 = ms.parse().unwrap_or(0);
        stats.delay_ms.store(ms, Ordering::Relaxed);
        format!("{{\"delay_ms\":{ms}}}")
    } else if path == "/__proxy/reset" {
        stats.requests.store(0, Ordering::Relaxed);
        stats.connections.store(0, Ordering::Relaxed);
        stats.calls.lock().unwrap().clear();
        "{}".to_string()
    } else {
        let calls: Vec<String> = stats
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!(
            "{{\"delay_ms\":{},\"connections\":{},\"requests\":{},\"calls\":{{{}}}}}",
            stats.delay_ms.load(Ordering::Relaxed),
            stats.connections.load(Ordering::Relaxed),
            stats.requests.load(Ordering::Relaxed),
            calls.join(",")
        )
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await
}

/// `service:Action@region`, e.g. `secretsmanager:DescribeSecret@us-west-2`.
fn call_name(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    let cred = text.split("Credential=").nth(1).unwrap_or("");
    let scope: Vec<&str> = cred.split(['/', ',', ' ']).collect();
    let (region, service) = (
        scope.get(2).copied().unwrap_or("?"),
        scope.get(3).copied().unwrap_or("?"),
    );
    let head = head_of(request);
    let target = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-amz-target")
            .then(|| value.trim().rsplit('.').next().unwrap_or("").to_string())
    });
    let action = target.or_else(|| {
        text.split(['&', '\n', '?'])
            .find_map(|p| p.strip_prefix("Action="))
            .map(|a| a.trim().to_string())
    });
    format!("{service}:{}@{region}", action.as_deref().unwrap_or("?"))
}

/// The message with its Connection header set to `connection` and, when
/// given, its Content-Length set to `length`.
fn with_headers(msg: &[u8], length: Option<usize>, connection: &str) -> Vec<u8> {
    let Some(end) = find(msg, b"\r\n\r\n") else {
        return msg.to_vec();
    };
    let head = String::from_utf8_lossy(&msg[..end]);
    let mut lines: Vec<String> = head
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("connection:")
                && !l.starts_with("keep-alive:")
                && !(length.is_some() && l.starts_with("content-length:"))
        })
        .map(str::to_string)
        .collect();
    lines.push(format!("Connection: {connection}"));
    if let Some(n) = length {
        lines.push(format!("Content-Length: {n}"));
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(&msg[end..]);
    out
}

fn head_of(msg: &[u8]) -> String {
    let end = find(msg, b"\r\n\r\n").unwrap_or(msg.len());
    String::from_utf8_lossy(&msg[..end]).into_owned()
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Acknowledge at once instead of delaying the ACK (Linux re-arms delayed
/// ACKs, so this is set again after every read).
fn quickack(stream: &TcpStream) {
    let one: libc::c_int = 1;
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
