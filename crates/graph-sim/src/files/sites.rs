//! Sites (root, communication sites, group team sites, sub-sites), their
//! lists with columns and items, and site pages.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::content::{Content, GenKind};
use super::drive::Who;
use crate::delta::DeltaLog;
use crate::rng::{self, SimRng, pick, rng_for, stable_guid};
use crate::{generation_anchor, graph_time};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteKind {
    Root,
    Communication,
    /// The team site of a Microsoft 365 group.
    Group(String),
    Sub,
}

#[derive(Debug, Clone)]
pub struct SiteMeta {
    pub id: String,
    pub coll: String,
    pub web: String,
    pub host: String,
    /// URL name (last path segment).
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// Server-relative path: "" for the root site, "/sites/x", "/sites/x/sub".
    pub path: String,
    pub kind: SiteKind,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub parent: Option<String>,
    /// Document library names; 0 is "Documents".
    pub libs: Vec<String>,
    /// Libraries the seed fills; those added through the API start empty.
    pub generated_libs: usize,
    pub generated: bool,
    pub deleted: bool,
}

impl SiteMeta {
    pub fn web_url(&self) -> String {
        format!("https://{}{}", self.host, self.path)
    }

    pub fn is_collection_root(&self) -> bool {
        self.kind != SiteKind::Sub
    }

    pub fn json(&self, tenant_id: &str) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("displayName".into(), json!(self.display_name));
        m.insert("description".into(), json!(self.description));
        m.insert("webUrl".into(), json!(self.web_url()));
        m.insert("createdDateTime".into(), json!(graph_time(self.created)));
        m.insert(
            "lastModifiedDateTime".into(),
            json!(graph_time(self.modified)),
        );
        m.insert("isPersonalSite".into(), json!(false));
        if self.is_collection_root() {
            let mut sc = json!({"hostname": self.host, "dataLocationCode": "NAM"});
            if self.kind == SiteKind::Root {
                sc["root"] = json!({});
                m.insert("root".into(), json!({}));
            }
            m.insert("siteCollection".into(), sc);
        }
        m.insert(
            "sharepointIds".into(),
            json!({"siteId": self.coll, "webId": self.web, "siteUrl": self.web_url(), "tenantId": tenant_id}),
        );
        Value::Object(m)
    }
}

const COMM_SITES: &[(&str, &str)] = &[
    ("Intranet", "intranet"),
    ("HR Portal", "hr"),
    ("Marketing Hub", "marketinghub"),
    ("Legal Library", "legal"),
    ("Engineering Wiki", "engwiki"),
    ("Sales Central", "salescentral"),
    ("Project Apollo", "apollo"),
    ("Finance Reports", "finance"),
    ("IT Help Center", "ithelp"),
    ("Brand Center", "brand"),
];

fn guid(seed: u64, labels: &[&str]) -> String {
    stable_guid(seed, labels).to_string()
}

fn extra_lib(r: &mut SimRng) -> Vec<String> {
    let mut libs = vec!["Documents".to_string()];
    if r.random_bool(0.4) {
        libs.push(pick(r, &["Archive", "Project Files", "Records", "Contracts"]).to_string());
    }
    libs
}

