//! Group conversations of Microsoft 365 groups: conversations, threads,
//! posts (with replies and `inReplyTo`) and file attachments, as v1.0's
//! conversation, conversationThread and post resources.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::{Person, find_group, parse_body, parse_time, slot, truth_item};
use crate::directory::{self, Group};
use crate::error::{GraphError, GraphResult};
use crate::odata::{self, GraphCtx, PageLimits};
use crate::rng::{self, SimRng, pick, rng_for};
use crate::{ActivityReport, Sim, TruthItem, generation_anchor, graph_time};

#[derive(Default)]
pub(crate) struct Convs {
    list: Vec<Conv>,
}

struct Conv {
    id: String,
    topic: String,
    threads: Vec<Thread>,
}

struct Thread {
    id: String,
    topic: String,
    locked: bool,
    posts: Vec<Post>,
}

#[derive(Clone)]
struct Post {
    id: String,
    /// Seconds since the epoch.
    created: i64,
    modified: i64,
    change_key: String,
    from: Person,
    body: String,
    in_reply_to: Option<String>,
    new_participants: Vec<Person>,
    atts: Vec<Att>,
}

#[derive(Clone)]
struct Att {
    id: String,
    name: String,
    content_type: String,
    size: usize,
    /// Uploaded bytes; generated ones come from the seed when asked for.
    data: Option<Vec<u8>>,
}

const EXTS: &[(&str, &str)] = &[
    ("txt", "text/plain"),
    ("csv", "text/csv"),
    ("md", "text/markdown"),
    ("log", "text/plain"),
];

fn outlook_id(prefix: &str, seed: u64, labels: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    for l in labels {
        h.update(&(l.len() as u64).to_le_bytes());
        h.update(l.as_bytes());
    }
    format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(&h.finalize().as_bytes()[..30])
    )
}

fn random_id(prefix: &str) -> String {
    let mut b = uuid::Uuid::new_v4().as_bytes().to_vec();
    b.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&b[..30]))
}

fn time(secs: i64) -> String {
    graph_time(DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default())
}

fn recipient(name: &str, address: &str) -> Value {
    json!({"emailAddress": {"name": name, "address": address}})
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn preview(posts: &[&Post]) -> String {
    posts
        .iter()
        .max_by_key(|p| p.created)
        .map(|p| strip_tags(&p.body).chars().take(255).collect())
        .unwrap_or_default()
}

fn unique_senders(posts: &[&Post]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in posts {
        if !out.contains(&p.from.name) {
            out.push(p.from.name.clone());
        }
    }
    out
}

impl Thread {
    fn last(&self) -> i64 {
        self.posts.iter().map(|p| p.created).max().unwrap_or(0)
    }

    fn json(&self, g: &Group) -> Value {
        let posts: Vec<&Post> = self.posts.iter().collect();
        json!({
            "id": self.id,
            "toRecipients": [recipient(&g.display_name, g.mail.as_deref().unwrap_or(""))],
            "ccRecipients": [],
            "topic": self.topic,
            "hasAttachments": self.posts.iter().any(|p| !p.atts.is_empty()),
            "lastDeliveredDateTime": time(self.last()),
            "uniqueSenders": unique_senders(&posts),
            "preview": preview(&posts),
            "isLocked": self.locked,
        })
    }
}

impl Conv {
    fn last(&self) -> i64 {
        self.threads.iter().map(Thread::last).max().unwrap_or(0)
    }

    fn json(&self) -> Value {
        let posts: Vec<&Post> = self.threads.iter().flat_map(|t| t.posts.iter()).collect();
        json!({
            "id": self.id,
            "topic": self.topic,
            "hasAttachments": posts.iter().any(|p| !p.atts.is_empty()),
            "lastDeliveredDateTime": time(self.last()),
            "uniqueSenders": unique_senders(&posts),
            "preview": preview(&posts),
        })
    }
}

fn post_json(p: &Post, conv: &str, thread: &str) -> Value {
    json!({
        "@odata.etag": format!("W/\"{}\"", p.change_key),
        "id": p.id,
        "createdDateTime": time(p.created),
        "lastModifiedDateTime": time(p.modified),
        "changeKey": p.change_key,
        "categories": [],
        "receivedDateTime": time(p.created),
        "hasAttachments": !p.atts.is_empty(),
        "body": {"contentType": "html", "content": p.body},
        "from": recipient(&p.from.name, &p.from.mail),
        "sender": recipient(&p.from.name, &p.from.mail),
        "conversationThreadId": thread,
        "conversationId": conv,
        "newParticipants": p.new_participants.iter().map(|x| recipient(&x.name, &x.mail)).collect::<Vec<_>>(),
    })
}

fn att_bytes(seed: u64, post: &str, a: &Att) -> Vec<u8> {
    match &a.data {
        Some(d) => d.clone(),
        None => rng::content_bytes(seed, &["collab", "att", post, &a.id], a.size, true),
    }
}

fn att_json(seed: u64, p: &Post, a: &Att) -> Value {
    let bytes = att_bytes(seed, &p.id, a);
    json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": a.id,
        "lastModifiedDateTime": time(p.created),
        "name": a.name,
        "contentType": a.content_type,
        "size": bytes.len(),
        "isInline": false,
        "contentId": null,
        "contentLocation": null,
        "contentBytes": STANDARD.encode(&bytes),
    })
}

