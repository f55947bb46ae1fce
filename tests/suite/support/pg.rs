//! The throwaway PostgreSQL cluster of the tests: `database_url()` gives a fresh empty
//! database of the one cluster this test process starts and stops.

#[path = "../../../src/store/pg_cluster.rs"]
mod pg_cluster;

pub use pg_cluster::*;
