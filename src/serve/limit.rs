//! Per-client limits of `serve`, kept in memory and bounded in size: a token bucket for
//! `POST /subscribe`, the open connections of each client, and the hourly mail budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests a client may make at once, and how fast that allowance comes back.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub burst: u32,
    /// Time for one request's allowance to come back.
    pub refill: Duration,
}

/// The sign-up limit: five at once, then one every two minutes.
pub const SUBSCRIBE: Quota = Quota {
    burst: 5,
    refill: Duration::from_secs(120),
};

/// How many clients are remembered. A flood from more addresses than this makes new
/// addresses wait until old buckets have refilled, rather than growing without bound.
pub const MAX_CLIENTS: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by client. IPv6 clients are keyed by their /64: one host usually
/// holds a whole /64 and could otherwise walk through it.
pub struct RateLimiter {
    quota: Quota,
    max_clients: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    pub fn new(quota: Quota, max_clients: usize) -> RateLimiter {
        RateLimiter {
            quota,
            max_clients: max_clients.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request's allowance for `ip` at `now`; false when the client must wait.
    pub fn check(&self, ip: IpAddr, now: Instant) -> bool {
        let key = client_key(ip);
        let burst = f64::from(self.quota.burst.max(1));
        let per_sec = 1.0 / self.quota.refill.as_secs_f64().max(1e-9);
        let mut map = match self.buckets.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !map.contains_key(&key) && map.len() >= self.max_clients {
            // Forget clients whose bucket is full again: they are indistinguishable from new.
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst
            });
            if map.len() >= self.max_clients {
                // Still full, of a flood from many (perhaps forged) sources: forget the client
                // seen longest ago rather than refuse every new one. The mails such a flood
                // could cause are capped by the hourly budget, not here.
                if let Some(oldest) = map.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Clients remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// The confirmation mails all clients together may cause in an hour (`serve.
/// confirm_mails_per_hour`), counted in windows of an hour from the first mail of each.
pub struct HourlyBudget {
    per_hour: u32,
    window: Mutex<(Option<Instant>, u32)>,
}

impl HourlyBudget {
    pub fn new(per_hour: u32) -> HourlyBudget {
        HourlyBudget {
            per_hour,
            window: Mutex::new((None, 0)),
        }
    }

    /// Takes one mail's allowance at `now`; false when this hour's are spent.
    pub fn take(&self, now: Instant) -> bool {
        let mut w = match self.window.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let expired = match w.0 {
            None => true,
            Some(start) => now.saturating_duration_since(start) >= Duration::from_secs(3600),
        };
        if expired {
            *w = (Some(now), 0);
        }
        if w.1 < self.per_hour {
            w.1 += 1;
            true
        } else {
            false
        }
    }
}

/// Open connections per client (`serve.max_connections_per_client`), keyed as the sign-up
/// limit is. Only clients with a connection open are remembered, so the table holds at most
/// `serve.max_connections` entries.
pub struct ConnectionCount {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of a client; dropping it frees the place.
pub struct ConnectionClaim {
    counts: Arc<ConnectionCount>,
    key: IpAddr,
}

impl ConnectionCount {
    pub fn new(cap: usize) -> Arc<ConnectionCount> {
        Arc::new(ConnectionCount {
            cap: cap.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection of `ip`, or `None` when the client already holds
    /// `cap` connections.
    pub fn claim(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionClaim> {
        let key = client_key(ip);
        let mut map = match self.open.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = map.entry(key).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(ConnectionClaim {
            counts: self.clone(),
            key,
        })
    }

    /// Clients with a connection open now.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.open.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for ConnectionClaim {
    fn drop(&mut self) {
        let mut map = match self.counts.open.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Who a client is for the limits: its IPv4 address (also when it arrives as an IPv4-mapped
/// IPv6 address), or the /64 of its IPv6 address, since one host usually holds a whole /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        burst: 3,
        refill: Duration::from_secs(60),
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::new(Q, 100);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip("192.0.2.1"), t));
        }
        assert!(!l.check(ip("192.0.2.1"), t));
        assert!(l.check(ip("192.0.2.2"), t), "another client is not limited");
        assert!(!l.check(ip("192.0.2.1"), t + Duration::from_secs(59)));
        assert!(l.check(ip("192.0.2.1"), t + Duration::from_secs(121)));
    }

    #[test]
    fn ipv6_hosts_share_their_64() {
        let l = RateLimiter::new(Q, 100);
        let t = Instant::now();
        for i in 0..3 {
            assert!(l.check(ip(&format!("2001:db8:1:2::{i}")), t));
        }
        assert!(!l.check(ip("2001:db8:1:2:ffff::9"), t));
        assert!(l.check(ip("2001:db8:1:3::1"), t));
        // An IPv4 client seen through an IPv6 socket is the same client.
        for _ in 0..3 {
            assert!(l.check(ip("::ffff:192.0.2.7"), t));
        }
        assert!(!l.check(ip("192.0.2.7"), t));
    }

    #[test]
    fn memory_is_bounded_and_idle_clients_are_forgotten() {
        let l = RateLimiter::new(Q, 4);
        let t = Instant::now();
        for i in 0..4 {
            assert!(l.check(ip(&format!("198.51.100.{i}")), t));
        }
        // A full table does not lock new clients out: the client seen longest ago goes.
        assert!(l.check(ip("198.51.100.200"), t + Duration::from_secs(1)));
        assert_eq!(l.len(), 4);
        // Once the old buckets have refilled they are dropped to make room.
        assert!(l.check(ip("198.51.100.201"), t + Duration::from_secs(62)));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn a_flood_of_forged_sources_leaves_room_for_a_real_client() {
        let l = RateLimiter::new(Q, 100);
        let t = Instant::now();
        for i in 0..10_000u32 {
            let a = std::net::Ipv6Addr::new(0x2001, 0xdb8, (i >> 16) as u16, i as u16, 0, 0, 0, 1);
            l.check(IpAddr::V6(a), t);
        }
        assert!(l.check(ip("192.0.2.55"), t), "a new client after the flood");
        assert!(l.len() <= 100);
    }

    #[test]
    fn a_client_is_its_ipv4_address_or_its_ipv6_64() {
        assert_eq!(client_key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_ne!(client_key(ip("192.0.2.1")), client_key(ip("192.0.2.2")));
        assert_eq!(client_key(ip("2001:db8:1:2::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("::1")), ip("::"));
    }

    #[test]
    fn connections_are_capped_per_client_and_freed_on_close() {
        let c = ConnectionCount::new(2);
        let a = c.claim(ip("192.0.2.1")).unwrap();
        let b = c.claim(ip("::ffff:192.0.2.1")).unwrap();
        assert!(
            c.claim(ip("192.0.2.1")).is_none(),
            "a third from the same client"
        );
        let other = c
            .claim(ip("192.0.2.2"))
            .expect("another client is not capped");
        let v6: Vec<_> = ["2001:db8::1", "2001:db8::2:3"]
            .iter()
            .map(|a| c.claim(ip(a)).unwrap())
            .collect();
        assert!(c.claim(ip("2001:db8::ffff")).is_none(), "the same /64");
        assert!(c.claim(ip("2001:db8:0:1::1")).is_some(), "another /64");
        drop(a);
        let again = c.claim(ip("192.0.2.1")).expect("a place freed by a close");
        assert_eq!(c.clients(), 3);
        drop((b, again, other, v6));
        assert_eq!(c.clients(), 0, "clients without connections are forgotten");
    }

    #[test]
    fn the_hourly_budget_caps_every_client_together() {
        let b = HourlyBudget::new(3);
        let t = Instant::now();
        assert!(b.take(t) && b.take(t) && b.take(t));
        assert!(!b.take(t + Duration::from_secs(3599)));
        assert!(b.take(t + Duration::from_secs(3600)));
    }
}
