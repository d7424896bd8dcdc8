//! One error type for every AWS call, classified so the audit can tell
//! "not allowed" from "not reachable" and name the call and Region.

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use replica_auditor_core::model::{Gap, GapKind};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum AwsError {
    #[error("{call} in {region}: access denied ({message})")]
    AccessDenied {
        call: &'static str,
        region: String,
        message: String,
    },
    #[error("{call} in {region}: throttled past the SDK's retries ({message})")]
    Throttled {
        call: &'static str,
        region: String,
        message: String,
    },
    #[error("{call} in {region}: {code}: {message}")]
    Service {
        call: &'static str,
        region: String,
        code: String,
        message: String,
    },
    #[error("{call} in {region}: could not reach the service: {message}")]
    Transport {
        call: &'static str,
        region: String,
        message: String,
    },
    #[error("{call} in {region}: no answer within {seconds:.1}s (invocation deadline)")]
    Timeout {
        call: &'static str,
        region: String,
        seconds: f64,
    },
    /// Never sent: the auditor's own pacing would have started it only
    /// after the invocation's deadline.
    #[error("{call} in {region}: not started: {reason}")]
    NotStarted {
        call: &'static str,
        region: String,
        reason: String,
    },
}

impl AwsError {
    /// The error's code when the service answered, e.g. `ResourceNotFoundException`.
    pub fn from_sdk<E, R>(call: &'static str, region: &str, err: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let region = region.to_string();
        match &err {
            SdkError::ServiceError(_) => {
                let code = err.code().unwrap_or("Unknown").to_string();
                let message = err.message().unwrap_or("").to_string();
                if is_access_denied(&code) {
                    AwsError::AccessDenied {
                        call,
                        region,
                        message: format!("{code}: {message}"),
                    }
                } else if is_throttling(&code) {
                    AwsError::Throttled {
                        call,
                        region,
                        message: format!("{code}: {message}"),
                    }
                } else {
                    AwsError::Service {
                        call,
                        region,
                        code,
                        message,
                    }
                }
            }
            _ => AwsError::Transport {
                call,
                region,
                message: error_chain(&err),
            },
        }
    }

    pub fn call(&self) -> &'static str {
        match self {
            AwsError::AccessDenied { call, .. }
            | AwsError::Throttled { call, .. }
            | AwsError::Service { call, .. }
            | AwsError::Transport { call, .. }
            | AwsError::Timeout { call, .. }
            | AwsError::NotStarted { call, .. } => call,
        }
    }

    /// The same error, its message starting with `subject` (what the call
    /// was about, e.g. the role an AssumeRole named), its kind unchanged.
    pub fn about(mut self, subject: &str) -> AwsError {
        match &mut self {
            AwsError::AccessDenied { message, .. }
            | AwsError::Throttled { message, .. }
            | AwsError::Service { message, .. }
            | AwsError::Transport { message, .. } => *message = format!("{subject}: {message}"),
            AwsError::NotStarted { reason, .. } => *reason = format!("{subject}: {reason}"),
            AwsError::Timeout { .. } => {}
        }
        self
    }

    /// What kind of failure this is: the one classification every decision
    /// and metric reads.
    pub fn kind(&self) -> GapKind {
        match self {
            AwsError::AccessDenied { .. } => GapKind::AccessDenied,
            AwsError::Throttled { .. } => GapKind::Throttled,
            AwsError::Service { code, .. } if is_not_found(code) => GapKind::NotFound,
            AwsError::Service { .. } => GapKind::Other,
            AwsError::Transport { .. } => GapKind::Unreachable,
            AwsError::Timeout { .. } => GapKind::TimedOut,
            AwsError::NotStarted { .. } => GapKind::NotStarted,
        }
    }

    /// The check this call was for could not be made: a [`Gap`] with this
    /// error's call, Region, kind and text.
    pub fn into_gap(self) -> Gap {
        Gap {
            call: self.call().to_string(),
            region: self.region().to_string(),
            kind: self.kind(),
            reason: self.to_string(),
        }
    }

    pub fn region(&self) -> &str {
        match self {
            AwsError::AccessDenied { region, .. }
            | AwsError::Throttled { region, .. }
            | AwsError::Service { region, .. }
            | AwsError::Transport { region, .. }
            | AwsError::Timeout { region, .. }
            | AwsError::NotStarted { region, .. } => region,
        }
    }
}

fn is_access_denied(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "AuthorizationError"
    )
}

/// The codes that mean the named resource does not exist (Secrets Manager's
/// and KMS's).
fn is_not_found(code: &str) -> bool {
    matches!(code, "ResourceNotFoundException" | "NotFoundException")
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            // DynamoDB: a partition's or table's throughput, and the
            // account's request rate (the SDK retries both as throttling).
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceededException"
    )
}

/// The error and its sources on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_throughput_errors_are_throttling() {
        for code in [
            "ProvisionedThroughputExceededException",
            "RequestLimitExceededException",
            "ThrottlingException",
        ] {
            assert!(is_throttling(code), "{code}");
        }
        assert!(!is_throttling("ConditionalCheckFailedException"));
        assert!(!is_throttling("InternalServerError"));
    }

    /// Each error gives its gap kind (written out here, not derived), and
    /// its gap keeps the call, the Region and the text.
    #[test]
    fn every_error_gives_its_gap_kind() {
        let (call, region) = ("kms:DescribeKey", "eu-west-1".to_string());
        let service = |code: &str| AwsError::Service {
            call,
            region: region.clone(),
            code: code.into(),
            message: "m".into(),
        };
        let cases = [
            (
                AwsError::AccessDenied {
                    call,
                    region: region.clone(),
                    message: "m".into(),
                },
                GapKind::AccessDenied,
            ),
            (
                AwsError::Throttled {
                    call,
                    region: region.clone(),
                    message: "m".into(),
                },
                GapKind::Throttled,
            ),
            (service("KMSInternalException"), GapKind::Other),
            (service("NotFoundException"), GapKind::NotFound),
            (service("ResourceNotFoundException"), GapKind::NotFound),
            (
                AwsError::Transport {
                    call,
                    region: region.clone(),
                    message: "m".into(),
                },
                GapKind::Unreachable,
            ),
            (
                AwsError::Timeout {
                    call,
                    region: region.clone(),
                    seconds: 1.0,
                },
                GapKind::TimedOut,
            ),
            (
                AwsError::NotStarted {
                    call,
                    region: region.clone(),
                    reason: "deadline".into(),
                },
                GapKind::NotStarted,
            ),
        ];
        for (e, kind) in cases {
            let text = e.to_string();
            let gap = e.into_gap();
            assert_eq!(gap.kind, kind, "{text}");
            assert_eq!(
                (gap.call.as_str(), gap.region.as_str()),
                (call, "eu-west-1")
            );
            assert_eq!(gap.reason, text);
        }
    }
}
