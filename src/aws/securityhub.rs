//! Security Hub adapter: BatchImportFindings of ASFF findings, in the
//! findings' own account and Region (with the default product ARN, AWS
//! refuses an import made for another account).

use std::collections::HashMap;

use aws_sdk_securityhub::types::{
    AwsSecurityFinding, Compliance, ComplianceStatus, FindingProviderFields,
    FindingProviderSeverity, Partition, Recommendation, RecordState, Remediation, Resource,
    Severity, SeverityLabel,
};

use super::{AccountsApi, AwsClients, AwsError, FindingsApi, ImportOutcome};
use crate::asff::AsffFinding;

const CALL: &str = "securityhub:BatchImportFindings";

impl AwsClients {
    /// A Security Hub client acting as `account` in `region`. Built per
    /// call from the shared configuration (its HTTP client and connection
    /// pool are shared): imports are few (only changes, at most 10 a second
    /// per account and Region), so a pool of clients would save nothing.
    fn securityhub(&self, region: &str) -> aws_sdk_securityhub::Client {
        aws_sdk_securityhub::Client::from_conf(
            aws_sdk_securityhub::config::Builder::from(&self.acting_config())
                .region(aws_config::Region::new(region.to_string()))
                .build(),
        )
    }
}

/// The SDK's form of a finding: the same fields, one for one.
fn to_sdk(f: &AsffFinding) -> AwsSecurityFinding {
    let severity = Severity::builder()
        .label(SeverityLabel::from(f.severity.label.as_str()))
        .original(&f.severity.original)
        .build();
    let provider = FindingProviderFields::builder()
        .severity(
            FindingProviderSeverity::builder()
                .label(SeverityLabel::from(
                    f.finding_provider_fields.severity.label.as_str(),
                ))
                .original(&f.finding_provider_fields.severity.original)
                .build(),
        )
        .set_types(Some(f.finding_provider_fields.types.clone()))
        .build();
    let resources = f
        .resources
        .iter()
        .map(|r| {
            Resource::builder()
                .r#type(&r.kind)
                .id(&r.id)
                .partition(Partition::from(r.partition.as_str()))
                .region(&r.region)
                .build()
        })
        .collect();
    AwsSecurityFinding::builder()
        .schema_version(&f.schema_version)
        .id(&f.id)
        .product_arn(&f.product_arn)
        .product_name(&f.product_name)
        .generator_id(&f.generator_id)
        .aws_account_id(&f.aws_account_id)
        .region(&f.region)
        .set_types(Some(f.types.clone()))
        .created_at(&f.created_at)
        .updated_at(&f.updated_at)
        .severity(severity)
        .finding_provider_fields(provider)
        .title(&f.title)
        .description(&f.description)
        .remediation(
            Remediation::builder()
                .recommendation(
                    Recommendation::builder()
                        .text(&f.remediation.recommendation.text)
                        .build(),
                )
                .build(),
        )
        .set_product_fields(Some(
            f.product_fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ))
        .set_resources(Some(resources))
        .compliance(
            Compliance::builder()
                .status(ComplianceStatus::from(f.compliance.status.as_str()))
                .build(),
        )
        .record_state(RecordState::from(f.record_state.as_str()))
        .build()
}

impl FindingsApi for AwsClients {
    async fn import_findings(
        &self,
        account: &str,
        region: &str,
        findings: &[AsffFinding],
    ) -> Result<ImportOutcome, AwsError> {
        if findings.is_empty() {
            return Ok(ImportOutcome::default());
        }
        // The own credentials, or the member role's (cached per account).
        let acting = self.acting_in(account).await?;
        let call = acting
            .securityhub(region)
            .batch_import_findings()
            .set_findings(Some(findings.iter().map(to_sdk).collect()))
            .send();
        let out = super::boxed(call)
            .await
            .map_err(|e| AwsError::from_sdk(CALL, region, e))?;
        Ok(ImportOutcome {
            failed: out
                .failed_findings()
                .iter()
                .map(|e| {
                    (
                        e.id().unwrap_or_default().to_string(),
                        format!(
                            "{}: {}",
                            e.error_code().unwrap_or("Unknown"),
                            e.error_message().unwrap_or_default()
                        ),
                    )
                })
                .collect(),
        })
    }
}
