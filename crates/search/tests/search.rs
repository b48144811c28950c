//! The search index against snapshots the real engine made of the tenant
//! simulator: every query form equals a brute-force scan of the snapshot,
//! as of each snapshot; the index lives in the vault (another machine, a
//! rebuild answer the same; its stored files are sealed to the account).

use std::collections::BTreeSet;

use graph::Request;
use search::{AsOf, Error, ItemKind, Query, SearchIndex};
use serde_json::{Value, json};
use vault::SnapshotInfo;

mod common;
use common::{Entity, Env, brute, env, hits, queries, scan};

async fn create_contact(e: &Env, user: &str, given: &str, surname: &str) -> String {
    let v: Value = e
        .graph
        .send(Request::json(
            reqwest::Method::POST,
            format!("/users/{user}/contacts"),
            &json!({"givenName": given, "surname": surname, "displayName": format!("{given} {surname}")}),
        ))
        .await
        .unwrap()
        .json()
        .unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn name_query(entity: &str, name: &str, as_of: AsOf) -> Query {
    Query {
        entity_key: entity.to_string(),
        as_of,
        name: Some(name.into()),
        kinds: vec![ItemKind::Contact],
        ..Default::default()
    }
}

fn contact_id(paths: &BTreeSet<String>) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .collect()
}

/// Each entity with its snapshots and what the brute-force scan found in them.
type Snapshots = [(Entity, Vec<(SnapshotInfo, Vec<common::Item>)>)];