/// The sites every tenant of this seed has (group sites are added per group).
pub fn generate_registry(seed: u64, host: &str, users: u32) -> BTreeMap<String, SiteMeta> {
    let mut out = BTreeMap::new();
    let anchor = generation_anchor();
    let mut r = rng_for(seed, &["sites"]);
    let root_coll = guid(seed, &["site-coll", "root"]);
    let root = SiteMeta {
        id: format!("{host},{root_coll},{}", guid(seed, &["site-web", "root"])),
        coll: root_coll.clone(),
        web: guid(seed, &["site-web", "root"]),
        host: host.into(),
        name: "Communication site".into(),
        display_name: "Communication site".into(),
        description: "The organization's home site".into(),
        path: String::new(),
        kind: SiteKind::Root,
        created: anchor - Duration::days(1200),
        modified: anchor - Duration::days(r.random_range(1..30)),
        parent: None,
        libs: extra_lib(&mut r),
        generated_libs: 0,
        generated: true,
        deleted: false,
    };
    let root_id = root.id.clone();
    out.insert(root.id.clone(), root);
    let n = (2 + users / 40).min(COMM_SITES.len() as u32) as usize;
    let mut first_comm = None;
    for (i, (display, name)) in COMM_SITES.iter().take(n).enumerate() {
        let coll = guid(seed, &["site-coll", "comm", name]);
        let web = guid(seed, &["site-web", "comm", name]);
        let s = SiteMeta {
            id: format!("{host},{coll},{web}"),
            coll,
            web,
            host: host.into(),
            name: name.to_string(),
            display_name: display.to_string(),
            description: format!("{display}: {}", rng::title(&mut r, 3, 6)),
            path: format!("/sites/{name}"),
            kind: SiteKind::Communication,
            created: anchor - Duration::days(r.random_range(100..1100)),
            modified: anchor - Duration::days(r.random_range(1..60)),
            parent: None,
            libs: extra_lib(&mut r),
            generated_libs: 0,
            generated: true,
            deleted: false,
        };
        if i == 0 {
            first_comm = Some(s.clone());
        }
        out.insert(s.id.clone(), s);
    }
    // Sub-sites: one under the root site, one under the first communication site.
    let mut subs = vec![(
        root_id.clone(),
        root_coll,
        String::new(),
        "archive",
        "Archive",
    )];
    if let Some(c) = first_comm {
        subs.push((
            c.id.clone(),
            c.coll.clone(),
            c.path.clone(),
            "events",
            "Events",
        ));
    }
    for (parent, coll, ppath, name, display) in subs {
        let web = guid(seed, &["site-web", "sub", &parent, name]);
        let path = if ppath.is_empty() {
            format!("/{name}")
        } else {
            format!("{ppath}/{name}")
        };
        let s = SiteMeta {
            id: format!("{host},{coll},{web}"),
            coll,
            web,
            host: host.into(),
            name: name.into(),
            display_name: display.into(),
            description: format!("{display} sub-site"),
            path,
            kind: SiteKind::Sub,
            created: anchor - Duration::days(r.random_range(100..600)),
            modified: anchor - Duration::days(r.random_range(1..60)),
            parent: Some(parent),
            libs: vec!["Documents".into()],
            generated_libs: 0,
            generated: true,
            deleted: false,
        };
        out.insert(s.id.clone(), s);
    }
    for s in out.values_mut() {
        s.generated_libs = s.libs.len();
    }
    out
}

/// The team site of a unified group.
pub fn group_site(
    seed: u64,
    host: &str,
    gid: &str,
    nickname: &str,
    display: &str,
    created: DateTime<Utc>,
    generated: bool,
) -> SiteMeta {
    let coll = guid(seed, &["site-coll", "group", gid]);
    let web = guid(seed, &["site-web", "group", gid]);
    let mut r = rng_for(seed, &["group-site", gid]);
    SiteMeta {
        id: format!("{host},{coll},{web}"),
        coll,
        web,
        host: host.into(),
        name: nickname.into(),
        display_name: display.into(),
        description: display.into(),
        path: format!("/sites/{nickname}"),
        kind: SiteKind::Group(gid.into()),
        created,
        modified: created.max(generation_anchor() - Duration::days(r.random_range(1..30))),
        parent: None,
        libs: if generated {
            extra_lib(&mut r)
        } else {
            vec!["Documents".into()]
        },
        generated_libs: 0,
        generated,
        deleted: false,
    }
    .with_generated_libs()
}

