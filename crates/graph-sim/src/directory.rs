//! The directory: users (with licences, shared mailboxes, disabled and
//! unlicensed accounts), groups with members and owners, SKUs, the
//! organization, and deleted items.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use rand::Rng;
use serde_json::{Value, json};

use crate::delta::{DeltaLog, TokenFlavor};
use crate::error::{GraphError, GraphResult};
use crate::odata::{self, GraphCtx, PageLimits};
use crate::rng::{
    self, CITIES, COMPANIES, DEPARTMENTS, FIRST_NAMES, JOB_TITLES, LAST_NAMES, pick, rng_for,
    stable_guid,
};
use crate::{EntityRef, Sim, SimConfig, generation_anchor, graph_time};

/// Microsoft 365 E3, E5 and Business Premium, with their real SKU ids.
pub const SKUS: &[(&str, &str)] = &[
    ("05e9a617-0261-4cee-bb44-138d3ef5d965", "SPE_E3"),
    ("06ebc4ee-1bb5-47dd-8120-11324bc54e06", "SPE_E5"),
    ("cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", "SPB"),
];

/// Properties Graph returns for a user when there is no `$select`.
pub const USER_DEFAULT_SELECT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    Licensed,
    /// No licence; a mailbox only if it was unlicensed recently.
    Unlicensed,
    /// Licensed but sign-in blocked (a leaver).
    Disabled,
    Shared,
}

#[derive(Debug, Clone)]
pub struct User {
    /// Position in the generated tenant: seeds everything the user holds.
    pub index: u32,
    pub id: String,
    pub kind: UserKind,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub upn: String,
    pub mail: Option<String>,
    pub mail_nickname: String,
    pub account_enabled: bool,
    pub licenses: Vec<String>,
    pub department: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub office: Option<String>,
    pub age_group: Option<String>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub created: String,
    pub has_mailbox: bool,
    /// Created through the API (its mailbox and drive start empty).
    pub generated: bool,
    pub deleted: Option<String>,
}

impl User {
    pub fn has_drive(&self) -> bool {
        self.kind != UserKind::Shared && !self.licenses.is_empty()
    }

    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "businessPhones": self.business_phones,
            "displayName": self.display_name,
            "givenName": self.given_name,
            "surname": self.surname,
            "jobTitle": self.job_title,
            "mail": self.mail,
            "mailNickname": self.mail_nickname,
            "mobilePhone": self.mobile_phone,
            "officeLocation": self.office,
            "preferredLanguage": "en-US",
            "userPrincipalName": self.upn,
            "accountEnabled": self.account_enabled,
            "assignedLicenses": self.licenses.iter().map(|s| json!({"disabledPlans": [], "skuId": s})).collect::<Vec<_>>(),
            "department": self.department,
            "city": self.city,
            "country": self.country,
            "companyName": self.company,
            "ageGroup": self.age_group,
            "usageLocation": self.country.as_ref().map(|_| "US"),
            "userType": "Member",
            "createdDateTime": self.created,
            "deletedDateTime": self.deleted,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub index: u32,
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub mail_nickname: String,
    pub mail: Option<String>,
    pub unified: bool,
    pub team: bool,
    pub visibility: String,
    pub members: Vec<String>,
    pub owners: Vec<String>,
    pub created: String,
    pub generated: bool,
    pub deleted: Option<String>,
}

impl Group {
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "displayName": self.display_name,
            "description": self.description,
            "mailNickname": self.mail_nickname,
            "mail": self.mail,
            "mailEnabled": self.unified,
            "securityEnabled": !self.unified,
            "groupTypes": if self.unified { vec!["Unified"] } else { vec![] },
            "visibility": self.visibility,
            "resourceProvisioningOptions": if self.team { vec!["Team"] } else { vec![] },
            "createdDateTime": self.created,
            "deletedDateTime": self.deleted,
            "classification": null,
            "renewedDateTime": self.created,
            "securityIdentifier": format!("S-1-12-1-{}", self.index + 1000),
        })
    }
}

const SHARED_NAMES: &[&str] = &[
    "Support",
    "Sales Inbox",
    "Reception",
    "Accounts Payable",
    "HR Helpdesk",
    "Marketing Team",
    "Facilities",
    "Press",
];
const GROUP_NAMES: &[&str] = &[
    "Project Falcon",
    "Sales Team",
    "Finance",
    "Legal Review",
    "Engineering",
    "Marketing Campaigns",
    "Leadership",
    "Product Launch",
    "Customer Success",
    "IT Operations",
    "Research",
    "Design Studio",
    "Retail Stores",
    "Mark 8 Project",
];

pub struct Directory {
    pub domain: String,
    pub tenant_id: String,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    user_index: HashMap<String, usize>,
    group_index: HashMap<String, usize>,
    /// Change tracking for `/users/delta` and `/groups/delta` (generated objects start at sequence 0).
    pub user_changes: DeltaLog<()>,
    pub group_changes: DeltaLog<()>,
}

