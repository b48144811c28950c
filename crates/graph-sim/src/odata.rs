//! OData request context: query options, `Prefer` headers, absolute links on
//! the simulator's own host, paging and `$select` projection.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::{HeaderMap, request::Parts};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::Sim;
use crate::error::{GraphError, GraphResult};
use crate::filter::Filter;

/// OData system query options of one request.
#[derive(Debug, Clone, Default)]
pub struct ODataQuery {
    pub select: Option<Vec<String>>,
    pub expand: Option<String>,
    pub filter: Option<String>,
    pub orderby: Option<String>,
    pub search: Option<String>,
    pub top: Option<usize>,
    pub skip: Option<usize>,
    pub skiptoken: Option<String>,
    pub deltatoken: Option<String>,
    pub count: bool,
    /// Every parameter as sent (names without a leading `$` normalised to have one
    /// when they are system query options).
    pub params: Vec<(String, String)>,
}

impl ODataQuery {
    pub fn parse(raw: Option<&str>) -> GraphResult<Self> {
        let mut q = ODataQuery::default();
        let Some(raw) = raw else { return Ok(q) };
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            let key = k.to_string();
            let bare = key.trim_start_matches('$').to_ascii_lowercase();
            let v = v.to_string();
            let system = matches!(
                bare.as_str(),
                "select"
                    | "expand"
                    | "filter"
                    | "orderby"
                    | "search"
                    | "top"
                    | "skip"
                    | "skiptoken"
                    | "deltatoken"
                    | "count"
            );
            match bare.as_str() {
                "select" => {
                    q.select = Some(
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    )
                }
                "expand" => q.expand = Some(v.clone()),
                "filter" => q.filter = Some(v.clone()),
                "orderby" => q.orderby = Some(v.clone()),
                "search" => q.search = Some(v.trim_matches('"').to_string()),
                "top" => {
                    q.top = Some(v.parse().map_err(|_| {
                        GraphError::bad_request(format!(
                            "Invalid value '{v}' for query option $top."
                        ))
                    })?)
                }
                "skip" => {
                    q.skip = Some(v.parse().map_err(|_| {
                        GraphError::bad_request(format!(
                            "Invalid value '{v}' for query option $skip."
                        ))
                    })?)
                }
                "skiptoken" => q.skiptoken = Some(v.clone()),
                "deltatoken" => q.deltatoken = Some(v.clone()),
                "count" => q.count = v.eq_ignore_ascii_case("true"),
                _ => {}
            }
            let name = if system { format!("${bare}") } else { key };
            q.params.push((name, v));
        }
        // Expanded navigation properties come back whatever `$select` says.
        if let (Some(sel), Some(exp)) = (&mut q.select, &q.expand) {
            for name in top_level_names(exp) {
                if !sel.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
                    sel.push(name);
                }
            }
        }
        Ok(q)
    }

    /// A non-system parameter such as `token` or `startDateTime`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn parsed_filter(&self) -> GraphResult<Option<Filter>> {
        self.filter.as_deref().map(Filter::parse).transpose()
    }
}

/// What the client asked for in `Prefer` headers.
#[derive(Debug, Clone, Default)]
pub struct Prefer {
    pub max_page_size: Option<usize>,
    pub immutable_id: bool,
    pub return_minimal: bool,
    /// `Prefer: outlook.body-content-type="text"`.
    pub body_text: bool,
    /// Preferences applied, echoed in `Preference-Applied`.
    pub applied: Vec<String>,
}

impl Prefer {
    pub fn from_headers(headers: &HeaderMap) -> Prefer {
        let mut p = Prefer::default();
        for value in headers.get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for part in value.split(',') {
                let part = part.trim();
                let lower = part.to_ascii_lowercase();
                if let Some(n) = lower.strip_prefix("odata.maxpagesize=") {
                    if let Ok(n) = n.trim().parse() {
                        p.max_page_size = Some(n);
                        p.applied.push(format!("odata.maxpagesize={n}"));
                    }
                } else if lower.replace(' ', "") == "idtype=\"immutableid\"" {
                    p.immutable_id = true;
                    p.applied.push("IdType=\"ImmutableId\"".into());
                } else if lower == "return=minimal" {
                    p.return_minimal = true;
                } else if lower.replace(' ', "") == "outlook.body-content-type=\"text\"" {
                    p.body_text = true;
                    p.applied.push("outlook.body-content-type=\"text\"".into());
                }
            }
        }
        p
    }
}

/// Everything a Graph handler needs to know about the request besides its body.
#[derive(Debug, Clone)]
pub struct GraphCtx {
    /// `http(s)://host:port` of the simulator as the client addressed it.
    pub origin: String,
    /// `origin` + `/v1.0`.
    pub base: String,
    /// The request path below `/v1.0`, e.g. `/users/{id}/messages`.
    pub path: String,
    pub query: ODataQuery,
    pub prefer: Prefer,
    pub headers: HeaderMap,
}

