//! Mail: folders, messages, MIME, attachments, upload sessions and delta over HTTP.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::TestSim;
use graph_sim::directory::UserKind;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Ids of generated users with mailboxes that send mail.
fn mailbox_users(t: &TestSim) -> Vec<String> {
    t.sim()
        .directory
        .read()
        .live_users()
        .filter(|u| u.has_mailbox && u.kind != UserKind::Shared)
        .map(|u| u.id.clone())
        .collect()
}

async fn raw(t: &TestSim, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Vec<u8>) {
    let r = t.send(Method::GET, path, None, headers).await;
    let s = r.status();
    (s, r.bytes().await.unwrap().to_vec())
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn folders_well_known_hidden_and_counts() {
    let t = TestSim::start(12, 7).await;
    let u = &mailbox_users(&t)[0];
    let top = t.get_all(&format!("/users/{u}/mailFolders")).await;
    let names: BTreeSet<&str> = top
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    for n in [
        "Inbox",
        "Drafts",
        "Sent Items",
        "Deleted Items",
        "Junk Email",
        "Archive",
        "Outbox",
        "Conversation History",
    ] {
        assert!(names.contains(n), "{n} missing in {names:?}");
    }
    assert!(!names.contains("Recoverable Items"));
    let all = t
        .get_all(&format!("/users/{u}/mailFolders?includeHiddenFolders=true"))
        .await;
    // Recoverable Items is in the mailbox's non-IPM subtree, beside Top of
    // Information Store: hidden folders do not include it, its well-known
    // names reach it.
    assert!(
        !all.iter().any(|f| f["displayName"] == "Recoverable Items"),
        "{all:?}"
    );
    let ri = t
        .ok(&format!("/users/{u}/mailFolders/recoverableitemsroot"))
        .await;
    assert_eq!(ri["isHidden"], true);
    assert_eq!(ri["childFolderCount"], 3);
    let kids = t
        .get_all(&format!(
            "/users/{u}/mailFolders/recoverableitemsroot/childFolders?includeHiddenFolders=true"
        ))
        .await;
    assert_eq!(kids.len(), 3, "Deletions, Purges and Versions: {kids:?}");
    // Well-known names and ids address the same folder.
    let inbox = t.ok(&format!("/users/{u}/mailFolders/inbox")).await;
    let by_id = t
        .ok(&format!(
            "/users/{u}/mailFolders/{}",
            inbox["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(inbox["id"], by_id["id"]);
    let root = t
        .ok(&format!("/users/{u}/mailFolders('msgfolderroot')"))
        .await;
    assert_eq!(inbox["parentFolderId"], root["id"]);
    let deletions = t
        .ok(&format!("/users/{u}/mailFolders/recoverableitemsdeletions"))
        .await;
    assert_eq!(deletions["isHidden"], true);
    // Nested user folders with counts.
    let kids = t
        .get_all(&format!("/users/{u}/mailFolders/inbox/childFolders"))
        .await;
    let projects = kids
        .iter()
        .find(|f| f["displayName"] == "Projects")
        .expect("Inbox/Projects");
    assert_eq!(
        inbox["childFolderCount"].as_u64().unwrap() as usize,
        kids.len()
    );
    let sub = t
        .get_all(&format!(
            "/users/{u}/mailFolders/{}/childFolders",
            projects["id"].as_str().unwrap()
        ))
        .await;
    assert!(sub.iter().any(|f| f["displayName"] == "2025"));
    let msgs = t
        .get_all(&format!("/users/{u}/mailFolders/inbox/messages?$top=7"))
        .await;
    assert_eq!(msgs.len() as u64, inbox["totalItemCount"].as_u64().unwrap());
    let unread = msgs.iter().filter(|m| m["isRead"] == false).count() as u64;
    assert_eq!(unread, inbox["unreadItemCount"].as_u64().unwrap());
    // Only v1.0 properties.
    let keys: BTreeSet<&str> = inbox
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for k in &keys {
        assert!(
            [
                "@odata.context",
                "id",
                "displayName",
                "parentFolderId",
                "childFolderCount",
                "unreadItemCount",
                "totalItemCount",
                "isHidden"
            ]
            .contains(k),
            "unexpected {k}"
        );
    }
}

#[tokio::test]
async fn unknown_users_and_users_without_mailbox() {
    let t = TestSim::start(30, 3).await;
    let (s, v) = t.get("/users/nobody@nowhere.example/messages").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "ErrorInvalidUser");
    let no_mailbox = t
        .sim()
        .directory
        .read()
        .live_users()
        .find(|u| !u.has_mailbox)
        .map(|u| u.upn.clone());
    if let Some(upn) = no_mailbox {
        let (s, v) = t.get(&format!("/users/{upn}/mailFolders")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v["error"]["code"], "MailboxNotEnabledForRESTAPI");
    }
    let u = &mailbox_users(&t)[0];
    let (s, v) = t
        .get(&format!("/users/{u}/messages/AAMkAGI2TG93AAA="))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "ErrorItemNotFound");
}

#[tokio::test]
async fn messages_page_without_gaps_and_have_full_properties() {
    let t = TestSim::start(10, 11).await;
    let users = mailbox_users(&t);
    let u = &users[0];
    let upn = t.sim().directory.read().user(u).unwrap().upn.clone();
    let all = t.get_all(&format!("/users/{upn}/messages?$top=9")).await;
    assert!(all.len() >= 20, "only {} messages", all.len());
    assert_eq!(ids(&all).len(), all.len(), "duplicates across pages");
    let folders = t.get_all(&format!("/users/{u}/mailFolders?$top=50")).await;
    let mut total = 0;
    for f in &folders {
        let id = f["id"].as_str().unwrap();
        let sub = t
            .get_all(&format!("/users/{u}/mailFolders/{id}/messages?$top=100"))
            .await;
        total += sub.len();
        for kid in t
            .get_all(&format!("/users/{u}/mailFolders/{id}/childFolders"))
            .await
        {
            let kid_id = kid["id"].as_str().unwrap();
            total += t
                .get_all(&format!(
                    "/users/{u}/mailFolders/{kid_id}/messages?$top=100"
                ))
                .await
                .len();
            for gk in t
                .get_all(&format!("/users/{u}/mailFolders/{kid_id}/childFolders"))
                .await
            {
                total += t
                    .get_all(&format!(
                        "/users/{u}/mailFolders/{}/messages?$top=100",
                        gk["id"].as_str().unwrap()
                    ))
                    .await
                    .len();
            }
        }
    }
    assert_eq!(total, all.len());
    let m = &all[0];
    for k in [
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "receivedDateTime",
        "sentDateTime",
        "hasAttachments",
        "internetMessageId",
        "subject",
        "bodyPreview",
        "importance",
        "parentFolderId",
        "conversationId",
        "conversationIndex",
        "isRead",
        "isDraft",
        "webLink",
        "inferenceClassification",
        "body",
        "sender",
        "from",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "flag",
    ] {
        assert!(m.get(k).is_some(), "{k} missing: {m}");
    }
    assert!(m.get("uniqueBody").is_none());
    assert!(m.get("internetMessageHeaders").is_none());
    assert_eq!(
        m["@odata.etag"],
        json!(format!("W/\"{}\"", m["changeKey"].as_str().unwrap()))
    );
    // Newest first.
    let dates: Vec<&str> = all
        .iter()
        .map(|m| m["receivedDateTime"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    // $select, and properties only returned when selected.
    let id = m["id"].as_str().unwrap();
    let sel = t
        .ok(&format!(
            "/users/{u}/messages/{id}?$select=subject,uniqueBody,internetMessageHeaders"
        ))
        .await;
    assert!(sel.get("uniqueBody").is_some());
    assert!(sel.get("body").is_none());
    assert!(sel["internetMessageHeaders"].is_array());
    // Plain-text bodies on request.
    let r = t
        .send(
            Method::GET,
            &format!("/users/{u}/messages/{id}?$select=body"),
            None,
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["body"]["contentType"], "text");
}

#[tokio::test]
async fn mime_value_parses_and_is_deterministic() {
    let a = TestSim::start(8, 21).await;
    let b = TestSim::start(8, 21).await;
    let u = &mailbox_users(&a)[0];
    let list_a = a
        .ok(&format!("/users/{u}/mailFolders/inbox/messages?$top=5"))
        .await;
    let list_b = b
        .ok(&format!("/users/{u}/mailFolders/inbox/messages?$top=5"))
        .await;
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("@odata.context");
        v.as_object_mut().unwrap().remove("@odata.nextLink");
        v
    };
    assert_eq!(strip(&list_a), strip(&list_b));
    for m in list_a["value"].as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        let r = a
            .send(
                Method::GET,
                &format!("/users/{u}/messages/{id}/$value"),
                None,
                &[],
            )
            .await;
        assert_eq!(r.headers()["content-type"], "text/plain");
        let bytes = r.bytes().await.unwrap();
        let (_, again) = raw(&b, &format!("/users/{u}/messages/{id}/$value"), &[]).await;
        assert_eq!(bytes.to_vec(), again, "MIME differs between runs");
        let p = mail_parser::MessageParser::default()
            .parse(&bytes[..])
            .unwrap();
        assert_eq!(p.subject().unwrap_or(""), m["subject"].as_str().unwrap());
        assert_eq!(
            format!("<{}>", p.message_id().unwrap()),
            m["internetMessageId"].as_str().unwrap()
        );
        assert!(p.body_text(0).is_some() && p.body_html(0).is_some());
        assert!(
            p.received().is_some(),
            "delivered copy has Received headers"
        );
        assert!(
            p.header_raw("X-MS-Exchange-Organization-Network-Message-Id")
                .is_some()
        );
        let atts = a
            .get_all(&format!("/users/{u}/messages/{id}/attachments"))
            .await;
        assert_eq!(p.attachment_count(), atts.len());
    }
}

#[tokio::test]
async fn internal_mail_is_in_sender_and_every_recipient() {
    let t = TestSim::start(12, 5).await;
    let users = mailbox_users(&t);
    let mut checked = 0;
    for u in users.iter().take(4) {
        let sent = t
            .get_all(&format!(
                "/users/{u}/mailFolders/sentitems/messages?$top=100"
            ))
            .await;
        for m in sent.iter().take(3) {
            let imid = m["internetMessageId"].as_str().unwrap();
            let mut internal: Vec<String> = Vec::new();
            for r in m["toRecipients"]
                .as_array()
                .unwrap()
                .iter()
                .chain(m["ccRecipients"].as_array().unwrap())
            {
                let addr = r["emailAddress"]["address"].as_str().unwrap();
                if let Some(ru) = t
                    .sim()
                    .directory
                    .read()
                    .live_users()
                    .find(|x| x.mail.as_deref() == Some(addr) && x.has_mailbox)
                {
                    internal.push(ru.id.clone());
                }
            }
            let (_, sent_mime) = raw(
                &t,
                &format!("/users/{u}/messages/{}/$value", m["id"].as_str().unwrap()),
                &[],
            )
            .await;
            let sp = mail_parser::MessageParser::default()
                .parse(&sent_mime[..])
                .unwrap();
            assert!(sp.received().is_none(), "sent copy has no Received header");
            for r in internal {
                let all = t.get_all(&format!("/users/{r}/messages?$top=200")).await;
                let copy = all
                    .iter()
                    .find(|x| x["internetMessageId"] == imid)
                    .unwrap_or_else(|| panic!("{imid} not delivered to {r}"));
                assert_ne!(copy["id"], m["id"]);
                assert_eq!(copy["subject"], m["subject"]);
                let (_, mime) = raw(
                    &t,
                    &format!(
                        "/users/{r}/messages/{}/$value",
                        copy["id"].as_str().unwrap()
                    ),
                    &[],
                )
                .await;
                let p = mail_parser::MessageParser::default()
                    .parse(&mime[..])
                    .unwrap();
                assert_eq!(p.message_id(), sp.message_id());
                assert!(p.received().is_some());
                assert_eq!(p.body_text(0), sp.body_text(0));
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no internal mail found");
}

#[tokio::test]
async fn shared_attachments_have_identical_bytes_across_mailboxes() {
    let t = TestSim::start(16, 9).await;
    let users = mailbox_users(&t);
    // (name, size) -> (user, message id, attachment id)
    let mut seen: BTreeMap<(String, u64), (String, String, String)> = BTreeMap::new();
    for u in users.iter().take(10) {
        let msgs = t
            .get_all(&format!(
                "/users/{u}/messages?$top=200&$select=hasAttachments,internetMessageId"
            ))
            .await;
        for m in msgs.iter().filter(|m| m["hasAttachments"] == true) {
            let mid = m["id"].as_str().unwrap();
            let atts = t
                .get_all(&format!(
                    "/users/{u}/messages/{mid}/attachments?$select=name,size,isInline"
                ))
                .await;
            assert!(atts.iter().all(|a| a.get("contentBytes").is_none()));
            for a in atts {
                let key = (
                    a["name"].as_str().unwrap().to_string(),
                    a["size"].as_u64().unwrap(),
                );
                let aid = a["id"].as_str().unwrap().to_string();
                match seen.get(&key) {
                    Some((ou, om, oa)) if ou != u => {
                        let (s1, b1) = raw(
                            &t,
                            &format!("/users/{ou}/messages/{om}/attachments/{oa}/$value"),
                            &[],
                        )
                        .await;
                        let (s2, b2) = raw(
                            &t,
                            &format!("/users/{u}/messages/{mid}/attachments/{aid}/$value"),
                            &[],
                        )
                        .await;
                        assert!(s1.is_success() && s2.is_success());
                        assert_eq!(b1.len() as u64, key.1);
                        assert_eq!(b1, b2, "shared attachment {key:?} differs");
                        return;
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(key, (u.clone(), mid.to_string(), aid));
                    }
                }
            }
        }
    }
    panic!("no attachment shared across mailboxes");
}

fn removed_ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter(|v| v.get("@removed").is_some())
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

fn changed_ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter(|v| v.get("@removed").is_none())
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn message_delta_reports_exactly_the_changes() {
    let t = TestSim::start(6, 13).await;
    let u = &mailbox_users(&t)[0];
    let imm = [
        ("Prefer", "IdType=\"ImmutableId\""),
        ("Prefer", "odata.maxpagesize=7"),
    ];
    let start = format!("/users/{u}/mailFolders/inbox/messages/delta?$select=subject,isRead");
    // Initial round, paged by Prefer maxpagesize, with immutable ids.
    let mut items = Vec::new();
    let mut url = t.url(&start);
    let delta = loop {
        let r = t.send(Method::GET, &url, None, &imm).await;
        assert!(
            r.headers()["preference-applied"]
                .to_str()
                .unwrap()
                .contains("ImmutableId")
        );
        let v: Value = r.json().await.unwrap();
        let page = v["value"].as_array().unwrap();
        assert!(page.len() <= 7);
        for m in page {
            assert!(m.get("body").is_none() && m.get("subject").is_some());
        }
        items.extend(page.iter().cloned());
        if let Some(n) = v["@odata.nextLink"].as_str() {
            assert!(n.contains("$skiptoken="));
            url = n.to_string();
        } else {
            let d = v["@odata.deltaLink"].as_str().unwrap().to_string();
            assert!(d.contains("$deltatoken="));
            break d;
        }
    };
    let inbox = t.ok(&format!("/users/{u}/mailFolders/inbox")).await;
    assert_eq!(
        items.len() as u64,
        inbox["totalItemCount"].as_u64().unwrap()
    );
    let all: Vec<String> = changed_ids(&items).into_iter().collect();
    assert!(all.len() >= 4);
    // Nothing changed: an empty round.
    let r = t.send(Method::GET, &delta, None, &imm).await;
    let v: Value = r.json().await.unwrap();
    assert!(v["value"].as_array().unwrap().is_empty());
    // Mutations, all through immutable ids.
    let (patched, moved, deleted) = (&all[0], &all[1], &all[2]);
    let r = t
        .send(
            Method::PATCH,
            &format!("/users/{u}/messages/{patched}"),
            Some(json!({"isRead": false, "flag": {"flagStatus": "flagged"}, "categories": ["Blue category"]})),
            &imm,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = t
        .send(
            Method::POST,
            &format!("/users/{u}/messages/{moved}/move"),
            Some(json!({"destinationId": "archive"})),
            &imm,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(&v["id"], moved, "immutable id survives the move");
    assert_eq!(
        t.delete(&format!("/users/{u}/messages/{deleted}")).await,
        StatusCode::NO_CONTENT
    );
    let r = t
        .send(
            Method::POST,
            &format!("/users/{u}/mailFolders/inbox/messages"),
            Some(json!({"subject": "Fresh one", "body": {"contentType": "text", "content": "hello"}})),
            &imm,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let created_id = created["id"].as_str().unwrap().to_string();
    // The next round: exactly these.
    let mut round = Vec::new();
    let mut url = delta.clone();
    let delta2 = loop {
        let v: Value = t
            .send(Method::GET, &url, None, &imm)
            .await
            .json()
            .await
            .unwrap();
        round.extend(v["value"].as_array().unwrap().iter().cloned());
        match v["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break v["@odata.deltaLink"].as_str().unwrap().to_string(),
        }
    };
    assert_eq!(
        changed_ids(&round),
        [patched.clone(), created_id.clone()].into_iter().collect()
    );
    assert_eq!(
        removed_ids(&round),
        [moved.clone(), deleted.clone()].into_iter().collect()
    );
    for r in round.iter().filter(|r| r.get("@removed").is_some()) {
        assert_eq!(r["@removed"]["reason"], "deleted");
    }
    let p = round.iter().find(|r| &r["id"] == patched).unwrap();
    assert_eq!(p["isRead"], false);
    // changeType filter.
    let v: Value = t
        .send(
            Method::GET,
            &format!("{delta}&changeType=created"),
            None,
            &imm,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        changed_ids(v["value"].as_array().unwrap()),
        [created_id.clone()].into_iter().collect()
    );
    assert!(removed_ids(v["value"].as_array().unwrap()).is_empty());
    // The deleted message is in Recoverable Items\Deletions; the moved one in Archive.
    let (s, _) = t
        .get(&format!(
            "/users/{u}/mailFolders/recoverableitemsdeletions/messages?$top=100"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let gone = t
        .send(
            Method::GET,
            &format!("/users/{u}/messages/{deleted}"),
            None,
            &imm,
        )
        .await;
    let gone: Value = gone.json().await.unwrap();
    assert_eq!(
        gone["parentFolderId"],
        t.ok(&format!("/users/{u}/mailFolders/recoverableitemsdeletions"))
            .await["id"]
    );
    // Nothing more after that.
    let v: Value = t
        .send(Method::GET, &delta2, None, &imm)
        .await
        .json()
        .await
        .unwrap();
    assert!(v["value"].as_array().unwrap().is_empty());
    // Bad and invalidated tokens: 410 SyncStateNotFound.
    let (s, v) = t
        .get(&format!(
            "/users/{u}/mailFolders/inbox/messages/delta?$deltatoken=garbage"
        ))
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(v["error"]["code"], "SyncStateNotFound");
    t.control(Method::POST, "/_sim/delta/invalidate", json!({}))
        .await;
    let (s, v) = t.get(&delta2).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(v["error"]["code"], "SyncStateNotFound");
}

#[tokio::test]
async fn rest_ids_change_on_move_immutable_ids_do_not() {
    let t = TestSim::start(6, 17).await;
    let u = &mailbox_users(&t)[0];
    let list = t
        .ok(&format!("/users/{u}/mailFolders/inbox/messages?$top=2"))
        .await;
    let rest = list["value"][0]["id"].as_str().unwrap().to_string();
    let imm_hdr = [("Prefer", "IdType=\"ImmutableId\"")];
    let v: Value = t
        .send(
            Method::GET,
            &format!("/users/{u}/messages/{rest}"),
            None,
            &imm_hdr,
        )
        .await
        .json()
        .await
        .unwrap();
    let imm = v["id"].as_str().unwrap().to_string();
    assert_ne!(imm, rest);
    let (s, moved) = t
        .post(
            &format!("/users/{u}/messages/{rest}/move"),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let new_rest = moved["id"].as_str().unwrap();
    assert_ne!(new_rest, rest);
    let (s, v) = t.get(&format!("/users/{u}/messages/{rest}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "old REST id is stale: {v}");
    t.ok(&format!("/users/{u}/messages/{new_rest}")).await;
    t.ok(&format!("/users/{u}/messages/{imm}")).await;
    // Copy: a new message with its own ids.
    let (s, copy) = t
        .post(
            &format!("/users/{u}/messages/{imm}/copy"),
            json!({"destinationId": "inbox"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_ne!(copy["id"], moved["id"]);
    assert_eq!(copy["internetMessageId"], moved["internetMessageId"]);
    // permanentDelete puts it in Purges.
    assert_eq!(
        t.call(
            Method::POST,
            &format!("/users/{u}/messages/{imm}/permanentDelete"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let purges = t
        .get_all(&format!(
            "/users/{u}/mailFolders/recoverableitemspurges/messages?$select=internetMessageId"
        ))
        .await;
    assert_eq!(purges.len(), 1);
}

#[tokio::test]
async fn create_with_extended_properties_keeps_dates_and_is_not_a_draft() {
    let t = TestSim::start(4, 2).await;
    let u = &mailbox_users(&t)[0];
    let body = json!({
        "subject": "Restored mail ✓",
        "body": {"contentType": "html", "content": "<p>Back from the vault</p>"},
        "from": {"emailAddress": {"name": "Ext Sender", "address": "ext@fabrikam.com"}},
        "toRecipients": [{"emailAddress": {"address": "someone@contoso.com"}}],
        "isRead": true,
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "1"},
            {"id": "SystemTime 0x0039", "value": "2024-03-04T05:06:07Z"},
            {"id": "SystemTime 0x0E06", "value": "2024-03-04T05:07:00Z"}
        ]
    });
    let (s, m) = t
        .post(&format!("/users/{u}/mailFolders/archive/messages"), body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(m["isDraft"], false);
    assert_eq!(m["sentDateTime"], "2024-03-04T05:06:07Z");
    assert_eq!(m["receivedDateTime"], "2024-03-04T05:07:00Z");
    assert_eq!(m["from"]["emailAddress"]["address"], "ext@fabrikam.com");
    let id = m["id"].as_str().unwrap();
    let v = t
        .ok(&format!(
            "/users/{u}/messages/{id}?$expand=singleValueExtendedProperties($filter=id eq 'Integer 0x0E07')"
        ))
        .await;
    let props = v["singleValueExtendedProperties"].as_array().unwrap();
    assert_eq!(props.len(), 1);
    assert_eq!(props[0]["value"], "1");
    // Without the flag: a draft in Drafts.
    let (s, d) = t
        .post(
            &format!("/users/{u}/messages"),
            json!({"subject": "Plain draft"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(d["isDraft"], true);
    let drafts = t.ok(&format!("/users/{u}/mailFolders/drafts")).await;
    assert_eq!(d["parentFolderId"], drafts["id"]);
    // The rendered MIME carries what was given.
    let (_, mime) = raw(&t, &format!("/users/{u}/messages/{id}/$value"), &[]).await;
    let p = mail_parser::MessageParser::default()
        .parse(&mime[..])
        .unwrap();
    assert_eq!(p.subject(), Some("Restored mail ✓"));
    assert!(
        String::from_utf8_lossy(&mime).contains("=?utf-8?"),
        "RFC 2047 subject"
    );
}

#[tokio::test]
async fn mime_upload_lands_as_a_draft() {
    let t = TestSim::start(4, 4).await;
    let u = &mailbox_users(&t)[0];
    let eml = "From: Ana Ruiz <ana@fabrikam.com>\r\nTo: Bo <bo@contoso.com>\r\nSubject: =?utf-8?B?w5xiZXJzaWNodCBRMw==?=\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\nMessage-ID: <abc123@fabrikam.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello there\r\n--b1\r\nContent-Type: application/pdf; name=\"q3.pdf\"\r\nContent-Disposition: attachment; filename=\"q3.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n";
    let r = t
        .http
        .post(t.url(&format!("/users/{u}/messages")))
        .bearer_auth(&t.token)
        .header("Content-Type", "text/plain")
        .body(STANDARD.encode(eml))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["isDraft"], true);
    assert_eq!(m["subject"], "Übersicht Q3");
    assert_eq!(m["internetMessageId"], "<abc123@fabrikam.com>");
    assert_eq!(m["hasAttachments"], true);
    assert_eq!(m["from"]["emailAddress"]["address"], "ana@fabrikam.com");
    let id = m["id"].as_str().unwrap();
    let atts = t
        .get_all(&format!("/users/{u}/messages/{id}/attachments"))
        .await;
    assert_eq!(atts.len(), 1);
    assert_eq!(atts[0]["name"], "q3.pdf");
    assert_eq!(
        STANDARD
            .decode(atts[0]["contentBytes"].as_str().unwrap())
            .unwrap(),
        b"%PDF-1.4\n"
    );
    let (_, back) = raw(&t, &format!("/users/{u}/messages/{id}/$value"), &[]).await;
    assert_eq!(back, eml.as_bytes());
    // Not base64: Graph's error.
    let r = t
        .http
        .post(t.url(&format!("/users/{u}/messages")))
        .bearer_auth(&t.token)
        .header("Content-Type", "text/plain")
        .body("%%% not base64 %%%")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "ErrorMimeContentInvalidBase64String");
}

#[tokio::test]
async fn attachments_and_upload_sessions() {
    let t = TestSim::start(4, 6).await;
    let u = &mailbox_users(&t)[0];
    let (_, d) = t
        .post(
            &format!("/users/{u}/messages"),
            json!({"subject": "With files"}),
        )
        .await;
    let id = d["id"].as_str().unwrap().to_string();
    let small = b"small file contents".to_vec();
    let (s, a) = t
        .post(
            &format!("/users/{u}/messages/{id}/attachments"),
            json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt",
                   "contentType": "text/plain", "contentBytes": STANDARD.encode(&small)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    let aid = a["id"].as_str().unwrap();
    let (_, bytes) = raw(
        &t,
        &format!("/users/{u}/messages/{id}/attachments/{aid}/$value"),
        &[],
    )
    .await;
    assert_eq!(bytes, small);
    let got = t
        .ok(&format!("/users/{u}/messages/{id}/attachments/{aid}"))
        .await;
    assert_eq!(got["size"], small.len());
    // Upload session for a 5 MB file, in 2 MB chunks.
    let size = 5 * 1024 * 1024 + 123;
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let (s, sess) = t
        .post(
            &format!("/users/{u}/messages/{id}/attachments/createUploadSession"),
            json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": size}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sess}");
    assert_eq!(sess["nextExpectedRanges"], json!(["0-"]));
    let url = sess["uploadUrl"].as_str().unwrap().to_string();
    let put = |range: String, body: Vec<u8>, url: String| {
        let http = t.http.clone();
        async move {
            http.put(url)
                .header("Content-Range", range)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    // Without its token the URL is refused.
    let bad = url.split("authtoken=").next().unwrap().to_string() + "authtoken=x";
    let r = put(format!("bytes 0-9/{size}"), data[..10].to_vec(), bad).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Out of order.
    let r = put(
        format!("bytes 100-199/{size}"),
        data[100..200].to_vec(),
        url.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Too big a chunk.
    let big = 4 * 1024 * 1024 + 1;
    let r = put(
        format!("bytes 0-{}/{size}", big - 1),
        data[..big].to_vec(),
        url.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Length mismatch.
    let r = put(
        format!("bytes 0-99/{size}"),
        data[..50].to_vec(),
        url.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let chunk = 2 * 1024 * 1024;
    let mut start = 0;
    let mut last = None;
    while start < size {
        let end = (start + chunk).min(size);
        let r = put(
            format!("bytes {}-{}/{size}", start, end - 1),
            data[start..end].to_vec(),
            url.clone(),
        )
        .await;
        if end < size {
            assert_eq!(r.status(), StatusCode::OK);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["NextExpectedRanges"], json!([end.to_string()]));
        } else {
            assert_eq!(r.status(), StatusCode::CREATED);
            assert!(r.headers().get("location").is_some());
            last = Some(r);
        }
        start = end;
    }
    assert!(last.is_some());
    let atts = t
        .get_all(&format!(
            "/users/{u}/messages/{id}/attachments?$select=name,size"
        ))
        .await;
    let big_att = atts.iter().find(|a| a["name"] == "big.bin").unwrap();
    assert_eq!(big_att["size"], size);
    let (_, got) = raw(
        &t,
        &format!(
            "/users/{u}/messages/{id}/attachments/{}/$value",
            big_att["id"].as_str().unwrap()
        ),
        &[],
    )
    .await;
    assert_eq!(got, data);
    // The session is gone once complete.
    let r = put(
        format!("bytes 0-9/{size}"),
        data[..10].to_vec(),
        url.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Delete an attachment.
    assert_eq!(
        t.delete(&format!("/users/{u}/messages/{id}/attachments/{aid}"))
            .await,
        StatusCode::NO_CONTENT
    );
    let atts = t
        .get_all(&format!(
            "/users/{u}/messages/{id}/attachments?$select=name"
        ))
        .await;
    assert_eq!(atts.len(), 1);
    // An attached message (itemAttachment): listed as such, its $value is MIME.
    let (s, item) = t
        .post(
            &format!("/users/{u}/messages/{id}/attachments"),
            json!({"@odata.type": "#microsoft.graph.itemAttachment", "name": "Forwarded",
                   "item": {"@odata.type": "#microsoft.graph.message", "subject": "Inner mail",
                            "body": {"contentType": "text", "content": "inner"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{item}");
    assert_eq!(item["@odata.type"], "#microsoft.graph.itemAttachment");
    assert!(item.get("contentBytes").is_none());
    let (_, inner) = raw(
        &t,
        &format!(
            "/users/{u}/messages/{id}/attachments/{}/$value",
            item["id"].as_str().unwrap()
        ),
        &[],
    )
    .await;
    let p = mail_parser::MessageParser::default()
        .parse(&inner[..])
        .unwrap();
    assert_eq!(p.subject(), Some("Inner mail"));
    assert_eq!(
        t.delete(&format!(
            "/users/{u}/messages/{id}/attachments/{}",
            item["id"].as_str().unwrap()
        ))
        .await,
        StatusCode::NO_CONTENT
    );
    // The MIME of the message carries the uploaded attachment.
    let (_, mime) = raw(&t, &format!("/users/{u}/messages/{id}/$value"), &[]).await;
    let p = mail_parser::MessageParser::default()
        .parse(&mime[..])
        .unwrap();
    let att = p.attachments().next().unwrap();
    assert_eq!(att.contents(), &data[..]);
}

#[tokio::test]
async fn folder_hierarchy_changes_and_folder_delta() {
    let t = TestSim::start(4, 8).await;
    let u = &mailbox_users(&t)[0];
    let (first, delta) = t
        .delta_round(&format!("/users/{u}/mailFolders/delta"))
        .await;
    assert!(first.iter().any(|f| f["displayName"] == "Inbox"));
    assert!(
        !first
            .iter()
            .any(|f| f["displayName"] == "Recoverable Items")
    );
    let (s, f) = t
        .post(
            &format!("/users/{u}/mailFolders/inbox/childFolders"),
            json!({"displayName": "Vendors"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let fid = f["id"].as_str().unwrap().to_string();
    let (s, v) = t
        .post(
            &format!("/users/{u}/mailFolders/inbox/childFolders"),
            json!({"displayName": "vendors"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "ErrorFolderExists");
    let (s, top) = t
        .post(
            &format!("/users/{u}/mailFolders"),
            json!({"displayName": "Top level"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (round, delta) = t.delta_round(&delta).await;
    assert_eq!(
        ids(&round),
        [fid.clone(), top["id"].as_str().unwrap().to_string()]
            .into_iter()
            .collect()
    );
    let (s, r) = t
        .patch(
            &format!("/users/{u}/mailFolders/{fid}"),
            json!({"displayName": "Suppliers"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["displayName"], "Suppliers");
    let (s, _) = t
        .post(
            &format!("/users/{u}/mailFolders/{fid}/move"),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (round, delta) = t.delta_round(&delta).await;
    assert_eq!(round.len(), 1);
    let archive = t.ok(&format!("/users/{u}/mailFolders/archive")).await;
    assert_eq!(round[0]["parentFolderId"], archive["id"]);
    // A message in it, then delete: to Deleted Items, then gone.
    t.post(
        &format!("/users/{u}/mailFolders/{fid}/messages"),
        json!({"subject": "x"}),
    )
    .await;
    assert_eq!(
        t.delete(&format!("/users/{u}/mailFolders/{fid}")).await,
        StatusCode::NO_CONTENT
    );
    let f = t.ok(&format!("/users/{u}/mailFolders/{fid}")).await;
    let deleted = t.ok(&format!("/users/{u}/mailFolders/deleteditems")).await;
    assert_eq!(f["parentFolderId"], deleted["id"]);
    assert_eq!(
        t.delete(&format!("/users/{u}/mailFolders/{fid}")).await,
        StatusCode::NO_CONTENT
    );
    let (s, _) = t.get(&format!("/users/{u}/mailFolders/{fid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (round, _) = t.delta_round(&delta).await;
    assert_eq!(removed_ids(&round), [fid.clone()].into_iter().collect());
    let (s, v) = t
        .call(
            Method::DELETE,
            &format!("/users/{u}/mailFolders/inbox"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "ErrorDeleteDistinguishedFolder");
}

#[tokio::test]
async fn truth_purge_and_simulated_activity() {
    let t = TestSim::start(8, 12).await;
    let u = mailbox_users(&t)[0].clone();
    let truth = t
        .control(Method::GET, &format!("/_sim/truth/users/{u}"), json!({}))
        .await;
    let items: Vec<&Value> = truth["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["workload"] == "mail")
        .collect();
    let all = t.get_all(&format!("/users/{u}/messages?$top=500")).await;
    assert_eq!(items.len(), all.len());
    let imm = [("Prefer", "IdType=\"ImmutableId\"")];
    let first = items[0];
    let (_, mime) = raw(
        &t,
        &format!(
            "/users/{u}/messages/{}/$value",
            first["id"].as_str().unwrap()
        ),
        &imm,
    )
    .await;
    assert_eq!(first["hash"], blake3::hash(&mime).to_hex().to_string());
    assert!(
        items
            .iter()
            .any(|i| i["path"].as_str().unwrap().starts_with("Inbox/"))
    );
    // Activity: delta reports exactly what changed in Inbox.
    let (initial, delta) = t
        .delta_round(&format!(
            "/users/{u}/mailFolders/inbox/messages/delta?$select=subject"
        ))
        .await;
    let rep = t
        .control(
            Method::POST,
            "/_sim/activity",
            json!({"days": 3, "entities": [format!("user:{u}")]}),
        )
        .await;
    assert!(rep["report"]["created"].as_u64().unwrap() > 0, "{rep}");
    let (round, _) = t.delta_round(&delta).await;
    let inbox_now = ids(&t
        .get_all(&format!("/users/{u}/mailFolders/inbox/messages?$top=500"))
        .await);
    // Replaying the round on the first state gives exactly the state now.
    let mut replay = ids(&initial);
    for r in removed_ids(&round) {
        replay.remove(&r);
    }
    replay.extend(changed_ids(&round));
    assert_eq!(replay, inbox_now);
    let after = inbox_now.len() as u64;
    // Purge.
    let n = t
        .control(
            Method::POST,
            &format!("/_sim/users/{u}/mailFolders/inbox/purge"),
            json!({}),
        )
        .await;
    assert!(n["deleted"].as_u64().unwrap() >= after);
    let inbox = t.ok(&format!("/users/{u}/mailFolders/inbox")).await;
    assert_eq!(inbox["totalItemCount"], 0);
    // Deleting the user drops the mailbox.
    t.control(Method::POST, &format!("/_sim/users/{u}/delete"), json!({}))
        .await;
    let (s, _) = t.get(&format!("/users/{u}/messages")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