impl Directory {
    pub fn generate(cfg: &SimConfig) -> Directory {
        let mut users = Vec::with_capacity(cfg.users as usize);
        let mut shared_seen: HashMap<&str, u32> = HashMap::new();
        for i in 0..cfg.users {
            users.push(generate_user(cfg, i, &mut shared_seen));
        }
        let group_count = (cfg.users / 5).max(4);
        let eligible: Vec<&User> = users
            .iter()
            .filter(|u| u.kind == UserKind::Licensed)
            .collect();
        let mut groups = Vec::new();
        let mut name_seen: HashMap<&str, u32> = HashMap::new();
        for g in 0..group_count {
            let mut r = rng_for(cfg.seed, &["group", &g.to_string()]);
            let base = *pick(&mut r, GROUP_NAMES);
            let n = name_seen.entry(base).or_insert(0);
            *n += 1;
            let display_name = if *n == 1 {
                base.to_string()
            } else {
                format!("{base} {n}")
            };
            let nickname: String = display_name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            let roll: f64 = r.random();
            let (unified, team) = if g == 0 || roll < 0.6 {
                (true, true)
            } else if roll < 0.85 {
                (true, false)
            } else {
                (false, false)
            };
            let mut members = Vec::new();
            if !eligible.is_empty() {
                let want = r.random_range(3..=12).min(eligible.len());
                while members.len() < want {
                    let u = eligible[r.random_range(0..eligible.len())];
                    if !members.contains(&u.id) {
                        members.push(u.id.clone());
                    }
                }
            }
            let owners = members
                .iter()
                .take(if members.len() > 3 { 2 } else { 1 })
                .cloned()
                .collect();
            let created = generation_anchor() - chrono::Duration::days(r.random_range(200..900));
            groups.push(Group {
                index: g,
                id: stable_guid(cfg.seed, &["group-id", &g.to_string()]).to_string(),
                display_name: display_name.clone(),
                description: format!("{display_name}: {}", rng::title(&mut r, 4, 8)),
                mail: unified.then(|| format!("{}@{}", nickname, cfg.domain)),
                mail_nickname: nickname,
                unified,
                team,
                visibility: if r.random_bool(0.8) {
                    "Private".into()
                } else {
                    "Public".into()
                },
                members,
                owners,
                created: graph_time(created),
                generated: true,
                deleted: None,
            });
        }
        let mut d = Directory {
            domain: cfg.domain.clone(),
            tenant_id: cfg.tenant_id.clone(),
            users,
            groups,
            user_index: HashMap::new(),
            group_index: HashMap::new(),
            user_changes: DeltaLog::new(),
            group_changes: DeltaLog::new(),
        };
        for u in &d.users {
            d.user_changes.upsert(u.id.clone(), (), 0);
        }
        for g in &d.groups {
            d.group_changes.upsert(g.id.clone(), (), 0);
        }
        d.reindex();
        d
    }

    fn reindex(&mut self) {
        self.user_index.clear();
        for (i, u) in self.users.iter().enumerate() {
            self.user_index.insert(u.id.to_ascii_lowercase(), i);
            self.user_index.insert(u.upn.to_ascii_lowercase(), i);
        }
        self.group_index = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.to_ascii_lowercase(), i))
            .collect();
    }

    /// A live user by id or user principal name.
    pub fn user(&self, key: &str) -> Option<&User> {
        self.user_any(key).filter(|u| u.deleted.is_none())
    }

    /// A user by id or UPN, deleted or not.
    pub fn user_any(&self, key: &str) -> Option<&User> {
        self.user_index
            .get(&key.to_ascii_lowercase())
            .map(|&i| &self.users[i])
    }

    pub fn user_mut(&mut self, key: &str) -> Option<&mut User> {
        self.user_index
            .get(&key.to_ascii_lowercase())
            .copied()
            .map(move |i| &mut self.users[i])
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.group_any(id).filter(|g| g.deleted.is_none())
    }

    pub fn group_any(&self, id: &str) -> Option<&Group> {
        self.group_index
            .get(&id.to_ascii_lowercase())
            .map(|&i| &self.groups[i])
    }

    pub fn group_mut(&mut self, id: &str) -> Option<&mut Group> {
        self.group_index
            .get(&id.to_ascii_lowercase())
            .copied()
            .map(move |i| &mut self.groups[i])
    }

    pub fn live_users(&self) -> impl Iterator<Item = &User> {
        self.users.iter().filter(|u| u.deleted.is_none())
    }

    pub fn live_groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(|g| g.deleted.is_none())
    }

    /// Records that a user changed (for `/users/delta`).
    pub fn user_changed(&mut self, id: &str, seq: u64) {
        if let Some(u) = self.user_any(id) {
            let id = u.id.clone();
            if u.deleted.is_some() {
                // Soft-deleted: restorable for 30 days, reported with reason "changed".
                self.user_changes.remove(&id, seq, "changed");
            } else {
                self.user_changes.upsert(id, (), seq);
            }
        }
    }

    /// Records that a group changed (for `/groups/delta`).
    pub fn group_changed(&mut self, id: &str, seq: u64) {
        if let Some(g) = self.group_any(id) {
            let id = g.id.clone();
            if g.deleted.is_some() {
                self.group_changes.remove(&id, seq, "changed");
            } else {
                self.group_changes.upsert(id, (), seq);
            }
        }
    }

    /// Adds a user created through the API; its mailbox and drive start empty.
    pub fn add_user(&mut self, mut user: User) -> &User {
        user.index = self.users.len() as u32 + 1_000_000;
        self.users.push(user);
        self.reindex();
        self.users.last().expect("just pushed")
    }

    /// Adds a group created through the API (for example by creating a team).
    pub fn add_group(&mut self, mut group: Group) -> &Group {
        group.index = self.groups.len() as u32 + 1_000_000;
        self.groups.push(group);
        self.reindex();
        self.groups.last().expect("just pushed")
    }

    /// Members of a group as directory objects.
    pub fn member_json(&self, ids: &[String]) -> Vec<Value> {
        ids.iter()
            .filter_map(|id| self.user(id))
            .map(|u| {
                let mut v = u.json();
                v["@odata.type"] = json!("#microsoft.graph.user");
                v
            })
            .collect()
    }
}