impl GraphCtx {
    /// `@odata.context` for an entity set or entity.
    pub fn context(&self, fragment: &str) -> String {
        match &self.query.select {
            Some(sel) if !fragment.ends_with("/$entity") => {
                format!("{}/$metadata#{}({})", self.base, fragment, sel.join(","))
            }
            _ => format!("{}/$metadata#{}", self.base, fragment),
        }
    }

    /// The same request with the given extra parameters replacing paging ones.
    pub fn link_with(&self, path: &str, replace: &[&str], add: &[(&str, String)]) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (k, v) in &self.query.params {
            if replace.iter().any(|r| r.eq_ignore_ascii_case(k)) {
                continue;
            }
            parts.push(format!("{}={}", k, encode(v)));
        }
        for (k, v) in add {
            parts.push(format!("{}={}", k, encode(v)));
        }
        if parts.is_empty() {
            format!("{}{}", self.base, path)
        } else {
            format!("{}{}?{}", self.base, path, parts.join("&"))
        }
    }

    /// Page size for a collection: `$top`, else `Prefer: odata.maxpagesize`,
    /// else the collection's default, never above its maximum.
    pub fn page_size(&self, default: usize, max: usize) -> usize {
        self.query
            .top
            .or(self.prefer.max_page_size)
            .unwrap_or(default)
            .clamp(1, max)
    }
}

pub fn encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl FromRequestParts<Arc<Sim>> for GraphCtx {
    type Rejection = GraphError;

    async fn from_request_parts(
        parts: &mut Parts,
        sim: &Arc<Sim>,
    ) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get("x-forwarded-host")
            .or_else(|| parts.headers.get(axum::http::header::HOST))
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| sim.listen_host());
        let origin = format!("{}://{}", sim.scheme(), host);
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map(|o| o.0.clone())
            .unwrap_or_else(|| parts.uri.clone());
        let path = uri
            .path()
            .strip_prefix("/v1.0")
            .unwrap_or(uri.path())
            .to_string();
        let query = ODataQuery::parse(uri.query())?;
        Ok(GraphCtx {
            base: format!("{origin}/v1.0"),
            origin,
            path,
            query,
            prefer: Prefer::from_headers(&parts.headers),
            headers: parts.headers.clone(),
        })
    }
}

/// Sizes of a collection's pages as Graph documents them.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub default: usize,
    pub max: usize,
}

impl PageLimits {
    pub const DIRECTORY: PageLimits = PageLimits {
        default: 100,
        max: 999,
    };
    pub const OUTLOOK: PageLimits = PageLimits {
        default: 10,
        max: 1000,
    };
    pub const DRIVE: PageLimits = PageLimits {
        default: 200,
        max: 1000,
    };
    pub const TEAMS: PageLimits = PageLimits {
        default: 20,
        max: 50,
    };
    pub const SMALL: PageLimits = PageLimits {
        default: 100,
        max: 999,
    };
}

