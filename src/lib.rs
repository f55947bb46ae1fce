//! techshack: publish a Markdown digest newsletter as feeds, a web archive and email, and send
//! it over SMTP to a subscriber list kept in SQLite.

pub mod cli;
pub mod commands;
pub mod config;
pub mod diag;
pub mod emit;
pub mod issue;
pub mod layout;
pub mod mail;
pub mod markdown;
pub mod model;
pub mod plaintext;
pub mod secrets;
pub mod serve;
pub mod store;
pub mod templates;
pub mod token;

/// Exit code of a `send` that left deliveries deferred for a later run (EX_TEMPFAIL).
pub const EXIT_TEMPFAIL: u8 = 75;
