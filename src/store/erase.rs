//! Erasure (GDPR article 17): an address and its name leave every table, and a keyed hash of
//! the address stays in `erased_addresses` so that a later import or `add` of it is refused;
//! only a new double opt-in through `serve` brings it back.
//!
//! The hash is HMAC-SHA256 under `$TECHSHACK_SECRET` (and, during a rotation,
//! `$TECHSHACK_SECRET_PREVIOUS`), so the list alone does not tell whether an address is on it.

use std::collections::HashMap;

use anyhow::{bail, Result};

use super::db::{p, Conn};
use super::{now_text, Address, Store, ToAddress};
use crate::token::address_hash;

/// What an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Whether the address was on the subscriber list.
    pub subscriber: bool,
    /// Status changes removed.
    pub events: usize,
    /// Delivery rows removed.
    pub deliveries: usize,
}

/// The erased hashes, with the keys to test an address against them.
pub(crate) struct ErasedMatcher {
    keys: Vec<Vec<u8>>,
    /// Hash to erasure time.
    hashes: HashMap<String, String>,
}

impl ErasedMatcher {
    /// Whether `address` was erased (under any of the keys).
    pub(crate) fn matches(&self, address: &Address) -> bool {
        self.erased_at(address).is_some()
    }

    /// When `address` was erased, if it was.
    pub(crate) fn erased_at(&self, address: &Address) -> Option<&str> {
        if self.hashes.is_empty() {
            return None;
        }
        self.keys
            .iter()
            .find_map(|k| self.hashes.get(&address_hash(k, address)))
            .map(String::as_str)
    }
}

impl Store {
    /// The keys erased addresses are hashed with: `$TECHSHACK_SECRET` first, then the
    /// previous secret during a rotation. Without them, erasing is refused, and so is adding
    /// or importing while any address is erased.
    pub fn set_keys(&mut self, keys: Vec<Vec<u8>>) {
        self.keys = keys;
    }

    /// Erases `address` from every table and keeps its keyed hash.
    pub fn erase(&mut self, address: impl ToAddress) -> Result<Erased> {
        let a = address.to_address()?;
        let Some(key) = self.keys.first().cloned() else {
            bail!("$TECHSHACK_SECRET is not set: erasing keeps a hash of the address keyed by it, so that the address is never added back; set it first");
        };
        let tx = self.conn.write()?;
        let out = Erased {
            subscriber: tx.execute("DELETE FROM subscribers WHERE address = ?1", p![a.as_str()])?
                == 1,
            events: tx.execute(
                "DELETE FROM subscriber_events WHERE address = ?1",
                p![a.as_str()],
            )?,
            deliveries: tx.execute("DELETE FROM deliveries WHERE address = ?1", p![a.as_str()])?,
        };
        for table in [
            "serve_confirm_mails",
            "soft_bounces",
            "inbound_messages",
            "confirm_queue",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE address = ?1"),
                p![a.as_str()],
            )?;
        }
        for k in &self.keys {
            tx.execute(
                "DELETE FROM erased_addresses WHERE hash = ?1",
                p![address_hash(k, &a)],
            )?;
        }
        insert_erased(&tx, &address_hash(&key, &a), &now_text())?;
        tx.commit()?;
        Ok(out)
    }

    /// Every erased hash with its time, by hash (for export).
    pub fn erased_hashes(&self) -> Result<Vec<(String, String)>> {
        self.conn
            .query(
                "SELECT hash, erased_at FROM erased_addresses ORDER BY hash",
                p![],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }
}

/// The erased hashes as stored, read inside the caller's transaction.
pub(crate) fn matcher(conn: &Conn, keys: &[Vec<u8>]) -> Result<ErasedMatcher> {
    let hashes = conn
        .query("SELECT hash, erased_at FROM erased_addresses", p![])?
        .iter()
        .map(|r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    if !hashes.is_empty() && keys.is_empty() {
        bail!(
            "{} erased address(es) are kept as hashes keyed by $TECHSHACK_SECRET: set it, so that none of them is added back",
            hashes.len()
        );
    }
    Ok(ErasedMatcher {
        keys: keys.to_vec(),
        hashes,
    })
}

/// Keeps one erased hash (an erasure, or a restored or imported `erased` row).
pub(crate) fn insert_erased(conn: &Conn, hash: &str, at: &str) -> Result<bool> {
    Ok(conn.execute(
        "INSERT INTO erased_addresses (hash, erased_at) VALUES (?1, ?2)
         ON CONFLICT (hash) DO NOTHING",
        p![hash, at],
    )? == 1)
}

/// Forgets the erasure of `address`: it has confirmed again through double opt-in.
pub(crate) fn clear_erased(conn: &Conn, keys: &[Vec<u8>], address: &Address) -> Result<()> {
    for k in keys {
        conn.execute(
            "DELETE FROM erased_addresses WHERE hash = ?1",
            p![address_hash(k, address)],
        )?;
    }
    Ok(())
}
