//! Stores for the unit tests, on each backend: a SQLite file in a temporary folder, or a
//! fresh database on the tests' PostgreSQL cluster.

use super::db::Backend;
use super::{Location, Store};

/// What keeps a test's state alive (the SQLite file's folder).
pub(crate) struct Keep(Option<tempfile::TempDir>);

impl Keep {
    /// The SQLite file's folder, `None` on PostgreSQL.
    pub(crate) fn path(&self) -> Option<&std::path::Path> {
        self.0.as_ref().map(|d| d.path())
    }
}

/// A new, empty, migrated store on `backend`.
pub(crate) fn store(backend: Backend) -> (Keep, Store) {
    match backend {
        Backend::Sqlite => {
            let d = tempfile::tempdir().unwrap();
            let s = Store::open(&d.path().join("state.sqlite3")).unwrap();
            (Keep(Some(d)), s)
        }
        Backend::Postgres => {
            let url = super::pg_cluster::database_url();
            (
                Keep(None),
                Store::open_at(&Location::Postgres(url)).unwrap(),
            )
        }
    }
}

/// `on_both!(a, b)`: tests `a::sqlite`, `a::postgres`, … that call `fn a(Backend)` once per
/// backend.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::store::db::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name($crate::store::db::Backend::Postgres)
            }
        }
    )*};
}
pub(crate) use on_both;

/// [`on_both!`] for `async fn a(Backend)`, each on a runtime of its own.
macro_rules! on_both_async {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            fn run(b: $crate::store::db::Backend) {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(super::$name(b))
            }
            #[test]
            fn sqlite() {
                run($crate::store::db::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                run($crate::store::db::Backend::Postgres)
            }
        }
    )*};
}
pub(crate) use on_both_async;
