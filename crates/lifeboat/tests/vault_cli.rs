//! `lifeboat vault` end to end on directories: init, backup, incremental
//! backup, snapshots --json, restore (byte-identical), verify --full,
//! forget + gc, wrong password.

use std::path::Path;
use std::process::Command;

fn lifeboat(args: &[&str], password: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("vault")
        .args(args)
        .env("LIFEBOAT_VAULT_PASSWORD", password)
        .env_remove("LIFEBOAT_VAULT_KEY_FILE")
        .output()
        .expect("run lifeboat")
}

fn ok(args: &[&str]) -> String {
    let out = lifeboat(args, "pw");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                out.push((rel + "/", Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn backup_restore_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let repo = tmp.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    let attachment: Vec<u8> = (0..120_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for m in 0..6 {
        let mut mail =
            format!("From: a@example.com\r\nSubject: {m}\r\n\r\nbody {m}\r\n").into_bytes();
        mail.extend_from_slice(&attachment);
        write(&src.join(format!("box{}/msg{m}.eml", m % 2)), &mail);
    }
    write(&src.join("empty/.keep"), b"");
    std::fs::create_dir_all(src.join("emptydir")).unwrap();

    ok(&["init", "--repo", repo_s]);
    let s1 = ok(&["backup", src.to_str().unwrap(), "--repo", repo_s])
        .trim()
        .to_string();
    assert_eq!(s1.len(), 32);
    // Repeated attachments are stored once.
    let stored: u64 = walk_size(&repo);
    assert!(
        stored < 2 * 120_000,
        "repository is {stored} bytes for 6 copies of a 120 kB attachment"
    );

    write(&src.join("box0/msg0.eml"), b"changed");
    write(&src.join("box1/new.eml"), b"new");
    let s2 = ok(&["backup", src.to_str().unwrap(), "--repo", repo_s])
        .trim()
        .to_string();
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(&["snapshots", "--repo", repo_s, "--json"])).unwrap();
    let arr = snaps.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[1]["id"], s2.as_str());
    assert_eq!(
        arr[1]["parent"],
        s1.as_str(),
        "second backup is incremental"
    );
    assert!(arr[1]["stats"]["stored_bytes"].as_u64().unwrap() < 10_000);

    let out = tmp.path().join("out");
    ok(&[
        "restore",
        &s2,
        "--repo",
        repo_s,
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(tree(&src), tree(&out));
    let out1 = tmp.path().join("out1");
    ok(&[
        "restore",
        &s1[..8],
        "--repo",
        repo_s,
        "--target",
        out1.to_str().unwrap(),
        "--path",
        "box1",
    ]);
    assert!(out1.join("msg1.eml").exists());
    assert!(!out1.join("new.eml").exists());

    assert!(ok(&["verify", "--repo", repo_s, "--full"]).contains("no problems found"));
    ok(&["forget", "--repo", repo_s, "--keep-last", "1", "--gc"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(&["snapshots", "--repo", repo_s, "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);

    let bad = lifeboat(&["snapshots", "--repo", repo_s], "wrong");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("wrong key"));

    // Key rotation: the new password opens the data, the old one no longer.
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["vault", "rekey", "--repo", repo_s])
        .env("LIFEBOAT_VAULT_PASSWORD", "pw")
        .env("LIFEBOAT_VAULT_NEW_PASSWORD", "pw2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !lifeboat(&["snapshots", "--repo", repo_s], "pw")
            .status
            .success()
    );
    let out = lifeboat(
        &[
            "restore",
            "latest",
            "--repo",
            repo_s,
            "--target",
            tmp.path().join("out2").to_str().unwrap(),
        ],
        "pw2",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree(&src), tree(&tmp.path().join("out2")));
}

fn walk_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            n += walk_size(&e.path());
        } else {
            n += e.metadata().unwrap().len();
        }
    }
    n
}
