//! Worker tests against the in-process simulator, each on SQLite and on
//! PostgreSQL (`worker_test!` expands one body into both).

/// `worker_test!(async fn name(env) { ... })` gives `name::sqlite` and
/// `name::postgres`; `env` is a [`common::Env`].
macro_rules! worker_test {
    ($(#[$m:meta])* async fn $name:ident($env:ident) $body:block) => {
        $(#[$m])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::common::run(crate::common::Db::Sqlite, |$env: crate::common::Env| async move $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::common::run(crate::common::Db::Postgres, |$env: crate::common::Env| async move $body).await;
            }
        }
    };
}

mod common;

mod backup;
mod discovery;
mod export;
mod purge;
mod recovery;
mod scheduler;
mod services;
