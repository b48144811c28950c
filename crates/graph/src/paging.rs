//! Collections and delta: following `@odata.nextLink` to the end, and delta
//! rounds ending in `@odata.deltaLink`, with removals told apart.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{GraphClient, Request};
use crate::error::{GraphError, GraphResult};

/// One page of a collection.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Value>,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
}

/// An item of a delta round.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaChange {
    /// Created or changed: the item's current state.
    Changed(Value),
    /// Gone from the collection (deleted or moved out). Outlook and
    /// directory resources say so with `@removed`; drives with a `deleted` facet.
    Removed { id: String, reason: String },
}

/// A whole delta round.
#[derive(Debug, Default)]
pub struct DeltaRound {
    pub changes: Vec<DeltaChange>,
    /// Where the next round starts.
    pub delta_link: String,
    pub pages: usize,
}

impl DeltaRound {
    pub fn changed(&self) -> impl Iterator<Item = &Value> {
        self.changes.iter().filter_map(|c| match c {
            DeltaChange::Changed(v) => Some(v),
            _ => None,
        })
    }
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.changes.iter().filter_map(|c| match c {
            DeltaChange::Removed { id, .. } => Some(id.as_str()),
            _ => None,
        })
    }
}

/// Deserialises one item of a response, naming the request if it does not fit.
pub fn decode<T: DeserializeOwned>(v: Value, request: &str) -> GraphResult<T> {
    serde_json::from_value(v).map_err(|e| GraphError::Decode {
        request: request.to_string(),
        detail: e.to_string(),
    })
}

fn classify(item: Value) -> DeltaChange {
    if let Some(removed) = item.get("@removed") {
        let reason = removed
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("deleted")
            .to_string();
        return DeltaChange::Removed {
            id: item
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            reason,
        };
    }
    if item.get("deleted").is_some_and(|d| !d.is_null()) {
        return DeltaChange::Removed {
            id: item
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            reason: "deleted".into(),
        };
    }
    DeltaChange::Changed(item)
}

impl GraphClient {
    /// One page of a collection.
    pub async fn page(&self, req: Request) -> GraphResult<Page> {
        let resp = self.send(req).await?;
        let mut v: Value = resp.json()?;
        let items = match v.get_mut("value").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(GraphError::Decode {
                    request: resp.request.clone(),
                    detail: "the answer has no 'value' array".into(),
                });
            }
        };
        let link = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
        Ok(Page {
            items,
            next_link: link("@odata.nextLink"),
            delta_link: link("@odata.deltaLink"),
        })
    }

    /// Every item of a collection, following next links.
    pub async fn get_all(&self, url: &str) -> GraphResult<Vec<Value>> {
        self.get_all_with(Request::get(url)).await
    }

    /// Every item of a collection; `first` carries headers (e.g. `Prefer`) that
    /// are repeated on every page.
    pub async fn get_all_with(&self, first: Request) -> GraphResult<Vec<Value>> {
        let headers = first.headers.clone();
        let mut out = Vec::new();
        let mut req = Some(first);
        while let Some(r) = req.take() {
            let page = self.page(r).await?;
            out.extend(page.items);
            req = page.next_link.map(|n| Request {
                headers: headers.clone(),
                ..Request::get(n)
            });
        }
        Ok(out)
    }

    /// Every item, typed.
    pub async fn get_all_typed<T: DeserializeOwned>(&self, url: &str) -> GraphResult<Vec<T>> {
        self.get_all(url)
            .await?
            .into_iter()
            .map(|v| decode(v, url))
            .collect()
    }

    /// A whole delta round from `start` (a delta function URL or a previous
    /// delta link). An expired or invalid token is [`GraphError::DeltaExpired`].
    pub async fn delta_round(&self, start: Request) -> GraphResult<DeltaRound> {
        let headers = start.headers.clone();
        let mut round = DeltaRound::default();
        let mut req = start;
        loop {
            let page = self.page(req).await?;
            round.pages += 1;
            round.changes.extend(page.items.into_iter().map(classify));
            if let Some(next) = page.next_link {
                req = Request {
                    headers: headers.clone(),
                    ..Request::get(next)
                };
                continue;
            }
            round.delta_link = page.delta_link.ok_or_else(|| GraphError::Decode {
                request: "delta".into(),
                detail: "the last page has neither @odata.nextLink nor @odata.deltaLink".into(),
            })?;
            return Ok(round);
        }
    }
}
