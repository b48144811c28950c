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

/// An item larger than the writer's read batch (8 MiB) is streamed in and
/// out without being held whole, and comes back bit for bit; storing it
/// again deduplicates completely.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_item_streams_across_batches() {
    use futures::TryStreamExt;
    let (_dir, _loc, repo) = local_repo().await;
    let acct = repo.init_account("big", &key(1, "big")).await.unwrap();
    // 20 MiB: several read batches; partly repetitive so zstd has work.
    let mut data = noise(11, 12 * 1024 * 1024);
    data.extend(std::iter::repeat_n(7u8, 8 * 1024 * 1024));
    let want = blake3::hash(&data);
    let w = acct.begin_snapshot(None).await.unwrap();
    // A reader that yields odd-sized pieces, as a network stream would.
    let reader = tokio_util_like::Pieces {
        data: &data,
        pos: 0,
    };
    let content = w.put_item("huge.bin", Vec::new(), reader).await.unwrap();
    assert_eq!(content.size, data.len() as u64);
    let again = w.put_item("copy.bin", Vec::new(), &data[..]).await.unwrap();
    assert_eq!(
        again, content,
        "same bytes, same chunks, whatever the read pattern"
    );
    let id = w.commit(serde_json::Value::Null).await.unwrap();
    let snap = acct.snapshot(&id).await.unwrap();
    let (_, mut stream) = acct.read_item(&snap, "huge.bin").await.unwrap();
    let mut h = blake3::Hasher::new();
    let mut n = 0usize;
    while let Some(b) = stream.try_next().await.unwrap() {
        h.update(&b);
        n += b.len();
    }
    assert_eq!(n, data.len());
    assert_eq!(h.finalize(), want);
    let stats = acct.snapshots().await.unwrap()[0].stats.clone();
    assert!(stats.stored_bytes < 13 * 1024 * 1024, "{stats:?}");
}

mod tokio_util_like {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, ReadBuf};

    pub struct Pieces<'a> {
        pub data: &'a [u8],
        pub pos: usize,
    }

    impl AsyncRead for Pieces<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let piece = 1 + (self.pos * 7919) % 100_003;
            let end = (self.pos + piece.min(buf.remaining())).min(self.data.len());
            let start = self.pos;
            buf.put_slice(&self.data[start..end]);
            self.pos = end;
            Poll::Ready(Ok(()))
        }
    }
}