impl SiteMeta {
    fn with_generated_libs(mut self) -> Self {
        self.generated_libs = self.libs.len();
        self
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub display: String,
    /// `text`, `number`, `choice`, `dateTime`, `boolean`
    pub ty: &'static str,
    pub choices: Vec<String>,
}

impl Column {
    pub fn json(&self, list_id: &str) -> Value {
        let mut m = Map::new();
        m.insert(
            "id".into(),
            json!(stable_guid(0, &["column", list_id, &self.name]).to_string()),
        );
        m.insert("name".into(), json!(self.name));
        m.insert("displayName".into(), json!(self.display));
        m.insert("description".into(), json!(""));
        m.insert("columnGroup".into(), json!("Custom Columns"));
        m.insert("enforceUniqueValues".into(), json!(false));
        m.insert("hidden".into(), json!(false));
        m.insert("indexed".into(), json!(false));
        m.insert("readOnly".into(), json!(false));
        m.insert("required".into(), json!(self.name == "Title"));
        match self.ty {
            "text" => m.insert(
                "text".into(),
                json!({"allowMultipleLines": false, "appendChangesToExistingText": false, "linesForEditing": 0, "maxLength": 255}),
            ),
            "number" => m.insert(
                "number".into(),
                json!({"decimalPlaces": "automatic", "displayAs": "number"}),
            ),
            "choice" => m.insert(
                "choice".into(),
                json!({"allowTextEntry": false, "choices": self.choices, "displayAs": "dropDownMenu"}),
            ),
            "dateTime" => m.insert(
                "dateTime".into(),
                json!({"displayAs": "default", "format": "dateTime"}),
            ),
            _ => m.insert("boolean".into(), json!({})),
        };
        Value::Object(m)
    }
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub name: String,
    pub content: Content,
}

#[derive(Debug, Clone)]
pub struct ListItem {
    pub id: String,
    pub guid: String,
    pub fields: Map<String, Value>,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub created_by: Who,
    pub modified_by: Who,
    pub etag: u32,
    /// SharePoint list item attachments. Graph v1.0 exposes no endpoint for
    /// them (the CSDL's listItem has no attachments navigation; only the
    /// `Attachments` boolean field shows they exist), so they are kept here
    /// for the ground truth only.
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone)]
pub struct ListState {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub template: &'static str,
    pub created: DateTime<Utc>,
    pub columns: Vec<Column>,
    pub items: DeltaLog<ListItem>,
    pub next_id: u64,
    /// Document library index (its drive) when the template is documentLibrary.
    pub lib: Option<u8>,
}

/// A modern site page (`sitePage`) in the Site Pages library.
#[derive(Debug, Clone)]
pub struct Page {
    pub id: String,
    pub name: String,
    pub title: String,
    /// `pageLayout`: `article`, `home`...
    pub layout: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub by: Who,
    pub modified_by: Who,
    /// The `canvasLayout` (horizontal sections, optional vertical section)
    /// in Graph's JSON shape, every section, column and web part with its id.
    pub canvas: Value,
    /// The `titleArea` in Graph's JSON shape.
    pub title_area: Value,
    pub show_comments: bool,
    pub show_recommended: bool,
    /// Whether the latest version is published; a created or updated page
    /// stays checked out (a draft) until `publish`.
    pub published: bool,
    /// Published (major) versions so far; the draft is `major.minor`.
    pub major: u32,
    pub minor: u32,
    /// Bumped on every change (the eTag's number).
    pub etag: u32,
}

impl Page {
    /// `publishingState.versionId`: "1.0" once published, "0.1"... for a
    /// draft.
    pub fn version_id(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// What the ground truth compares: the page's title, layout, title area
    /// and canvas content without the ids Graph may assign, and whether it
    /// is published.
    pub fn truth_canon(&self) -> String {
        json!({
            "title": self.title,
            "pageLayout": self.layout,
            "titleArea": without_ids(&self.title_area),
            "canvasLayout": without_ids(&self.canvas),
            "published": self.published,
        })
        .to_string()
    }
}

/// `v` without `id` members and OData annotations other than `@odata.type`.
fn without_ids(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    k.as_str() != "id" && (k.as_str() == "@odata.type" || !k.contains("@odata."))
                })
                .map(|(k, v)| (k.clone(), without_ids(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_ids).collect()),
        other => other.clone(),
    }
}

/// Web part types of SharePoint's first-party web parts (`webPartType`).
const WEB_PARTS: &[(&str, &str, &str)] = &[
    (
        "d1d91016-032f-456d-98a4-721247c305e8",
        "Image",
        "Show an image on your page",
    ),
    (
        "c70391ea-0b10-4ee9-b2b4-006d3fcad0cd",
        "Quick links",
        "Add links to important documents and pages",
    ),
    (
        "2161a1c6-db61-4731-b97c-3cdb303f7cbb",
        "Divider",
        "Add a line between other web parts to help organize your page",
    ),
    (
        "8c88f208-6c77-4bdb-86a0-0c47b4316588",
        "News",
        "Display recent news",
    ),
];

