//! Which Microsoft 365 groups and teams a tenant has.
//!
//! Microsoft 365 ("Unified") groups are the ones with conversations, a
//! calendar and a site; a team is such a group whose
//! `resourceProvisioningOptions` holds "Team". `groupTypes/any(...)` is a
//! standard filter on groups (no advanced query needed), and
//! `resourceProvisioningOptions` can be selected, so one paged listing
//! tells groups and teams apart.

use graph::GraphClient;
use serde_json::{Map, Value, json};

use super::{DiscoveredGroup, GroupKind};
use crate::error::Result;
use crate::run::id_of;

const GROUP_SELECT: &str = "id,displayName,description,mail,mailNickname,visibility,groupTypes,\
resourceProvisioningOptions,createdDateTime,classification";

fn has(v: &Value, key: &str, wanted: &str) -> bool {
    v.get(key)
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(wanted)))
}

/// Every Microsoft 365 group and team a task may protect.
pub async fn discover_groups(graph: &GraphClient) -> Result<Vec<DiscoveredGroup>> {
    let url = format!(
        "/groups?$filter=groupTypes/any(c:c%20eq%20'Unified')&$select={GROUP_SELECT}&$top=999"
    );
    let groups = graph.get_all(&url).await?;
    let mut out = Vec::new();
    for g in groups {
        let Some(id) = id_of(&g) else {
            tracing::warn!("Microsoft Graph listed a group without an id; it is left out");
            continue;
        };
        // The filter already says so; a tenant answering without it must not
        // make security groups look like Microsoft 365 groups.
        if !has(&g, "groupTypes", "Unified") {
            continue;
        }
        let text = |k: &str| g.get(k).and_then(Value::as_str).map(str::to_string);
        let mut properties = Map::new();
        for k in [
            "description",
            "mailNickname",
            "createdDateTime",
            "classification",
            "visibility",
        ] {
            if let Some(v) = g.get(k).filter(|v| !v.is_null()) {
                properties.insert(k.into(), v.clone());
            }
        }
        let kind = if has(&g, "resourceProvisioningOptions", "Team") {
            GroupKind::Team
        } else {
            GroupKind::Group
        };
        properties.insert("kind".into(), json!(kind));
        out.push(DiscoveredGroup {
            graph_id: id.to_string(),
            display_name: text("displayName").unwrap_or_else(|| id.to_string()),
            mail: text("mail"),
            kind,
            visibility: text("visibility"),
            properties: Value::Object(properties),
        });
    }
    Ok(out)
}
