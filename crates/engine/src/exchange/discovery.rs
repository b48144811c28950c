//! Which mailboxes a tenant has.
//!
//! Licensed users have mailboxes. Unlicensed ones may be shared mailboxes
//! (which need no license), unlicensed user mailboxes, or users with no
//! mailbox at all; `mailboxSettings.userPurpose` tells them apart, asked in
//! `$batch`es of 20 so that a large tenant costs one round trip per 20
//! unlicensed users rather than one each.

use graph::models::{USER_SELECT, User};
use graph::{BatchItem, GraphClient};
use serde_json::{Map, Value, json};

use super::{DiscoveredMailbox, DiscoveryOptions, MailboxKind};
use crate::error::Result;

/// Every mailbox the task may protect.
pub async fn discover_mailboxes(
    graph: &GraphClient,
    opts: &DiscoveryOptions,
) -> Result<Vec<DiscoveredMailbox>> {
    let users: Vec<User> = graph
        .get_all_typed(&format!("/users?$select={USER_SELECT}&$top=999"))
        .await?;
    let unlicensed: Vec<&User> = users.iter().filter(|u| !u.is_licensed()).collect();
    let items: Vec<BatchItem> = unlicensed
        .iter()
        .map(|u| {
            BatchItem::get(
                u.id.clone(),
                format!("/users/{}/mailboxSettings?$select=userPurpose", u.id),
            )
        })
        .collect();
    let purposes: std::collections::HashMap<String, Option<String>> = if items.is_empty() {
        Default::default()
    } else {
        graph
            .batch(items)
            .await?
            .into_iter()
            .map(|r| {
                // 404 (MailboxNotEnabledForRESTAPI and the like): no mailbox.
                let purpose = r
                    .is_success()
                    .then(|| r.body.get("userPurpose").and_then(Value::as_str))
                    .flatten()
                    .map(|s| s.to_ascii_lowercase());
                (r.id, purpose)
            })
            .collect()
    };
    let mut out = Vec::new();
    for u in &users {
        let licensed = u.is_licensed();
        let kind = if licensed {
            MailboxKind::User
        } else {
            match purposes.get(&u.id).cloned().flatten().as_deref() {
                Some("shared") => MailboxKind::Shared,
                Some("user") if opts.include_unlicensed => MailboxKind::User,
                _ => continue,
            }
        };
        out.push(DiscoveredMailbox {
            graph_id: u.id.clone(),
            display_name: u
                .display_name
                .clone()
                .or_else(|| u.user_principal_name.clone())
                .unwrap_or_else(|| u.id.clone()),
            email: u.mail.clone().or_else(|| u.user_principal_name.clone()),
            kind,
            licensed,
            account_enabled: u.account_enabled.unwrap_or(true),
            properties: directory_properties(u),
        });
    }
    Ok(out)
}

/// Directory properties of a user for filters and rules (department,
/// city, ...), shared by every workload's discovery.
pub(crate) fn directory_properties(u: &User) -> Value {
    let mut m = Map::new();
    for (k, v) in [
        ("department", &u.department),
        ("city", &u.city),
        ("country", &u.country),
        ("companyName", &u.company_name),
        ("jobTitle", &u.job_title),
        ("officeLocation", &u.office_location),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Some(upn) = &u.user_principal_name {
        m.insert("userPrincipalName".into(), json!(upn));
    }
    m.insert(
        "accountEnabled".into(),
        json!(u.account_enabled.unwrap_or(true)),
    );
    m.insert("licensed".into(), json!(u.is_licensed()));
    Value::Object(m)
}
