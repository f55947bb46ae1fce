//! `techshack check`.

use anyhow::Result;

use super::Ctx;

pub fn run(_ctx: &Ctx) -> Result<u8> {
    super::not_yet("check")
}
