//! A fault-injecting HTTP proxy on 127.0.0.1 in front of moto.
//!
//! The SDK is pointed at the proxy instead of moto. Each request's service
//! and Region are read from its SigV4 `Authorization` scope
//! (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`), and the first
//! matching [`Rule`] decides what happens to it: pass to moto, refuse
//! (close without answering), answer 500, answer ThrottlingException,
//! reset half-way through moto's response, or never answer. Rules can
//! apply to the first N matching requests only, to test that retries
//! recover. One request per connection (`Connection: close`), with
//! TCP_NODELAY on both sides.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Close the connection without a response.
    Refuse,
    /// HTTP 500 with an InternalFailure body.
    ServerError,
    /// HTTP 400 ThrottlingException.
    Throttle,
    /// HTTP 400 AccessDeniedException (SNS: AuthorizationError; STS: AccessDenied).
    AccessDenied,
    /// Forward to moto, send half its response, then reset.
    ResetMidResponse,
    /// Hold the request and never answer.
    Hang,
    /// Forward to moto after this delay.
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// e.g. `kms`, `secretsmanager`, `sns`; `None` matches any.
    pub service: Option<&'static str>,
    pub region: Option<&'static str>,
    pub fault: Fault,
    /// Apply to this many matching requests, then let them pass.
    pub times: Option<usize>,
    /// The API action (the end of `X-Amz-Target`, e.g. `DeleteItem`); `None` matches any.
    pub action: Option<&'static str>,
    /// Only requests acting in this account (12 digits): signed with
    /// credentials the proxy saw STS AssumeRole hand out for a role in it,
    /// or an AssumeRole of a role in it. `None` matches any.
    pub account: Option<String>,
}

impl Rule {
    pub fn new(service: Option<&'static str>, region: Option<&'static str>, fault: Fault) -> Rule {
        Rule {
            service,
            region,
            fault,
            times: None,
            action: None,
            account: None,
        }
    }

    pub fn account(mut self, account: &str) -> Rule {
        self.account = Some(account.to_string());
        self
    }

    pub fn action(mut self, action: &'static str) -> Rule {
        self.action = Some(action);
        self
    }

    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// Requests seen per (service, region).
    seen: HashMap<(String, String), usize>,
    /// Faults injected per (service, region).
    injected: HashMap<(String, String), usize>,
    /// Every request, in the order it arrived.
    log: Vec<Call>,
    /// The account of each access key STS AssumeRole handed out (learned
    /// from the AssumeRole requests and responses that passed).
    key_accounts: HashMap<String, String>,
}

/// One request as it reached the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: String,
    pub region: String,
    /// The API action, from `X-Amz-Target` (`RemoveRegionsFromReplication`).
    pub action: String,
    /// The JSON request body.
    pub body: String,
    pub at: std::time::Instant,
}

pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Start a proxy to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            rules,
            ..Default::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (st, upstream) = (st.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &st).await;
                });
            }
        });
        FaultProxy {
            endpoint,
            state,
            task,
        }
    }

    pub fn seen(&self, service: &str, region: &str) -> usize {
        *self
            .state
            .lock()
            .unwrap()
            .seen
            .get(&(service.into(), region.into()))
            .unwrap_or(&0)
    }

    pub fn injected(&self, service: &str, region: &str) -> usize {
        *self
            .state
            .lock()
            .unwrap()
            .injected
            .get(&(service.into(), region.into()))
            .unwrap_or(&0)
    }

    /// Every request so far for `action` (e.g. `RemoveRegionsFromReplication`).
    pub fn calls(&self, action: &str) -> Vec<Call> {
        let s = self.state.lock().unwrap();
        s.log
            .iter()
            .filter(|c| c.action == action)
            .cloned()
            .collect()
    }

    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.state.lock().unwrap().rules = rules;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let request = read_request(&mut client).await?;
    let (service, region) = scope(&request);
    let action = target(&request);
    let body = find(&request, b"\r\n\r\n")
        .map(|end| String::from_utf8_lossy(&request[end + 4..]).into_owned())
        .unwrap_or_default();
    // The account a role is assumed in (STS is a query-protocol service:
    // `Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A<account>%3Arole...`).
    let assumed_in = (service == "sts" && body.contains("Action=AssumeRole"))
        .then(|| role_account(&body))
        .flatten();
    let fault = {
        let mut s = state.lock().unwrap();
        *s.seen.entry((service.clone(), region.clone())).or_default() += 1;
        let account = assumed_in
            .clone()
            .or_else(|| s.key_accounts.get(&access_key(&request)).cloned());
        s.log.push(Call {
            service: service.clone(),
            region: region.clone(),
            action: action.clone(),
            body,
            at: std::time::Instant::now(),
        });
        let hit = s.rules.iter_mut().find(|r| {
            r.service.is_none_or(|x| x == service)
                && r.region.is_none_or(|x| x == region)
                && r.action.is_none_or(|x| x == action)
                && r.account
                    .as_ref()
                    .is_none_or(|x| account.as_ref() == Some(x))
                && r.times != Some(0)
        });
        let fault = hit.map(|r| {
            if let Some(n) = r.times.as_mut() {
                *n -= 1;
            }
            r.fault
        });
        if fault.is_some() {
            *s.injected
                .entry((service.clone(), region.clone()))
                .or_default() += 1;
        }
        fault
    };
    match fault {
        None => {
            let response = forward(&mut client, upstream, &request, false).await?;
            if let (Some(account), Some(key)) = (assumed_in, tag(&response, "AccessKeyId")) {
                state.lock().unwrap().key_accounts.insert(key, account);
            }
            Ok(())
        }
        Some(Fault::Refuse) => Ok(()),
        Some(Fault::ServerError) => {
            respond(
                &mut client,
                &service,
                500,
                "InternalFailure",
                "injected server error",
            )
            .await
        }
        Some(Fault::Throttle) => {
            let code = if is_query_protocol(&service) {
                "Throttling"
            } else {
                "ThrottlingException"
            };
            respond(&mut client, &service, 400, code, "Rate exceeded").await
        }
        Some(Fault::AccessDenied) => {
            let code = match service.as_str() {
                "sns" => "AuthorizationError",
                "sts" => "AccessDenied",
                _ => "AccessDeniedException",
            };
            respond(
                &mut client,
                &service,
                400,
                code,
                "User is not authorized to perform this action",
            )
            .await
        }
        Some(Fault::ResetMidResponse) => forward(&mut client, upstream, &request, true)
            .await
            .map(drop),
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            forward(&mut client, upstream, &request, false)
                .await
                .map(drop)
        }
    }
}

