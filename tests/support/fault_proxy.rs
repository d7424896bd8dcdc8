//! A fault-injecting HTTP proxy on 127.0.0.1 in front of moto.
//!
//! The SDK is pointed at the proxy instead of moto. Each request's service
//! and Region are read from its SigV4 `Authorization` scope
//! (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`), its action from
//! `X-Amz-Target` (JSON services) or the `Action=` of its form body (SNS,
//! STS), and the first matching [`Rule`] decides what happens to it.
//!
//! "Pre" faults never reach moto: refuse (close without answering), answer
//! 500, a throttle or access denied, never answer, or hold the request past
//! the client's deadline and drop it ([`Fault::HoldThenDrop`]). "Post"
//! faults reach moto, which applies the request, and then lose its answer:
//! reset half-way through it, replace it with a 500
//! ([`Fault::AppliedThen500`]), close without it ([`Fault::AppliedThenDrop`]),
//! or apply it only after a hold past the deadline ([`Fault::HoldThenApply`];
//! the answer goes nowhere if the client left). A rule can apply to the
//! first N matching requests only, to test that retries recover, and at a
//! seeded rate ([`Rule::rate`]), the same requests for the same seed.
//!
//! Every request is recorded ([`Call`]): service, Region, action, account
//! when known, the fault applied, and moto's status if it reached moto.
//! One request per connection (`Connection: close`), with TCP_NODELAY on
//! both sides.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Close the connection without a response.
    Refuse,
    /// HTTP 500 with an InternalFailure body.
    ServerError,
    /// HTTP 400 ThrottlingException (SNS, STS: Throttling). DynamoDB models
    /// ThrottlingException too (its control plane and on-demand limits);
    /// its data-plane throttle is [`Fault::ProvisionedThroughputExceeded`].
    Throttle,
    /// HTTP 400 AccessDeniedException (SNS: AuthorizationError; STS: AccessDenied).
    AccessDenied,
    /// Forward to moto, send half its response, then reset.
    ResetMidResponse,
    /// Hold the request and never answer.
    Hang,
    /// Forward to moto after this delay.
    Delay(Duration),
    /// HTTP 400 ProvisionedThroughputExceededException: DynamoDB's
    /// data-plane throttle (in DynamoDB's JSON 1.0 error shape).
    ProvisionedThroughputExceeded,
    /// Forward to moto and read its whole answer (the request is applied),
    /// then answer HTTP 500 instead, in the service's error shape
    /// (DynamoDB InternalServerError, Secrets Manager InternalServiceError,
    /// KMS KMSInternalException, otherwise InternalFailure).
    AppliedThen500,
    /// Forward to moto and read its whole answer (the request is applied),
    /// then close the connection without answering.
    AppliedThenDrop,
    /// Hold the request this long (past the client's deadline), then
    /// forward it to moto, which applies it; the answer goes to the client
    /// if it is still there. The same as [`Fault::Delay`], named for what
    /// a test means by it. [`FaultProxy::settle`] waits for it to land.
    HoldThenApply(Duration),
    /// Hold the request this long, then close the connection without
    /// forwarding it: never applied.
    HoldThenDrop(Duration),
}

/// A seeded coin for [`Rule::rate`]: the n-th request a rule matches gets
/// the same toss for the same seed (xorshift64*).
#[derive(Debug, Clone)]
pub struct Chance {
    pub probability: f64,
    state: u64,
}