/// Column widths (out of 12) of each `horizontalSectionLayoutType`.
fn column_widths(layout: &str) -> &'static [u32] {
    match layout {
        "twoColumns" => &[6, 6],
        "threeColumns" => &[4, 4, 4],
        "oneThirdLeftColumn" => &[4, 8],
        "oneThirdRightColumn" => &[8, 4],
        _ => &[12],
    }
}

fn text_web_part(id: String, r: &mut SimRng) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.textWebPart",
        "id": id,
        "innerHtml": format!("<h2>{}</h2><p>{}</p>", rng::title(r, 2, 5), rng::paragraph(r, 2)),
    })
}

fn standard_web_part(id: String, r: &mut SimRng) -> Value {
    let (ty, title, description) = *pick(r, WEB_PARTS);
    let properties = match title {
        "Image" => {
            json!({"imageSourceType": 2, "altText": rng::title(r, 2, 4), "overlayText": "", "fileName": "", "siteId": "", "webId": "", "listId": "", "uniqueId": "", "imgWidth": 1002, "imgHeight": 469})
        }
        "Quick links" => {
            json!({"items": [], "isMigrated": true, "layoutId": "CompactCard", "shouldShowThumbnail": true, "hideWebPartWhenEmpty": true, "dataProviderId": "QuickLinks"})
        }
        "News" => {
            json!({"layoutId": "FeaturedNews", "dataProviderId": "news", "showChrome": true, "carouselSettings": {"autoplay": false}})
        }
        _ => json!({"length": 100, "weight": 1}),
    };
    let server = match title {
        "Image" => json!({
            "htmlStrings": [],
            "searchablePlainTexts": [{"key": "captionText", "value": rng::title(r, 2, 6)}],
            "imageSources": [{"key": "imageSource", "value": "/_LAYOUTS/IMAGES/VISUALTEMPLATEIMAGE1.JPG"}],
            "links": [],
        }),
        "Quick links" => json!({
            "htmlStrings": [],
            "searchablePlainTexts": [{"key": "items[0].title", "value": rng::title(r, 1, 3)}],
            "imageSources": [],
            "links": [{"key": "items[0].sourceItem.url", "value": "/SitePages/Home.aspx"}],
        }),
        _ => {
            json!({"htmlStrings": [], "searchablePlainTexts": [], "imageSources": [], "links": []})
        }
    };
    json!({
        "@odata.type": "#microsoft.graph.standardWebPart",
        "id": id,
        "webPartType": ty,
        "data": {
            "audiences": [],
            "dataVersion": "1.0",
            "description": description,
            "title": title,
            "properties": properties,
            "serverProcessedContent": server,
        },
    })
}

/// A page's generated canvas: one to three horizontal sections whose
/// columns hold text and standard web parts, sometimes a vertical section.
pub fn generate_canvas(seed: u64, page_id: &str) -> Value {
    let mut r = rng_for(seed, &["page-canvas", page_id]);
    let mut n = 0u32;
    let mut next_id = || {
        n += 1;
        stable_guid(seed, &["webpart", page_id, &n.to_string()]).to_string()
    };
    let layouts = [
        "oneColumn",
        "twoColumns",
        "threeColumns",
        "oneThirdLeftColumn",
        "oneThirdRightColumn",
    ];
    let mut sections = Vec::new();
    for s in 0..r.random_range(1..=3u32) {
        let layout = *pick(&mut r, &layouts);
        let mut columns = Vec::new();
        for (c, width) in column_widths(layout).iter().enumerate() {
            let mut parts = Vec::new();
            if c == 0 || r.random_bool(0.5) {
                let id = next_id();
                parts.push(text_web_part(id, &mut r));
            }
            if c > 0 || r.random_bool(0.5) {
                let id = next_id();
                parts.push(standard_web_part(id, &mut r));
            }
            columns.push(json!({
                "@odata.type": "#microsoft.graph.horizontalSectionColumn",
                "id": (c + 1).to_string(),
                "width": width,
                "webparts": parts,
            }));
        }
        sections.push(json!({
            "@odata.type": "#microsoft.graph.horizontalSection",
            "id": (s + 1).to_string(),
            "layout": layout,
            "emphasis": *pick(&mut r, &["none", "neutral", "soft", "strong"]),
            "columns": columns,
        }));
    }
    let mut canvas = Map::new();
    canvas.insert("horizontalSections".into(), Value::Array(sections));
    if r.random_bool(0.3) {
        let a = next_id();
        let b = next_id();
        canvas.insert(
            "verticalSection".into(),
            json!({
                "@odata.type": "#microsoft.graph.verticalSection",
                "id": "1",
                "emphasis": "soft",
                "webparts": [text_web_part(a, &mut r), standard_web_part(b, &mut r)],
            }),
        );
    }
    Value::Object(canvas)
}

