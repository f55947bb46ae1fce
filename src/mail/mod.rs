//! Composing and delivering the newsletter email, the retry policy, and the plan of a send.

pub(crate) mod breaker;
pub mod compose;
pub(crate) mod deliver;
pub(crate) mod pace;
pub(crate) mod plan;
pub(crate) mod policy;
pub(crate) mod reply;
pub(crate) mod session;
pub(crate) mod smtp;
pub mod verp;
