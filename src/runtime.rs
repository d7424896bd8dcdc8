//! Wiring to lambda_runtime: a layer that hands the handler the raw event
//! text, so that *every* malformed event (not JSON included) is judged by
//! [`crate::event::parse_bytes`] and answered with the auditor's own
//! `MalformedEvent` error, with the size and depth bounds checked before
//! any JSON tree is built.
//!
//! lambda_runtime deserialises the body into the handler's payload type
//! itself; the layer re-encodes the body as one JSON string first, so the
//! payload type is `String` and that step can never fail.

use std::task;

use lambda_runtime::LambdaInvocation;
use lambda_runtime::tower::{Layer, Service};

use crate::engine::HandlerError;

/// Wraps the invocation body as a JSON string (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawBodyLayer;

impl<S> Layer<S> for RawBodyLayer {
    type Service = RawBody<S>;
    fn layer(&self, inner: S) -> RawBody<S> {
        RawBody { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RawBody<S> {
    inner: S,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for RawBody<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut task::Context<'_>) -> task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LambdaInvocation) -> Self::Future {
        req.body = as_json_string(&req.body).into();
        self.inner.call(req)
    }
}

/// The bytes as a JSON string (invalid UTF-8 becomes U+FFFD, which the
/// event parser then rejects as not JSON).
pub fn as_json_string(body: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&String::from_utf8_lossy(body)).expect("a string always serialises")
}

/// How a failed invocation is reported to Lambda: `errorType` names the kind.
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match &e {
            HandlerError::Event(_) => "MalformedEvent",
            HandlerError::Publish(_) | HandlerError::SweepPublish { .. } => "PublishFailed",
            HandlerError::OrgSweep(_) => "OrgSweepFailed",
            HandlerError::PolicyLedger(_) => "PolicyLedgerFailed",
            HandlerError::Scope(_) => "AccountScopeUnknown",
            HandlerError::FollowUp(_) => "FollowUpFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_string(),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_body_becomes_a_string_payload_with_the_same_text() {
        for body in [
            &b"not json"[..],
            b"{\"a\": [1, 2]}",
            b"",
            b"\"quoted\"\n\x00",
            b"[[[[[[",
        ] {
            let wrapped = as_json_string(body);
            let back: String = serde_json::from_slice(&wrapped).expect("always a JSON string");
            assert_eq!(back.as_bytes(), body);
        }
        let lossy: String = serde_json::from_slice(&as_json_string(&[0xff, b'{'])).unwrap();
        assert_eq!(lossy, "\u{fffd}{");
    }
}
