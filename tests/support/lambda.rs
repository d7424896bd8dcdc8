//! The built function binary run as Lambda runs it: one OS process per
//! execution environment, fed one event through a small Lambda Runtime API
//! (`next`, `response`, `error`) served here on 127.0.0.1. Two of them are
//! two Lambda environments serving one function at once.
#![allow(dead_code)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One function process with its Runtime API; both stopped on drop.
pub struct Environment {
    child: Child,
    server: JoinHandle<()>,
    done: mpsc::UnboundedReceiver<(String, Value)>,
    pub request_id: String,
    /// Everything the process writes to stdout (read as it comes, so the
    /// pipe never fills).
    stdout: Option<JoinHandle<String>>,
}

/// What the test gives the Runtime API to hand out.
struct Invocation {
    event: Vec<u8>,
    request_id: String,
    handed_out: bool,
}

impl Environment {
    /// Start the function binary with `env` (on top of the Lambda
    /// variables) and hand it `event` as invocation `request_id`, with a
    /// deadline 60 s away.
    pub async fn start(env: &[(String, String)], event: &Value, request_id: &str) -> Environment {
        Self::start_binary(
            std::path::Path::new(env!("CARGO_BIN_EXE_replica-auditor-lambda")),
            env,
            event,
            request_id,
        )
        .await
    }

    /// [`Environment::start`] with another build of the Lambda binary (the
    /// `bootstrap` cargo-lambda made).
    pub async fn start_binary(
        binary: &std::path::Path,
        env: &[(String, String)],
        event: &Value,
        request_id: &str,
    ) -> Environment {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let invocation = Arc::new(Mutex::new(Invocation {
            event: serde_json::to_vec(event).unwrap(),
            request_id: request_id.to_string(),
            handed_out: false,
        }));
        let (tx, done) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (invocation, tx) = (invocation.clone(), tx.clone());
                tokio::spawn(serve(conn, invocation, tx));
            }
        });
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", &address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "replica-auditor")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/replica-auditor")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", request_id)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start the function binary");
        let mut pipe = child.stdout.take().expect("stdout is piped");
        let stdout = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out).await;
            String::from_utf8_lossy(&out).into_owned()
        });
        Environment {
            child,
            server,
            done,
            request_id: request_id.to_string(),
            stdout: Some(stdout),
        }
    }

    /// The invocation's outcome (`response` or `error`) and body.
    pub async fn result(&mut self) -> (String, Value) {
        tokio::time::timeout(Duration::from_secs(60), self.done.recv())
            .await
            .expect("the function answered within 60 s")
            .expect("the Runtime API is up")
    }
}

impl Environment {
    /// Stop the process and return all it wrote to stdout.
    pub async fn stdout(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let reader = self.stdout.take().expect("stdout read once");
        tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("stdout closed after the process stopped")
            .expect("stdout reader")
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.server.abort();
        if let Some(reader) = self.stdout.take() {
            reader.abort();
        }
    }
}

/// One connection of the function's HTTP client: requests until it closes.
async fn serve(
    mut conn: TcpStream,
    invocation: Arc<Mutex<Invocation>>,
    done: mpsc::UnboundedSender<(String, Value)>,
) {
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::new();
    while let Some((head, body)) = read_request(&mut conn, &mut buf).await {
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let reply = if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let next = {
                let mut i = invocation.lock().unwrap();
                let first = !i.handed_out;
                i.handed_out = true;
                first.then(|| (i.event.clone(), i.request_id.clone()))
            };
            // One event per environment: later `next` calls wait for ever.
            let Some((event, request_id)) = next else {
                std::future::pending::<()>().await;
                return;
            };
            let deadline =
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
            response(
                200,
                &[
                    ("Lambda-Runtime-Aws-Request-Id", request_id.as_str()),
                    (
                        "Lambda-Runtime-Deadline-Ms",
                        &deadline.as_millis().to_string(),
                    ),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-west-2:123456789012:function:replica-auditor",
                    ),
                    (
                        "Lambda-Runtime-Trace-Id",
                        "Root=1-00000000-000000000000000000000000;Sampled=0",
                    ),
                ],
                &event,
            )
        } else if method == "POST" {
            let outcome = path.rsplit('/').next().unwrap_or("").to_string();
            let parsed = serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
            let _ = done.send((outcome, parsed));
            response(202, &[], b"{}")
        } else {
            response(404, &[], b"{}")
        };
        if conn.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The next request on a kept-alive connection: (request line, body).
async fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                let line = head.lines().next().unwrap_or("").to_string();
                return Some((line, body));
            }
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
