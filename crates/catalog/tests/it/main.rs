//! Catalog tests. Every test is written once with `db_test!` and runs on
//! SQLite (a temp file) and on PostgreSQL (a fresh database, dropped after).

/// Expand one test body into a SQLite and a PostgreSQL test:
/// `db_test!(async fn name(db) { ... })` gives `name::sqlite` and
/// `name::postgres`; `db` is a [`common::TestDb`].
macro_rules! db_test {
    ($(#[$m:meta])* async fn $name:ident($db:ident) $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::common::run(catalog::Backend::Sqlite, |$db: crate::common::TestDb| async move $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::common::run(catalog::Backend::Postgres, |$db: crate::common::TestDb| async move $body).await;
            }
        }
    };
}

mod common;

mod accounts;
mod activity;
mod bad_input;
mod entities;
mod isolation;
mod jobs;
mod recovery;
mod runs;
mod schedule;
mod tasks;
mod users;