impl Chance {
    pub fn new(probability: f64, seed: u64) -> Chance {
        // splitmix64 of the seed: never the all-zero state, and nearby
        // seeds start far apart.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Chance {
            probability,
            state: z.max(1),
        }
    }

    /// True with the probability.
    fn toss(&mut self) -> bool {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (r as f64) / ((1u64 << 53) as f64) < self.probability
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// e.g. `kms`, `secretsmanager`, `sns`; `None` matches any.
    pub service: Option<&'static str>,
    pub region: Option<&'static str>,
    pub fault: Fault,
    /// Apply to this many matching requests, then let them pass.
    pub times: Option<usize>,
    /// The API action (the end of `X-Amz-Target`, e.g. `DeleteItem`, or
    /// the `Action=` of SNS and STS, e.g. `Publish`); `None` matches any.
    pub action: Option<&'static str>,
    /// Only requests acting in this account (12 digits): signed with
    /// credentials the proxy saw STS AssumeRole hand out for a role in it,
    /// or an AssumeRole of a role in it. `None` matches any.
    pub account: Option<String>,
    /// Apply to a matching request only when this seeded coin says so;
    /// otherwise the rule does not match it (a later rule may). `None`:
    /// every matching request.
    pub chance: Option<Chance>,
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
            chance: None,
        }
    }

    /// Apply to each matching request with `probability` (0.0 to 1.0),
    /// tossed from a PRNG seeded with `seed`: for a seed, the same n-th
    /// matching requests are hit, run after run (in the order they reach
    /// the proxy, which concurrent callers may vary). With
    /// [`Rule::times`], it tosses until the rule has hit that many.
    pub fn rate(mut self, probability: f64, seed: u64) -> Rule {
        self.chance = Some(Chance::new(probability, seed));
        self
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
    /// from the AssumeRole requests and responses that reached moto).
    key_accounts: HashMap<String, String>,
    /// Requests accepted whose fate is not settled yet: being read, held,
    /// or waiting for moto's answer (a [`Fault::Hang`] is settled: never).
    pending: usize,
    /// Members added to moto's DescribeSecret answers, by the secret's ARN
    /// (the members moto does not have: issue 26's cross-account ones).
    describe_members: HashMap<String, serde_json::Value>,
}

/// One request as it reached the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: String,
    pub region: String,
    /// The API action, from `X-Amz-Target` (`RemoveRegionsFromReplication`)
    /// or, for the query-protocol SNS and STS, the body's `Action=`
    /// (`Publish`, `AssumeRole`).
    pub action: String,
    /// The account the request acts in, when known: for an STS AssumeRole,
    /// the account of the role it names; otherwise the account of the
    /// role whose AssumeRole handed out the request's access key. `None`
    /// for the caller's own credentials.
    pub account: Option<String>,
    /// The fault the proxy applied to it, if any.
    pub fault: Option<Fault>,
    /// moto's HTTP status, once moto answered it (so applied it, if moto
    /// said 2xx), whatever the client then got; `None` if it never reached
    /// moto, or not yet (a held request: see [`FaultProxy::settle`]).
    pub moto_status: Option<u16>,
    /// The request body (JSON, or the form of SNS and STS).
    pub body: String,
    pub at: Instant,
    /// When it arrived, on the wall clock: to compare with times a request
    /// carries (a shared pace's `:now`, microseconds since the epoch).
    pub wall: std::time::SystemTime,
}

impl Call {
    /// When it arrived, in microseconds since the epoch.
    pub fn wall_us(&self) -> u64 {
        self.wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    }

    /// moto answered it.
    pub fn reached_moto(&self) -> bool {
        self.moto_status.is_some()
    }