/// A generated page's title area.
pub fn generate_title_area(home: bool) -> Value {
    json!({
        "enableGradientEffect": true,
        "imageWebUrl": if home { "" } else { "/_LAYOUTS/IMAGES/SLEEKTEMPLATEIMAGETILE.JPG" },
        "layout": if home { "plain" } else { "imageAndTitle" },
        "showAuthor": !home,
        "showPublishedDate": !home,
        "showTextBlockAboveTitle": false,
        "textAboveTitle": "",
        "textAlignment": "left",
    })
}

/// A canvas posted by a client in Graph's shape: missing section and column
/// ids are numbered, missing web part ids are generated, and each web part
/// gets its `@odata.type` (a text web part is the one with `innerHtml`).
pub fn normalize_canvas(seed: u64, page_id: &str, canvas: &Value) -> Result<Value, String> {
    let Some(m) = canvas.as_object() else {
        return Err("canvasLayout must be an object".into());
    };
    let mut n = 0u32;
    let mut part = |wp: &Value| -> Result<Value, String> {
        let Some(o) = wp.as_object() else {
            return Err("a web part must be an object".into());
        };
        n += 1;
        let mut o = o.clone();
        if !o.get("id").is_some_and(Value::is_string) {
            o.insert(
                "id".into(),
                json!(stable_guid(seed, &["posted-webpart", page_id, &n.to_string()]).to_string()),
            );
        }
        let ty = if o.contains_key("innerHtml") {
            "#microsoft.graph.textWebPart"
        } else if o.contains_key("webPartType") {
            "#microsoft.graph.standardWebPart"
        } else {
            return Err("a web part needs innerHtml (text) or webPartType (standard)".into());
        };
        o.insert("@odata.type".into(), json!(ty));
        Ok(Value::Object(o))
    };
    let mut out = Map::new();
    if let Some(hs) = m.get("horizontalSections") {
        let Some(hs) = hs.as_array() else {
            return Err("horizontalSections must be an array".into());
        };
        let mut sections = Vec::new();
        for (i, s) in hs.iter().enumerate() {
            let mut s = s
                .as_object()
                .cloned()
                .ok_or("a section must be an object")?;
            s.entry("id").or_insert_with(|| json!((i + 1).to_string()));
            s.entry("layout").or_insert_with(|| json!("oneColumn"));
            s.entry("emphasis").or_insert_with(|| json!("none"));
            s.insert(
                "@odata.type".into(),
                json!("#microsoft.graph.horizontalSection"),
            );
            let cols = s
                .get("columns")
                .cloned()
                .unwrap_or_else(|| json!([]))
                .as_array()
                .cloned()
                .ok_or("columns must be an array")?;
            let mut columns = Vec::new();
            for (j, c) in cols.iter().enumerate() {
                let mut c = c.as_object().cloned().ok_or("a column must be an object")?;
                c.entry("id").or_insert_with(|| json!((j + 1).to_string()));
                c.insert(
                    "@odata.type".into(),
                    json!("#microsoft.graph.horizontalSectionColumn"),
                );
                let parts = c
                    .get("webparts")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(&mut part)
                    .collect::<Result<Vec<_>, _>>()?;
                c.insert("webparts".into(), Value::Array(parts));
                columns.push(Value::Object(c));
            }
            s.insert("columns".into(), Value::Array(columns));
            sections.push(Value::Object(s));
        }
        out.insert("horizontalSections".into(), Value::Array(sections));
    }
    if let Some(v) = m.get("verticalSection").filter(|v| !v.is_null()) {
        let mut v = v
            .as_object()
            .cloned()
            .ok_or("verticalSection must be an object")?;
        v.entry("id").or_insert_with(|| json!("1"));
        v.entry("emphasis").or_insert_with(|| json!("none"));
        v.insert(
            "@odata.type".into(),
            json!("#microsoft.graph.verticalSection"),
        );
        let parts = v
            .get("webparts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(&mut part)
            .collect::<Result<Vec<_>, _>>()?;
        v.insert("webparts".into(), Value::Array(parts));
        out.insert("verticalSection".into(), Value::Object(v));
    }
    Ok(Value::Object(out))
}

pub struct SiteState {
    pub lists: Vec<ListState>,
    pub pages: Vec<Page>,
}

type Template = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const LIST_TEMPLATES: &[Template] = &[
    (
        "Issue tracker",
        "genericList",
        &[
            ("Status", "choice"),
            ("Priority", "choice"),
            ("DueDate", "dateTime"),
            ("Owner", "text"),
        ],
    ),
    (
        "Contacts",
        "contacts",
        &[
            ("FirstName", "text"),
            ("Email", "text"),
            ("Company", "text"),
            ("WorkPhone", "text"),
        ],
    ),
    (
        "Announcements",
        "announcements",
        &[("Body", "text"), ("Expires", "dateTime")],
    ),
    (
        "Assets",
        "genericList",
        &[
            ("SerialNumber", "text"),
            ("Cost", "number"),
            ("InService", "boolean"),
        ],
    ),
];

fn choices_for(col: &str) -> Vec<String> {
    let v: &[&str] = match col {
        "Status" => &["Not started", "In progress", "Blocked", "Done"],
        "Priority" => &["(1) High", "(2) Normal", "(3) Low"],
        _ => &[],
    };
    v.iter().map(|s| s.to_string()).collect()
}

pub fn field_value(r: &mut SimRng, col: &Column) -> Value {
    match col.ty {
        "choice" if !col.choices.is_empty() => json!(pick(r, &col.choices)),
        "number" => json!(r.random_range(10..5000) as f64),
        "boolean" => json!(r.random_bool(0.5)),
        "dateTime" => json!(graph_time(
            generation_anchor() + Duration::days(r.random_range(-300..120))
        )),
        _ => match col.name.as_str() {
            "Email" => json!(format!(
                "{}@example.com",
                pick(r, rng::FIRST_NAMES).to_lowercase()
            )),
            "FirstName" => json!(*pick(r, rng::FIRST_NAMES)),
            "WorkPhone" => json!(format!("+1 425 555 {:04}", r.random_range(0..10000))),
            _ => json!(rng::title(r, 1, 4)),
        },
    }
}

impl SiteState {
    pub fn generate(seed: u64, site: &SiteMeta, people: &[Who], scale: f64) -> SiteState {
        let mut r = rng_for(seed, &["site", &site.id]);
        let mut lists = Vec::new();
        for (i, lib) in site.libs.iter().enumerate() {
            let url_name = if i == 0 {
                "Shared Documents".to_string()
            } else {
                lib.clone()
            };
            lists.push(ListState {
                id: stable_guid(seed, &["list", &site.id, "lib", &i.to_string()]).to_string(),
                name: url_name,
                display_name: lib.clone(),
                template: "documentLibrary",
                created: site.created,
                columns: vec![Column {
                    name: "Title".into(),
                    display: "Title".into(),
                    ty: "text",
                    choices: vec![],
                }],
                items: DeltaLog::new(),
                next_id: 1,
                lib: Some(i as u8),
            });
        }
        let mut pages = Vec::new();
        if !site.generated || people.is_empty() {
            return SiteState { lists, pages };
        }
        let n_lists = r.random_range(1..=3);
        let mut used = Vec::new();
        for _ in 0..n_lists {
            let t = pick(&mut r, LIST_TEMPLATES);
            if used.contains(&t.0) {
                continue;
            }
            used.push(t.0);
            let id = stable_guid(seed, &["list", &site.id, t.0]).to_string();
            let mut columns = vec![Column {
                name: "Title".into(),
                display: "Title".into(),
                ty: "text",
                choices: vec![],
            }];
            for (name, ty) in t.2 {
                columns.push(Column {
                    name: name.to_string(),
                    display: name.to_string(),
                    ty,
                    choices: choices_for(name),
                });
            }
            let created = site.created + Duration::days(r.random_range(1..60));
            let mut list = ListState {
                id,
                name: t.0.replace(' ', ""),
                display_name: t.0.into(),
                template: t.1,
                created,
                columns,
                items: DeltaLog::new(),
                next_id: 1,
                lib: None,
            };
            let n = ((r.random_range(5..30) as f64) * scale).round() as usize;
            for _ in 0..n {
                let by = pick(&mut r, people).clone();
                let t = created + Duration::hours(r.random_range(1..24 * 300));
                let t = t.min(generation_anchor());
                let item = list.new_item(seed, &mut r, None, t, by);
                let id = item.id.clone();
                list.items.upsert(id, item, 0);
            }
            lists.push(list);
        }
        let n_pages = r.random_range(1..4);
        for i in 0..n_pages {
            let (name, title, layout) = if i == 0 {
                ("Home.aspx".to_string(), site.display_name.clone(), "home")
            } else {
                let t = rng::title(&mut r, 2, 5);
                (format!("{}.aspx", t.replace(' ', "-")), t, "article")
            };
            let created = site.created + Duration::days(r.random_range(1..90));
            let id = stable_guid(seed, &["page", &site.id, &i.to_string()]).to_string();
            let by = pick(&mut r, people).clone();
            pages.push(Page {
                canvas: generate_canvas(seed, &id),
                title_area: generate_title_area(layout == "home"),
                id,
                name,
                title,
                layout: layout.to_string(),
                created,
                modified: created.max(generation_anchor() - Duration::days(r.random_range(1..60))),
                modified_by: by.clone(),
                by,
                show_comments: layout != "home",
                show_recommended: false,
                published: true,
                major: 1,
                minor: 0,
                etag: 1,
            });
        }
        SiteState { lists, pages }
    }
}

impl ListState {
    /// A new item with random field values (or the given ones).
    pub fn new_item(
        &mut self,
        seed: u64,
        r: &mut SimRng,
        fields: Option<Map<String, Value>>,
        t: DateTime<Utc>,
        by: Who,
    ) -> ListItem {
        let n = self.next_id;
        self.next_id += 1;
        let id = n.to_string();
        let mut attachments = Vec::new();
        let fields = match fields {
            Some(f) => f,
            None => {
                let mut f = Map::new();
                for c in &self.columns {
                    f.insert(c.name.clone(), field_value(r, c));
                }
                if r.random_bool(0.15) {
                    let len = r.random_range(2_000..400_000);
                    attachments.push(Attachment {
                        name: format!("{}.pdf", rng::title(r, 1, 3)),
                        content: Content::Gen {
                            key: format!("att/{}/{id}", self.id).into(),
                            len,
                            kind: GenKind::Binary(b"%PDF-1.7\n"),
                        },
                    });
                }
                f
            }
        };
        ListItem {
            guid: stable_guid(seed, &["listitem", &self.id, &id]).to_string(),
            id,
            fields,
            created: t,
            modified: t,
            created_by: by.clone(),
            modified_by: by,
            etag: 1,
            attachments,
        }
    }

    pub fn json(&self, site: &SiteMeta, tenant_id: &str) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("displayName".into(), json!(self.display_name));
        m.insert("description".into(), json!(""));
        m.insert("createdDateTime".into(), json!(graph_time(self.created)));
        let modified = self
            .items
            .values()
            .map(|i| i.modified)
            .max()
            .unwrap_or(self.created)
            .max(self.created);
        m.insert("lastModifiedDateTime".into(), json!(graph_time(modified)));
        m.insert(
            "eTag".into(),
            json!(format!("\"{},{}\"", self.id, self.items.len() + 1)),
        );
        m.insert("webUrl".into(), json!(self.web_url(site)));
        m.insert(
            "list".into(),
            json!({"contentTypesEnabled": false, "hidden": false, "template": self.template}),
        );
        m.insert("parentReference".into(), json!({"siteId": site.id}));
        m.insert(
            "sharepointIds".into(),
            json!({"listId": self.id, "siteId": site.coll, "webId": site.web, "siteUrl": site.web_url(), "tenantId": tenant_id}),
        );
        Value::Object(m)
    }

    pub fn web_url(&self, site: &SiteMeta) -> String {
        if self.lib.is_some() {
            format!("{}/{}", site.web_url(), crate::odata::encode(&self.name))
        } else {
            format!("{}/Lists/{}", site.web_url(), self.name)
        }
    }
}

