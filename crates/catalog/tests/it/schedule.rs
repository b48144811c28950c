//! The scheduler's slots: claimed once, only forward, per task and kind.

use crate::common::t0;
use catalog::{Service, TaskId};
use chrono::Duration;

db_test!(
    async fn slots_are_claimed_once_and_only_forward(db) {
        let a = db.account("A").await;
        let b = db.account("B").await;
        let task = db.task(a, Service::Exchange).await;
        let c = &db.catalog;
        assert_eq!(c.last_schedule_slot(a, task.id, "backup").await.unwrap(), None);
        assert!(c.claim_schedule_slot(a, task.id, "backup", t0()).await.unwrap());
        assert!(
            !c.claim_schedule_slot(a, task.id, "backup", t0()).await.unwrap(),
            "the same slot twice"
        );
        assert!(
            !c.claim_schedule_slot(a, task.id, "backup", t0() - Duration::days(1))
                .await
                .unwrap(),
            "an older slot"
        );
        assert!(
            c.claim_schedule_slot(a, task.id, "discovery", t0()).await.unwrap(),
            "kinds are independent"
        );
        let next = t0() + Duration::days(1);
        assert!(c.claim_schedule_slot(a, task.id, "backup", next).await.unwrap());
        assert_eq!(
            c.last_schedule_slot(a, task.id, "backup").await.unwrap(),
            Some(next)
        );
        // Another account cannot claim (or read) this task's slots.
        assert!(
            c.claim_schedule_slot(b, task.id, "backup", next + Duration::days(1))
                .await
                .is_err()
        );
        assert_eq!(c.last_schedule_slot(b, task.id, "backup").await.unwrap(), None);
        assert!(
            c.claim_schedule_slot(a, TaskId::random(), "backup", next)
                .await
                .is_err()
        );
        assert!(c.claim_schedule_slot(a, task.id, " ", next).await.is_err());
    }
);