fn generate_user(cfg: &SimConfig, i: u32, shared_seen: &mut HashMap<&'static str, u32>) -> User {
    let mut r = rng_for(cfg.seed, &["user", &i.to_string()]);
    let roll: f64 = r.random();
    let kind = if i == 0 {
        UserKind::Licensed
    } else if roll < 0.06 {
        UserKind::Shared
    } else if roll < 0.12 {
        UserKind::Unlicensed
    } else if roll < 0.17 {
        UserKind::Disabled
    } else {
        UserKind::Licensed
    };
    let id = stable_guid(cfg.seed, &["user-id", &i.to_string()]).to_string();
    let (city, country, office) = *pick(&mut r, CITIES);
    let created =
        graph_time(generation_anchor() - chrono::Duration::days(r.random_range(60..1500)));
    if kind == UserKind::Shared {
        let base = *pick(&mut r, SHARED_NAMES);
        let n = shared_seen.entry(base).or_insert(0);
        *n += 1;
        let display_name = if *n == 1 {
            base.to_string()
        } else {
            format!("{base} {n}")
        };
        let nick: String = display_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        let upn = format!("{nick}@{}", cfg.domain);
        return User {
            index: i,
            id,
            kind,
            display_name,
            given_name: None,
            surname: None,
            mail: Some(upn.clone()),
            upn,
            mail_nickname: nick,
            account_enabled: false,
            licenses: vec![],
            department: None,
            city: None,
            country: None,
            company: None,
            job_title: None,
            office: None,
            age_group: None,
            business_phones: vec![],
            mobile_phone: None,
            created,
            has_mailbox: true,
            generated: true,
            deleted: None,
        };
    }
    let given = *pick(&mut r, FIRST_NAMES);
    let surname = *pick(&mut r, LAST_NAMES);
    let ascii = |s: &str| -> String {
        s.chars()
            .filter_map(|c| match c {
                'ä' | 'á' | 'à' => Some('a'),
                'é' | 'è' | 'ë' => Some('e'),
                'í' | 'ı' => Some('i'),
                'ó' | 'ö' | 'ø' => Some('o'),
                'ü' | 'ú' => Some('u'),
                'ç' => Some('c'),
                'ñ' => Some('n'),
                c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
                _ => None,
            })
            .collect()
    };
    let nick = if i == 0 {
        "admin".to_string()
    } else {
        format!("{}.{}{}", ascii(given), ascii(surname), i)
    };
    let upn = format!("{nick}@{}", cfg.domain);
    let sku = SKUS[r.random_range(0..SKUS.len())].0.to_string();
    let licenses = if kind == UserKind::Unlicensed {
        vec![]
    } else {
        vec![sku]
    };
    let has_mailbox = kind != UserKind::Unlicensed || r.random_bool(0.5);
    let age_group = match r.random_range(0..10) {
        0 => Some("Minor".to_string()),
        1 => Some("NotAdult".to_string()),
        2..=5 => Some("Adult".to_string()),
        _ => None,
    };
    User {
        index: i,
        id,
        kind,
        display_name: if i == 0 {
            "MOD Administrator".into()
        } else {
            format!("{given} {surname}")
        },
        given_name: Some(given.to_string()),
        surname: Some(surname.to_string()),
        mail: has_mailbox.then(|| upn.clone()),
        upn,
        mail_nickname: nick,
        account_enabled: kind != UserKind::Disabled,
        licenses,
        department: Some(pick(&mut r, DEPARTMENTS).to_string()),
        city: Some(city.to_string()),
        country: Some(country.to_string()),
        company: Some(pick(&mut r, COMPANIES).to_string()),
        job_title: Some(pick(&mut r, JOB_TITLES).to_string()),
        office: Some(office.to_string()),
        age_group,
        business_phones: vec![format!("+1 425 555 {:04}", 100 + i % 9000)],
        mobile_phone: r
            .random_bool(0.5)
            .then(|| format!("+1 206 555 {:04}", 100 + i % 9000)),
        created,
        has_mailbox,
        generated: true,
        deleted: None,
    }
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/delta", get(users_delta))
        .route("/groups/delta", get(groups_delta))
        .route(
            "/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/users/{id}/mailboxSettings", get(mailbox_settings))
        .route("/users/{id}/memberOf", get(member_of))
        .route("/users/{id}/assignLicense", post(assign_license))
        .route("/groups", get(list_groups).post(create_group))
        .route(
            "/groups/{id}",
            get(get_group).patch(update_group).delete(delete_group),
        )
        .route("/groups/{id}/members", get(group_members))
        .route("/groups/{id}/members/$ref", post(add_member))
        .route("/groups/{id}/members/{member}/$ref", delete(remove_member))
        .route("/groups/{id}/owners", get(group_owners))
        .route("/groups/{id}/owners/$ref", post(add_owner))
        .route("/organization", get(organization))
        .route("/subscribedSkus", get(subscribed_skus))
        .route(
            "/directory/deletedItems/microsoft.graph.user",
            get(deleted_users),
        )
        .route(
            "/directory/deletedItems/microsoft.graph.group",
            get(deleted_groups),
        )
        .route(
            "/directory/deletedItems/{id}/restore",
            post(restore_deleted),
        )
}