    /// moto answered it with success: the call took effect at moto.
    pub fn applied(&self) -> bool {
        self.moto_status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Counts a request as pending from its accepted connection until dropped.
struct Pending(Arc<Mutex<State>>);

impl Pending {
    fn new(state: &Arc<Mutex<State>>) -> Pending {
        state.lock().unwrap().pending += 1;
        Pending(state.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.lock().unwrap().pending -= 1;
    }
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
            // Dropping the set (when the proxy is dropped and this task
            // aborted) aborts every connection's task, held ones included.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                while connections.try_join_next().is_some() {}
                let pending = Pending::new(&st);
                let (st, upstream) = (st.clone(), upstream.clone());
                connections.spawn(async move {
                    let _ = serve(client, &upstream, &st, pending).await;
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

    /// Add `members` (a JSON object) to every DescribeSecret answer of the
    /// secret `arn` that moto gives, replacing members of the same name:
    /// what moto cannot model, shaped as Secrets Manager's model says.
    /// ListSecrets' entry of `arn` gets them too, `VersionIdsToStages`
    /// under its ListSecrets name, `SecretVersionsToStages`.
    pub fn add_describe_members(&self, arn: &str, members: serde_json::Value) {
        assert!(members.is_object(), "members must be an object: {members}");
        let mut s = self.state.lock().unwrap();
        s.describe_members.insert(arn.to_string(), members);
    }

    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.state.lock().unwrap().rules = rules;
    }

    /// Every request so far, in the order they arrived.
    pub fn log(&self) -> Vec<Call> {
        self.state.lock().unwrap().log.clone()
    }

    /// Check a shared pace (`rate::SharedPace`, one token per `interval_us`,
    /// burst 1) against the requests: every take of a bucket whose key
    /// starts with `bucket` carries its `:now` (microseconds since the
    /// epoch) and moves the bucket one interval per token, so the i-th of
    /// the paced calls' `arrivals` (microseconds since the epoch, sorted)
    /// comes at least i intervals after the first take's `now`. A late
    /// call cannot break this: no race with the clock. How many takes
    /// there were.
    pub fn assert_paced(&self, bucket: &str, interval_us: u64, arrivals: &[u64]) -> usize {
        let nows: Vec<u64> = self
            .requests("dynamodb", "UpdateItem")
            .iter()
            .map(|c| serde_json::from_str::<serde_json::Value>(&c.body).unwrap())
            .filter(|b| {
                b["Key"]["pk"]["S"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(bucket))
            })
            .map(|b| {
                b["ExpressionAttributeValues"][":now"]["N"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .collect();
        let first_now = *nows.iter().min().expect("takes of the bucket");
        for (i, at) in arrivals.iter().enumerate() {
            let earliest = first_now + i as u64 * interval_us;
            assert!(
                *at >= earliest,
                "call {i} came {} ms before its token could",
                (earliest - at) / 1_000
            );
        }
        nows.len()
    }

    /// Every request so far to `service` (`sns`) for `action` (`Publish`).
    pub fn requests(&self, service: &str, action: &str) -> Vec<Call> {
        let s = self.state.lock().unwrap();
        s.log
            .iter()
            .filter(|c| c.service == service && c.action == action)
            .cloned()
            .collect()
    }

    /// How many `service` `action` requests moto answered with success
    /// (applied), whatever the client got: `applied("sns", "Publish")`.
    pub fn applied(&self, service: &str, action: &str) -> usize {
        self.requests(service, action)
            .iter()
            .filter(|c| c.applied())
            .count()
    }

    /// The STS AssumeRole requests for a role in `account`, whatever came
    /// of them (refused by a rule included).
    pub fn assume_role_calls(&self, account: &str) -> Vec<Call> {
        self.requests("sts", "AssumeRole")
            .into_iter()
            .filter(|c| c.account.as_deref() == Some(account))
            .collect()
    }

    /// Wait until every request accepted so far is settled: answered,
    /// dropped, or forwarded and answered by moto (a held
    /// [`Fault::HoldThenApply`] has landed). Panics after `within`.
    pub async fn settle(&self, within: Duration) {
        let started = Instant::now();
        loop {
            let pending = self.state.lock().unwrap().pending;
            if pending == 0 {
                return;
            }
            assert!(
                started.elapsed() < within,
                "{pending} request(s) still held or in flight at the proxy after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    state: &Mutex<State>,
    pending: Pending,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let request = read_request(&mut client).await?;
    let (service, region) = scope(&request);
    let body = find(&request, b"\r\n\r\n")
        .map(|end| String::from_utf8_lossy(&request[end + 4..]).into_owned())
        .unwrap_or_default();
    let action = target(&request).unwrap_or_else(|| form_action(&body));
    // The account a role is assumed in (STS is a query-protocol service:
    // `Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A<account>%3Arole...`).
    let assumed_in = (service == "sts" && action.starts_with("AssumeRole"))
        .then(|| role_account(&body))
        .flatten();
    let (fault, index) = {
        let mut s = state.lock().unwrap();
        *s.seen.entry((service.clone(), region.clone())).or_default() += 1;
        let account = assumed_in
            .clone()
            .or_else(|| s.key_accounts.get(&access_key(&request)).cloned());
        let hit = s.rules.iter_mut().position(|r| {
            r.service.is_none_or(|x| x == service)
                && r.region.is_none_or(|x| x == region)
                && r.action.is_none_or(|x| x == action)
                && r.account
                    .as_ref()
                    .is_none_or(|x| account.as_ref() == Some(x))
                && r.times != Some(0)
                // Tossed last: only for the requests the rule matches.
                && r.chance.as_mut().is_none_or(Chance::toss)
        });
        let fault = hit.map(|i| {
            let r = &mut s.rules[i];
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
        s.log.push(Call {
            service: service.clone(),
            region: region.clone(),
            action: action.clone(),
            account,
            fault,
            moto_status: None,
            body,
            at: Instant::now(),
            wall: std::time::SystemTime::now(),
        });
        (fault, s.log.len() - 1)
    };
    let to_moto = Upstream {
        address: upstream,
        request: &request,
        state,
        index,
        assumed_in,
    };
    match fault {
        None => {
            let mut response = to_moto.apply().await?;
            if action == "DescribeSecret" {
                response = with_describe_members(response, state);
            } else if action == "ListSecrets" {
                response = with_listed_members(response, state);
            }
            answer(&mut client, &response).await
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
        Some(Fault::ProvisionedThroughputExceeded) => {
            respond(
                &mut client,
                &service,
                400,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
            )
            .await
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
        Some(Fault::ResetMidResponse) => {
            let response = to_moto.apply().await?;
            client.write_all(&response[..response.len() / 2]).await?;
            // A zero linger makes close() send RST at once (it never blocks).
            #[allow(deprecated)]
            client.set_linger(Some(Duration::ZERO))?;
            Ok(())
        }
        Some(Fault::Hang) => {
            // Settled: it will never be answered nor reach moto.
            drop(pending);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        Some(Fault::Delay(d) | Fault::HoldThenApply(d)) => {
            tokio::time::sleep(d).await;
            // Applied whether or not the client is still there.
            let response = to_moto.apply().await?;
            answer(&mut client, &response).await
        }
        Some(Fault::AppliedThen500) => {
            to_moto.apply().await?;
            let code = internal_error_code(&service);
            respond(&mut client, &service, 500, code, "Internal server error").await
        }
        Some(Fault::AppliedThenDrop) => to_moto.apply().await.map(drop),
        Some(Fault::HoldThenDrop(d)) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
    }
}

/// A request on its way to moto, and where to record what moto said.
struct Upstream<'a> {
    address: &'a str,
    request: &'a [u8],
    state: &'a Mutex<State>,
    index: usize,
    assumed_in: Option<String>,
}

impl Upstream<'_> {
    /// Pass the request to moto with `Connection: close` and read its whole
    /// response (so moto has applied it), recording moto's status on the
    /// call and any access key an AssumeRole handed out; the response, with
    /// `Connection: close`.
    async fn apply(&self) -> std::io::Result<Vec<u8>> {
        let mut up = TcpStream::connect(self.address).await?;
        up.set_nodelay(true)?;
        up.write_all(&with_connection_close(self.request)).await?;
        let mut response = Vec::new();
        up.read_to_end(&mut response).await?;
        let status = String::from_utf8_lossy(&response[..response.len().min(32)])
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok());
        let mut s = self.state.lock().unwrap();
        s.log[self.index].moto_status = status;
        if let (Some(account), Some(key)) = (&self.assumed_in, tag(&response, "AccessKeyId")) {
            s.key_accounts.insert(key, account.clone());
        }
        Ok(with_connection_close(&response))
    }
}

/// A DescribeSecret answer with the members a test added for its secret
/// (by the answer's `ARN`), Content-Length made right; any other answer
/// as it is.
fn with_describe_members(response: Vec<u8>, state: &Mutex<State>) -> Vec<u8> {
    let Some(end) = find(&response, b"\r\n\r\n") else {
        return response;
    };
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&response[end + 4..]) else {
        return response;
    };
    let arn = body["ARN"].as_str().unwrap_or_default().to_string();
    let Some(members) = state.lock().unwrap().describe_members.get(&arn).cloned() else {
        return response;
    };
    for (k, v) in members.as_object().expect("an object") {
        body[k] = v.clone();
    }
    with_body(&response[..end], &serde_json::to_vec(&body).unwrap())
}

/// ListSecrets' answer with [`FaultProxy::add_describe_members`]'s members
/// on the entries of the secrets they were given for.
fn with_listed_members(response: Vec<u8>, state: &Mutex<State>) -> Vec<u8> {
    let Some(end) = find(&response, b"\r\n\r\n") else {
        return response;
    };
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&response[end + 4..]) else {
        return response;
    };
    let members = state.lock().unwrap().describe_members.clone();
    let Some(list) = body["SecretList"].as_array_mut() else {
        return response;
    };
    for entry in list {
        let arn = entry["ARN"].as_str().unwrap_or_default().to_string();
        for (k, v) in members
            .get(&arn)
            .and_then(|m| m.as_object())
            .into_iter()
            .flatten()
        {
            let k = if k == "VersionIdsToStages" {
                "SecretVersionsToStages"
            } else {
                k
            };
            entry[k] = v.clone();
        }
    }
    with_body(&response[..end], &serde_json::to_vec(&body).unwrap())
}

/// A response head with its Content-Length set for `body`, and `body`.
fn with_body(head: &[u8], body: &[u8]) -> Vec<u8> {
    let head = String::from_utf8_lossy(head);
    let mut lines: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
        .map(str::to_string)
        .collect();
    lines.push(format!("Content-Length: {}", body.len()));
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// Relay a whole response and close.
async fn answer(client: &mut TcpStream, response: &[u8]) -> std::io::Result<()> {
    client.write_all(response).await?;
    client.shutdown().await
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
fn target(request: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(request);
    text.split("\r\n")
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-amz-target")
                .then(|| value.trim().rsplit('.').next().unwrap_or("").to_string())
        })
}

/// The `Action=` of a query-protocol form body (SNS, STS); empty if none.
fn form_action(body: &str) -> String {
    body.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or_default()
        .to_string()
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

/// SNS and STS speak the AWS query protocol: XML errors.
fn is_query_protocol(service: &str) -> bool {
    matches!(service, "sns" | "sts")
}

/// The code of a service's own 500 answer.
fn internal_error_code(service: &str) -> &'static str {
    match service {
        "dynamodb" => "InternalServerError",
        "secretsmanager" => "InternalServiceError",
        "kms" => "KMSInternalException",
        _ => "InternalFailure",
    }
}

/// An AWS error response: XML for the query-protocol SNS and STS, JSON
/// otherwise (DynamoDB's: JSON 1.0, its `__type` namespaced).
async fn respond(
    client: &mut TcpStream,
    service: &str,
    status: u16,
    code: &str,
    message: &str,
) -> std::io::Result<()> {
    let (content_type, body) = if is_query_protocol(service) {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
            ),
        )
    } else if service == "dynamodb" {
        (
            "application/x-amz-json-1.0",
            format!(
                "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{code}\",\"message\":\"{message}\"}}"
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
