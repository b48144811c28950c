//! OneDrive, SharePoint and Teams & Groups through the worker: discovery,
//! backup jobs compared with the simulator's ground truth, deleted entities,
//! activation rules, "Backed up in another task", and accounts that never
//! see each other's entities.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use catalog::{
    Deactivation, EntityKind, EntityStatus, EntityType, JobStatus, NewRule, RuleDefinition,
    RuleMode, RunOutcome, Service, SubService, TaskSettings, UrlMatch,
};
use serde_json::{Value, json};
use worker::BackupSummary;

use crate::common::Env;

/// Sub-services as a set of their names.
fn sub_set(list: &[SubService]) -> BTreeSet<String> {
    list.iter().map(ToString::to_string).collect()
}

fn summary(job: &catalog::Job) -> BackupSummary {
    serde_json::from_value(job.result.clone().expect("result")).expect("summary")
}

/// Back up these entities of the task with a worker; the jobs, in order.
async fn backup(env: &Env, task: &catalog::Task, ids: &[catalog::EntityId]) -> Vec<catalog::Job> {
    // Time moves on between backups of an entity, so "the latest run" is
    // never a tie.
    env.clock.advance(chrono::Duration::minutes(1));
    let enq = worker::enqueue_backups(&env.rt, task, Some(ids), "test", None)
        .await
        .expect("enqueue");
    assert_eq!(enq.jobs.len(), ids.len());
    let mut jobs = env
        .run_jobs(&enq.jobs.iter().map(|j| j.id).collect::<Vec<_>>())
        .await;
    jobs.sort_by_key(|j| ids.iter().position(|i| Some(*i) == j.entity_id));
    jobs
}

async fn discover(env: &Env, task: &catalog::Task) -> worker::DiscoverySummary {
    worker::discover_task(&env.rt, task.account_id, task.id, None)
        .await
        .expect("discovery")
}

async fn entity(env: &Env, id: catalog::EntityId) -> catalog::Entity {
    env.rt
        .catalog
        .get_entity(env.account, id)
        .await
        .expect("entity")
}

/// The sub-services of the entity's latest successful runs, all of them in
/// `snapshot`.
async fn runs_in(env: &Env, id: catalog::EntityId, snapshot: &str) -> BTreeSet<String> {
    let runs = env
        .rt
        .catalog
        .latest_successful_runs(env.account, id)
        .await
        .expect("runs");
    assert!(
        runs.iter()
            .all(|r| r.snapshot_id.as_deref() == Some(snapshot)),
        "every run records the snapshot"
    );
    runs.iter().map(|r| r.sub_service.to_string()).collect()
}

/// A OneDrive's files in the simulator: item id → (name, size, BLAKE3).
async fn drive_truth(env: &Env, user: &str) -> BTreeMap<String, (String, u64, String)> {
    env.truth(&format!("users/{user}"))
        .await
        .iter()
        .filter(|i| i["workload"] == "drive")
        .map(|i| {
            let path = i["path"].as_str().expect("path");
            (
                i["id"].as_str().expect("id").to_string(),
                (
                    path.rsplit('/').next().unwrap_or(path).to_string(),
                    i["size"].as_u64().expect("size"),
                    i["hash"].as_str().expect("hash").to_string(),
                ),
            )
        })
        .collect()
}

/// The files a OneDrive snapshot holds (flat, id-keyed under
/// `drive/items`), read back from the vault and hashed.
async fn drive_files(
    vault: &vault::Account,
    snapshot: &str,
) -> BTreeMap<String, (String, u64, String)> {
    let snap = vault
        .snapshot(&snapshot.parse().expect("snapshot id"))
        .await
        .expect("snapshot");
    let mut out = BTreeMap::new();
    for e in vault
        .list_folder(&snap, "drive/items")
        .await
        .expect("drive items")
    {
        let meta: Value = serde_json::from_slice(e.node.meta()).expect("item meta");
        if meta.get("file").is_none() {
            continue;
        }
        let bytes = vault
            .read_item_bytes(&snap, &format!("drive/items/{}", e.name))
            .await
            .expect("file content");
        out.insert(
            e.name.clone(),
            (
                meta["name"].as_str().expect("name").to_string(),
                bytes.len() as u64,
                blake3::hash(&bytes).to_hex().to_string(),
            ),
        );
    }
    out
}

