//! The scheduler enqueues each slot once, across restarts.

use catalog::{JobFilter, JobKind, TaskSettings};
use chrono::{Duration, TimeZone, Utc};
use worker::Scheduler;

worker_test!(
    async fn due_tasks_enqueue_once_per_slot_and_restarts_do_not_double(env) {
        let task = env
            .task(TaskSettings {
                auto_activate_new: true,
                backup_hour_utc: 2,
                ..Default::default()
            })
            .await;
        worker::discover_task(&env.rt, env.account, task.id, None)
            .await
            .expect("discovery");
        let active = env.entities(&task).await.iter().filter(|e| e.active).count();
        assert!(active > 0);
        // Pause one: it is not scheduled.
        let paused = env.entities(&task).await[0].id;
        env.rt.catalog.pause_entities(env.account, &[paused]).await.expect("pause");

        let now = Utc.with_ymd_and_hms(2026, 3, 10, 2, 30, 0).single().expect("time");
        let r = Scheduler::new(env.rt.clone()).tick(now).await.expect("tick");
        assert_eq!(r.backups, active - 1);
        assert_eq!(r.discoveries, 1);
        // The same slot again, from this scheduler or a restarted one: nothing.
        let again = Scheduler::new(env.rt.clone()).tick(now + Duration::minutes(20)).await.expect("tick");
        assert_eq!((again.backups, again.discoveries), (0, 0));

        let jobs = env
            .rt
            .catalog
            .list_jobs(env.account, &JobFilter { kinds: vec![JobKind::Backup], ..Default::default() })
            .await
            .expect("jobs");
        assert_eq!(jobs.len(), active - 1);
        assert!(jobs.iter().all(|j| j.entity_id != Some(paused) && j.initiator.as_deref() == Some("schedule")));

        // The next day's slot: the pending jobs of yesterday are not doubled
        // (one job per entity at a time), but the slot is taken.
        let tomorrow = now + Duration::days(1);
        let r = Scheduler::new(env.rt.clone()).tick(tomorrow).await.expect("tick");
        assert_eq!(r.backups, 0, "entities with a pending backup are not queued twice");
        assert_eq!(r.discoveries, 0, "yesterday's discovery is still pending");
        assert_eq!(
            env.rt.catalog.last_schedule_slot(env.account, task.id, worker::scheduler::BACKUP_SLOT).await.expect("slot"),
            Some(Utc.with_ymd_and_hms(2026, 3, 11, 2, 0, 0).single().expect("time"))
        );

        // A paused task is not scheduled.
        env.rt
            .catalog
            .set_task_status(env.account, task.id, catalog::TaskStatus::Paused)
            .await
            .expect("pause task");
        let r = Scheduler::new(env.rt.clone()).tick(tomorrow + Duration::days(1)).await.expect("tick");
        assert_eq!((r.backups, r.discoveries), (0, 0));
    }
);