fn change_key() -> String {
    URL_SAFE_NO_PAD.encode(&uuid::Uuid::new_v4().as_bytes()[..12])
}

fn gen_post(
    seed: u64,
    labels: &[&str],
    r: &mut SimRng,
    t: i64,
    from: &Person,
    reply: Option<String>,
) -> Post {
    let id = outlook_id("AAMkAD", seed, labels);
    let mut atts = Vec::new();
    if r.random_bool(0.12) {
        for k in 0..r.random_range(1..=2) {
            let (ext, ct) = *pick(r, EXTS);
            atts.push(Att {
                id: outlook_id("AAMkAGA", seed, &[&id, "att", &k.to_string()]),
                name: format!("{}.{ext}", rng::title(r, 1, 3)),
                content_type: ct.to_string(),
                size: r.random_range(200..4000),
                data: None,
            });
        }
    }
    Post {
        change_key: URL_SAFE_NO_PAD.encode(&blake3::hash(id.as_bytes()).as_bytes()[..12]),
        id,
        created: t,
        modified: t,
        from: from.clone(),
        body: format!("<html><body><div>{}</div></body></html>", {
            let n = r.random_range(1..=4);
            rng::paragraph(r, n)
        }),
        in_reply_to: reply,
        new_participants: Vec::new(),
        atts,
    }
}

impl Convs {
    pub fn generate(sim: &Sim, g: &Group, people: &[Person]) -> Convs {
        let mut out = Convs::default();
        if people.is_empty() {
            return out;
        }
        let seed = sim.seed();
        let mut r = rng_for(seed, &["collab", &g.id, "convs"]);
        let n = ((r.random_range(2..=8) as f64) * sim.cfg.content_scale).round() as usize;
        let start = parse_time(&g.created).timestamp() + 3600;
        let end = (generation_anchor() - chrono::Duration::days(10)).timestamp();
        if end <= start {
            return out;
        }
        for i in 0..n {
            let is = i.to_string();
            let topic = rng::title(&mut r, 3, 7);
            let mut conv = Conv {
                id: outlook_id("AAQkAD", seed, &[&g.id, "conv", &is]),
                topic: topic.clone(),
                threads: Vec::new(),
            };
            let n_threads = if r.random_bool(0.2) { 2 } else { 1 };
            for j in 0..n_threads {
                let js = j.to_string();
                let mut t = r.random_range(start..end);
                let mut th = Thread {
                    id: outlook_id("AAQkAD", seed, &[&g.id, "thread", &is, &js]),
                    topic: topic.clone(),
                    locked: false,
                    posts: Vec::new(),
                };
                let mut prev: Option<String> = None;
                for k in 0..r.random_range(1..=5) {
                    let from = &people[r.random_range(0..people.len())];
                    let ks = k.to_string();
                    let p = gen_post(
                        seed,
                        &[&g.id, "post", &is, &js, &ks],
                        &mut r,
                        t,
                        from,
                        prev.clone(),
                    );
                    prev = Some(p.id.clone());
                    th.posts.push(p);
                    t += r.random_range(600..3 * 86_400);
                }
                conv.threads.push(th);
            }
            out.list.push(conv);
        }
        out
    }