worker_test!(
    async fn onedrive_backups_equal_ground_truth_and_the_next_is_incremental(env) {
        let task = env.service_task(Service::OneDrive, TaskSettings::default()).await;
        let s = discover(&env, &task).await;
        let entities = env.entities(&task).await;
        assert!(!entities.is_empty(), "users with a OneDrive are found");
        assert_eq!(s.found, entities.len());
        assert!(entities.iter().all(|e| e.kind == EntityKind::OneDrive
            && e.entity_type == EntityType::User
            && e.properties["driveId"].is_string()
            && !e.active));

        // Two OneDrives that hold files.
        let mut chosen = Vec::new();
        for e in &entities {
            if !drive_truth(&env, &e.external_id).await.is_empty() {
                chosen.push(e.clone());
            }
            if chosen.len() == 2 {
                break;
            }
        }
        assert_eq!(chosen.len(), 2, "two OneDrives with files");
        let ids: Vec<catalog::EntityId> = chosen.iter().map(|e| e.id).collect();
        env.rt.catalog.activate_entities(env.account, &ids).await.expect("activate");
        // Only the activated ones are backed up by "back up all".
        let all = worker::enqueue_backups(&env.rt, &task, None, "test", None)
            .await
            .expect("enqueue");
        let queued: HashSet<catalog::EntityId> =
            all.jobs.iter().filter_map(|j| j.entity_id).collect();
        assert_eq!(queued, ids.iter().copied().collect::<HashSet<_>>());
        let first = env.run_jobs(&all.jobs.iter().map(|j| j.id).collect::<Vec<_>>()).await;
        let vault = env.rt.vault_account(env.account).await.expect("vault");
        let mut snapshots = BTreeMap::new();
        for job in &first {
            assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
            let s = summary(job);
            assert_eq!(s.outcome, RunOutcome::Success);
            assert_eq!(s.parts.len(), 1);
            assert_eq!(s.parts[0].sub_service, SubService::Drive);
            let snap = s.snapshot_id.clone().expect("snapshot");
            let e = entity(&env, s.entity_id).await;
            assert_eq!(e.status, EntityStatus::Success);
            assert_eq!(
                runs_in(&env, e.id, &snap).await,
                sub_set(&[SubService::Drive])
            );
            let truth = drive_truth(&env, &e.external_id).await;
            assert_eq!(drive_files(&vault, &snap).await, truth, "{} equals the simulator", e.name);
            snapshots.insert(e.id, (snap, s.requests));
        }

        // A day of activity in one OneDrive, then an incremental backup.
        let e = &chosen[0];
        env.post_sim(
            "/_sim/activity",
            json!({ "days": 1, "fraction": 1.0, "entities": [format!("user:{}", e.external_id)] }),
        )
        .await;
        let second = backup(&env, &task, &[e.id]).await.remove(0);
        assert_eq!(second.status, JobStatus::Succeeded, "{:?}", second.error);
        let s2 = summary(&second);
        let (snap1, requests1) = snapshots[&e.id].clone();
        assert_eq!(s2.parent_snapshot_id.as_deref(), Some(snap1.as_str()));
        let snap2 = s2.snapshot_id.clone().expect("snapshot");
        assert_ne!(snap1, snap2);
        assert!(
            s2.requests < requests1,
            "an incremental asks Graph less ({} vs {requests1} requests)",
            s2.requests
        );
        assert_eq!(
            drive_files(&vault, &snap2).await,
            drive_truth(&env, &e.external_id).await,
            "the incremental equals the simulator"
        );
    }
);

