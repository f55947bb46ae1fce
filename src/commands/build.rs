//! `techshack build`.

use anyhow::Result;

use super::Ctx;

pub fn run(_ctx: &Ctx, _args: crate::cli::BuildArgs) -> Result<u8> {
    super::not_yet("build")
}
