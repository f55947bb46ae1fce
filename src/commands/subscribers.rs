//! `techshack subscribers`.

use anyhow::Result;

use super::Ctx;

pub fn run(_ctx: &Ctx, _args: crate::cli::SubscribersCommand) -> Result<u8> {
    super::not_yet("subscribers")
}