worker_test!(
    async fn sharepoint_sites_with_urls_and_a_deleted_site_is_archived(env) {
        let task = env.service_task(Service::SharePoint, TaskSettings::default()).await;
        let s = discover(&env, &task).await;
        let sites = env.entities(&task).await;
        assert_eq!(s.found, sites.len());
        assert!(sites.len() >= 2);
        assert!(sites.iter().all(|e| e.kind == EntityKind::Site && e.entity_type == EntityType::Site));
        for e in &sites {
            let url = e.email_or_url.as_deref().expect("a site has its URL");
            assert!(url.starts_with("https://"), "{url}");
            assert!(!url.contains("-my.sharepoint.com"), "no personal site: {url}");
        }
        let ids: HashSet<&str> = sites.iter().map(|e| e.external_id.as_str()).collect();
        let subs: Vec<&catalog::Entity> =
            sites.iter().filter(|e| e.properties["isSubSite"] == true).collect();
        assert!(!subs.is_empty(), "sub-sites are found");
        for sub in &subs {
            let parent = sub.properties["parentId"].as_str().expect("parent");
            assert!(ids.contains(parent), "the parent of {} is listed", sub.name);
        }

        // Back up a sub-site (small), then delete it in the tenant.
        let site = subs[0].clone();
        env.rt.catalog.activate_entities(env.account, &[site.id]).await.expect("activate");
        let first = backup(&env, &task, &[site.id]).await.remove(0);
        assert_eq!(first.status, JobStatus::Succeeded, "{:?}", first.error);
        let s1 = summary(&first);
        assert_eq!(s1.outcome, RunOutcome::Success, "{:?}", s1.parts);
        let snap1 = s1.snapshot_id.clone().expect("snapshot");
        assert_eq!(
            s1.parts.iter().map(|p| p.sub_service.to_string()).collect::<BTreeSet<_>>(),
            sub_set(&[SubService::Site, SubService::Drive])
        );
        assert_eq!(
            runs_in(&env, site.id, &snap1).await,
            sub_set(&[SubService::Site, SubService::Drive])
        );
        assert_eq!(entity(&env, site.id).await.status, EntityStatus::Success);

        env.post_sim(&format!("/_sim/sites/{}/delete", site.external_id), json!({}))
            .await;
        let second = backup(&env, &task, &[site.id]).await.remove(0);
        assert_eq!(second.status, JobStatus::Succeeded, "{:?}", second.error);
        let s2 = summary(&second);
        assert!(
            s2.note.as_deref().unwrap_or("").contains("no longer exists"),
            "{:?}",
            s2.note
        );
        assert_eq!(s2.snapshot_id, None);
        let after = entity(&env, site.id).await;
        assert_eq!(after.status, EntityStatus::Archived);
        assert!(after.deleted_in_tenant_at.is_some());
        assert!(!worker::is_protected(&after), "an archived site is not scheduled");

        // The earlier snapshot stays readable, every item of it.
        let vault = env.rt.vault_account(env.account).await.expect("vault");
        let snap = vault.snapshot(&snap1.parse().expect("id")).await.expect("snapshot kept");
        assert_eq!(snap.meta["entity_id"], json!(site.id));
        let nodes = vault.walk(&snap, "").await.expect("walk");
        let mut items = 0;
        for (path, node) in &nodes {
            if matches!(node, vault::Node::Item { .. }) {
                vault.read_item_bytes(&snap, path).await.expect("readable");
                items += 1;
            }
        }
        assert!(items > 0, "the snapshot holds the site");
        let kept = env
            .rt
            .catalog
            .latest_successful_runs(env.account, site.id)
            .await
            .expect("runs");
        assert!(kept.iter().all(|r| r.snapshot_id.as_deref() == Some(snap1.as_str())));
    }
);