pub fn encode_token(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

pub fn decode_token(token: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

fn skip_offset(ctx: &GraphCtx) -> GraphResult<usize> {
    if let Some(tok) = &ctx.query.skiptoken {
        let text =
            decode_token(tok).ok_or_else(|| GraphError::bad_request("Invalid $skiptoken."))?;
        return text
            .strip_prefix("o:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| GraphError::bad_request("Invalid $skiptoken."));
    }
    Ok(ctx.query.skip.unwrap_or(0))
}

/// Applies `$filter`, `$orderby`, `$count`, paging and `$select` to a full
/// collection and builds Graph's collection response.
pub fn collection(
    ctx: &GraphCtx,
    context_fragment: &str,
    mut items: Vec<Value>,
    limits: PageLimits,
    default_select: Option<&[&str]>,
) -> GraphResult<Value> {
    if let Some(filter) = ctx.query.parsed_filter()? {
        items.retain(|i| filter.matches(i));
    }
    if let Some(order) = &ctx.query.orderby {
        sort_by(&mut items, order);
    }
    let total = items.len();
    let offset = skip_offset(ctx)?;
    let size = ctx.page_size(limits.default, limits.max);
    let page: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(size)
        .map(|v| project(v, ctx.query.select.as_deref(), default_select))
        .collect();
    finish_page(ctx, context_fragment, page, offset, size, total)
}

fn finish_page(
    ctx: &GraphCtx,
    context_fragment: &str,
    page: Vec<Value>,
    offset: usize,
    size: usize,
    total: usize,
) -> GraphResult<Value> {
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(ctx.context(context_fragment)),
    );
    if ctx.query.count {
        body.insert("@odata.count".into(), json!(total));
    }
    let end = offset.saturating_add(size);
    if end < total {
        let link = ctx.link_with(
            &ctx.path,
            &["$skiptoken", "$skip"],
            &[("$skiptoken", encode_token(&format!("o:{end}")))],
        );
        body.insert("@odata.nextLink".into(), json!(link));
    }
    body.insert("value".into(), Value::Array(page));
    Ok(Value::Object(body))
}

/// Like [`collection`], for a large source: when the request neither
/// filters nor sorts, only the requested page is rendered (a 10,000-user
/// directory pages in microseconds, not in a full render per page).
pub fn collection_of<T>(
    ctx: &GraphCtx,
    context_fragment: &str,
    source: &[T],
    render: impl Fn(&T) -> Value,
    limits: PageLimits,
    default_select: Option<&[&str]>,
) -> GraphResult<Value> {
    if ctx.query.filter.is_some() || ctx.query.orderby.is_some() {
        return collection(
            ctx,
            context_fragment,
            source.iter().map(render).collect(),
            limits,
            default_select,
        );
    }
    let offset = skip_offset(ctx)?;
    let size = ctx.page_size(limits.default, limits.max);
    let page = source
        .iter()
        .skip(offset)
        .take(size)
        .map(|t| project(render(t), ctx.query.select.as_deref(), default_select))
        .collect();
    finish_page(ctx, context_fragment, page, offset, size, source.len())
}

/// The property names of an `$expand` list (`a($select=x),b` gives a and b).
fn top_level_names(expand: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for ch in expand.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ if depth == 0 => cur.push(ch),
            _ => {}
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// One entity with `@odata.context` and `$select` applied.
pub fn entity(
    ctx: &GraphCtx,
    context_fragment: &str,
    item: Value,
    default_select: Option<&[&str]>,
) -> Value {
    let mut v = project(item, ctx.query.select.as_deref(), default_select);
    if let Value::Object(m) = &mut v {
        let mut out = Map::new();
        out.insert(
            "@odata.context".into(),
            json!(ctx.context(&format!("{context_fragment}/$entity"))),
        );
        out.extend(std::mem::take(m));
        return Value::Object(out);
    }
    v
}

fn sort_by(items: &mut [Value], order: &str) {
    let mut keys: Vec<(Vec<String>, bool)> = Vec::new();
    for clause in order.split(',') {
        let mut words = clause.split_whitespace();
        if let Some(path) = words.next() {
            let desc = words.next().is_some_and(|w| w.eq_ignore_ascii_case("desc"));
            keys.push((path.split('/').map(str::to_string).collect(), desc));
        }
    }
    items.sort_by(|a, b| {
        for (path, desc) in &keys {
            let va = lookup(a, path);
            let vb = lookup(b, path);
            let ord = cmp_values(&va, &vb);
            let ord = if *desc { ord.reverse() } else { ord };
            if ord.is_ne() {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
}

fn lookup(v: &Value, path: &[String]) -> Value {
    let mut cur = v;
    for seg in path {
        match cur
            .as_object()
            .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(seg)))
        {
            Some((_, next)) => cur = next,
            None => return Value::Null,
        }
    }
    cur.clone()
}

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
        (Value::Null, _) => std::cmp::Ordering::Less,
        (_, Value::Null) => std::cmp::Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Keeps the selected properties (case-insensitively, as Graph does), plus
/// `id` and OData annotations. Without `$select`, `default_select` (when the
/// entity type has a default set, as users do) decides.
pub fn project(item: Value, select: Option<&[String]>, default_select: Option<&[&str]>) -> Value {
    let Value::Object(map) = item else {
        return item;
    };
    let wanted: Option<Vec<String>> = match (select, default_select) {
        (Some(sel), _) if !sel.iter().any(|s| s == "*") => {
            Some(sel.iter().map(|s| s.to_ascii_lowercase()).collect())
        }
        (None, Some(def)) => Some(def.iter().map(|s| s.to_ascii_lowercase()).collect()),
        _ => None,
    };
    let Some(wanted) = wanted else {
        return Value::Object(map);
    };
    let out: Map<String, Value> = map
        .into_iter()
        .filter(|(k, _)| {
            k == "id" || k.starts_with('@') || wanted.iter().any(|w| w == &k.to_ascii_lowercase())
        })
        .collect();
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options_with_and_without_dollar() {
        let q = ODataQuery::parse(Some(
            "$select=id,displayName&top=5&$filter=a%20eq%201&token=latest",
        ))
        .unwrap();
        assert_eq!(
            q.select.as_deref(),
            Some(&["id".to_string(), "displayName".to_string()][..])
        );
        assert_eq!(q.top, Some(5));
        assert_eq!(q.filter.as_deref(), Some("a eq 1"));
        assert_eq!(q.param("token"), Some("latest"));
        assert!(ODataQuery::parse(Some("$top=abc")).is_err());
    }

    #[test]
    fn projection_is_case_insensitive_and_keeps_id() {
        let v = json!({"id": "1", "displayName": "A", "mail": "a@x", "@odata.etag": "e"});
        let p = project(v, Some(&["DISPLAYNAME".to_string()]), None);
        assert_eq!(
            p,
            json!({"id": "1", "displayName": "A", "@odata.etag": "e"})
        );
    }
}