    pub fn truth(&self) -> Vec<TruthItem> {
        let mut out = Vec::new();
        for c in &self.list {
            for t in &c.threads {
                for p in &t.posts {
                    let v = json!({
                        "topic": t.topic,
                        "body": p.body,
                        "from": recipient(&p.from.name, &p.from.mail),
                        "receivedDateTime": time(p.created),
                        "attachments": p.atts.iter().map(|a| json!({"name": a.name, "contentType": a.content_type})).collect::<Vec<_>>(),
                    });
                    out.push(truth_item(
                        "conversations",
                        format!("Conversations/{}/{}", c.topic, p.id),
                        &p.id,
                        "post",
                        &v,
                    ));
                }
            }
        }
        out
    }

    pub fn simulate_day(
        &mut self,
        sim: &Sim,
        _g: &Group,
        people: &[Person],
        rng: &mut SimRng,
        report: &mut ActivityReport,
    ) {
        let now = sim.now().timestamp();
        for _ in 0..rng.random_range(0..=2) {
            let from = people[rng.random_range(0..people.len())].clone();
            let n = rng.random_range(1..=3);
            let body = format!(
                "<html><body><div>{}</div></body></html>",
                rng::paragraph(rng, n)
            );
            let t = now - rng.random_range(0..3600);
            if !self.list.is_empty() && rng.random_bool(0.6) {
                let ci = rng.random_range(0..self.list.len());
                let conv = &mut self.list[ci];
                if conv.threads.is_empty() {
                    continue;
                }
                let ti = rng.random_range(0..conv.threads.len());
                let th = &mut conv.threads[ti];
                let prev = th.posts.last().map(|p| p.id.clone());
                th.posts
                    .push(new_post(t, from, body, prev, Vec::new(), Vec::new()));
            } else {
                let topic = rng::title(rng, 3, 6);
                let p = new_post(t, from, body, None, Vec::new(), Vec::new());
                self.list.push(Conv {
                    id: random_id("AAQkAD"),
                    topic: topic.clone(),
                    threads: vec![Thread {
                        id: random_id("AAQkAD"),
                        topic,
                        locked: false,
                        posts: vec![p],
                    }],
                });
            }
            report.created += 1;
        }
    }

    fn find_thread(&mut self, cid: Option<&str>, tid: &str) -> GraphResult<(&str, &mut Thread)> {
        for c in self.list.iter_mut() {
            if cid.is_some_and(|x| x != c.id) {
                continue;
            }
            if let Some(t) = c.threads.iter_mut().find(|t| t.id == tid) {
                return Ok((c.id.as_str(), t));
            }
        }
        Err(GraphError::outlook_not_found())
    }
}

fn new_post(
    t: i64,
    from: Person,
    body: String,
    reply: Option<String>,
    new_participants: Vec<Person>,
    atts: Vec<Att>,
) -> Post {
    Post {
        id: random_id("AAMkAD"),
        created: t,
        modified: t,
        change_key: change_key(),
        from,
        body,
        in_reply_to: reply,
        new_participants,
        atts,
    }
}