worker_test!(
    async fn teams_and_groups_backups_and_deleted_teams_are_archived(env) {
        let task = env.service_task(Service::Teams, TaskSettings::default()).await;
        discover(&env, &task).await;
        let entities = env.entities(&task).await;
        let teams: Vec<catalog::Entity> =
            entities.iter().filter(|e| e.kind == EntityKind::Team).cloned().collect();
        let groups: Vec<catalog::Entity> =
            entities.iter().filter(|e| e.kind == EntityKind::Group).cloned().collect();
        assert!(teams.len() >= 2, "teams are found");
        assert!(!groups.is_empty(), "groups without a team are found");
        assert!(teams.iter().all(|e| e.entity_type == EntityType::Team));
        assert!(groups.iter().all(|e| e.entity_type == EntityType::Group));

        let team = &teams[0];
        env.rt.catalog.activate_entities(env.account, &[team.id]).await.expect("activate");
        let job = backup(&env, &task, &[team.id]).await.remove(0);
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        let s = summary(&job);
        let snap = s.snapshot_id.clone().expect("snapshot");
        let all = sub_set(&[
            SubService::Metadata,
            SubService::Conversations,
            SubService::Calendar,
            SubService::Drive,
            SubService::Channels,
        ]);
        assert_eq!(runs_in(&env, team.id, &snap).await, all);
        assert_eq!(s.parts.iter().map(|p| p.sub_service.to_string()).collect::<BTreeSet<_>>(), all);
        assert!(matches!(
            entity(&env, team.id).await.status,
            EntityStatus::Success | EntityStatus::Partial
        ));

        // A group without a team: its four sub-services, no channels.
        let group = &groups[0];
        env.rt.catalog.activate_entities(env.account, &[group.id]).await.expect("activate");
        let job = backup(&env, &task, &[group.id]).await.remove(0);
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        let snap = summary(&job).snapshot_id.expect("snapshot");
        assert_eq!(
            runs_in(&env, group.id, &snap).await,
            sub_set(&[
                SubService::Metadata,
                SubService::Conversations,
                SubService::Calendar,
                SubService::Drive,
            ])
        );

        // A deleted team: archived by the next discovery.
        env.post_sim(&format!("/_sim/groups/{}/delete", team.external_id), json!({}))
            .await;
        let d = discover(&env, &task).await;
        assert_eq!(d.archived, 1);
        assert_eq!(entity(&env, team.id).await.status, EntityStatus::Archived);
        let after = backup(&env, &task, &[team.id]).await.remove(0);
        assert_eq!(after.status, JobStatus::Succeeded, "{:?}", after.error);
        assert!(summary(&after).note.is_some(), "the backup says why nothing ran");

        // Another, deleted between discovery and its backup: archived by it.
        let other = &teams[1];
        env.rt.catalog.activate_entities(env.account, &[other.id]).await.expect("activate");
        env.post_sim(&format!("/_sim/groups/{}/delete", other.external_id), json!({}))
            .await;
        let gone = backup(&env, &task, &[other.id]).await.remove(0);
        assert_eq!(gone.status, JobStatus::Succeeded, "{:?}", gone.error);
        assert!(
            summary(&gone).note.as_deref().unwrap_or("").contains("no longer exists"),
            "{:?}",
            summary(&gone).note
        );
        assert_eq!(entity(&env, other.id).await.status, EntityStatus::Archived);
    }
);

async fn new_rule(
    env: &Env,
    task: &catalog::Task,
    definition: RuleDefinition,
    mode: RuleMode,
    deactivation: Deactivation,
) -> catalog::ActivationRule {
    env.rt
        .catalog
        .create_rule(
            task.account_id,
            NewRule {
                task_id: task.id,
                definition,
                mode,
                deactivation,
            },
        )
        .await
        .expect("rule")
}

