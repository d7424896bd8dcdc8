//! AWS Organizations adapter: DescribeOrganization, to learn the
//! organisation the auditor's own account belongs to.

use super::{AwsClients, AwsError, OrganizationsApi};

impl OrganizationsApi for AwsClients {
    async fn own_organization(&self) -> Result<Option<String>, AwsError> {
        // Organizations is a global service: the SDK's endpoint rules send
        // every Region of the partition to its one endpoint.
        let region = self.home_region().unwrap_or_default();
        let call = self.organizations().describe_organization().send();
        match super::boxed(call).await {
            Ok(out) => Ok(out.organization().and_then(|o| o.id()).map(str::to_string)),
            Err(e) => {
                let err = AwsError::from_sdk("organizations:DescribeOrganization", &region, e);
                match &err {
                    // The account is in no organisation.
                    AwsError::Service { code, .. }
                        if code == "AWSOrganizationsNotInUseException" =>
                    {
                        Ok(None)
                    }
                    _ => Err(err),
                }
            }
        }
    }
}
