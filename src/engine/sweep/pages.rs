//! ListSecrets, page by page: the one way the sweep, an org sweep cell and
//! the replica listings page through a Region's secrets.

use futures::Stream;

use crate::aws::SecretsApi;
use crate::engine::inspect::Budget;
use crate::model::{Gap, SecretState};

/// One page of ListSecrets: its secrets, and the token of the next page
/// (`None` on the last).
pub(crate) type Page = (Vec<SecretState>, Option<String>);

/// The pages of ListSecrets in `region` from `token` (the first page when
/// `None`), only replicas of primaries in `primary_region` when given, each
/// call made within the budget when the stream is polled for it. The
/// stream ends after the last page, or after the gap that stopped it.
pub(crate) fn list_pages<'a, S: SecretsApi>(
    secrets: &'a S,
    budget: &'a Budget,
    region: &'a str,
    primary_region: Option<&'a str>,
    token: Option<String>,
) -> impl Stream<Item = Result<Page, Gap>> + 'a {
    // `Some(token)`: a page is still to be asked for.
    futures::stream::unfold(Some(token), move |state| async move {
        let token = state?;
        let listed = budget
            .run(
                "secretsmanager:ListSecrets",
                region,
                secrets.list_secrets(region, primary_region, token),
            )
            .await;
        match listed {
            Ok((page, next)) => {
                let next = next.filter(|t| !t.is_empty());
                let more = next.clone().map(Some);
                Some((Ok((page, next)), more))
            }
            Err(gap) => Some((Err(gap), None)),
        }
    })
}
