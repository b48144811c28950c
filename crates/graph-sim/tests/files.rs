//! OneDrive and SharePoint: drives, items, content, uploads, delta, versions,
//! permissions, sites, lists, pages, disasters and ground truth.

mod common;

use common::TestSim;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn licensed_user(t: &TestSim) -> String {
    let u = t
        .user_where(|u| {
            u["accountEnabled"] == json!(true)
                && u["assignedLicenses"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
        })
        .await;
    u["id"].as_str().unwrap().to_string()
}

async fn drive_of(t: &TestSim, uid: &str) -> String {
    let d = t.ok(&format!("/users/{uid}/drive")).await;
    d["id"].as_str().unwrap().to_string()
}

/// Every item of a drive (one full delta round).
async fn all_items(t: &TestSim, drive: &str) -> Vec<Value> {
    t.delta_round(&format!("/drives/{drive}/root/delta"))
        .await
        .0
}

async fn fetch(
    t: &TestSim,
    url: &str,
    range: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    // Pre-authenticated: no bearer token.
    let mut req = t.http.get(url);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    let h = r.headers().clone();
    (s, h, r.bytes().await.unwrap().to_vec())
}

async fn upload(t: &TestSim, path: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let r = t
        .http
        .put(t.url(path))
        .bearer_auth(&t.token)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn drives_items_children_paths_and_paging() {
    let t = TestSim::start(8, 11).await;
    let uid = licensed_user(&t).await;
    let d = t.ok(&format!("/users/{uid}/drive")).await;
    assert_eq!(d["driveType"], "business");
    assert_eq!(d["owner"]["user"]["id"], json!(uid));
    assert!(d["quota"]["used"].as_u64().unwrap() > 0);
    let id = d["id"].as_str().unwrap();
    let ds = t.ok(&format!("/users/{uid}/drives")).await;
    assert_eq!(ds["value"][0]["id"], json!(id));
    let root = t.ok(&format!("/drives/{id}/root")).await;
    assert!(root["root"].is_object());
    assert_eq!(
        t.ok(&format!("/drives/{id}/items/root")).await["id"],
        root["id"]
    );
    let kids = t
        .get_all(&format!("/drives/{id}/root/children?$top=2"))
        .await;
    assert_eq!(
        kids.len() as u64,
        root["folder"]["childCount"].as_u64().unwrap()
    );
    let mut ids: Vec<&str> = kids.iter().map(|k| k["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), kids.len(), "no repeats across pages");
    let folder = kids
        .iter()
        .find(|k| k["folder"].is_object())
        .expect("a folder");
    let name = folder["name"].as_str().unwrap();
    // Path addressing, in Graph's `root:/path:` form.
    let by_path = t.ok(&format!("/drives/{id}/root:/{name}")).await;
    assert_eq!(by_path["id"], folder["id"]);
    assert_eq!(
        by_path["parentReference"]["path"],
        json!(format!("/drives/{id}/root:"))
    );
    let by_user = t
        .ok(&format!("/users/{uid}/drive/root:/{name}:/children"))
        .await;
    assert!(by_user["value"].is_array());
    // $select and $expand=children.
    let sel = t.ok(&format!("/drives/{id}/root?$select=name,size")).await;
    assert!(sel.get("webUrl").is_none() && sel["name"] == "root");
    let exp = t.ok(&format!("/drives/{id}/root?$expand=children")).await;
    assert_eq!(exp["children"].as_array().unwrap().len(), kids.len());
    // Odd addresses are errors, never crashes.
    assert!(
        !t.get(&format!("/drives/{id}/root/path"))
            .await
            .0
            .is_server_error()
    );
    assert_eq!(
        t.get("/drives/b!bm9wZQ/root").await.0,
        StatusCode::NOT_FOUND
    );
    let (s, e) = t.get(&format!("/drives/{id}/items/01NOPE")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "itemNotFound");
}

#[tokio::test]
async fn download_redirects_and_serves_ranges_with_the_advertised_hash() {
    let t = TestSim::start(6, 12).await;
    let uid = licensed_user(&t).await;
    let drive = drive_of(&t, &uid).await;
    let items = all_items(&t, &drive).await;
    let file = items
        .iter()
        .filter(|i| i["file"].is_object())
        .min_by_key(|i| i["size"].as_u64().unwrap())
        .expect("a file")
        .clone();
    let fid = file["id"].as_str().unwrap();
    let r = t
        .send(
            Method::GET,
            &format!("/drives/{drive}/items/{fid}/content"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let (s, _, bytes) = fetch(&t, &loc, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap());
    assert_eq!(
        graph_sim::files::quick_xor_base64(&bytes),
        file["file"]["hashes"]["quickXorHash"].as_str().unwrap()
    );
    let (s, h, part) = fetch(&t, &loc, Some("bytes=10-19")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, bytes[10..20]);
    assert_eq!(
        h["content-range"].to_str().unwrap(),
        format!("bytes 10-19/{}", bytes.len())
    );
    let (s, _, tail) = fetch(&t, &loc, Some("bytes=-5")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail, bytes[bytes.len() - 5..]);
    let (s, _, _) = fetch(&t, &loc, Some(&format!("bytes={}-", bytes.len() + 10))).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    // The downloadUrl in the item is the same kind of URL; a tampered one is refused.
    let (s, _, _) = fetch(&t, &loc.replace("sig=", "sig=0"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[test]
fn quick_xor_hash_matches_published_vectors() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    for (input, want) in [
        ("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
        ("tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
        ("0pZP", "0rDEEwAAAAAAAAAAAwAAAAAAAAA="),
    ] {
        assert_eq!(
            graph_sim::files::quick_xor_base64(&b64.decode(input).unwrap()),
            want
        );
    }
}

#[tokio::test]
async fn simple_upload_create_folder_rename_move_delete() {
    let t = TestSim::start(6, 13).await;
    let uid = licensed_user(&t).await;
    let drive = drive_of(&t, &uid).await;
    let (s, f) = t
        .post(
            &format!("/drives/{drive}/root/children"),
            json!({"name": "Restore", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, e) = t
        .post(
            &format!("/drives/{drive}/root/children"),
            json!({"name": "Restore", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"]["code"], "nameAlreadyExists");
    let (s, r) = t
        .post(
            &format!("/drives/{drive}/root/children"),
            json!({"name": "Restore", "folder": {}, "@microsoft.graph.conflictBehavior": "rename"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(r["name"], "Restore 1");
    let (s, up) = upload(
        &t,
        &format!("/drives/{drive}/root:/Restore/a/b/hello.txt:/content"),
        b"hello world".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    assert_eq!(up["size"], 11);
    assert_eq!(
        up["parentReference"]["path"],
        json!(format!("/drives/{drive}/root:/Restore/a/b"))
    );
    let ctag = up["cTag"].clone();
    let fid = up["id"].as_str().unwrap().to_string();
    // Rename changes the eTag but not the cTag.
    let (s, ren) = t
        .patch(
            &format!("/drives/{drive}/items/{fid}"),
            json!({"name": "hi.txt"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ren["cTag"], ctag);
    assert_ne!(ren["eTag"], up["eTag"]);
    let (s, mv) = t
        .patch(&format!("/drives/{drive}/items/{fid}"), json!({"parentReference": {"id": f["id"]}, "fileSystemInfo": {"lastModifiedDateTime": "2020-01-02T03:04:05Z"}}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(mv["parentReference"]["id"], f["id"]);
    assert_eq!(
        mv["fileSystemInfo"]["lastModifiedDateTime"],
        "2020-01-02T03:04:05Z"
    );
    // Replace by path: a new version, same id.
    let (s, v2) = upload(
        &t,
        &format!("/drives/{drive}/root:/Restore/hi.txt:/content"),
        b"hello again".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v2["id"], json!(fid));
    assert_ne!(v2["cTag"], ctag);
    let (s, e) = upload(
        &t,
        &format!(
            "/drives/{drive}/root:/Restore/hi.txt:/content?@microsoft.graph.conflictBehavior=fail"
        ),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"]["code"], "nameAlreadyExists");
    let (s, r) = upload(
        &t,
        &format!(
            "/drives/{drive}/root:/Restore/hi.txt:/content?@microsoft.graph.conflictBehavior=rename"
        ),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(r["name"], "hi 1.txt");
    assert_eq!(
        t.delete(&format!("/drives/{drive}/items/{fid}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get(&format!("/drives/{drive}/items/{fid}")).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn put_chunk(
    t: &TestSim,
    url: &str,
    start: usize,
    data: &[u8],
    total: usize,
) -> (StatusCode, Value) {
    let r = t
        .http
        .put(url)
        .header(
            "Content-Range",
            format!("bytes {}-{}/{}", start, start + data.len() - 1, total),
        )
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn upload_sessions_follow_graphs_rules() {
    let t = TestSim::start(6, 14).await;
    let uid = licensed_user(&t).await;
    let drive = drive_of(&t, &uid).await;
    let unit = 320 * 1024;
    let total = 2 * unit + 1000;
    let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
    let (s, sess) = t
        .post(
            &format!("/drives/{drive}/root:/big.bin:/createUploadSession"),
            json!({"item": {"@microsoft.graph.conflictBehavior": "fail", "fileSystemInfo": {"createdDateTime": "2019-05-06T07:08:09Z", "lastModifiedDateTime": "2019-06-07T08:09:10Z"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sess}");
    let url = sess["uploadUrl"].as_str().unwrap().to_string();
    assert!(url.starts_with(&t.running.url));
    // Not a multiple of 320 KiB, and not the last fragment.
    let (s, e) = put_chunk(&t, &url, 0, &data[..100_000], total).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "invalidRequest");
    let r = t
        .http
        .put(&url)
        .header(
            "Content-Range",
            format!("bytes 0-{}/{}", u64::MAX, u64::MAX),
        )
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (s, v) = put_chunk(&t, &url, 0, &data[..unit], total).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(
        v["nextExpectedRanges"],
        json!([format!("{unit}-{}", total - 1)])
    );
    // Overlapping what was received: 416.
    let (s, _) = put_chunk(&t, &url, 0, &data[..unit], total).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    // Out of order (a gap): refused the same way.
    let (s, e) = put_chunk(&t, &url, 2 * unit, &data[2 * unit..], total).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(e["error"]["code"], "invalidRange");
    let st: Value = t.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        st["nextExpectedRanges"],
        json!([format!("{unit}-{}", total - 1)])
    );
    let (s, _) = put_chunk(&t, &url, unit, &data[unit..2 * unit], total).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, item) = put_chunk(&t, &url, 2 * unit, &data[2 * unit..], total).await;
    assert_eq!(s, StatusCode::CREATED, "{item}");
    assert_eq!(item["size"].as_u64().unwrap() as usize, total);
    assert_eq!(
        item["fileSystemInfo"]["createdDateTime"],
        "2019-05-06T07:08:09Z"
    );
    assert_eq!(
        item["fileSystemInfo"]["lastModifiedDateTime"],
        "2019-06-07T08:09:10Z"
    );
    assert_eq!(
        item["file"]["hashes"]["quickXorHash"],
        json!(graph_sim::files::quick_xor_base64(&data))
    );
    let (_, _, got) = fetch(
        &t,
        item["@microsoft.graph.downloadUrl"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(got, data);
    // The session is gone once committed.
    assert_eq!(
        t.http.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // fail: 409 nameAlreadyExists.
    let (s, e) = t
        .post(
            &format!("/drives/{drive}/root:/big.bin:/createUploadSession"),
            json!({"item": {"@microsoft.graph.conflictBehavior": "fail"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"]["code"], "nameAlreadyExists");
    // rename: a new file beside it.
    let (_, sess) = t
        .post(
            &format!("/drives/{drive}/root:/big.bin:/createUploadSession"),
            json!({"item": {"@microsoft.graph.conflictBehavior": "rename"}}),
        )
        .await;
    let (s, ren) = put_chunk(&t, sess["uploadUrl"].as_str().unwrap(), 0, b"small", 5).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(ren["name"], "big 1.bin");
    // replace: a new version of the same item.
    let (_, sess) = t
        .post(
            &format!("/drives/{drive}/root:/big.bin:/createUploadSession"),
            json!({"item": {"@microsoft.graph.conflictBehavior": "replace"}}),
        )
        .await;
    let (s, rep) = put_chunk(&t, sess["uploadUrl"].as_str().unwrap(), 0, b"replaced", 8).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rep["id"], item["id"]);
    let vs = t
        .ok(&format!(
            "/drives/{drive}/items/{}/versions",
            item["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(vs["value"].as_array().unwrap().len(), 2);
    // Cancel.
    let (_, sess) = t
        .post(
            &format!("/drives/{drive}/root:/c.bin:/createUploadSession"),
            json!({}),
        )
        .await;
    let u = sess["uploadUrl"].as_str().unwrap();
    assert_eq!(
        t.http.delete(u).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.http.get(u).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delta_reports_exactly_the_changes() {
    let t = TestSim::start(6, 15).await;
    let uid = licensed_user(&t).await;
    let drive = drive_of(&t, &uid).await;
    let (first, link) = t
        .delta_round(&format!("/users/{uid}/drive/root/delta?$top=7"))
        .await;
    assert!(first.iter().any(|i| i["root"].is_object()), "root included");
    assert!(
        first.iter().any(|i| i["folder"].is_object()),
        "folders included"
    );
    assert!(
        first
            .iter()
            .all(|i| i["parentReference"].get("path").is_none()),
        "no paths in delta"
    );
    let mut ids: Vec<&str> = first.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no repeats across pages");
    assert!(link.contains("token="));
    let latest = t
        .ok(&format!("/drives/{drive}/root/delta?token=latest"))
        .await;
    assert!(latest["value"].as_array().unwrap().is_empty());
    let latest_link = latest["@odata.deltaLink"].as_str().unwrap().to_string();

    let victim = first.iter().find(|i| i["file"].is_object()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, up) = upload(
        &t,
        &format!("/drives/{drive}/root:/new.txt:/content"),
        b"new".to_vec(),
    )
    .await;
    assert_eq!(
        t.delete(&format!("/drives/{drive}/items/{victim}")).await,
        StatusCode::NO_CONTENT
    );
    for l in [&link, &latest_link] {
        let (changes, _) = t.delta_round(l).await;
        let changed: Vec<&str> = changes
            .iter()
            .filter(|c| c.get("deleted").is_none())
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(changed, [up["id"].as_str().unwrap()]);
        let deleted: Vec<&Value> = changes
            .iter()
            .filter(|c| c.get("deleted").is_some())
            .collect();
        assert_eq!(deleted.len(), 1);
        assert_eq!(deleted[0]["id"], json!(victim));
        assert_eq!(deleted[0]["deleted"]["state"], "deleted");
        assert!(changes.iter().all(|c| c.get("@removed").is_none()));
    }
    let (s, e) = t
        .get(&format!("/drives/{drive}/root/delta?token=garbage"))
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(e["error"]["code"], "resyncRequired");
    t.control(Method::POST, "/_sim/delta/invalidate", json!({}))
        .await;
    assert_eq!(t.get(&link).await.0, StatusCode::GONE);
}

#[tokio::test]
async fn versions_newest_first_restore_and_ransomware_leaves_old_versions_readable() {
    let t = TestSim::start(6, 16).await;
    let uid = licensed_user(&t).await;
    let drive = drive_of(&t, &uid).await;
    let (_, a) = upload(
        &t,
        &format!("/drives/{drive}/root:/v.txt:/content"),
        b"one".to_vec(),
    )
    .await;
    let id = a["id"].as_str().unwrap().to_string();
    upload(
        &t,
        &format!("/drives/{drive}/root:/v.txt:/content"),
        b"two".to_vec(),
    )
    .await;
    upload(
        &t,
        &format!("/drives/{drive}/root:/v.txt:/content"),
        b"three".to_vec(),
    )
    .await;
    let vs = t.ok(&format!("/drives/{drive}/items/{id}/versions")).await;
    let vids: Vec<&str> = vs["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(vids, ["3.0", "2.0", "1.0"]);
    let r = t
        .send(
            Method::GET,
            &format!("/drives/{drive}/items/{id}/versions/1.0/content"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let (_, _, b) = fetch(&t, r.headers()["location"].to_str().unwrap(), None).await;
    assert_eq!(b, b"one");
    let (s, _) = t
        .post(
            &format!("/drives/{drive}/items/{id}/versions/1.0/restoreVersion"),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let cur = t.ok(&format!("/drives/{drive}/items/{id}")).await;
    assert_eq!(cur["size"], 3);

    let before = all_items(&t, &drive).await;
    let files: Vec<&Value> = before.iter().filter(|i| i["file"].is_object()).collect();
    let small = files
        .iter()
        .min_by_key(|f| f["size"].as_u64().unwrap())
        .unwrap();
    let (_, _, original) = fetch(
        &t,
        small["@microsoft.graph.downloadUrl"].as_str().unwrap(),
        None,
    )
    .await;
    let res = t
        .control(
            Method::POST,
            &format!("/_sim/drives/{drive}/ransomware"),
            json!({}),
        )
        .await;
    assert_eq!(res["encrypted"].as_u64().unwrap() as usize, files.len());
    let sid = small["id"].as_str().unwrap();
    let hit = t.ok(&format!("/drives/{drive}/items/{sid}")).await;
    assert!(hit["name"].as_str().unwrap().ends_with(".lockbit"));
    assert_ne!(hit["file"]["hashes"], small["file"]["hashes"]);
    let vs = t.ok(&format!("/drives/{drive}/items/{sid}/versions")).await;
    let older = &vs["value"][1];
    let (_, _, old) = fetch(
        &t,
        older["@microsoft.graph.downloadUrl"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(old, original);
}

#[tokio::test]
async fn permissions_list_invite_delete() {
    let t = TestSim::start(6, 17).await;
    let uid = licensed_user(&t).await;
    let other = t
        .user_where(|u| u["id"] != json!(uid) && u["mail"].is_string())
        .await;
    let drive = drive_of(&t, &uid).await;
    let (_, f) = upload(
        &t,
        &format!("/drives/{drive}/root:/p.txt:/content"),
        b"p".to_vec(),
    )
    .await;
    let id = f["id"].as_str().unwrap();
    let (s, inv) = t
        .post(&format!("/drives/{drive}/items/{id}/invite"), json!({"recipients": [{"email": other["mail"]}], "roles": ["write"], "requireSignIn": true, "sendInvitation": false}))
        .await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    let pid = inv["value"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(inv["value"][0]["grantedToV2"]["user"]["id"], other["id"]);
    let list = t
        .ok(&format!("/drives/{drive}/items/{id}/permissions"))
        .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        t.ok(&format!("/drives/{drive}/items/{id}/permissions/{pid}"))
            .await["roles"],
        json!(["write"])
    );
    assert_eq!(
        t.delete(&format!("/drives/{drive}/items/{id}/permissions/{pid}"))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get(&format!("/drives/{drive}/items/{id}/permissions/{pid}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Generated drives carry sharing links and grants.
    let items = all_items(&t, &drive).await;
    let mut found = 0;
    for it in items.iter().filter(|i| i.get("shared").is_some()) {
        let p = t
            .ok(&format!(
                "/drives/{drive}/items/{}/permissions",
                it["id"].as_str().unwrap()
            ))
            .await;
        found += p["value"].as_array().unwrap().len();
    }
    assert!(found > 0);
}

#[tokio::test]
async fn sites_lists_items_pages_and_site_deletion() {
    let t = TestSim::start(10, 18).await;
    let root = t.ok("/sites/root").await;
    let id = root["id"].as_str().unwrap().to_string();
    assert_eq!(id.split(',').count(), 3);
    assert!(root["siteCollection"]["hostname"].is_string());
    let listed = t.get_all("/sites/getAllSites").await;
    // getAllSites lists OneDrive sites too; they are left out here.
    assert!(listed.iter().any(|s| s["isPersonalSite"] == true));
    let all: Vec<_> = listed
        .into_iter()
        .filter(|s| s["isPersonalSite"] != true)
        .collect();
    let search = t.get_all("/sites?search=*").await;
    assert!(search.len() > all.len(), "search finds sub-sites too");
    let host = root["siteCollection"]["hostname"].as_str().unwrap();
    let comm = all
        .iter()
        .find(|s| s["webUrl"].as_str().unwrap().contains("/sites/"))
        .unwrap();
    let name = comm["webUrl"].as_str().unwrap().rsplit('/').next().unwrap();
    let by_path = t.ok(&format!("/sites/{host}:/sites/{name}")).await;
    assert_eq!(by_path["id"], comm["id"]);
    let subs = t.ok(&format!("/sites/{id}/sites")).await;
    assert!(!subs["value"].as_array().unwrap().is_empty());
    let hr = t
        .get_all(&format!(
            "/sites?search={}",
            comm["displayName"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        ))
        .await;
    assert!(hr.iter().any(|s| s["id"] == comm["id"]));

    // A group's team site and its drive.
    let groups = t.get_all("/groups?$select=id,groupTypes").await;
    let g = groups
        .iter()
        .find(|g| {
            g["groupTypes"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "Unified"))
        })
        .unwrap();
    let gid = g["id"].as_str().unwrap();
    let gsite = t.ok(&format!("/groups/{gid}/sites/root")).await;
    let gdrive = t.ok(&format!("/groups/{gid}/drive")).await;
    assert_eq!(gdrive["driveType"], "documentLibrary");
    let sd = t
        .ok(&format!("/sites/{}/drive", gsite["id"].as_str().unwrap()))
        .await;
    assert_eq!(sd["id"], gdrive["id"]);

    // Lists: libraries and generic lists with columns and items.
    let sid = gsite["id"].as_str().unwrap();
    let lists = t.get_all(&format!("/sites/{sid}/lists")).await;
    assert!(
        lists
            .iter()
            .any(|l| l["list"]["template"] == "documentLibrary")
    );
    let generic = lists
        .iter()
        .find(|l| l["list"]["template"] != "documentLibrary")
        .expect("a generic list");
    let lid = generic["id"].as_str().unwrap();
    let cols = t.ok(&format!("/sites/{sid}/lists/{lid}/columns")).await;
    assert!(
        cols["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "Title")
    );
    let (items, dlink) = t
        .delta_round(&format!("/sites/{sid}/lists/{lid}/items/delta"))
        .await;
    let listed = t
        .get_all(&format!("/sites/{sid}/lists/{lid}/items?expand=fields"))
        .await;
    assert_eq!(items.len(), listed.len());
    assert!(listed[0]["fields"]["Title"].is_string());
    let (s, created) = t
        .post(
            &format!("/sites/{sid}/lists/{lid}/items"),
            json!({"fields": {"Title": "Restored item"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let iid = created["id"].as_str().unwrap();
    let (s, f) = t
        .patch(
            &format!("/sites/{sid}/lists/{lid}/items/{iid}/fields"),
            json!({"Title": "Renamed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(f["Title"], "Renamed");
    let old = listed[0]["id"].as_str().unwrap();
    assert_eq!(
        t.delete(&format!("/sites/{sid}/lists/{lid}/items/{old}"))
            .await,
        StatusCode::NO_CONTENT
    );
    let (changes, _) = t.delta_round(&dlink).await;
    assert_eq!(changes.len(), 2);
    assert!(
        changes
            .iter()
            .any(|c| c["id"] == json!(iid) && c["fields"]["Title"] == "Renamed")
    );
    assert!(
        changes
            .iter()
            .any(|c| c["id"] == json!(old) && c["deleted"]["state"] == "deleted")
    );
    let lib = lists
        .iter()
        .find(|l| l["list"]["template"] == "documentLibrary")
        .unwrap();
    let lib_items = t
        .get_all(&format!(
            "/sites/{sid}/lists/{}/items?$expand=fields",
            lib["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        lib_items
            .iter()
            .all(|i| i["fields"]["FileLeafRef"].is_string())
    );
    // Lists and libraries can be created (a restore of a site's lists needs it).
    let (s, nl) = t
        .post(&format!("/sites/{sid}/lists"), json!({"displayName": "Restored list", "columns": [{"name": "Amount", "number": {}}, {"name": "State", "choice": {"choices": ["a", "b"]}}], "list": {"template": "genericList"}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{nl}");
    let cols = t
        .ok(&format!(
            "/sites/{sid}/lists/{}/columns",
            nl["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(cols["value"].as_array().unwrap().len(), 3);
    let (s, _) = t
        .post(
            &format!("/sites/{sid}/lists"),
            json!({"displayName": "Restored list"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, nlib) = t
        .post(
            &format!("/sites/{sid}/lists"),
            json!({"displayName": "Restored files", "list": {"template": "documentLibrary"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let libdrive = t
        .ok(&format!(
            "/sites/{sid}/lists/{}/drive",
            nlib["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(libdrive["name"], "Restored files");
    let kids = t
        .ok(&format!(
            "/drives/{}/root/children",
            libdrive["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        kids["value"].as_array().unwrap().is_empty(),
        "a new library starts empty"
    );
    assert_eq!(
        t.get_all(&format!("/sites/{sid}/drives")).await.len(),
        lists
            .iter()
            .filter(|l| l["list"]["template"] == "documentLibrary")
            .count()
            + 1
    );
    let pages = t.ok(&format!("/sites/{sid}/pages")).await;
    assert!(
        pages["value"][0]["name"]
            .as_str()
            .unwrap()
            .ends_with(".aspx")
    );

    // Truth covers libraries and lists; deleting the site removes it all.
    let truth = t
        .control(
            Method::GET,
            &format!("/_sim/truth/sites/{sid}"),
            Value::Null,
        )
        .await;
    let ti = truth["items"].as_array().unwrap();
    assert!(ti.iter().any(|i| i["workload"] == "list"));
    let dl = t
        .ok(&format!("/sites/{sid}/drive/root/delta?token=latest"))
        .await;
    let drive_id = gdrive["id"].as_str().unwrap();
    t.control(
        Method::POST,
        &format!("/_sim/sites/{sid}/delete"),
        json!({}),
    )
    .await;
    assert_eq!(
        t.get(&format!("/sites/{sid}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get(&format!("/drives/{drive_id}/root")).await.0,
        StatusCode::NOT_FOUND
    );
    let s = t.get(dl["@odata.deltaLink"].as_str().unwrap()).await.0;
    assert!(s == StatusCode::NOT_FOUND || s == StatusCode::GONE);
    assert!(!graph_sim::files::site_ids(t.sim()).contains(&sid.to_string()));
}

#[tokio::test]
async fn truth_activity_and_user_deletion() {
    let t = TestSim::start(6, 19).await;
    let uid = licensed_user(&t).await;
    let drive = drive_of(&t, &uid).await;
    let truth = t
        .control(
            Method::GET,
            &format!("/_sim/truth/users/{uid}"),
            Value::Null,
        )
        .await;
    let files: Vec<&Value> = truth["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["workload"] == "drive")
        .collect();
    assert!(!files.is_empty());
    assert!(
        files
            .iter()
            .all(|f| f["path"].as_str().unwrap().starts_with("OneDrive/"))
    );
    // The truth hash is BLAKE3 of the downloaded bytes.
    let small = files
        .iter()
        .min_by_key(|f| f["size"].as_u64().unwrap())
        .unwrap();
    let it = t
        .ok(&format!(
            "/drives/{drive}/items/{}",
            small["id"].as_str().unwrap()
        ))
        .await;
    let (_, _, bytes) = fetch(
        &t,
        it["@microsoft.graph.downloadUrl"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(
        blake3::hash(&bytes).to_hex().to_string(),
        small["hash"].as_str().unwrap()
    );
    let (_, link) = t.delta_round(&format!("/drives/{drive}/root/delta")).await;
    let rep = t
        .control(
            Method::POST,
            "/_sim/activity",
            json!({"days": 3, "entities": [format!("user:{uid}")]}),
        )
        .await;
    let r = &rep["report"];
    let total = r["created"].as_u64().unwrap()
        + r["modified"].as_u64().unwrap()
        + r["moved"].as_u64().unwrap()
        + r["deleted"].as_u64().unwrap();
    let (changes, _) = t.delta_round(&link).await;
    assert!(total == 0 || !changes.is_empty());
    assert_eq!(
        t.delete(&format!("/users/{uid}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.get(&format!("/drives/{drive}/root")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn generation_is_deterministic() {
    let a = TestSim::start(6, 20).await;
    let b = TestSim::start(6, 20).await;
    let uid = licensed_user(&a).await;
    let da = drive_of(&a, &uid).await;
    let db = drive_of(&b, &uid).await;
    assert_eq!(da, db);
    let strip = |mut v: Vec<Value>| {
        for i in v.iter_mut() {
            if let Some(m) = i.as_object_mut() {
                m.remove("@microsoft.graph.downloadUrl");
            }
        }
        v
    };
    let ia = strip(all_items(&a, &da).await);
    let ib = strip(all_items(&b, &db).await);
    assert_eq!(ia, ib);
    let f = ia
        .iter()
        .filter(|i| i["file"].is_object())
        .min_by_key(|i| i["size"].as_u64().unwrap())
        .unwrap();
    let fid = f["id"].as_str().unwrap();
    let ua = a.ok(&format!("/drives/{da}/items/{fid}")).await;
    let ub = b.ok(&format!("/drives/{db}/items/{fid}")).await;
    let (_, _, ba) = fetch(
        &a,
        ua["@microsoft.graph.downloadUrl"].as_str().unwrap(),
        None,
    )
    .await;
    let (_, _, bb) = fetch(
        &b,
        ub["@microsoft.graph.downloadUrl"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(ba, bb);
    assert_eq!(
        a.get_all("/sites?search=*").await,
        b.get_all("/sites?search=*").await
    );
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

#[tokio::test]
async fn a_200_mb_generated_file_is_streamed_without_being_held() {
    use futures::StreamExt;
    let t = TestSim::start(4, 21).await;
    let uid = licensed_user(&t).await;
    let drive = drive_of(&t, &uid).await;
    let size = 200 * 1024 * 1024u64;
    let id = graph_sim::files::add_generated_file(t.sim(), &drive, "huge.zip", size).unwrap();
    let r = t
        .send(
            Method::GET,
            &format!("/drives/{drive}/items/{id}/content"),
            None,
            &[],
        )
        .await;
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let before = rss_bytes();
    let resp = t.http.get(&loc).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let mut n = 0u64;
    let mut peak = before;
    let mut first = Vec::new();
    while let Some(chunk) = stream.next().await {
        let c = chunk.unwrap();
        if first.len() < 4 {
            first.extend_from_slice(&c[..4.min(c.len())]);
        }
        n += c.len() as u64;
        if n % (16 * 1024 * 1024) < c.len() as u64 {
            peak = peak.max(rss_bytes());
        }
    }
    assert_eq!(n, size);
    assert_eq!(&first[..2], b"PK");
    assert!(
        peak.saturating_sub(before) < 64 * 1024 * 1024,
        "grew by {} bytes",
        peak - before
    );
}