/// Read one whole HTTP/1.1 request (headers and Content-Length body).
async fn read_request(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(buf);
            }
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// (service, region) from the SigV4 credential scope.
fn scope(request: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(request);
    let cred = text.split("Credential=").nth(1).unwrap_or("");
    let parts: Vec<&str> = cred.split(['/', ',', ' ']).collect();
    let get = |i: usize| parts.get(i).map(|s| s.to_string()).unwrap_or_default();
    (get(3), get(2))
}

/// The access key a request is signed with (`Credential=KEY/...`).
fn access_key(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    let cred = text.split("Credential=").nth(1).unwrap_or("");
    cred.split('/').next().unwrap_or("").to_string()
}

/// The account of the role an AssumeRole request names.
fn role_account(body: &str) -> Option<String> {
    let arn = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("RoleArn="))?
        .replace("%3A", ":")
        .replace("%2F", "/");
    arn.split(':').nth(4).map(str::to_string)
}

/// The text of the first `<name>...</name>` in an XML response.
fn tag(response: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(response);
    let from = text.find(&format!("<{name}>"))? + name.len() + 2;
    let to = text[from..].find(&format!("</{name}>"))? + from;
    Some(text[from..to].to_string())
}

/// The action named by the `X-Amz-Target` header (`Service_Version.Action`).
fn target(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    text.split("\r\n")
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-amz-target")
                .then(|| value.trim().rsplit('.').next().unwrap_or("").to_string())
        })
        .unwrap_or_default()
}

/// Pass the request to moto with `Connection: close` and relay the
/// response (all of it, or half and a reset); moto's response.
async fn forward(
    client: &mut TcpStream,
    upstream: &str,
    request: &[u8],
    reset: bool,
) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    up.write_all(&with_connection_close(request)).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    let response = with_connection_close(&response);
    if reset {
        client.write_all(&response[..response.len() / 2]).await?;
        // A zero linger makes close() send RST at once (it never blocks).
        #[allow(deprecated)]
        client.set_linger(Some(Duration::ZERO))?;
        return Ok(response);
    }
    client.write_all(&response).await?;
    client.shutdown().await?;
    Ok(response)
}

/// Replace any Connection header with `Connection: close`.
fn with_connection_close(msg: &[u8]) -> Vec<u8> {
    let Some(end) = find(msg, b"\r\n\r\n") else {
        return msg.to_vec();
    };
    let head = String::from_utf8_lossy(&msg[..end]);
    let mut lines: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(&msg[end..]);
    out
}

/// An AWS error response: XML for the query-protocol SNS, JSON otherwise.
/// SNS and STS speak the AWS query protocol: XML errors.
fn is_query_protocol(service: &str) -> bool {
    matches!(service, "sns" | "sts")
}

async fn respond(
    client: &mut TcpStream,
    service: &str,
    status: u16,
    code: &str,
    message: &str,
) -> std::io::Result<()> {
    let (content_type, body) = if is_query_protocol(service) {
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
            ),
        )
    } else {
        (
            "application/x-amz-json-1.1",
            format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}"),
        )
    };
    let reason = if status == 500 {
        "Internal Server Error"
    } else {
        "Bad Request"
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nx-amzn-ErrorType: {code}\r\nx-amzn-RequestId: injected\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}
