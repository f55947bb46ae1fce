//! `techshack serve`.

use anyhow::Result;

use super::Ctx;

pub fn run(_ctx: &Ctx, _args: crate::cli::ServeArgs) -> Result<u8> {
    super::not_yet("serve")
}
