//! `techshack new`.

use anyhow::Result;

use super::Ctx;

pub fn run(_ctx: &Ctx, _args: crate::cli::NewArgs) -> Result<u8> {
    super::not_yet("new")
}