pub fn item_json(list: &ListState, site: &SiteMeta, it: &ListItem, with_fields: bool) -> Value {
    let etag = format!("\"{},{}\"", it.guid, it.etag);
    let mut m = Map::new();
    m.insert("@odata.etag".into(), json!(etag));
    m.insert("id".into(), json!(it.id));
    m.insert("eTag".into(), json!(etag));
    m.insert("createdDateTime".into(), json!(graph_time(it.created)));
    m.insert(
        "lastModifiedDateTime".into(),
        json!(graph_time(it.modified)),
    );
    m.insert(
        "webUrl".into(),
        json!(format!("{}/DispForm.aspx?ID={}", list.web_url(site), it.id)),
    );
    m.insert("createdBy".into(), it.created_by.json());
    m.insert("lastModifiedBy".into(), it.modified_by.json());
    m.insert(
        "parentReference".into(),
        json!({"id": list.id, "siteId": site.id}),
    );
    m.insert(
        "contentType".into(),
        json!({"id": "0x0100A1B2C3D4E5F60718293A4B5C6D7E8F90", "name": "Item"}),
    );
    m.insert(
        "sharepointIds".into(),
        json!({"listId": list.id, "listItemId": it.id, "listItemUniqueId": it.guid}),
    );
    if with_fields {
        m.insert("fields".into(), fields_json(it));
    }
    Value::Object(m)
}