/// Runs `f` over the conversations of a Microsoft 365 group.
fn with_convs<R>(
    sim: &Sim,
    gid: &str,
    write: bool,
    f: impl FnOnce(&mut Convs, &Group) -> GraphResult<R>,
) -> GraphResult<R> {
    let g = find_group(sim, gid)?;
    if !g.unified {
        // Only Microsoft 365 groups have a group mailbox to hold conversations.
        return Err(directory::mailbox_not_enabled());
    }
    let s = slot(sim, &g);
    let mut guard = if write { s.write() } else { s.read() };
    let convs = guard.convs.get_or_insert_with(Convs::default);
    f(convs, &g)
}

fn param<'a>(p: &'a HashMap<String, String>, k: &str) -> &'a str {
    p.get(k).map(String::as_str).unwrap_or("")
}

fn person_from(v: Option<&Value>, g: &Group) -> Person {
    let addr = v.and_then(|f| f.get("emailAddress"));
    let mail = addr
        .and_then(|a| a.get("address"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let name = addr
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match mail {
        Some(m) => Person {
            id: String::new(),
            name: name.unwrap_or_else(|| m.clone()),
            mail: m,
        },
        None => Person {
            id: g.id.clone(),
            name: g.display_name.clone(),
            mail: g.mail.clone().unwrap_or_default(),
        },
    }
}

/// A post from a request's `post` object.
fn post_from_body(v: &Value, g: &Group, now: i64, reply: Option<String>) -> GraphResult<Post> {
    let body = v
        .get("body")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::bad_request("A post needs a 'body' with 'content'."))?;
    let html = v
        .get("body")
        .and_then(|b| b.get("contentType"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let body = if html {
        body.to_string()
    } else {
        format!(
            "<html><body><div>{}</div></body></html>",
            body.replace('<', "&lt;")
        )
    };
    let participants = v
        .get("newParticipants")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| person_from(Some(x), g)).collect())
        .unwrap_or_default();
    let mut atts = Vec::new();
    for a in v
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = a
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("attachment")
            .to_string();
        let data = a
            .get("contentBytes")
            .and_then(Value::as_str)
            .map(|b| STANDARD.decode(b))
            .transpose()
            .map_err(|_| GraphError::bad_request("Invalid 'contentBytes' in attachment."))?
            .unwrap_or_default();
        atts.push(Att {
            id: random_id("AAMkAGA"),
            name,
            content_type: a
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream")
                .to_string(),
            size: data.len(),
            data: Some(data),
        });
    }
    Ok(new_post(
        now,
        person_from(v.get("from"), g),
        body,
        reply,
        participants,
        atts,
    ))
}

fn posts_of(body: &Value) -> GraphResult<Vec<Value>> {
    let posts: Vec<Value> = body
        .get("posts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if posts.is_empty() {
        return Err(GraphError::bad_request(
            "At least one post is required in 'posts'.",
        ));
    }
    Ok(posts)
}

fn new_thread(body: &Value, topic: &str, g: &Group, now: i64) -> GraphResult<Thread> {
    let mut th = Thread {
        id: random_id("AAQkAD"),
        topic: topic.to_string(),
        locked: false,
        posts: Vec::new(),
    };
    for p in posts_of(body)? {
        let prev = th.posts.last().map(|x: &Post| x.id.clone());
        th.posts.push(post_from_body(&p, g, now, prev)?);
    }
    Ok(th)
}

fn topic_of(body: &Value) -> GraphResult<String> {
    body.get("topic")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| GraphError::bad_request("Property 'topic' is required."))
}

