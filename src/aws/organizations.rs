//! AWS Organizations adapter: DescribeOrganization, to learn the
//! organisation the auditor's own account belongs to; ListAccounts, the
//! accounts the org sweep plans.

use super::{AwsClients, AwsError, OrganizationsApi};

impl OrganizationsApi for AwsClients {
    async fn own_organization(&self) -> Result<Option<String>, AwsError> {
        // Organizations is a global service: the SDK's endpoint rules send
        // every Region of the partition to its one endpoint.
        let region = self.home_region().unwrap_or_default();
        let call = self.organizations().describe_organization().send();
        match super::boxed(call).await {
            Ok(out) => Ok(out.organization().and_then(|o| o.id()).map(str::to_string)),
            Err(e) => not_in_use(AwsError::from_sdk(
                "organizations:DescribeOrganization",
                &region,
                e,
            )),
        }
    }

    async fn active_accounts(&self) -> Result<Option<Vec<String>>, AwsError> {
        use aws_sdk_organizations::types::{AccountState, AccountStatus};
        let call_name = "organizations:ListAccounts";
        let region = self.home_region().unwrap_or_default();
        let mut accounts = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let call = self
                .organizations()
                .list_accounts()
                .set_next_token(token.take())
                .send();
            let out = match super::boxed(call).await {
                Ok(out) => out,
                Err(e) => return not_in_use(AwsError::from_sdk(call_name, &region, e)),
            };
            for a in out.accounts() {
                // `State` replaces `Status` (retired in September 2026);
                // read `Status` only where `State` is absent.
                let active = match (a.state(), a.status()) {
                    (Some(state), _) => *state == AccountState::Active,
                    (None, Some(status)) => *status == AccountStatus::Active,
                    (None, None) => false,
                };
                if let Some(id) = a.id().filter(|_| active) {
                    accounts.push(id.to_string());
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        accounts.sort();
        accounts.dedup();
        Ok(Some(accounts))
    }
}

/// `Ok(None)` when the error says the account is in no organisation, else
/// the error.
fn not_in_use<T>(err: AwsError) -> Result<Option<T>, AwsError> {
    match &err {
        AwsError::Service { code, .. } if code == "AWSOrganizationsNotInUseException" => Ok(None),
        _ => Err(err),
    }
}
