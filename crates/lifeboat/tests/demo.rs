//! `lifeboat demo`: the README's first command sets up a simulated tenant,
//! a demo account, user and Exchange task, and backs up every mailbox.

use std::process::Command;

fn demo(data: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["demo", "--exit-after-backup", "--users", "8"])
        .args(["--listen", "127.0.0.1:0", "--sim-listen", "127.0.0.1:0"])
        .arg("--data")
        .arg(data)
        .output()
        .expect("run lifeboat demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn count_after(text: &str, prefix: &str) -> u64 {
    let rest = &text[text.find(prefix).expect(prefix) + prefix.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn demo_backs_up_every_mailbox_and_prints_how_to_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo(dir.path());
    let mailboxes = count_after(&first, "Backup: ");
    assert!(mailboxes > 3, "{first}");
    assert!(
        first.contains(&format!(
            "Backup: {mailboxes} mailboxes backed up, 0 failed"
        )),
        "{first}"
    );
    let password = std::fs::read_to_string(dir.path().join("demo-credentials.txt")).unwrap();
    assert!(password.trim().len() >= 12);
    assert!(first.contains(password.trim()), "the sign-in is printed");
    // What it set up is there for the operator commands.
    let tasks = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["task", "list", "--json", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let tasks: serde_json::Value = serde_json::from_slice(&tasks.stdout).unwrap();
    let services: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        ["exchange", "onedrive", "sharepoint", "teams"],
        "one task per service"
    );
    for (what, t) in ["OneDrives", "sites", "groups"]
        .iter()
        .zip(&tasks.as_array().unwrap()[1..])
    {
        let entities = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(["entity", "list", "--json", "--data"])
            .arg(dir.path())
            .args(["--task", t["id"].as_str().unwrap()])
            .output()
            .unwrap();
        let entities: serde_json::Value = serde_json::from_slice(&entities.stdout).unwrap();
        let entities = entities.as_array().unwrap();
        assert!(!entities.is_empty(), "the demo tenant has {what}");
        assert!(
            entities.iter().all(|e| e["active"] == true),
            "every discovered {what} is protected"
        );
    }
    // The group team sites are protected by the Teams task.
    assert!(
        first.contains("entities are Backed up in another task"),
        "{first}"
    );
    let task = tasks[0]["id"].as_str().unwrap();
    let entities = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["entity", "list", "--json", "--task", task, "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let entities: serde_json::Value = serde_json::from_slice(&entities.stdout).unwrap();
    let email = entities
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["email_or_url"].as_str())
        .unwrap()
        .to_string();
    let snaps = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args([
            "snapshot", "list", "--json", "--task", task, "--entity", &email, "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&snaps.stdout).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        1,
        "one snapshot per mailbox after the first backup"
    );
}
