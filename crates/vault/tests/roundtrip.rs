//! Property tests: whatever items are written (any names, sizes, metadata,
//! streamed or not, through an incremental snapshot), they read back
//! exactly, and folder listings match.

mod common;
use common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use vault::{Change, Node};

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.é-]{1,12}".prop_filter("no dot names", |s| s != "." && s != "..")
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (any::<u64>(), 0usize..40_000).prop_map(|(s, n)| noise(s, n)),
        // Repetitive data (dedups within and across items).
        (any::<u8>(), 0usize..30_000).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn items() -> impl Strategy<Value = BTreeMap<(String, String), (Vec<u8>, Vec<u8>)>> {
    proptest::collection::btree_map(
        (
            prop_oneof![Just("Inbox".to_string()), Just("Sent".to_string()), name()],
            name(),
        ),
        (content(), proptest::collection::vec(any::<u8>(), 0..40)),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn items_round_trip(first in items(), second in items(), stream in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let (_dir, _loc, repo) = local_repo().await;
            let acct = repo.init_account("p", &key(3, "p")).await.unwrap();
            let w = acct.begin_snapshot(None).await.unwrap();
            for ((folder, n), (data, meta)) in &first {
                let path = format!("{folder}/{n}");
                if stream {
                    w.put_item(&path, meta.clone(), &data[..]).await.unwrap();
                } else {
                    w.put_bytes(&path, meta.clone(), data.clone()).await.unwrap();
                }
            }
            let s1 = w.commit(serde_json::Value::Null).await.unwrap();
            // Second snapshot: parent carried over, `second` written on top.
            let w = acct.begin_snapshot(Some(&s1)).await.unwrap();
            w.keep_from_parent("").await.unwrap();
            for ((folder, n), (data, meta)) in &second {
                w.put_bytes(&format!("{folder}/{n}"), meta.clone(), data.clone()).await.unwrap();
            }
            let s2 = w.commit(serde_json::Value::Null).await.unwrap();
            let mut merged = first.clone();
            merged.extend(second.clone());

            let snap1 = acct.snapshot(&s1).await.unwrap();
            let snap2 = acct.snapshot(&s2).await.unwrap();
            for (snap, expected) in [(&snap1, &first), (&snap2, &merged)] {
                for ((folder, n), (data, meta)) in expected.iter() {
                    let path = format!("{folder}/{n}");
                    assert_eq!(&acct.read_item_bytes(snap, &path).await.unwrap(), data, "{path}");
                    match acct.lookup(snap, &path).await.unwrap() {
                        Node::Item { meta: m, content } => {
                            assert_eq!(&m, meta);
                            assert_eq!(content.size, data.len() as u64);
                        }
                        Node::Folder { .. } => panic!("{path} is a folder"),
                    }
                }
                let walked: Vec<String> = acct
                    .walk(snap, "").await.unwrap().into_iter()
                    .filter(|(_, n)| !n.is_folder()).map(|(p, _)| p).collect();
                let mut want: Vec<String> = expected.keys().map(|(f, n)| format!("{f}/{n}")).collect();
                want.sort();
                let mut got = walked.clone();
                got.sort();
                assert_eq!(got, want);
            }
            let diff = acct.diff(&snap1, &snap2).await.unwrap();
            for ((folder, n), v) in &second {
                let path = format!("{folder}/{n}");
                let changed = diff.iter().any(|c| matches!(c, Change::Added(p) | Change::Modified(p) if *p == path));
                assert_eq!(changed, first.get(&(folder.clone(), n.clone())) != Some(v), "{path} in {diff:?}");
            }
            assert!(diff.iter().all(|c| !matches!(c, Change::Removed(_))));
        });
    }
}
