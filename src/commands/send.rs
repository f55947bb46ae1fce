//! `techshack send`.

use anyhow::Result;

use super::Ctx;

pub fn run(_ctx: &Ctx, _args: crate::cli::SendArgs) -> Result<u8> {
    super::not_yet("send")
}
