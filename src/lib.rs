//! techshack: publish a Markdown digest newsletter as feeds, a web archive and email, and send
//! it over SMTP to a subscriber list kept in SQLite.

pub mod cli;
pub mod commands;
pub mod config;
pub mod diag;
pub mod dkim;
pub mod emit;
pub(crate) mod html;
pub mod inbound;
pub mod issue;
pub(crate) mod layout;
pub mod mail;
pub(crate) mod markers;
pub mod model;
pub mod render;
pub(crate) mod secrets;
pub(crate) mod serve;
pub(crate) mod spelling;
pub mod store;
pub mod templates;
pub mod token;