worker_test!(
    async fn a_url_rule_activates_exactly_the_matching_sites(env) {
        let task = env.service_task(Service::SharePoint, TaskSettings::default()).await;
        discover(&env, &task).await;
        let sites = env.entities(&task).await;
        // A site with sub-sites (not the tenant's root site, whose URL
        // begins every other): its URL as the prefix selects it and them.
        let under = |prefix: &str| -> BTreeSet<catalog::EntityId> {
            sites
                .iter()
                .filter(|e| {
                    e.email_or_url
                        .as_deref()
                        .is_some_and(|u| u.to_lowercase().starts_with(&prefix.to_lowercase()))
                })
                .map(|e| e.id)
                .collect()
        };
        let (prefix, expected) = sites
            .iter()
            .filter(|e| e.properties["isSubSite"] == true)
            .filter_map(|e| e.properties["parentId"].as_str())
            .filter_map(|p| sites.iter().find(|e| e.external_id == p))
            .filter_map(|p| p.email_or_url.clone())
            .map(|url| {
                let matched = under(&url);
                (url, matched)
            })
            .find(|(_, matched)| matched.len() < sites.len())
            .expect("a site with sub-sites below the root");
        assert!(expected.len() >= 2, "the site and its sub-site");
        let rule = new_rule(
            &env,
            &task,
            RuleDefinition::Url { match_: UrlMatch::BeginsWith, value: prefix.to_uppercase() },
            RuleMode::Once,
            Deactivation::Keep,
        )
        .await;
        let outcome = worker::apply_rule(&env.rt, env.account, &rule).await.expect("apply");
        assert_eq!(outcome.matched, expected.len());
        assert_eq!(outcome.activated, expected.len());
        for e in env.entities(&task).await {
            assert_eq!(e.active, expected.contains(&e.id), "{}", e.name);
            let want = if e.active { EntityStatus::Scheduled } else { EntityStatus::NotActive };
            assert_eq!(e.status, want, "{}", e.name);
        }
        let recorded: BTreeSet<catalog::EntityId> = env
            .rt
            .catalog
            .rule_matches(env.account, rule.id)
            .await
            .expect("matches")
            .into_iter()
            .collect();
        assert_eq!(recorded, expected);
        // Applied again: the same matches, nothing newly activated.
        let again = worker::apply_rule(&env.rt, env.account, &rule).await.expect("apply");
        assert_eq!((again.matched, again.activated), (expected.len(), 0));
    }
);

worker_test!(
    async fn a_recurring_group_rule_pauses_a_member_who_left_and_nobody_else(env) {
        let task = env.service_task(Service::OneDrive, TaskSettings::default()).await;
        discover(&env, &task).await;
        let entities = env.entities(&task).await;
        let by_user: BTreeMap<&str, &catalog::Entity> =
            entities.iter().map(|e| (e.external_id.as_str(), e)).collect();
        let graph = env.graph(&task).await;
        // A group of users only (no nested groups), two or more with a OneDrive.
        let groups = graph.get_all("/groups?$select=id").await.expect("groups");
        let mut chosen = None;
        for g in &groups {
            let gid = g["id"].as_str().expect("group id");
            let members = graph
                .get_all(&format!("/groups/{gid}/members?$select=id"))
                .await
                .expect("members");
            if members
                .iter()
                .any(|m| m["@odata.type"].as_str().unwrap_or("").ends_with(".group"))
            {
                continue;
            }
            let ids: Vec<String> = members
                .iter()
                .filter_map(|m| m["id"].as_str())
                .filter(|id| by_user.contains_key(id))
                .map(str::to_string)
                .collect();
            if ids.len() >= 2 && ids.len() < entities.len() {
                chosen = Some((gid.to_string(), ids));
                break;
            }
        }
        let (group, members) = chosen.expect("a group with two members who have a OneDrive");
        let rule = new_rule(
            &env,
            &task,
            RuleDefinition::Group { group_id: group.clone(), group_name: String::new() },
            RuleMode::Recurring,
            Deactivation::Pause,
        )
        .await;
        let outcome = worker::apply_rule(&env.rt, env.account, &rule).await.expect("apply");
        assert_eq!((outcome.matched, outcome.activated), (members.len(), members.len()));
        let before = env.entities(&task).await;
        for e in &before {
            assert_eq!(e.active, members.contains(&e.external_id), "{}", e.name);
        }

        // One member leaves the group in the tenant.
        let leaver = members[0].clone();
        graph
            .send(graph::Request::delete(format!("/groups/{group}/members/{leaver}/$ref")))
            .await
            .expect("remove member");
        let left_now = graph
            .get_all(&format!("/groups/{group}/members?$select=id"))
            .await
            .expect("members");
        assert!(!left_now.iter().any(|m| m["id"] == leaver.as_str()));
        // Removing someone who is not a member is 404, as Graph answers.
        let again = graph
            .send(graph::Request::delete(format!("/groups/{group}/members/{leaver}/$ref")))
            .await;
        assert!(again.as_ref().is_err_and(|e| e.is_not_found()), "{again:?}");
        let d = discover(&env, &task).await;
        let o = d
            .rules
            .iter()
            .find(|o| o.rule_id == rule.id.to_string())
            .expect("the recurring rule ran after discovery");
        assert_eq!((o.matched, o.activated, o.left), (members.len() - 1, 0, 1));
        assert_eq!(o.on_leave, "paused");
        let after = env.entities(&task).await;
        for e in &after {
            let was = before.iter().find(|b| b.id == e.id).expect("same entities");
            if e.external_id == leaver {
                assert_eq!(e.status, EntityStatus::Paused, "the leaver is paused");
            } else {
                assert_eq!((e.active, e.status), (was.active, was.status), "{} untouched", e.name);
            }
        }
        let matches = env.rt.catalog.rule_matches(env.account, rule.id).await.expect("matches");
        assert_eq!(matches.len(), members.len() - 1);
    }
);

