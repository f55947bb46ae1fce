//! Every integration test in one binary, so the crate links once: one module per topic, and
//! `support` for the temporary sites, the test servers and the message checks they share.

mod support;

mod build;
mod check_inputs;
mod cli_exit;
mod config_errors;
mod email_mime;
mod feeds;
mod inbound;
mod new_cmd;
mod out_paths;
mod outputs;
mod parse_corpus;
mod parse_fuzz;
mod parse_model;
mod pg_cluster;
mod preview_cli;
mod recipes;
mod render_build;
mod render_chromium;
mod send;
mod send_relay;
mod send_tls;
mod senders;
mod serve;
mod serve_browser;
mod serve_send;
mod shipped;
mod spam_score;
mod state_copy;
mod status;
mod subscribers;
mod subscribers_lock;
mod typos;
mod web_archive;
mod web_chromium;