/// Users directory queries: `$count` with `ConsistencyLevel: eventual` is an
/// advanced query in Graph; without that header Graph refuses it.
fn check_advanced_query(ctx: &GraphCtx) -> GraphResult<()> {
    let eventual = ctx
        .headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
    let needs = ctx.query.count
        || ctx.query.search.is_some()
        || ctx
            .query
            .filter
            .as_deref()
            .is_some_and(|f| f.contains("$count"));
    if needs && !eventual {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "Unsupported Query. This query requires ConsistencyLevel: eventual.",
        ));
    }
    Ok(())
}

async fn list_users(State(sim): State<Arc<Sim>>, ctx: GraphCtx) -> GraphResult<Json<Value>> {
    check_advanced_query(&ctx)?;
    let dir = sim.directory.read();
    let needle = ctx
        .query
        .search
        .as_ref()
        .map(|s| s.split(':').next_back().unwrap_or(s).to_lowercase());
    let users: Vec<&User> = dir
        .live_users()
        .filter(|u| {
            needle
                .as_ref()
                .is_none_or(|n| u.display_name.to_lowercase().contains(n))
        })
        .collect();
    Ok(Json(odata::collection_of(
        &ctx,
        "users",
        &users,
        |u| u.json(),
        PageLimits::DIRECTORY,
        Some(USER_DEFAULT_SELECT),
    )?))
}

fn find_user(sim: &Sim, id: &str) -> GraphResult<User> {
    sim.directory
        .read()
        .user(id)
        .cloned()
        .ok_or_else(|| GraphError::directory_not_found(id))
}

async fn get_user(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let u = find_user(&sim, &id)?;
    Ok(Json(odata::entity(
        &ctx,
        "users",
        u.json(),
        Some(USER_DEFAULT_SELECT),
    )))
}

fn str_field(body: &Value, name: &str) -> Option<String> {
    body.get(name).and_then(|v| v.as_str()).map(str::to_string)
}