worker_test!(
    async fn a_csv_rule_activates_good_rows_and_reports_bad_ones_by_line(env) {
        let task = env.task(TaskSettings::default()).await;
        discover(&env, &task).await;
        let entities = env.entities(&task).await;
        let mailboxes: Vec<&catalog::Entity> =
            entities.iter().filter(|e| e.entity_type == EntityType::User).take(2).collect();
        assert_eq!(mailboxes.len(), 2);
        let a = mailboxes[0].email_or_url.clone().expect("address");
        let b = mailboxes[1].email_or_url.clone().expect("address");
        let csv = format!(
            "Account Email,Name\n{},One\nnot-an-address,Bad\n,Nobody\n {} ,Two\nghost@unknown.test,Ghost\n",
            a.to_uppercase(),
            b
        );
        let (emails, problems) = worker::rules::parse_account_csv(&csv).expect("csv");
        assert_eq!(
            problems.iter().map(|p| p.line).collect::<Vec<_>>(),
            vec![3, 4],
            "{problems:?}"
        );
        assert!(problems[0].reason.contains("not-an-address"), "{}", problems[0].reason);
        assert_eq!(emails.len(), 3);
        let rule = new_rule(
            &env,
            &task,
            RuleDefinition::Csv { emails },
            RuleMode::Once,
            Deactivation::Keep,
        )
        .await;
        let outcome = worker::apply_rule(&env.rt, env.account, &rule).await.expect("apply");
        assert_eq!((outcome.matched, outcome.activated), (2, 2));
        assert_eq!(outcome.unmatched, vec!["ghost@unknown.test".to_string()]);
        let chosen = [mailboxes[0].id, mailboxes[1].id];
        for e in env.entities(&task).await {
            assert_eq!(e.active, chosen.contains(&e.id), "{}", e.name);
        }
        // A CSV without the column is refused whole.
        assert!(worker::rules::parse_account_csv("Email\na@b.test\n").is_err());
    }
);

