//! Composing and delivering the newsletter email, the retry policy, and the plan of a send.

pub mod compose;
pub mod deliver;
pub mod plan;
pub mod policy;
pub mod smtp;
