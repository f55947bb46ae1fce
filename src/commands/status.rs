//! `techshack status`.

use anyhow::Result;

use super::Ctx;

pub fn run(_ctx: &Ctx, _args: crate::cli::StatusArgs) -> Result<u8> {
    super::not_yet("status")
}
