//! The other side of a cross-account replication (issue 26): for each link
//! DescribeSecret shows, whether the other account is in the auditor's
//! organisation (for the trust judgement), and, when the auditor may act
//! in that account, the other secret described there (same Region), so the
//! audit can see that both sides name each other. An account outside the
//! scope is not entered and not an error: the link is just not
//! cross-checked. These calls are made only when a link is present, beside
//! the inspection's other reads (docs/cross-account.md).

use std::future::Future;

use futures::future::join_all;

use super::App;
use super::inspect::Budget;
use crate::aws::Ports;
use crate::cross_account::{Counterpart, Links, Membership, OtherView};
use crate::model::{Gap, GapKind, SecretState};

/// Looks at the other ends of a secret's cross-account links.
pub trait OtherSide: Sync {
    /// One [`Counterpart`] per link of `secret`, and the checks that could
    /// not be made.
    fn counterparts(
        &self,
        secret: &SecretState,
        links: &Links,
        budget: &Budget,
    ) -> impl Future<Output = (Vec<Counterpart>, Vec<Gap>)> + Send;
}

/// A path that does not cross accounts: nothing looked up. An account
/// the rules do not trust already is a gap (its trust was not judged).
pub struct NoOtherSide;

impl OtherSide for NoOtherSide {
    async fn counterparts(
        &self,
        secret: &SecretState,
        links: &Links,
        _: &Budget,
    ) -> (Vec<Counterpart>, Vec<Gap>) {
        let own = crate::arn::parse_secret_arn(&secret.arn).map(|a| a.account);
        let mut gaps = Vec::new();
        let counterparts = links
            .others()
            .into_iter()
            .map(|arn| {
                let account = crate::arn::parse_secret_arn(arn).map(|a| a.account);
                if account.is_some() && account != own {
                    gaps.push(Gap {
                        call: "organizations:ListAccounts".into(),
                        region: secret.region.clone(),
                        kind: GapKind::Other,
                        reason: format!(
                            "the cross-account link to {arn} was not checked on this path (trust and the other side)"
                        ),
                    });
                }
                Counterpart {
                    arn: arn.to_string(),
                    membership: Membership::NotKnown,
                    view: OtherView::Unknown,
                }
            })
            .collect();
        (counterparts, gaps)
    }
}

impl<C: Ports, S: Send + Sync> OtherSide for App<C, S> {
    async fn counterparts(
        &self,
        secret: &SecretState,
        links: &Links,
        budget: &Budget,
    ) -> (Vec<Counterpart>, Vec<Gap>) {
        let own = crate::arn::parse_secret_arn(&secret.arn).map(|a| a.account);
        let found = join_all(
            links
                .others()
                .into_iter()
                .map(|arn| self.counterpart(own.as_deref(), arn, budget)),
        )
        .await;
        let mut gaps = Vec::new();
        let counterparts = found
            .into_iter()
            .map(|(c, g)| {
                gaps.extend(g);
                c
            })
            .collect();
        (counterparts, gaps)
    }
}

impl<C: Ports, S> App<C, S> {
    /// The secret `arn` at the other end of a link of a secret in `own`:
    /// its account's membership (unless the rules trust it already) and its
    /// own view, both at once.
    async fn counterpart(
        &self,
        own: Option<&str>,
        arn: &str,
        budget: &Budget,
    ) -> (Counterpart, Vec<Gap>) {
        let mut gaps = Vec::new();
        let Some(at) = crate::arn::parse_secret_arn(arn) else {
            let unknown = Counterpart {
                arn: arn.to_string(),
                membership: Membership::NotKnown,
                view: OtherView::Unknown,
            };
            return (unknown, gaps);
        };
        let trusted = own == Some(at.account.as_str())
            || self
                .settings
                .rules
                .trusted_account_ids
                .contains(&at.account);
        let membership = async {
            if trusted {
                (Membership::NotKnown, None)
            } else {
                self.membership(&at.account, budget).await
            }
        };
        let (membership, view) = futures::join!(
            membership,
            self.other_view(&at.account, &at.region, arn, budget)
        );
        gaps.extend(membership.1);
        gaps.extend(view.1);
        let counterpart = Counterpart {
            arn: arn.to_string(),
            membership: membership.0,
            view: view.0,
        };
        (counterpart, gaps)
    }

    /// The other secret described in its own account, when the auditor may
    /// act there. Out of scope is quiet (no refusal metric, no warning):
    /// nothing asked the auditor to enter that account.
    async fn other_view(
        &self,
        account: &str,
        region: &str,
        arn: &str,
        budget: &Budget,
    ) -> (OtherView, Option<Gap>) {
        match self.may_act_in(account, budget).await {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return (OtherView::OutOfScope(refusal.to_string()), None),
            Err(gap) => return (OtherView::Unknown, Some(gap)),
        }
        let entered = budget
            .run(
                "sts:AssumeRole",
                &self.home_region,
                self.clients.acting_in(account),
            )
            .await;
        let clients = match entered {
            Ok(c) => c,
            Err(gap) => return (OtherView::Unknown, Some(gap)),
        };
        let described = budget
            .run(
                "secretsmanager:DescribeSecret",
                region,
                clients.describe_linked(region, arn),
            )
            .await;
        match described {
            Ok(Some((_, links))) => (OtherView::Described(links), None),
            Ok(None) => (OtherView::NotFound, None),
            Err(gap) => (OtherView::Unknown, Some(gap)),
        }
    }
}