async fn list_conversations(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(gid): Path<String>,
) -> GraphResult<Json<Value>> {
    let items = with_convs(&sim, &gid, false, |c, _| {
        let mut v: Vec<&Conv> = c.list.iter().collect();
        v.sort_by(|a, b| b.last().cmp(&a.last()).then(a.id.cmp(&b.id)));
        Ok(v.into_iter().map(Conv::json).collect::<Vec<_>>())
    })?;
    Ok(Json(odata::collection(
        &ctx,
        &format!("groups('{gid}')/conversations"),
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

async fn get_conversation(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((gid, cid)): Path<(String, String)>,
) -> GraphResult<Json<Value>> {
    let v = with_convs(&sim, &gid, false, |c, _| {
        c.list
            .iter()
            .find(|x| x.id == cid)
            .map(Conv::json)
            .ok_or_else(GraphError::outlook_not_found)
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("groups('{gid}')/conversations"),
        v,
        None,
    )))
}

async fn create_conversation(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(gid): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_body(&body)?;
    let now = sim.now().timestamp();
    let v = with_convs(&sim, &gid, true, |c, g| {
        let threads: Vec<Value> = body
            .get("threads")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if threads.is_empty() {
            return Err(GraphError::bad_request(
                "At least one thread is required in 'threads'.",
            ));
        }
        let topic = topic_of(&body).or_else(|_| topic_of(&threads[0]))?;
        let mut conv = Conv {
            id: random_id("AAQkAD"),
            topic: topic.clone(),
            threads: Vec::new(),
        };
        for t in &threads {
            let tt = topic_of(t).unwrap_or_else(|_| topic.clone());
            conv.threads.push(new_thread(t, &tt, g, now)?);
        }
        let v = conv.json();
        c.list.push(conv);
        Ok(v)
    })?;
    Ok((
        StatusCode::CREATED,
        Json(odata::entity(
            &ctx,
            &format!("groups('{gid}')/conversations"),
            v,
            None,
        )),
    )
        .into_response())
}

async fn delete_conversation(
    State(sim): State<Arc<Sim>>,
    Path((gid, cid)): Path<(String, String)>,
) -> GraphResult<StatusCode> {
    with_convs(&sim, &gid, true, |c, _| {
        let before = c.list.len();
        c.list.retain(|x| x.id != cid);
        if c.list.len() == before {
            return Err(GraphError::outlook_not_found());
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_threads(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(p): Path<HashMap<String, String>>,
) -> GraphResult<Json<Value>> {
    let gid = param(&p, "gid").to_string();
    let cid = p.get("cid").cloned();
    let items = with_convs(&sim, &gid, false, |c, g| {
        if let Some(cid) = &cid
            && !c.list.iter().any(|x| &x.id == cid)
        {
            return Err(GraphError::outlook_not_found());
        }
        let mut v: Vec<&Thread> = c
            .list
            .iter()
            .filter(|x| cid.as_ref().is_none_or(|id| &x.id == id))
            .flat_map(|x| x.threads.iter())
            .collect();
        v.sort_by(|a, b| b.last().cmp(&a.last()).then(a.id.cmp(&b.id)));
        Ok(v.into_iter().map(|t| t.json(g)).collect::<Vec<_>>())
    })?;
    let frag = match &cid {
        Some(c) => format!("groups('{gid}')/conversations('{c}')/threads"),
        None => format!("groups('{gid}')/threads"),
    };
    Ok(Json(odata::collection(
        &ctx,
        &frag,
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

async fn get_thread(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(p): Path<HashMap<String, String>>,
) -> GraphResult<Json<Value>> {
    let gid = param(&p, "gid").to_string();
    let v = with_convs(&sim, &gid, false, |c, g| {
        let (_, t) = c.find_thread(p.get("cid").map(String::as_str), param(&p, "tid"))?;
        Ok(t.json(g))
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("groups('{gid}')/threads"),
        v,
        None,
    )))
}

async fn create_thread(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_body(&body)?;
    let gid = param(&p, "gid").to_string();
    let cid = p.get("cid").cloned();
    let now = sim.now().timestamp();
    let v = with_convs(&sim, &gid, true, |c, g| match &cid {
        Some(cid) => {
            let conv = c
                .list
                .iter_mut()
                .find(|x| &x.id == cid)
                .ok_or_else(GraphError::outlook_not_found)?;
            let topic = topic_of(&body).unwrap_or_else(|_| conv.topic.clone());
            let th = new_thread(&body, &topic, g, now)?;
            let v = th.json(g);
            conv.threads.push(th);
            Ok(v)
        }
        None => {
            let topic = topic_of(&body)?;
            let th = new_thread(&body, &topic, g, now)?;
            let v = th.json(g);
            c.list.push(Conv {
                id: random_id("AAQkAD"),
                topic,
                threads: vec![th],
            });
            Ok(v)
        }
    })?;
    Ok((
        StatusCode::CREATED,
        Json(odata::entity(
            &ctx,
            &format!("groups('{gid}')/threads"),
            v,
            None,
        )),
    )
        .into_response())
}

async fn delete_thread(
    State(sim): State<Arc<Sim>>,
    Path(p): Path<HashMap<String, String>>,
) -> GraphResult<StatusCode> {
    let gid = param(&p, "gid").to_string();
    let cid = p.get("cid").cloned();
    let tid = param(&p, "tid").to_string();
    with_convs(&sim, &gid, true, |c, _| {
        let mut found = false;
        for conv in c.list.iter_mut() {
            if cid.as_ref().is_some_and(|x| x != &conv.id) {
                continue;
            }
            let before = conv.threads.len();
            conv.threads.retain(|t| t.id != tid);
            found |= conv.threads.len() != before;
        }
        if !found {
            return Err(GraphError::outlook_not_found());
        }
        c.list.retain(|x| !x.threads.is_empty());
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../threads/{id}/reply` and `.../posts/{id}/reply`: 202 Accepted.
async fn reply(
    State(sim): State<Arc<Sim>>,
    Path(p): Path<HashMap<String, String>>,
    body: Bytes,
) -> GraphResult<StatusCode> {
    let body = parse_body(&body)?;
    let gid = param(&p, "gid").to_string();
    let post = body
        .get("post")
        .or_else(|| body.get("Post"))
        .cloned()
        .ok_or_else(|| GraphError::bad_request("Property 'post' is required."))?;
    let now = sim.now().timestamp();
    with_convs(&sim, &gid, true, |c, g| {
        let (_, t) = c.find_thread(p.get("cid").map(String::as_str), param(&p, "tid"))?;
        if t.locked {
            return Err(GraphError::forbidden("The conversation thread is locked."));
        }
        let reply_to = match p.get("pid") {
            Some(pid) => {
                if !t.posts.iter().any(|x| &x.id == pid) {
                    return Err(GraphError::outlook_not_found());
                }
                Some(pid.clone())
            }
            None => t.posts.last().map(|x| x.id.clone()),
        };
        let np = post_from_body(&post, g, now, reply_to)?;
        t.posts.push(np);
        Ok(())
    })?;
    Ok(StatusCode::ACCEPTED)
}

async fn list_posts(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(p): Path<HashMap<String, String>>,
) -> GraphResult<Json<Value>> {
    let gid = param(&p, "gid").to_string();
    let tid = param(&p, "tid").to_string();
    let items = with_convs(&sim, &gid, false, |c, _| {
        let (cid, t) = c.find_thread(p.get("cid").map(String::as_str), &tid)?;
        let cid = cid.to_string();
        Ok(t.posts
            .iter()
            .map(|x| post_json(x, &cid, &t.id))
            .collect::<Vec<_>>())
    })?;
    Ok(Json(odata::collection(
        &ctx,
        &format!("groups('{gid}')/threads('{tid}')/posts"),
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

fn with_post<R>(
    sim: &Sim,
    p: &HashMap<String, String>,
    f: impl FnOnce(&Post, &str, &Thread) -> GraphResult<R>,
) -> GraphResult<R> {
    with_convs(sim, param(p, "gid"), false, |c, _| {
        let (cid, t) = c.find_thread(p.get("cid").map(String::as_str), param(p, "tid"))?;
        let cid = cid.to_string();
        let post = t
            .posts
            .iter()
            .find(|x| x.id == param(p, "pid"))
            .ok_or_else(GraphError::outlook_not_found)?;
        f(post, &cid, t)
    })
}

async fn get_post(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(p): Path<HashMap<String, String>>,
) -> GraphResult<Json<Value>> {
    let expand_att = ctx
        .query
        .expand
        .as_deref()
        .is_some_and(|e| e.to_ascii_lowercase().contains("attachments"));
    let seed = sim.seed();
    let v = with_post(&sim, &p, |post, cid, t| {
        let mut v = post_json(post, cid, &t.id);
        if expand_att {
            v["attachments"] =
                Value::Array(post.atts.iter().map(|a| att_json(seed, post, a)).collect());
        }
        Ok(v)
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!(
            "groups('{}')/threads('{}')/posts",
            param(&p, "gid"),
            param(&p, "tid")
        ),
        v,
        None,
    )))
}

async fn in_reply_to(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(p): Path<HashMap<String, String>>,
) -> GraphResult<Json<Value>> {
    let v = with_post(&sim, &p, |post, cid, t| {
        let parent = post
            .in_reply_to
            .as_ref()
            .and_then(|id| t.posts.iter().find(|x| &x.id == id))
            .ok_or_else(GraphError::outlook_not_found)?;
        Ok(post_json(parent, cid, &t.id))
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!(
            "groups('{}')/threads('{}')/posts",
            param(&p, "gid"),
            param(&p, "tid")
        ),
        v,
        None,
    )))
}

async fn list_attachments(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(p): Path<HashMap<String, String>>,
) -> GraphResult<Json<Value>> {
    let seed = sim.seed();
    let items = with_post(&sim, &p, |post, _, _| {
        Ok(post
            .atts
            .iter()
            .map(|a| att_json(seed, post, a))
            .collect::<Vec<_>>())
    })?;
    Ok(Json(odata::collection(
        &ctx,
        &format!(
            "groups('{}')/threads('{}')/posts('{}')/attachments",
            param(&p, "gid"),
            param(&p, "tid"),
            param(&p, "pid")
        ),
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

async fn get_attachment(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(p): Path<HashMap<String, String>>,
) -> GraphResult<Json<Value>> {
    let seed = sim.seed();
    let v = with_post(&sim, &p, |post, _, _| {
        post.atts
            .iter()
            .find(|a| a.id == param(&p, "aid"))
            .map(|a| att_json(seed, post, a))
            .ok_or_else(GraphError::outlook_not_found)
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!(
            "groups('{}')/threads('{}')/posts('{}')/attachments",
            param(&p, "gid"),
            param(&p, "tid"),
            param(&p, "pid")
        ),
        v,
        None,
    )))
}

fn thread_routes(r: Router<Arc<Sim>>, base: &str) -> Router<Arc<Sim>> {
    let t = format!("{base}/{{tid}}");
    r.route(base, get(list_threads).post(create_thread))
        .route(&t, get(get_thread).delete(delete_thread))
        .route(&format!("{t}/reply"), post(reply))
        .route(&format!("{t}/posts"), get(list_posts))
        .route(&format!("{t}/posts/{{pid}}"), get(get_post))
        .route(&format!("{t}/posts/{{pid}}/reply"), post(reply))
        .route(&format!("{t}/posts/{{pid}}/inReplyTo"), get(in_reply_to))
        .route(
            &format!("{t}/posts/{{pid}}/attachments"),
            get(list_attachments),
        )
        .route(
            &format!("{t}/posts/{{pid}}/attachments/{{aid}}"),
            get(get_attachment),
        )
}

pub fn routes() -> Router<Arc<Sim>> {
    let r = Router::new()
        .route(
            "/groups/{gid}/conversations",
            get(list_conversations).post(create_conversation),
        )
        .route(
            "/groups/{gid}/conversations/{cid}",
            get(get_conversation).delete(delete_conversation),
        );
    let r = thread_routes(r, "/groups/{gid}/conversations/{cid}/threads");
    thread_routes(r, "/groups/{gid}/threads")
}