worker_test!(
    async fn a_team_site_protected_with_its_team_is_backed_up_in_another_task(env) {
        let teams = env.service_task(Service::Teams, TaskSettings::default()).await;
        discover(&env, &teams).await;
        let team = env
            .entities(&teams)
            .await
            .into_iter()
            .find(|e| e.kind == EntityKind::Team)
            .expect("a team");
        env.rt.catalog.activate_entities(env.account, &[team.id]).await.expect("activate");

        // Second: a SharePoint task that activates every site it finds.
        let sharepoint = env
            .service_task(
                Service::SharePoint,
                TaskSettings { auto_activate_new: true, ..Default::default() },
            )
            .await;
        let s = discover(&env, &sharepoint).await;
        assert_eq!(s.backed_up_elsewhere, 1, "{s:?}");
        let sites = env.entities(&sharepoint).await;
        let team_site = sites
            .iter()
            .find(|e| e.properties["groupId"] == team.external_id.as_str())
            .expect("the team's site");
        assert_eq!(team_site.status, EntityStatus::BackedUpInAnotherTask);
        assert!(team_site.active, "still chosen: protected by the other task");
        for e in sites.iter().filter(|e| e.id != team_site.id) {
            assert_eq!(e.status, EntityStatus::Scheduled, "{}", e.name);
        }
        // The team itself stays protected in its task.
        assert_eq!(entity(&env, team.id).await.status, EntityStatus::Scheduled);
        // The scheduler's next backup slot leaves the team site out.
        let tick = worker::Scheduler::new(env.rt.clone())
            .tick(env.rt.catalog.now() + chrono::Duration::days(1))
            .await
            .expect("tick");
        assert!(tick.backups > 0);
        let scheduled: HashSet<catalog::EntityId> = env
            .rt
            .catalog
            .list_jobs(
                env.account,
                &catalog::JobFilter {
                    task_id: Some(sharepoint.id),
                    kinds: vec![catalog::JobKind::Backup],
                    ..Default::default()
                },
            )
            .await
            .expect("jobs")
            .iter()
            .filter_map(|j| j.entity_id)
            .collect();
        assert_eq!(scheduled.len(), sites.len() - 1);
        assert!(!scheduled.contains(&team_site.id));
        // So does "back up all".
        let enq = worker::enqueue_backups(&env.rt, &sharepoint, None, "schedule", None)
            .await
            .expect("enqueue");
        let queued: HashSet<catalog::EntityId> =
            enq.jobs.iter().filter_map(|j| j.entity_id).collect();
        assert_eq!(queued.len(), sites.len() - 1);
        assert!(!queued.contains(&team_site.id));
        // The team paused: the site is released on the next discovery.
        env.rt.catalog.pause_entities(env.account, &[team.id]).await.expect("pause");
        discover(&env, &sharepoint).await;
        assert_eq!(entity(&env, team_site.id).await.status, EntityStatus::Scheduled);
    }
);

worker_test!(
    async fn a_second_exchange_task_on_the_same_mailboxes_backs_up_nothing_twice(env) {
        let auto = TaskSettings { auto_activate_new: true, ..Default::default() };
        let first = env.task(auto.clone()).await;
        let s1 = discover(&env, &first).await;
        assert_eq!(s1.activated, s1.found);
        let second = env.task(auto).await;
        let s2 = discover(&env, &second).await;
        assert_eq!(s2.backed_up_elsewhere as usize, s2.found, "{s2:?}");
        assert!(env
            .entities(&second)
            .await
            .iter()
            .all(|e| e.status == EntityStatus::BackedUpInAnotherTask));
        assert!(env.entities(&first).await.iter().all(|e| e.status == EntityStatus::Scheduled));
        let enq = worker::enqueue_backups(&env.rt, &second, None, "schedule", None)
            .await
            .expect("enqueue");
        assert!(enq.jobs.is_empty(), "nothing backed up twice");
    }
);

