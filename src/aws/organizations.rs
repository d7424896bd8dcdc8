//! AWS Organizations adapter: DescribeOrganization, to learn the
//! organisation the auditor's own account belongs to; ListAccounts, the
//! accounts the org sweep plans, a page a call (the caller paces them).

use super::{AccountsPage, AwsClients, AwsError, OrganizationsApi};

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

    async fn accounts_page(&self, token: Option<String>) -> Result<Option<AccountsPage>, AwsError> {
        use aws_sdk_organizations::types::{AccountState, AccountStatus};
        let region = self.home_region().unwrap_or_default();
        let call = self
            .organizations()
            .list_accounts()
            .set_next_token(token)
            .send();
        let out = match super::boxed(call).await {
            Ok(out) => out,
            Err(e) => {
                return not_in_use(AwsError::from_sdk("organizations:ListAccounts", &region, e));
            }
        };
        let accounts = out
            .accounts()
            .iter()
            .filter(|a| {
                // `State` replaces `Status` (retired in September 2026);
                // read `Status` only where `State` is absent.
                match (a.state(), a.status()) {
                    (Some(state), _) => *state == AccountState::Active,
                    (None, Some(status)) => *status == AccountStatus::Active,
                    (None, None) => false,
                }
            })
            .filter_map(|a| a.id().map(str::to_string))
            .collect();
        Ok(Some(AccountsPage {
            accounts,
            next_token: out.next_token().map(str::to_string),
        }))
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
