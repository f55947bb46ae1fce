//! Composing and delivering the newsletter email, the retry policy, and the plan of a send.

pub mod compose;
pub(crate) mod deliver;
pub(crate) mod plan;
pub(crate) mod policy;
pub(crate) mod session;
pub(crate) mod smtp;