pub fn fields_json(it: &ListItem) -> Value {
    let mut f = Map::new();
    f.insert(
        "@odata.etag".into(),
        json!(format!("\"{},{}\"", it.guid, it.etag)),
    );
    for (k, v) in &it.fields {
        f.insert(k.clone(), v.clone());
    }
    f.insert("id".into(), json!(it.id));
    f.insert("ContentType".into(), json!("Item"));
    f.insert("Modified".into(), json!(graph_time(it.modified)));
    f.insert("Created".into(), json!(graph_time(it.created)));
    f.insert("Attachments".into(), json!(!it.attachments.is_empty()));
    Value::Object(f)
}

/// A page as Graph gives it; `canvasLayout` only when asked for (it is
/// `$expand`ed on the `microsoft.graph.sitePage` cast).
pub fn page_json(site: &SiteMeta, p: &Page, with_canvas: bool) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.sitePage",
        "id": p.id,
        "name": p.name,
        "title": p.title,
        "pageLayout": p.layout,
        "webUrl": format!("{}/SitePages/{}", site.web_url(), p.name),
        "eTag": format!("\"{{{}}},{}\"", p.id.to_uppercase(), p.etag),
        "createdDateTime": graph_time(p.created),
        "lastModifiedDateTime": graph_time(p.modified),
        "createdBy": p.by.json(),
        "lastModifiedBy": p.modified_by.json(),
        "publishingState": {
            "level": if p.published { "published" } else { "checkout" },
            "versionId": p.version_id(),
        },
        "promotionKind": if p.layout == "home" { "page" } else { "newsPost" },
        "showComments": p.show_comments,
        "showRecommendedPages": p.show_recommended,
        "titleArea": p.title_area,
    });
    if with_canvas {
        let mut canvas = p.canvas.clone();
        if let Value::Object(m) = &mut canvas {
            m.insert("@odata.type".into(), json!("#microsoft.graph.canvasLayout"));
            m.insert("id".into(), json!(p.id));
        }
        v["canvasLayout"] = canvas;
    }
    v
}