/// For every entity and every snapshot, every generated query answers what
/// the brute-force scan of that snapshot finds. Returns how many queries ran.
async fn assert_all_match(index: &SearchIndex, snaps: &Snapshots, what: &str) -> usize {
    let mut ran = 0;
    let mut forms = BTreeSet::new();
    for (entity, list) in snaps {
        let key = entity.key();
        for (i, (snap, items)) in list.iter().enumerate() {
            let latest = i + 1 == list.len();
            for (label, q) in queries(&key, items, AsOf::Time(snap.time)) {
                let want = brute(items, &q);
                // Values are taken from an item, so at least that item matches.
                assert!(!want.is_empty(), "{label}: {q:?}");
                forms.insert(label.clone());
                let got = hits(index, &q).await;
                assert_eq!(got, want, "{what}: {key} snapshot {i}: {label}: {q:?}");
                if latest {
                    let mut q = q.clone();
                    q.as_of = AsOf::Latest;
                    assert_eq!(hits(index, &q).await, want, "{what}: latest: {label}");
                }
                ran += 1;
            }
        }
    }
    // Every search form of SPEC F-E3 ran.
    for form in [
        "Mail by keyword",
        "Mail by from",
        "Mail by to",
        "Mail by subject",
        "Mail by date",
        "Contact by name",
        "Task by keyword",
        "Event by keyword",
        "Event by description",
        "Event by owner",
        "Event by date",
        "File by keyword",
        "File by author",
        "File by file_name",
        "File by date",
        "ChannelMessage by keyword",
        "ChannelMessage by channel",
        "ChannelMessage by sender",
        "ChannelMessage by date",
        "keyword and date",
    ] {
        assert!(forms.contains(form), "{what}: {form} ran: {forms:?}");
    }
    ran
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_form_equals_a_brute_force_scan_as_of_each_snapshot() {
    let e = env(6, 11, 0.4).await;
    let entities = e.entities().await;
    let Entity::Mailbox(user) = &entities[0] else {
        unreachable!()
    };
    let mailbox = entities[0].key();
    let renamed = create_contact(&e, user, "Zebulon", "Quixotic").await;
    let deleted = create_contact(&e, user, "Ophelia", "Thunderclap").await;

    let cache = tempfile::tempdir().unwrap();
    let mut index = SearchIndex::open_writer(e.account.clone(), cache.path())
        .await
        .unwrap();
    let mut snaps = Vec::new();
    for ent in &entities {
        let s1 = e.backup(ent, None).await;
        let st = index.index_snapshot(&ent.key(), &s1, None).await.unwrap();
        assert!(st.added > 0, "{ent:?} has items");
        // Indexing the same snapshot again changes nothing.
        let again = index.index_snapshot(&ent.key(), &s1, None).await.unwrap();
        assert_eq!((again.added, again.closed), (0, 0), "{ent:?}");
        let items = scan(&e.account, &s1).await;
        snaps.push((ent.clone(), vec![(s1, items)]));
    }

    // A day of activity everywhere, one contact renamed, one deleted.
    e.control(
        "/_sim/activity",
        json!({"days": 2, "entities": entities.iter().map(Entity::sim_name).collect::<Vec<_>>()}),
    )
    .await;
    e.graph
        .send(Request::json(
            reqwest::Method::PATCH,
            format!("/users/{user}/contacts/{renamed}"),
            &json!({"surname": "Marvelous", "displayName": "Zebulon Marvelous"}),
        ))
        .await
        .unwrap();
    e.graph
        .send(Request::delete(format!("/users/{user}/contacts/{deleted}")))
        .await
        .unwrap();

    let mut changed = 0;
    for (ent, list) in &mut snaps {
        let parent = list[0].0.clone();
        let s2 = e.backup(ent, Some(&parent.id)).await;
        let st = index
            .index_snapshot(&ent.key(), &s2, Some(&parent))
            .await
            .unwrap();
        changed += st.added + st.closed;
        let items = scan(&e.account, &s2).await;
        list.push((s2, items));
    }
    assert!(changed > 0, "activity changed something");

    // The renamed and the deleted contact, as of each snapshot.
    let (t1, t2) = (snaps[0].1[0].0.time, snaps[0].1[1].0.time);
    let q = |name: &str, t| name_query(&mailbox, name, AsOf::Time(t));
    assert_eq!(
        contact_id(&hits(&index, &q("Quixotic", t1)).await),
        vec![renamed.clone()]
    );
    assert!(hits(&index, &q("Quixotic", t2)).await.is_empty());
    assert!(hits(&index, &q("Marvelous", t1)).await.is_empty());
    assert_eq!(
        contact_id(&hits(&index, &q("Marvelous", t2)).await),
        vec![renamed.clone()]
    );
    assert_eq!(
        contact_id(&hits(&index, &q("Zebulon", t1)).await),
        vec![renamed.clone()],
        "one version as of each time, not two"
    );
    assert_eq!(
        contact_id(&hits(&index, &q("Thunderclap", t1)).await),
        vec![deleted]
    );
    assert!(hits(&index, &q("Thunderclap", t2)).await.is_empty());
    assert!(
        hits(&index, &name_query(&mailbox, "Thunderclap", AsOf::Latest))
            .await
            .is_empty()
    );

    // Every query form, every entity, as of both snapshots.
    let ran = assert_all_match(&index, &snaps, "writer").await;
    assert!(ran >= 40, "only {ran} queries");
    let kinds_seen: BTreeSet<String> = snaps
        .iter()
        .flat_map(|(_, l)| {
            l.iter()
                .flat_map(|(_, items)| items.iter().map(|i| format!("{:?}", i.kind)))
        })
        .collect();
    for k in [
        "Mail",
        "Contact",
        "Event",
        "Task",
        "File",
        "ListItem",
        "ChannelMessage",
        "ConversationPost",
    ] {
        assert!(
            kinds_seen.contains(k),
            "{k} items were searched: {kinds_seen:?}"
        );
    }

    // Results for one entity never include another's.
    let everything = |key: String| Query {
        entity_key: key,
        limit: 100_000,
        ..Default::default()
    };
    for (ent, list) in &snaps {
        let mine: BTreeSet<String> = list
            .last()
            .unwrap()
            .1
            .iter()
            .map(|i| i.path.clone())
            .collect();
        assert_eq!(hits(&index, &everything(ent.key())).await, mine, "{ent:?}");
    }
    assert!(
        hits(&index, &everything("mailbox:nobody".into()))
            .await
            .is_empty()
    );

    // Another machine: an empty cache downloads the index from the vault.
    let other_cache = tempfile::tempdir().unwrap();
    let reader = SearchIndex::open_reader(e.account.clone(), other_cache.path())
        .await
        .unwrap();
    assert_all_match(&reader, &snaps, "fresh cache").await;

    // A rebuild from the vault alone answers the same.
    let rebuilt = index
        .rebuild(
            &snaps
                .iter()
                .map(|(ent, l)| (ent.key(), l.iter().map(|(s, _)| s.clone()).collect()))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert!(rebuilt.added > 0 && rebuilt.closed > 0);
    assert_all_match(&index, &snaps, "rebuild").await;
    // ... and a reader refreshing picks the rebuilt index up.
    let mut reader = reader;
    reader.refresh().await.unwrap();
    assert_all_match(&reader, &snaps, "refreshed reader").await;
    index.close().await.unwrap();

    // The stored index files are sealed: distinctive titles are in the
    // index (its opened objects) but nowhere in the stored bytes.
    let objects = e.account.list_objects("search").await.unwrap();
    assert!(!objects.is_empty());
    let mut opened = Vec::new();
    for o in &objects {
        opened.extend(e.account.get_object(&o.name).await.unwrap());
    }
    let titles: BTreeSet<String> = snaps
        .iter()
        .flat_map(|(_, l)| l.iter().flat_map(|(_, items)| items.iter()))
        .filter_map(|i| {
            i.fields
                .get("subject")
                .or(i.fields.get("file_name"))
                .cloned()
        })
        .filter(|t| t.len() >= 10)
        .collect();
    let in_index: Vec<&String> = titles
        .iter()
        .filter(|t| contains(&opened, t.as_bytes()))
        .collect();
    assert!(
        in_index.len() >= 3,
        "the index's plaintext holds titles: {in_index:?} of {}",
        titles.len()
    );
    let stored_files = walk_files(e.dir.path());
    assert!(stored_files.len() > objects.len());
    for f in stored_files {
        let bytes = std::fs::read(&f).unwrap();
        for t in &in_index {
            assert!(
                !contains(&bytes, t.as_bytes()),
                "{f:?} holds {t:?} in plaintext"
            );
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_at_a_time_and_another_account_cannot_open_the_index() {
    let e = env(3, 5, 0.2).await;
    let mailbox = &e.first_mailbox().await;
    let s1 = e.backup(mailbox, None).await;
    let cache = tempfile::tempdir().unwrap();
    let mut index = SearchIndex::open_writer(e.account.clone(), cache.path())
        .await
        .unwrap();
    index
        .index_snapshot(&mailbox.key(), &s1, None)
        .await
        .unwrap();

    // A second writer (another worker) is refused while the first lives.
    let other = tempfile::tempdir().unwrap();
    assert!(matches!(
        SearchIndex::open_writer(e.account.clone(), other.path()).await,
        Err(Error::Busy)
    ));
    // Readers are not.
    let reader = SearchIndex::open_reader(e.account.clone(), other.path())
        .await
        .unwrap();
    let all = Query {
        entity_key: mailbox.key(),
        limit: 100_000,
        ..Default::default()
    };
    let expected = hits(&index, &all).await;
    assert!(!expected.is_empty());
    assert_eq!(hits(&reader, &all).await, expected);
    index.close().await.unwrap();
    // Once closed, the next writer gets the lease and continues the index.
    let again = SearchIndex::open_writer(e.account.clone(), other.path())
        .await
        .unwrap();
    assert_eq!(hits(&again, &all).await, expected);
    again.close().await.unwrap();

    // Another account of the same vault, given the first account's index
    // files, cannot open them.
    let master = vault::MasterKey::from_bytes(common::MASTER);
    let intruder = e
        .repo
        .open_or_init_account("intruder", &master.account_key("intruder"))
        .await
        .unwrap();
    let from = e.dir.path().join(e.account.dir()).join("objects");
    let to = e.dir.path().join(intruder.dir()).join("objects");
    copy_dir(&from, &to);
    assert!(!intruder.list_objects("search").await.unwrap().is_empty());
    let cold = tempfile::tempdir().unwrap();
    let err = SearchIndex::open_reader(intruder, cold.path())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Vault(vault::Error::Damaged { .. })),
        "{err:?}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for f in walk_files(from) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}
