//! Composing, recording and delivering the newsletter email.

pub mod compose;