async fn create_user(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Json(body): Json<Value>,
) -> GraphResult<Response> {
    let display_name = str_field(&body, "displayName")
        .ok_or_else(|| GraphError::bad_request("Property 'displayName' is required."))?;
    let upn = str_field(&body, "userPrincipalName")
        .ok_or_else(|| GraphError::bad_request("Property 'userPrincipalName' is required."))?;
    let nick = str_field(&body, "mailNickname")
        .unwrap_or_else(|| upn.split('@').next().unwrap_or("").to_string());
    let mut dir = sim.directory.write();
    if dir.user(&upn).is_some() {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Another object with the same value for property userPrincipalName already exists.",
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let user = User {
        index: 0,
        id,
        kind: UserKind::Licensed,
        display_name,
        given_name: str_field(&body, "givenName"),
        surname: str_field(&body, "surname"),
        mail: Some(upn.clone()),
        upn,
        mail_nickname: nick,
        account_enabled: body
            .get("accountEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        licenses: vec![],
        department: str_field(&body, "department"),
        city: None,
        country: None,
        company: None,
        job_title: str_field(&body, "jobTitle"),
        office: None,
        age_group: None,
        business_phones: vec![],
        mobile_phone: None,
        created: graph_time(sim.now()),
        has_mailbox: true,
        generated: false,
        deleted: None,
    };
    let json = dir.add_user(user).json();
    if let Some(id) = json["id"].as_str() {
        dir.user_changed(id, sim.next_seq());
    }
    Ok((
        StatusCode::CREATED,
        Json(odata::entity(&ctx, "users", json, None)),
    )
        .into_response())
}

async fn update_user(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> GraphResult<StatusCode> {
    let mut dir = sim.directory.write();
    let u = dir
        .user_mut(&id)
        .filter(|u| u.deleted.is_none())
        .ok_or_else(|| GraphError::directory_not_found(&id))?;
    if let Some(v) = body.get("accountEnabled").and_then(Value::as_bool) {
        u.account_enabled = v;
    }
    if let Some(v) = str_field(&body, "displayName") {
        u.display_name = v;
    }
    if let Some(v) = str_field(&body, "department") {
        u.department = Some(v);
    }
    if let Some(v) = str_field(&body, "jobTitle") {
        u.job_title = Some(v);
    }
    dir.user_changed(&id, sim.next_seq());
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a user: the account goes to deleted items and its mailbox and
/// drive go with it (a restore of the user within 30 days would bring them
/// back in Microsoft 365; the simulator keeps that simple and removes them).
pub fn delete_user_now(sim: &Sim, id: &str) -> GraphResult<()> {
    let uid = {
        let mut dir = sim.directory.write();
        let now = graph_time(sim.now());
        let u = dir
            .user_mut(id)
            .filter(|u| u.deleted.is_none())
            .ok_or_else(|| GraphError::directory_not_found(id))?;
        u.deleted = Some(now);
        let uid = u.id.clone();
        for g in dir.groups.iter_mut() {
            g.members.retain(|m| m != &uid);
            g.owners.retain(|m| m != &uid);
        }
        dir.user_changed(&uid, sim.next_seq());
        uid
    };
    let entity = EntityRef::User(uid);
    for w in sim.workloads() {
        w.entity_deleted(sim, &entity);
    }
    Ok(())
}

/// Deletes a group, its team, site and conversations.
pub fn delete_group_now(sim: &Sim, id: &str) -> GraphResult<()> {
    let gid = {
        let mut dir = sim.directory.write();
        let now = graph_time(sim.now());
        let g = dir
            .group_mut(id)
            .filter(|g| g.deleted.is_none())
            .ok_or_else(|| GraphError::directory_not_found(id))?;
        g.deleted = Some(now);
        let gid = g.id.clone();
        dir.group_changed(&gid, sim.next_seq());
        gid
    };
    let entity = EntityRef::Group(gid);
    for w in sim.workloads() {
        w.entity_deleted(sim, &entity);
    }
    Ok(())
}

async fn delete_user(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> GraphResult<StatusCode> {
    delete_user_now(&sim, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn mailbox_settings(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let u = find_user(&sim, &id)?;
    if !u.has_mailbox {
        return Err(mailbox_not_enabled());
    }
    let purpose = if u.kind == UserKind::Shared {
        "shared"
    } else {
        "user"
    };
    let v = json!({
        "archiveFolder": null,
        "timeZone": "UTC",
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "dateFormat": "M/d/yyyy",
        "timeFormat": "h:mm tt",
        "userPurpose": purpose,
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
        "automaticRepliesSetting": {"status": "disabled", "externalAudience": "all",
            "internalReplyMessage": "", "externalReplyMessage": ""},
        "workingHours": {"daysOfWeek": ["monday","tuesday","wednesday","thursday","friday"],
            "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
            "timeZone": {"name": "UTC"}}
    });
    Ok(Json(odata::entity(
        &ctx,
        &format!("users('{}')/mailboxSettings", u.id),
        v,
        None,
    )))
}

/// Graph's answer for a user that has no Exchange Online mailbox.
pub fn mailbox_not_enabled() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )
}

async fn member_of(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let u = find_user(&sim, &id)?;
    let dir = sim.directory.read();
    let items: Vec<Value> = dir
        .live_groups()
        .filter(|g| g.members.contains(&u.id))
        .map(|g| {
            let mut v = g.json();
            v["@odata.type"] = json!("#microsoft.graph.group");
            v
        })
        .collect();
    Ok(Json(odata::collection(
        &ctx,
        "directoryObjects",
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

async fn assign_license(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> GraphResult<Json<Value>> {
    let mut dir = sim.directory.write();
    let u = dir
        .user_mut(&id)
        .filter(|u| u.deleted.is_none())
        .ok_or_else(|| GraphError::directory_not_found(&id))?;
    for add in body
        .get("addLicenses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let sku = add
            .get("skuId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !SKUS.iter().any(|(s, _)| *s == sku) {
            return Err(GraphError::bad_request(format!(
                "License {sku} does not correspond to a valid company License."
            )));
        }
        if !u.licenses.contains(&sku) {
            u.licenses.push(sku);
        }
    }
    for rem in body
        .get("removeLicenses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(s) = rem.as_str() {
            u.licenses.retain(|l| l != s);
        }
    }
    if !u.licenses.is_empty() && u.kind == UserKind::Unlicensed {
        u.kind = UserKind::Licensed;
        u.has_mailbox = true;
    }
    let json = u.json();
    dir.user_changed(&id, sim.next_seq());
    Ok(Json(odata::entity(&ctx, "users", json, None)))
}

async fn list_groups(State(sim): State<Arc<Sim>>, ctx: GraphCtx) -> GraphResult<Json<Value>> {
    check_advanced_query(&ctx)?;
    let dir = sim.directory.read();
    let groups: Vec<&Group> = dir.live_groups().collect();
    Ok(Json(odata::collection_of(
        &ctx,
        "groups",
        &groups,
        |g| g.json(),
        PageLimits::DIRECTORY,
        None,
    )?))
}

fn find_group(sim: &Sim, id: &str) -> GraphResult<Group> {
    sim.directory
        .read()
        .group(id)
        .cloned()
        .ok_or_else(|| GraphError::directory_not_found(id))
}

async fn get_group(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let g = find_group(&sim, &id)?;
    Ok(Json(odata::entity(&ctx, "groups", g.json(), None)))
}

/// Creates a group from a Graph `group` body; used by `POST /groups` and by team creation.
pub fn create_group_from(sim: &Sim, body: &Value, team: bool) -> GraphResult<Group> {
    let display_name = str_field(body, "displayName")
        .ok_or_else(|| GraphError::bad_request("Property 'displayName' is required."))?;
    let nick = str_field(body, "mailNickname").unwrap_or_else(|| {
        display_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect()
    });
    let unified = body
        .get("groupTypes")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|t| t.as_str() == Some("Unified")))
        || team;
    let mut dir = sim.directory.write();
    let mut owners = Vec::new();
    let mut members = Vec::new();
    for (field, out) in [
        ("owners@odata.bind", &mut owners),
        ("members@odata.bind", &mut members),
    ] {
        for b in body
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = b
                .as_str()
                .and_then(|s| s.rsplit('/').next())
                .unwrap_or("")
                .trim_matches(|c| c == '\'' || c == '(' || c == ')');
            let id = id.trim_start_matches("users(").to_string();
            let u = dir
                .user(&id)
                .ok_or_else(|| GraphError::directory_not_found(&id))?;
            out.push(u.id.clone());
        }
    }
    for o in &owners {
        if !members.contains(o) {
            members.push(o.clone());
        }
    }
    let domain = dir.domain.clone();
    let seq = sim.next_seq();
    let group = Group {
        index: 0,
        id: uuid::Uuid::new_v4().to_string(),
        display_name,
        description: str_field(body, "description").unwrap_or_default(),
        mail: unified.then(|| format!("{nick}@{domain}")),
        mail_nickname: nick,
        unified,
        team,
        visibility: str_field(body, "visibility").unwrap_or_else(|| "Private".into()),
        members,
        owners,
        created: graph_time(sim.now()),
        generated: false,
        deleted: None,
    };
    let g = dir.add_group(group).clone();
    dir.group_changed(&g.id, seq);
    Ok(g)
}

async fn create_group(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Json(body): Json<Value>,
) -> GraphResult<Response> {
    let g = create_group_from(&sim, &body, false)?;
    Ok((
        StatusCode::CREATED,
        Json(odata::entity(&ctx, "groups", g.json(), None)),
    )
        .into_response())
}

/// `PATCH /groups/{id}`: name and description (what a restore puts back).
async fn update_group(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> GraphResult<StatusCode> {
    let mut dir = sim.directory.write();
    let g = dir
        .group_mut(&id)
        .filter(|g| g.deleted.is_none())
        .ok_or_else(|| GraphError::directory_not_found(&id))?;
    if let Some(v) = str_field(&body, "displayName") {
        g.display_name = v;
    }
    if let Some(v) = str_field(&body, "description") {
        g.description = v;
    }
    let gid = g.id.clone();
    dir.group_changed(&gid, sim.next_seq());
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_group(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> GraphResult<StatusCode> {
    delete_group_now(&sim, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn group_members(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let g = find_group(&sim, &id)?;
    let items = sim.directory.read().member_json(&g.members);
    Ok(Json(odata::collection(
        &ctx,
        "directoryObjects",
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

async fn group_owners(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let g = find_group(&sim, &id)?;
    let items = sim.directory.read().member_json(&g.owners);
    Ok(Json(odata::collection(
        &ctx,
        "directoryObjects",
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

fn ref_target(body: &Value) -> GraphResult<String> {
    let r = body
        .get("@odata.id")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::bad_request("Property '@odata.id' is required."))?;
    Ok(r.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .trim_start_matches("directoryObjects")
        .to_string())
}

async fn add_member(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> GraphResult<StatusCode> {
    add_ref(&sim, &id, &body, false)
}

async fn add_owner(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> GraphResult<StatusCode> {
    add_ref(&sim, &id, &body, true)
}

fn add_ref(sim: &Sim, id: &str, body: &Value, owner: bool) -> GraphResult<StatusCode> {
    let target = ref_target(body)?;
    let mut dir = sim.directory.write();
    let uid = dir
        .user(&target)
        .map(|u| u.id.clone())
        .ok_or_else(|| GraphError::directory_not_found(&target))?;
    let g = dir
        .group_mut(id)
        .filter(|g| g.deleted.is_none())
        .ok_or_else(|| GraphError::directory_not_found(id))?;
    let list = if owner { &mut g.owners } else { &mut g.members };
    if list.contains(&uid) {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "One or more added object references already exist for the following modified properties: 'members'.",
        ));
    }
    list.push(uid.clone());
    if owner && !g.members.contains(&uid) {
        g.members.push(uid);
    }
    let gid = g.id.clone();
    dir.group_changed(&gid, sim.next_seq());
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /groups/{id}/members/{memberId}/$ref`: removes a member from
/// a group (204 No Content, as Graph answers); an unknown group or a
/// directory object that is not a member is 404 Request_ResourceNotFound.
async fn remove_member(
    State(sim): State<Arc<Sim>>,
    Path((id, member)): Path<(String, String)>,
) -> GraphResult<StatusCode> {
    let mut dir = sim.directory.write();
    let g = dir
        .group_mut(&id)
        .filter(|g| g.deleted.is_none())
        .ok_or_else(|| GraphError::directory_not_found(&id))?;
    let uid = g
        .members
        .iter()
        .find(|m| m.eq_ignore_ascii_case(&member))
        .cloned()
        .ok_or_else(|| GraphError::directory_not_found(&member))?;
    g.members.retain(|m| m != &uid);
    let gid = g.id.clone();
    dir.group_changed(&gid, sim.next_seq());
    drop(dir);
    // Leaving a team's group is leaving the team, and its private channels.
    crate::collab::left_team(&sim, &gid, &uid);
    Ok(StatusCode::NO_CONTENT)
}

async fn organization(State(sim): State<Arc<Sim>>, ctx: GraphCtx) -> GraphResult<Json<Value>> {
    let dir = sim.directory.read();
    let org = json!({
        "id": dir.tenant_id,
        "displayName": "Contoso (simulated)",
        "tenantType": "AAD",
        "countryLetterCode": "US",
        "verifiedDomains": [{"name": dir.domain, "isDefault": true, "isInitial": true, "type": "Managed", "capabilities": "Email, OfficeCommunicationsOnline"}],
        "createdDateTime": graph_time(generation_anchor() - chrono::Duration::days(2000)),
    });
    Ok(Json(odata::collection(
        &ctx,
        "organization",
        vec![org],
        PageLimits::DIRECTORY,
        None,
    )?))
}

async fn subscribed_skus(State(sim): State<Arc<Sim>>, ctx: GraphCtx) -> GraphResult<Json<Value>> {
    let dir = sim.directory.read();
    let items: Vec<Value> = SKUS
        .iter()
        .map(|(id, part)| {
            let used = dir.live_users().filter(|u| u.licenses.iter().any(|l| l == id)).count();
            json!({
                "id": format!("{}_{}", dir.tenant_id, id),
                "skuId": id,
                "skuPartNumber": part,
                "appliesTo": "User",
                "capabilityStatus": "Enabled",
                "consumedUnits": used,
                "prepaidUnits": {"enabled": used + 25, "suspended": 0, "warning": 0, "lockedOut": 0},
                "servicePlans": [
                    {"servicePlanId": "efb87545-963c-4e0d-99df-69c6916d9eb0", "servicePlanName": "EXCHANGE_S_ENTERPRISE", "provisioningStatus": "Success", "appliesTo": "User"},
                    {"servicePlanId": "5dbe027f-2339-4123-9542-606e4d348a72", "servicePlanName": "SHAREPOINTENTERPRISE", "provisioningStatus": "Success", "appliesTo": "User"},
                    {"servicePlanId": "57ff2da0-773e-42df-b2af-ffb7a2317929", "servicePlanName": "TEAMS1", "provisioningStatus": "Success", "appliesTo": "User"}
                ]
            })
        })
        .collect();
    Ok(Json(odata::collection(
        &ctx,
        "subscribedSkus",
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

/// Deleted directory objects of one type, as `/directory/deletedItems/microsoft.graph.{user,group}` lists them.
fn deleted_items<T>(
    ctx: &GraphCtx,
    kind: &str,
    objects: &[T],
    deleted: impl Fn(&T) -> bool,
    json: impl Fn(&T) -> Value,
) -> GraphResult<Json<Value>> {
    let items: Vec<Value> = objects.iter().filter(|o| deleted(o)).map(json).collect();
    let fragment = format!("directory/deletedItems/microsoft.graph.{kind}");
    Ok(Json(odata::collection(
        ctx,
        &fragment,
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

async fn deleted_users(State(sim): State<Arc<Sim>>, ctx: GraphCtx) -> GraphResult<Json<Value>> {
    let dir = sim.directory.read();
    deleted_items(
        &ctx,
        "user",
        &dir.users,
        |u| u.deleted.is_some(),
        User::json,
    )
}

async fn deleted_groups(State(sim): State<Arc<Sim>>, ctx: GraphCtx) -> GraphResult<Json<Value>> {
    let dir = sim.directory.read();
    deleted_items(
        &ctx,
        "group",
        &dir.groups,
        |g| g.deleted.is_some(),
        Group::json,
    )
}

/// Restores a deleted user or group as a directory object. In the simulator its
/// mail, drive and team data do not come back: that is what backups are for.
async fn restore_deleted(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let mut dir = sim.directory.write();
    if let Some(u) = dir.user_mut(&id).filter(|u| u.deleted.is_some()) {
        u.deleted = None;
        u.generated = false;
        let mut v = u.json();
        v["@odata.type"] = json!("#microsoft.graph.user");
        dir.user_changed(&id, sim.next_seq());
        return Ok(Json(odata::entity(&ctx, "directoryObjects", v, None)));
    }
    if let Some(g) = dir.group_mut(&id).filter(|g| g.deleted.is_some()) {
        g.deleted = None;
        g.generated = false;
        let mut v = g.json();
        v["@odata.type"] = json!("#microsoft.graph.group");
        dir.group_changed(&id, sim.next_seq());
        return Ok(Json(odata::entity(&ctx, "directoryObjects", v, None)));
    }
    Err(GraphError::directory_not_found(&id))
}

/// `GET /users/delta` and `/groups/delta`: directory objects changed since a
/// token, soft-deleted ones as `@removed: {"reason": "changed"}`.
fn directory_delta(sim: &Sim, ctx: &GraphCtx, groups: bool) -> GraphResult<Value> {
    let dir = sim.directory.read();
    let (log, scope, kind) = if groups {
        (&dir.group_changes, "directory:groups", "group")
    } else {
        (&dir.user_changes, "directory:users", "user")
    };
    let token = ctx
        .query
        .skiptoken
        .as_deref()
        .or(ctx.query.deltatoken.as_deref());
    let epoch = sim.delta_epoch();
    let now = sim.current_seq();
    let cursor = log.cursor(scope, epoch, now, token, TokenFlavor::Drive)?;
    let size = ctx.prefer.max_page_size.unwrap_or(100).clamp(1, 999);
    let page = log.page(scope, epoch, cursor, now, size);
    let mut items: Vec<Value> = Vec::new();
    for (id, _) in &page.changed {
        let v = if groups {
            dir.group(id).map(Group::json)
        } else {
            dir.user(id).map(User::json)
        };
        if let Some(v) = v {
            let default = if groups {
                None
            } else {
                Some(USER_DEFAULT_SELECT)
            };
            items.push(odata::project(v, ctx.query.select.as_deref(), default));
        }
    }
    for r in &page.removed {
        items.push(json!({"@odata.type": format!("#microsoft.graph.{kind}"), "id": r.id, "@removed": {"reason": r.reason}}));
    }
    let path = if groups {
        "/groups/delta"
    } else {
        "/users/delta"
    };
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!(ctx.context(if groups { "groups" } else { "users" })),
    );
    if let Some(next) = page.next_token {
        body.insert(
            "@odata.nextLink".into(),
            json!(ctx.link_with(
                path,
                &["$skiptoken", "$deltatoken"],
                &[("$skiptoken", next)]
            )),
        );
    }
    if let Some(delta) = page.delta_token {
        body.insert(
            "@odata.deltaLink".into(),
            json!(ctx.link_with(
                path,
                &["$skiptoken", "$deltatoken"],
                &[("$deltatoken", delta)]
            )),
        );
    }
    body.insert("value".into(), Value::Array(items));
    Ok(Value::Object(body))
}

async fn users_delta(State(sim): State<Arc<Sim>>, ctx: GraphCtx) -> GraphResult<Json<Value>> {
    Ok(Json(directory_delta(&sim, &ctx, false)?))
}

async fn groups_delta(State(sim): State<Arc<Sim>>, ctx: GraphCtx) -> GraphResult<Json<Value>> {
    Ok(Json(directory_delta(&sim, &ctx, true)?))
}

/// A day of joiners and leavers: sometimes someone joins (a licensed account
/// with a new, empty mailbox and drive), sometimes someone leaves (sign-in
/// blocked, data kept), as in any organisation.
pub fn simulate_directory_day(
    sim: &Sim,
    rng: &mut crate::rng::SimRng,
    report: &mut crate::ActivityReport,
) {
    let mut dir = sim.directory.write();
    let live = dir.live_users().count();
    if live < 5 {
        return;
    }
    if rng.random_bool(0.3) {
        let given = *pick(rng, FIRST_NAMES);
        let surname = *pick(rng, LAST_NAMES);
        let n = dir.users.len();
        let nick: String = format!("{given}.{surname}.{n}")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect::<String>()
            .to_lowercase();
        let upn = format!("{nick}@{}", dir.domain);
        let (city, country, office) = *pick(rng, CITIES);
        let user = User {
            index: 0,
            id: stable_guid(sim.seed(), &["joiner", &n.to_string(), &upn]).to_string(),
            kind: UserKind::Licensed,
            display_name: format!("{given} {surname}"),
            given_name: Some(given.to_string()),
            surname: Some(surname.to_string()),
            mail: Some(upn.clone()),
            upn,
            mail_nickname: nick,
            account_enabled: true,
            licenses: vec![SKUS[0].0.to_string()],
            department: Some(pick(rng, DEPARTMENTS).to_string()),
            city: Some(city.to_string()),
            country: Some(country.to_string()),
            company: Some(COMPANIES[0].to_string()),
            job_title: Some(pick(rng, JOB_TITLES).to_string()),
            office: Some(office.to_string()),
            age_group: None,
            business_phones: vec![],
            mobile_phone: None,
            created: graph_time(sim.now()),
            has_mailbox: true,
            generated: false,
            deleted: None,
        };
        let id = dir.add_user(user).id.clone();
        dir.user_changed(&id, sim.next_seq());
        report.users_joined += 1;
    }
    if rng.random_bool(0.1) {
        let candidates: Vec<String> = dir
            .live_users()
            .filter(|u| u.account_enabled && u.kind == UserKind::Licensed && u.index != 0)
            .map(|u| u.id.clone())
            .collect();
        if !candidates.is_empty() {
            let id = candidates[rng.random_range(0..candidates.len())].clone();
            if let Some(u) = dir.user_mut(&id) {
                u.account_enabled = false;
                u.kind = UserKind::Disabled;
            }
            dir.user_changed(&id, sim.next_seq());
            report.users_left += 1;
        }
    }
}
