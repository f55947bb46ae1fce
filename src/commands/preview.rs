//! `techshack preview`.

use anyhow::Result;

use super::Ctx;

pub fn run(_ctx: &Ctx, _args: crate::cli::PreviewArgs) -> Result<u8> {
    super::not_yet("preview")
}
