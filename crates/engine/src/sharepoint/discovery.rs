//! Which sites a tenant has.
//!
//! `GET /sites/getAllSites` lists every site collection, OneDrive (personal)
//! sites included; those are left out (OneDrive is its own workload). Each
//! collection's sub-sites come from `/sites/{id}/sites`, level by level.
//! Group-connected team sites are told apart by asking each Microsoft 365
//! group for its root site, in `$batch`es of 20, because a site's own JSON
//! does not say which group it belongs to.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use graph::{BatchItem, GraphClient, Request};
use serde_json::{Map, Value, json};

use super::DiscoveredSite;
use crate::error::{EngineError, Result};
use crate::run::{id_of, seg};

/// Sub-site listings in flight at once.
const CONCURRENCY: usize = 4;

/// Every site the task may protect: site collections and their sub-sites,
/// without personal (OneDrive) sites, group-connected ones marked.
pub async fn discover_sites(graph: &GraphClient) -> Result<Vec<DiscoveredSite>> {
    let collections = graph.get_all("/sites/getAllSites").await?;
    let mut out: Vec<DiscoveredSite> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut level: Vec<String> = Vec::new();
    for s in collections {
        if is_personal(&s) {
            continue;
        }
        let site = describe(&s, None)?;
        if seen.insert(site.graph_id.to_ascii_lowercase()) {
            level.push(site.graph_id.clone());
            out.push(site);
        }
    }
    // Sub-sites, breadth first: each level's listings run concurrently.
    while !level.is_empty() {
        let listings: Vec<(String, Result<Vec<Value>>)> = futures::stream::iter(level.drain(..))
            .map(|parent| async move {
                let r = graph
                    .get_all(&format!("/sites/{parent}/sites"))
                    .await
                    .map_err(EngineError::from);
                (parent, r)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (parent, listing) in listings {
            let subs = match listing {
                Ok(v) => v,
                // Deleted since getAllSites listed it.
                Err(EngineError::Graph(e)) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            for s in subs {
                if is_personal(&s) {
                    continue;
                }
                let site = describe(&s, Some(&parent))?;
                if seen.insert(site.graph_id.to_ascii_lowercase()) {
                    level.push(site.graph_id.clone());
                    out.push(site);
                }
            }
        }
    }
    let groups = group_sites(graph).await?;
    for site in &mut out {
        if let Some(g) = groups.get(&site.graph_id.to_ascii_lowercase()) {
            site.group_id = Some(g.clone());
            if let Value::Object(m) = &mut site.properties {
                m.insert("groupId".into(), json!(g));
            }
        }
    }
    Ok(out)
}

/// A OneDrive site: flagged as personal, or on the tenant's `-my` host.
fn is_personal(s: &Value) -> bool {
    if s.get("isPersonalSite").and_then(Value::as_bool) == Some(true) {
        return true;
    }
    s.get("webUrl")
        .and_then(Value::as_str)
        .and_then(|u| u.split("://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|host| host.to_ascii_lowercase().contains("-my.sharepoint."))
}

fn describe(s: &Value, parent: Option<&str>) -> Result<DiscoveredSite> {
    let id = id_of(s).ok_or_else(|| {
        EngineError::Invalid("Microsoft Graph listed a site without an id".into())
    })?;
    let id = seg(id)?.to_string();
    let text = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
    let web_url = text("webUrl").unwrap_or_default();
    let display_name = text("displayName")
        .filter(|n| !n.is_empty())
        .or_else(|| text("name"))
        .unwrap_or_else(|| web_url.clone());
    let mut props = Map::new();
    for k in [
        "name",
        "description",
        "webUrl",
        "createdDateTime",
        "lastModifiedDateTime",
    ] {
        if let Some(v) = s.get(k).filter(|v| !v.is_null()) {
            props.insert(k.into(), v.clone());
        }
    }
    let host_and_path = web_url.split("://").nth(1).unwrap_or_default();
    let (host, path) = host_and_path
        .split_once('/')
        .map(|(h, p)| (h.to_string(), format!("/{p}")))
        .unwrap_or_else(|| (host_and_path.to_string(), "/".to_string()));
    props.insert("hostname".into(), json!(host));
    props.insert("path".into(), json!(path));
    props.insert("isSubSite".into(), json!(parent.is_some()));
    props.insert(
        "isRootSite".into(),
        json!(s.pointer("/siteCollection/root").is_some() || s.get("root").is_some()),
    );
    Ok(DiscoveredSite {
        graph_id: id,
        display_name,
        web_url,
        is_sub_site: parent.is_some(),
        parent_id: parent.map(str::to_string),
        group_id: None,
        properties: Value::Object(props),
    })
}

/// Site id (lower case) → id of the Microsoft 365 group it belongs to.
async fn group_sites(graph: &GraphClient) -> Result<HashMap<String, String>> {
    let groups = graph
        .get_all_with(Request::get(
            "/groups?$select=id,groupTypes&$top=999".to_string(),
        ))
        .await?;
    let unified: Vec<String> = groups
        .iter()
        .filter(|g| {
            g.get("groupTypes")
                .and_then(Value::as_array)
                .is_some_and(|t| t.iter().any(|t| t.as_str() == Some("Unified")))
        })
        .filter_map(|g| id_of(g).map(str::to_string))
        .collect();
    let mut items = Vec::with_capacity(unified.len());
    for gid in &unified {
        items.push(BatchItem::get(
            gid.clone(),
            format!("/groups/{}/sites/root?$select=id", seg(gid)?),
        ));
    }
    if items.is_empty() {
        return Ok(HashMap::new());
    }
    let mut out = HashMap::new();
    for r in graph.batch(items).await? {
        match r.status {
            s if (200..300).contains(&s) => {}
            // A group without a site yet (being provisioned), or one whose
            // site the app may not read: not a site to mark.
            403 | 404 => continue,
            s => {
                return Err(EngineError::Invalid(format!(
                    "could not read the team site of group {}: HTTP {s} from Microsoft Graph",
                    r.id
                )));
            }
        }
        if let Some(site) = id_of(&r.body) {
            out.insert(site.to_ascii_lowercase(), r.id.clone());
        }
    }
    Ok(out)
}
