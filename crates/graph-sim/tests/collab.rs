//! Group conversations, teams, channels, channel messages, message delta and
//! the Teams message import (migration) flow.

mod common;

use std::collections::BTreeSet;

use common::TestSim;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn groups(t: &TestSim) -> Vec<Value> {
    t.get_all("/groups").await
}

async fn a_team(t: &TestSim) -> String {
    groups(t)
        .await
        .into_iter()
        .find(|g| {
            g["resourceProvisioningOptions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "Team")
        })
        .expect("a team")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn enc(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// A standard channel of the team that has messages.
async fn busy_channel(t: &TestSim, team: &str) -> String {
    let chans = t.get_all(&format!("/teams/{team}/channels")).await;
    let mut best = (0, String::new());
    for c in chans.iter().filter(|c| c["membershipType"] == "standard") {
        let cid = c["id"].as_str().unwrap();
        let n = t
            .get_all(&format!("/teams/{team}/channels/{}/messages", enc(cid)))
            .await
            .len();
        if n > best.0 {
            best = (n, cid.to_string());
        }
    }
    assert!(best.0 > 0, "some channel has messages");
    best.1
}

#[tokio::test]
async fn group_conversations_threads_posts_and_attachments() {
    let t = TestSim::start(30, 11).await;
    let all = groups(&t).await;
    let g = all
        .iter()
        .find(|g| {
            g["groupTypes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "Unified")
        })
        .unwrap();
    let gid = g["id"].as_str().unwrap();
    let convs = t.get_all(&format!("/groups/{gid}/conversations")).await;
    assert!(!convs.is_empty());
    for k in [
        "topic",
        "hasAttachments",
        "lastDeliveredDateTime",
        "uniqueSenders",
        "preview",
    ] {
        assert!(convs[0].get(k).is_some(), "conversation has {k}");
    }
    let cid = convs[0]["id"].as_str().unwrap();
    let one = t.ok(&format!("/groups/{gid}/conversations/{cid}")).await;
    assert_eq!(one["topic"], convs[0]["topic"]);
    let threads = t
        .get_all(&format!("/groups/{gid}/conversations/{cid}/threads"))
        .await;
    assert!(!threads.is_empty());
    let th = &threads[0];
    assert_eq!(th["toRecipients"][0]["emailAddress"]["address"], g["mail"]);
    let tid = th["id"].as_str().unwrap();
    let all_threads = t.get_all(&format!("/groups/{gid}/threads")).await;
    assert!(all_threads.iter().any(|x| x["id"] == tid));
    let posts = t
        .get_all(&format!("/groups/{gid}/threads/{tid}/posts"))
        .await;
    assert!(!posts.is_empty());
    let p = &posts[0];
    assert_eq!(p["conversationId"], cid);
    assert_eq!(p["conversationThreadId"], tid);
    assert_eq!(p["body"]["contentType"], "html");
    assert!(p["from"]["emailAddress"]["address"].is_string());
    assert!(p["receivedDateTime"].is_string());
    let pid = p["id"].as_str().unwrap();
    let via_conv = t
        .ok(&format!(
            "/groups/{gid}/conversations/{cid}/threads/{tid}/posts/{pid}"
        ))
        .await;
    assert_eq!(via_conv["body"], p["body"]);

    // Reply with an attachment, then read it back.
    let (s, _) = t
        .post(
            &format!("/groups/{gid}/threads/{tid}/reply"),
            json!({"post": {"body": {"contentType": "text", "content": "Agreed"},
                "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt",
                    "contentType": "text/plain", "contentBytes": "aGVsbG8="}]}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let posts2 = t
        .get_all(&format!("/groups/{gid}/threads/{tid}/posts"))
        .await;
    assert_eq!(posts2.len(), posts.len() + 1);
    let newp = posts2.last().unwrap();
    assert_eq!(newp["hasAttachments"], true);
    let npid = newp["id"].as_str().unwrap();
    let parent = t
        .ok(&format!(
            "/groups/{gid}/threads/{tid}/posts/{npid}/inReplyTo"
        ))
        .await;
    assert_eq!(parent["id"], posts.last().unwrap()["id"]);
    let atts = t
        .get_all(&format!(
            "/groups/{gid}/threads/{tid}/posts/{npid}/attachments"
        ))
        .await;
    assert_eq!(atts.len(), 1);
    assert_eq!(atts[0]["contentBytes"], "aGVsbG8=");
    assert_eq!(atts[0]["@odata.type"], "#microsoft.graph.fileAttachment");
    let aid = atts[0]["id"].as_str().unwrap();
    let a = t
        .ok(&format!(
            "/groups/{gid}/threads/{tid}/posts/{npid}/attachments/{aid}"
        ))
        .await;
    assert_eq!(a["size"], 5);

    // Create a conversation and a thread; delete them.
    let (s, c) = t
        .post(
            &format!("/groups/{gid}/conversations"),
            json!({"topic": "Budget", "threads": [{"posts": [{"body": {"contentType": "html", "content": "<p>Hi</p>"}}]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["topic"], "Budget");
    let ncid = c["id"].as_str().unwrap();
    let (s, th2) = t
        .post(
            &format!("/groups/{gid}/threads"),
            json!({"topic": "Offsite", "posts": [{"body": {"contentType": "text", "content": "Where?"}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let tid2 = th2["id"].as_str().unwrap();
    assert_eq!(
        t.delete(&format!("/groups/{gid}/threads/{tid2}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get(&format!("/groups/{gid}/threads/{tid2}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.delete(&format!("/groups/{gid}/conversations/{ncid}"))
            .await,
        StatusCode::NO_CONTENT
    );
    let (s, e) = t.get(&format!("/groups/{gid}/conversations/{ncid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "ErrorItemNotFound");
    let (s, _) = t
        .post(
            &format!("/groups/{gid}/conversations"),
            json!({"topic": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn team_members_and_channels() {
    let t = TestSim::start(30, 12).await;
    let tid = a_team(&t).await;
    let team = t.ok(&format!("/teams/{tid}")).await;
    for k in [
        "displayName",
        "description",
        "visibility",
        "isArchived",
        "webUrl",
        "createdDateTime",
        "specialization",
        "memberSettings",
        "guestSettings",
        "messagingSettings",
        "funSettings",
        "tenantId",
        "internalId",
    ] {
        assert!(team.get(k).is_some(), "team has {k}");
    }
    let g = t.ok(&format!("/groups/{tid}")).await;
    assert_eq!(team["displayName"], g["displayName"]);

    let members = t.get_all(&format!("/teams/{tid}/members")).await;
    let owners = t.get_all(&format!("/groups/{tid}/owners")).await;
    let gmembers = t.get_all(&format!("/groups/{tid}/members")).await;
    assert_eq!(members.len(), gmembers.len());
    for o in &owners {
        let m = members
            .iter()
            .find(|m| m["userId"] == o["id"])
            .expect("owner is a member");
        assert_eq!(m["roles"], json!(["owner"]));
        assert_eq!(
            m["@odata.type"],
            "#microsoft.graph.aadUserConversationMember"
        );
        assert_eq!(m["email"], o["mail"]);
    }
    let mid = members[0]["id"].as_str().unwrap();
    assert_eq!(
        t.ok(&format!("/teams/{tid}/members/{mid}")).await["userId"],
        members[0]["userId"]
    );

    let chans = t.get_all(&format!("/teams/{tid}/channels")).await;
    assert_eq!(chans[0]["displayName"], "General");
    let primary = t.ok(&format!("/teams/{tid}/primaryChannel")).await;
    assert_eq!(primary["id"], chans[0]["id"]);
    assert_eq!(primary["id"], team["internalId"]);
    let via_primary = t
        .get_all(&format!("/teams/{tid}/primaryChannel/messages"))
        .await;
    let via_id = t
        .get_all(&format!(
            "/teams/{tid}/channels/{}/messages",
            enc(primary["id"].as_str().unwrap())
        ))
        .await;
    assert_eq!(via_primary, via_id);
    let (pd, _) = t
        .delta_round(&format!("/teams/{tid}/primaryChannel/messages/delta"))
        .await;
    assert_eq!(pd.len(), via_id.len());
    assert_eq!(
        t.get_all(&format!("/teams/{tid}/allChannels")).await.len(),
        chans.len()
    );

    // PATCH the team.
    let (s, _) = t
        .patch(
            &format!("/teams/{tid}"),
            json!({"description": "New words", "funSettings": {"allowGiphy": false}}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let team2 = t.ok(&format!("/teams/{tid}")).await;
    assert_eq!(team2["description"], "New words");
    assert_eq!(team2["funSettings"]["allowGiphy"], false);

    // Channels: create, duplicate, patch, delete; General cannot go.
    let (s, c) = t
        .post(
            &format!("/teams/{tid}/channels"),
            json!({"displayName": "Architecture", "membershipType": "standard"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    assert!(cid.starts_with("19:") && cid.ends_with("@thread.tacv2"));
    let (s, e) = t
        .post(
            &format!("/teams/{tid}/channels"),
            json!({"displayName": "architecture"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, _) = t
        .patch(
            &format!("/teams/{tid}/channels/{}", enc(&cid)),
            json!({"description": "Boxes and arrows"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        t.ok(&format!("/teams/{tid}/channels/{}", enc(&cid))).await["description"],
        "Boxes and arrows"
    );
    assert_eq!(
        t.delete(&format!("/teams/{tid}/channels/{}", enc(&cid)))
            .await,
        StatusCode::NO_CONTENT
    );
    let (s, e) = t.get(&format!("/teams/{tid}/channels/{}", enc(&cid))).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );
    let gen_id = chans[0]["id"].as_str().unwrap();
    assert_eq!(
        t.delete(&format!("/teams/{tid}/channels/{}", enc(gen_id)))
            .await,
        StatusCode::BAD_REQUEST
    );

    // Private channel with its own members.
    let owner = owners[0]["id"].as_str().unwrap();
    let (s, pc) = t
        .post(
            &format!("/teams/{tid}/channels"),
            json!({"displayName": "Secret", "membershipType": "private", "members": [{
                "@odata.type": "#microsoft.graph.aadUserConversationMember",
                "user@odata.bind": format!("https://graph.microsoft.com/v1.0/users('{owner}')"),
                "roles": ["owner"]}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{pc}");
    assert_eq!(pc["membershipType"], "private");
    let pcid = pc["id"].as_str().unwrap();
    let pm = t
        .get_all(&format!("/teams/{tid}/channels/{}/members", enc(pcid)))
        .await;
    assert_eq!(pm.len(), 1);
    assert_eq!(pm[0]["userId"], owner);
    assert_eq!(pm[0]["roles"], json!(["owner"]));
    let other = gmembers.iter().find(|m| m["id"] != owner).unwrap()["id"]
        .as_str()
        .unwrap();
    let (s, _) = t
        .post(
            &format!("/teams/{tid}/channels/{}/members", enc(pcid)),
            json!({"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": [],
                "user@odata.bind": format!("https://graph.microsoft.com/v1.0/users('{other}')")}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        t.get_all(&format!("/teams/{tid}/channels/{}/members", enc(pcid)))
            .await
            .len(),
        2
    );
    let (s, _) = t
        .post(
            &format!("/teams/{tid}/channels"),
            json!({"displayName": "NoOwner", "membershipType": "private"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Standard channels list the team's members.
    let gm = t
        .get_all(&format!("/teams/{tid}/channels/{}/members", enc(gen_id)))
        .await;
    assert_eq!(gm.len(), members.len());

    // The files folder comes from the files workload (404 while it has none).
    let (s, f) = t
        .get(&format!(
            "/teams/{tid}/channels/{}/filesFolder",
            enc(gen_id)
        ))
        .await;
    assert!(
        s == StatusCode::OK || (s == StatusCode::NOT_FOUND && f["error"]["code"] == "NotFound"),
        "{s} {f}"
    );

    // Listing teams, a member's joined teams, archiving.
    let listed = t.get_all("/teams").await;
    assert!(listed.iter().any(|x| x["id"] == tid.as_str()));
    let joined = t.get_all(&format!("/users/{owner}/joinedTeams")).await;
    assert!(joined.iter().any(|x| x["id"] == tid.as_str()));
    let r = t
        .send(
            Method::POST,
            &format!("/teams/{tid}/archive"),
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let op = t.ok(r.headers()["location"].to_str().unwrap()).await;
    assert_eq!(op["operationType"], "archiveTeam");
    assert_eq!(t.ok(&format!("/teams/{tid}")).await["isArchived"], true);
    t.send(Method::POST, &format!("/teams/{tid}/unarchive"), None, &[])
        .await;
    assert_eq!(t.ok(&format!("/teams/{tid}")).await["isArchived"], false);

    // Unknown team.
    let (s, e) = t.get("/teams/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "NotFound");
}

#[tokio::test]
async fn generated_private_channels_have_their_own_members() {
    let mut found = false;
    for seed in 20..26 {
        let t = TestSim::start(40, seed).await;
        for g in groups(&t).await {
            if !g["resourceProvisioningOptions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "Team")
            {
                continue;
            }
            let tid = g["id"].as_str().unwrap();
            for c in t.get_all(&format!("/teams/{tid}/channels")).await {
                if c["membershipType"] != "private" {
                    continue;
                }
                let cid = c["id"].as_str().unwrap();
                let pm = t
                    .get_all(&format!("/teams/{tid}/channels/{}/members", enc(cid)))
                    .await;
                let tm = t.get_all(&format!("/teams/{tid}/members")).await;
                assert!(pm.len() >= 2 && pm.len() <= tm.len());
                assert!(pm.iter().any(|m| m["roles"] == json!(["owner"])));
                let team_users: BTreeSet<&str> =
                    tm.iter().map(|m| m["userId"].as_str().unwrap()).collect();
                assert!(
                    pm.iter()
                        .all(|m| team_users.contains(m["userId"].as_str().unwrap()))
                );
                // Its messages are written by its members only.
                let pusers: BTreeSet<&str> =
                    pm.iter().map(|m| m["userId"].as_str().unwrap()).collect();
                for m in t
                    .get_all(&format!("/teams/{tid}/channels/{}/messages", enc(cid)))
                    .await
                {
                    assert!(pusers.contains(m["from"]["user"]["id"].as_str().unwrap()));
                }
                found = true;
            }
        }
        if found {
            break;
        }
    }
    assert!(found, "some generated team has a private channel");
}

#[tokio::test]
async fn channel_messages_replies_paging_and_posting() {
    let t = TestSim::start(30, 13).await;
    let tid = a_team(&t).await;
    let cid = busy_channel(&t, &tid).await;
    let base = format!("/teams/{tid}/channels/{}", enc(&cid));
    let first = t.ok(&format!("{base}/messages?$top=3")).await;
    assert!(first["value"].as_array().unwrap().len() <= 3);
    let all = t.get_all(&format!("{base}/messages?$top=3")).await;
    let set: BTreeSet<String> = ids(&all).into_iter().collect();
    assert_eq!(set.len(), all.len(), "no repeats across pages");
    let m = &all[0];
    for k in [
        "id",
        "replyToId",
        "etag",
        "messageType",
        "createdDateTime",
        "lastModifiedDateTime",
        "lastEditedDateTime",
        "deletedDateTime",
        "subject",
        "body",
        "from",
        "importance",
        "attachments",
        "mentions",
        "reactions",
        "channelIdentity",
        "webUrl",
    ] {
        assert!(m.get(k).is_some(), "message has {k}");
    }
    assert_eq!(m["channelIdentity"]["teamId"], tid.as_str());
    assert_eq!(m["channelIdentity"]["channelId"], cid.as_str());
    assert_eq!(m["from"]["user"]["userIdentityType"], "aadUser");
    let with_replies = all.iter().find(|_| true).unwrap();
    let mid = with_replies["id"].as_str().unwrap();
    assert_eq!(t.ok(&format!("{base}/messages/{mid}")).await["id"], mid);

    // Some generated message has replies, edits or reactions somewhere in the channel.
    let expanded = t.get_all(&format!("{base}/messages?$expand=replies")).await;
    let mut replied = None;
    for x in &expanded {
        let r = x["replies"].as_array().unwrap();
        if !r.is_empty() {
            replied = Some((x["id"].as_str().unwrap().to_string(), r.len()));
        }
    }
    if let Some((pid, n)) = replied {
        let replies = t.get_all(&format!("{base}/messages/{pid}/replies")).await;
        assert_eq!(replies.len(), n);
        assert_eq!(replies[0]["replyToId"], pid.as_str());
        let rid = replies[0]["id"].as_str().unwrap();
        assert_eq!(
            t.ok(&format!("{base}/messages/{pid}/replies/{rid}")).await["id"],
            rid
        );
    }

    // A normal post is allowed; a back-dated one outside migration mode is refused.
    t.control(Method::POST, "/_sim/stats/reset", json!({}))
        .await;
    let (s, posted) = t
        .post(
            &format!("{base}/messages"),
            json!({"body": {"content": "Hello World"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{posted}");
    assert_eq!(posted["body"]["contentType"], "text");
    assert_eq!(
        posted["from"]["application"]["applicationIdentityType"],
        "aadApplication"
    );
    let pid = posted["id"].as_str().unwrap();
    let (s, r) = t
        .post(
            &format!("{base}/messages/{pid}/replies"),
            json!({"body": {"contentType": "html", "content": "<p>Hi</p>"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(r["replyToId"], pid);
    let stats = t.control(Method::GET, "/_sim/stats", json!({})).await;
    assert_eq!(stats["byKey"]["collab:messagesPosted"], 2);
    let (s, e) = t
        .post(
            &format!("{base}/messages"),
            json!({"createdDateTime": "2019-02-04T19:58:15.511Z",
                "from": {"user": {"id": "x", "displayName": "X", "userIdentityType": "aadUser"}},
                "body": {"content": "old"}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(e["error"]["code"], "Unauthorized");
    let (s, _) = t
        .post(&format!("{base}/messages"), json!({"subject": "no body"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, e) = t.get(&format!("{base}/messages/123")).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );

    // getAllMessages includes replies.
    let every = t
        .get_all(&format!("/teams/{tid}/channels/getAllMessages"))
        .await;
    assert!(every.iter().any(|x| x["id"] == r["id"]));
}

#[tokio::test]
async fn message_delta_reports_exactly_the_changes() {
    let t = TestSim::start(30, 14).await;
    let tid = a_team(&t).await;
    let cid = busy_channel(&t, &tid).await;
    let base = format!("/teams/{tid}/channels/{}", enc(&cid));
    let listed = t.get_all(&format!("{base}/messages")).await;
    let (round, delta) = t
        .delta_round(&format!("{base}/messages/delta?$top=4"))
        .await;
    let mut a = ids(&round);
    let mut b = ids(&listed);
    a.sort();
    b.sort();
    assert_eq!(a, b, "initial round lists every top-level message once");
    assert!(delta.contains("$deltatoken="));
    assert!(round.iter().all(|m| m.get("replies").is_none()));

    // Nothing changed: an empty round.
    let (empty, delta) = t.delta_round(&delta).await;
    assert!(empty.is_empty());

    let live: Vec<&Value> = listed
        .iter()
        .filter(|m| m["deletedDateTime"].is_null())
        .collect();
    assert!(live.len() >= 3);
    let replied = live[0]["id"].as_str().unwrap().to_string();
    let edited = live[1]["id"].as_str().unwrap().to_string();
    let deleted = live[2]["id"].as_str().unwrap().to_string();
    let (_, newm) = t
        .post(
            &format!("{base}/messages"),
            json!({"body": {"content": "new"}}),
        )
        .await;
    t.post(
        &format!("{base}/messages/{replied}/replies"),
        json!({"body": {"content": "re"}}),
    )
    .await;
    let (s, _) = t
        .patch(
            &format!("{base}/messages/{edited}"),
            json!({"body": {"content": "edited"}}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t
        .post(&format!("{base}/messages/{deleted}/softDelete"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (changes, delta) = t.delta_round(&delta).await;
    let mut got = ids(&changes);
    got.sort();
    let mut want = vec![
        newm["id"].as_str().unwrap().to_string(),
        replied.clone(),
        edited.clone(),
        deleted.clone(),
    ];
    want.sort();
    assert_eq!(got, want);
    let d = changes
        .iter()
        .find(|m| m["id"] == deleted.as_str())
        .unwrap();
    assert!(d["deletedDateTime"].is_string());
    assert_eq!(d["body"]["content"], "");
    let e = changes.iter().find(|m| m["id"] == edited.as_str()).unwrap();
    assert!(e["lastEditedDateTime"].is_string());
    assert_eq!(e["body"]["content"], "edited");

    let (empty, _) = t.delta_round(&delta).await;
    assert!(empty.is_empty());

    // Undo the deletion: one change again.
    t.post(
        &format!("{base}/messages/{deleted}/undoSoftDelete"),
        json!({}),
    )
    .await;
    let (again, _) = t.delta_round(&delta).await;
    assert_eq!(ids(&again), vec![deleted.clone()]);
    assert!(again[0]["deletedDateTime"].is_null());

    // The one filter delta supports: reply chains changed after a time.
    let cutoff = listed
        .iter()
        .map(|m| m["lastModifiedDateTime"].as_str().unwrap().to_string())
        .min()
        .unwrap();
    let (since, _) = t
        .delta_round(&format!(
            "{base}/messages/delta?$top=3&$filter=lastModifiedDateTime gt {cutoff}"
        ))
        .await;
    assert!(!since.is_empty() && since.len() < listed.len() + 1);
    assert!(since.iter().all(
        |m| m["lastModifiedDateTime"].as_str().unwrap() > cutoff.as_str()
            || m["id"] == replied.as_str()
    ));
    let (s, e) = t
        .get(&format!("{base}/messages/delta?$filter=subject eq 'x'"))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadRequest"))
    );

    // Garbage and invalidated tokens are gone.
    let (s, _) = t
        .get(&format!("{base}/messages/delta?$deltatoken=garbage"))
        .await;
    assert_eq!(s, StatusCode::GONE);
    t.control(Method::POST, "/_sim/delta/invalidate", json!({}))
        .await;
    let (s, _) = t.get(&delta).await;
    assert_eq!(s, StatusCode::GONE);
}

#[tokio::test]
async fn simulated_activity_shows_in_delta_and_truth() {
    let t = TestSim::start(30, 15).await;
    let tid = a_team(&t).await;
    let chans = t.get_all(&format!("/teams/{tid}/channels")).await;
    let mut links = Vec::new();
    for c in &chans {
        let base = format!("/teams/{tid}/channels/{}", enc(c["id"].as_str().unwrap()));
        let (_, d) = t.delta_round(&format!("{base}/messages/delta")).await;
        links.push(d);
    }
    let before = t
        .control(Method::GET, &format!("/_sim/truth/groups/{tid}"), json!({}))
        .await;
    let items = before["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["path"] == "Team" && i["kind"] == "team")
    );
    assert!(items.iter().any(|i| i["path"] == "Channels/General"));
    assert!(items.iter().any(|i| i["kind"] == "chatMessage"));
    assert!(items.iter().any(|i| i["workload"] == "conversations"));
    let r = t
        .control(
            Method::POST,
            "/_sim/activity",
            json!({"days": 4, "entities": [format!("group:{tid}")]}),
        )
        .await;
    let created = r["report"]["created"].as_u64().unwrap();
    assert!(created > 0, "{r}");
    let mut changed = 0;
    for d in &links {
        let (c, _) = t.delta_round(d).await;
        changed += c.len();
    }
    let after = t
        .control(Method::GET, &format!("/_sim/truth/groups/{tid}"), json!({}))
        .await;
    assert_ne!(before["items"], after["items"]);
    let msgs_after = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "chatMessage")
        .count();
    let msgs_before = items.iter().filter(|i| i["kind"] == "chatMessage").count();
    assert!(changed > 0 || msgs_after != msgs_before);
}

#[tokio::test]
async fn migration_import_end_to_end() {
    let t = TestSim::start(20, 16).await;
    let users = t
        .get_all("/users?$select=id,displayName,assignedLicenses")
        .await;
    let alice = &users[1];
    let aid = alice["id"].as_str().unwrap();

    // createdDateTime without migration mode, and a missing template, are refused.
    let (s, _) = t
        .post("/teams", json!({"template@odata.bind": "https://graph.microsoft.com/v1.0/teamsTemplates('standard')",
            "displayName": "X", "createdDateTime": "2020-03-14T11:22:17.067Z"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t
        .post(
            "/teams",
            json!({"@microsoft.graph.teamCreationMode": "migration", "displayName": "X"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let r = t
        .send(
            Method::POST,
            "/teams",
            Some(json!({
                "@microsoft.graph.teamCreationMode": "migration",
                "template@odata.bind": "https://graph.microsoft.com/v1.0/teamsTemplates('standard')",
                "displayName": "Imported Team",
                "description": "From Slack",
                "createdDateTime": "2020-03-14T11:22:17.067Z"
            })),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let cloc = r.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(loc.starts_with("/teams('") && loc.contains("/operations('"));
    let tid = cloc
        .trim_start_matches("/teams('")
        .trim_end_matches("')")
        .to_string();
    let op = t.ok(&loc).await;
    assert_eq!(op["status"], "succeeded");
    assert_eq!(op["operationType"], "createTeam");
    assert_eq!(op["targetResourceId"], tid.as_str());
    let team = t.ok(&format!("/teams/{tid}")).await;
    assert_eq!(team["createdDateTime"], "2020-03-14T11:22:17.067Z");
    assert_eq!(
        t.ok(&format!("/groups/{tid}")).await["displayName"],
        "Imported Team"
    );
    let general = t.ok(&format!("/teams/{tid}/primaryChannel")).await;
    assert_eq!(general["migrationMode"], "inProgress");
    let gid = general["id"].as_str().unwrap().to_string();

    // A channel in migration mode, back-dated.
    let r = t
        .send(
            Method::POST,
            &format!("/teams/{tid}/channels"),
            Some(json!({"@microsoft.graph.channelCreationMode": "migration", "displayName": "Architecture",
                "description": "d", "membershipType": "standard", "createdDateTime": "2020-04-01T00:00:00.000Z"})),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("location").is_some());
    let ch: Value = r.json().await.unwrap();
    let cid = ch["id"].as_str().unwrap().to_string();
    assert_eq!(ch["migrationMode"], "inProgress");

    // Import back-dated messages and a reply.
    let import = |when: &str, text: &str| {
        json!({"createdDateTime": when, "from": {"user": {"id": aid, "displayName": "Alice", "userIdentityType": "aadUser"}},
            "body": {"contentType": "html", "content": text}})
    };
    let cbase = format!("/teams/{tid}/channels/{}", enc(&cid));
    let (s, m1) = t
        .post(
            &format!("{cbase}/messages"),
            import("2020-05-01T10:00:00.123Z", "first"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m1}");
    assert_eq!(m1["createdDateTime"], "2020-05-01T10:00:00.123Z");
    assert_eq!(m1["from"]["user"]["id"], aid);
    let m1id = m1["id"].as_str().unwrap();
    let (s, _) = t
        .post(
            &format!("{cbase}/messages/{m1id}/replies"),
            import("2020-05-01T11:00:00.000Z", "reply"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = t
        .post(
            &format!("/teams/{tid}/channels/{}/messages", enc(&gid)),
            import("2020-06-01T00:00:00.000Z", "general"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // Same millisecond: 409; future: 400; before the channel existed: 400; no author: 400.
    let (s, _) = t
        .post(
            &format!("{cbase}/messages"),
            import("2020-05-01T10:00:00.123Z", "dup"),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = t
        .post(
            &format!("{cbase}/messages"),
            import("2099-01-01T00:00:00.000Z", "future"),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t
        .post(
            &format!("{cbase}/messages"),
            import("2020-03-20T00:00:00.000Z", "early"),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t
        .post(
            &format!("{cbase}/messages"),
            json!({"body": {"content": "anon"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Exactly the channel's creation is not later than it; an author from
    // outside the tenant is refused.
    let (s, _) = t
        .post(
            &format!("{cbase}/messages"),
            import("2020-04-01T00:00:00.000Z", "same instant"),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t
        .post(
            &format!("{cbase}/messages"),
            json!({"createdDateTime": "2020-05-03T00:00:00.000Z",
                "from": {"user": {"id": "00000000-0000-0000-0000-00000000dead", "userIdentityType": "aadUser"}},
                "body": {"contentType": "text", "content": "stranger"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Members cannot be added during migration.
    let (s, _) = t
        .post(&format!("/teams/{tid}/members"), json!({"@odata.type": "#microsoft.graph.aadUserConversationMember",
            "roles": ["owner"], "user@odata.bind": format!("https://graph.microsoft.com/v1.0/users('{aid}')")}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Complete: channels, then the team.
    for c in [&cid, &gid] {
        let (s, _) = t
            .post(
                &format!("/teams/{tid}/channels/{}/completeMigration", enc(c)),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    let (s, _) = t
        .post(&format!("{cbase}/completeMigration"), json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "not in migration mode any more");
    let (s, _) = t
        .post(&format!("/teams/{tid}/completeMigration"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t
        .post(&format!("/teams/{tid}/completeMigration"), json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(t.ok(&cbase).await["migrationMode"], "completed");

    // Back-dated posts are now refused; normal ones are fine; members can join.
    let (s, e) = t
        .post(
            &format!("{cbase}/messages"),
            import("2020-05-02T10:00:00.000Z", "late"),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(e["error"]["code"], "Unauthorized");
    let (s, _) = t
        .post(
            &format!("{cbase}/messages"),
            json!({"body": {"content": "live"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = t
        .post(&format!("/teams/{tid}/members"), json!({"@odata.type": "#microsoft.graph.aadUserConversationMember",
            "roles": ["owner"], "user@odata.bind": format!("https://graph.microsoft.com/v1.0/users('{aid}')")}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let members = t.get_all(&format!("/teams/{tid}/members")).await;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["roles"], json!(["owner"]));

    let msgs = t.get_all(&format!("{cbase}/messages")).await;
    assert_eq!(msgs.len(), 2);
    let old = msgs.iter().find(|m| m["id"] == m1id).unwrap();
    assert_eq!(
        t.get_all(&format!("{cbase}/messages/{m1id}/replies"))
            .await
            .len(),
        1
    );
    assert_eq!(old["body"]["content"], "first");

    // startMigration on an existing channel re-opens import with an earlier start.
    let (s, _) = t
        .post(
            &format!("{cbase}/startMigration"),
            json!({"conversationCreationDateTime": "2019-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let ch = t.ok(&cbase).await;
    assert_eq!(ch["migrationMode"], "inProgress");
    assert_eq!(ch["originalCreatedDateTime"], "2020-04-01T00:00:00.000Z");
    let (s, _) = t
        .post(
            &format!("{cbase}/messages"),
            import("2019-06-01T00:00:00.000Z", "older"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = t
        .post(
            &format!("{cbase}/startMigration"),
            json!({"conversationCreationDateTime": "2021-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn plain_team_creation_group_teamify_and_group_deletion() {
    let t = TestSim::start(20, 17).await;
    let users = t.get_all("/users?$select=id").await;
    let owner = users[0]["id"].as_str().unwrap();
    let (s, _) = t
        .post("/teams", json!({"template@odata.bind": "https://graph.microsoft.com/v1.0/teamsTemplates('standard')",
            "displayName": "No owner"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let r = t
        .send(
            Method::POST,
            "/teams",
            Some(json!({"template@odata.bind": "https://graph.microsoft.com/v1.0/teamsTemplates('standard')",
                "displayName": "Plain", "visibility": "public", "members": [{
                    "@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"],
                    "user@odata.bind": format!("https://graph.microsoft.com/v1.0/users('{owner}')")}]})),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let cloc = r.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_string();
    let team = t.ok(&cloc).await;
    assert_eq!(team["visibility"], "public");
    let tid = team["id"].as_str().unwrap();
    assert_eq!(t.get_all(&format!("/teams/{tid}/channels")).await.len(), 1);
    assert!(
        t.get_all(&format!(
            "/teams/{tid}/channels/{}/messages",
            enc(team["internalId"].as_str().unwrap())
        ))
        .await
        .is_empty()
    );
    assert!(
        t.get_all(&format!("/groups/{tid}/conversations"))
            .await
            .is_empty()
    );
    let m = t.get_all(&format!("/teams/{tid}/members")).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["roles"], json!(["owner"]));

    // Teamify a new Microsoft 365 group.
    let (s, g) = t
        .post(
            "/groups",
            json!({"displayName": "Later Team", "mailNickname": "later", "groupTypes": ["Unified"],
            "mailEnabled": true, "securityEnabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let gid = g["id"].as_str().unwrap();
    assert_eq!(
        t.get(&format!("/teams/{gid}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, tm) = t
        .call(
            Method::PUT,
            &format!("/groups/{gid}/team"),
            Some(json!({"memberSettings": {"allowCreateUpdateChannels": false}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{tm}");
    assert_eq!(tm["memberSettings"]["allowCreateUpdateChannels"], false);
    assert_eq!(
        t.ok(&format!("/teams/{gid}")).await["displayName"],
        "Later Team"
    );
    let (s, _) = t
        .call(Method::PUT, &format!("/groups/{gid}/team"), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // A deleted group takes its team and conversations with it.
    let gen_team = a_team(&t).await;
    t.control(
        Method::POST,
        &format!("/_sim/groups/{gen_team}/delete"),
        json!({}),
    )
    .await;
    assert_eq!(
        t.get(&format!("/teams/{gen_team}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get(&format!("/groups/{gen_team}/conversations")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn same_seed_same_content() {
    async fn snapshot(seed: u64) -> Vec<Value> {
        let t = TestSim::start(25, seed).await;
        let tid = a_team(&t).await;
        let mut team = t.ok(&format!("/teams/{tid}")).await;
        team.as_object_mut().unwrap().remove("@odata.context");
        let mut out = vec![team];
        for c in t.get_all(&format!("/teams/{tid}/channels")).await {
            let cid = c["id"].as_str().unwrap().to_string();
            out.push(c);
            out.extend(
                t.get_all(&format!(
                    "/teams/{tid}/channels/{}/messages?$expand=replies",
                    enc(&cid)
                ))
                .await,
            );
        }
        out.extend(t.get_all(&format!("/groups/{tid}/threads")).await);
        let truth = t
            .control(Method::GET, &format!("/_sim/truth/groups/{tid}"), json!({}))
            .await;
        out.push(truth["items"].clone());
        out
    }
    let a = snapshot(99).await;
    let b = snapshot(99).await;
    assert_eq!(a, b);
    let c = snapshot(98).await;
    assert_ne!(a, c);
}

#[tokio::test]
async fn evicted_groups_come_back_identical() {
    let mut cfg = graph_sim::SimConfig::new(40, 31);
    cfg.cache_entities = 2;
    let t = TestSim::with_config(cfg).await;
    let all = groups(&t).await;
    let tid = a_team(&t).await;
    let read = |path: String| {
        let t = &t;
        async move { t.get_all(&path).await }
    };
    let chans = read(format!("/teams/{tid}/channels")).await;
    let cid = chans[0]["id"].as_str().unwrap().to_string();
    let msgs = read(format!("/teams/{tid}/channels/{}/messages", enc(&cid))).await;
    let threads = read(format!("/groups/{tid}/threads")).await;
    // A member leaves the tenant; the group's content does not change with it.
    let gone = t.get_all(&format!("/groups/{tid}/members")).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.control(
        Method::POST,
        &format!("/_sim/users/{gone}/delete"),
        json!({}),
    )
    .await;
    // Touch every other group so the first one is dropped from memory.
    for g in &all {
        let gid = g["id"].as_str().unwrap();
        if gid != tid {
            t.get(&format!("/groups/{gid}/threads")).await;
        }
    }
    assert!(
        t.sim().collab.groups_in_memory() <= 3,
        "clean groups are evicted"
    );
    assert_eq!(read(format!("/teams/{tid}/channels")).await, chans);
    assert_eq!(
        read(format!("/teams/{tid}/channels/{}/messages", enc(&cid))).await,
        msgs
    );
    assert_eq!(read(format!("/groups/{tid}/threads")).await, threads);
}

#[tokio::test]
async fn group_name_and_description_can_be_patched() {
    let t = TestSim::start(20, 18).await;
    let gid = groups(&t).await[0]["id"].as_str().unwrap().to_string();
    let (s, _) = t
        .patch(
            &format!("/groups/{gid}"),
            json!({"displayName": "Renamed", "description": "New words"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let g = t.ok(&format!("/groups/{gid}")).await;
    assert_eq!(g["displayName"], "Renamed");
    assert_eq!(g["description"], "New words");
    let (s, _) = t
        .patch(
            "/groups/00000000-0000-0000-0000-000000000000",
            json!({"displayName": "X"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