worker_test!(
    async fn rules_never_reach_another_accounts_entities(env) {
        let other = env.rt.catalog.create_account("other", "eu-west").await.expect("account").id;
        let mine = env.service_task(Service::SharePoint, TaskSettings::default()).await;
        let theirs = env
            .service_task_in(other, Service::SharePoint, TaskSettings::default())
            .await;
        discover(&env, &mine).await;
        discover(&env, &theirs).await;
        let everything = RuleDefinition::Url { match_: UrlMatch::Contains, value: "https://".into() };

        // B's rule activates B's sites only.
        let rule_b = new_rule(&env, &theirs, everything.clone(), RuleMode::Once, Deactivation::Keep).await;
        let o = worker::apply_rule(&env.rt, other, &rule_b).await.expect("apply");
        assert_eq!(o.activated, env.entities(&theirs).await.len());
        assert!(env.entities(&mine).await.iter().all(|e| !e.active));

        // B cannot make a rule on A's task, nor apply A's rule.
        let on_mine = env
            .rt
            .catalog
            .create_rule(
                other,
                NewRule {
                    task_id: mine.id,
                    definition: everything.clone(),
                    mode: RuleMode::Once,
                    deactivation: Deactivation::Keep,
                },
            )
            .await;
        assert!(matches!(on_mine, Err(catalog::Error::NotFound(_))), "{on_mine:?}");
        let rule_a = new_rule(&env, &mine, everything, RuleMode::Once, Deactivation::Keep).await;
        let applied = worker::apply_rule(&env.rt, other, &rule_a).await;
        assert!(
            matches!(applied, Err(worker::WorkerError::Catalog(catalog::Error::NotFound(_)))),
            "{applied:?}"
        );
        assert!(matches!(
            env.rt.catalog.get_rule(other, rule_a.id).await,
            Err(catalog::Error::NotFound(_))
        ));
        assert!(env.entities(&mine).await.iter().all(|e| !e.active), "A's sites untouched");
        assert!(env.rt.catalog.rule_matches(env.account, rule_a.id).await.expect("matches").is_empty());
    }
);

worker_test!(
    async fn a_rule_job_from_the_api_applies_the_rule_once_after_discovery(env) {
        let task = env.service_task(Service::SharePoint, TaskSettings::default()).await;
        // A recurring rule (run by discovery itself) and a once rule (run by
        // the job after discovery), each enqueued as the API does, and run
        // one after the other (two discoveries of a task at once would
        // share out the activations between them).
        let mut done = Vec::new();
        let mut rules = Vec::new();
        for mode in [RuleMode::Recurring, RuleMode::Once] {
            let rule = new_rule(
                &env,
                &task,
                RuleDefinition::Url { match_: UrlMatch::Contains, value: "https://".into() },
                mode,
                Deactivation::Keep,
            )
            .await;
            let mut job = catalog::NewJob::new(
                catalog::JobKind::Discovery,
                json!({ "task_id": task.id, "rule_id": rule.id }),
            );
            job.task_id = Some(task.id);
            job.dedupe_key = Some(format!("rule:{}", rule.id));
            let id = env.rt.catalog.enqueue_job(env.account, job).await.expect("enqueue").job().id;
            done.extend(env.run_jobs(&[id]).await);
            rules.push(rule);
        }
        let sites = env.entities(&task).await.len();
        assert!(sites > 0);
        let mut activated = 0;
        for (job, rule) in done.iter().zip(&rules) {
            assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
            let s: worker::DiscoverySummary =
                serde_json::from_value(job.result.clone().expect("result")).expect("summary");
            let mine: Vec<&worker::RuleOutcome> =
                s.rules.iter().filter(|o| o.rule_id == rule.id.to_string()).collect();
            assert_eq!(mine.len(), 1, "applied once: {:?}", s.rules);
            assert_eq!(mine[0].matched, sites);
            activated += mine[0].activated;
            let stored = env.rt.catalog.get_rule(env.account, rule.id).await.expect("rule");
            assert!(stored.last_evaluated_at.is_some());
        }
        assert_eq!(activated, sites, "each site activated by exactly one of the rules: {done:?}");
        assert!(env.entities(&task).await.iter().all(|e| e.active));
    }
);
