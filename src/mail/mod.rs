//! Composing, recording and delivering the newsletter email.

pub mod compose;
pub mod deliver;
pub mod ledger;
pub mod smtp;
