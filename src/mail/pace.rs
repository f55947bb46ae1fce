//! The pace of a send: one global rate (`smtp.rate`) for all sessions, and a pace per
//! recipient domain that a rate-limit reply slows down, so one slow provider does not slow
//! everyone else. `[smtp.domains]` sets a domain's own rate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How often a wait looks at the stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(100);

/// The slowest a domain gets: this many times its normal interval.
const MAX_FACTOR: f64 = 64.0;

/// One global pace for all sessions.
pub struct Limiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Limiter {
    pub fn new(rate: f64) -> Limiter {
        Limiter {
            interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            next: Mutex::new(Instant::now()),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for this session's next slot. Returns false, early, once `stop` is set: at a low
    /// rate a slot can be many seconds away, and a signal must not wait for it.
    pub async fn wait(&self, stop: &AtomicBool) -> bool {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        wait_until(slot, stop).await
    }
}

/// Sleeps until `at`, looking at `stop` every [`STOP_POLL`]; false when stopped.
pub async fn wait_until(at: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        tokio::time::sleep_until(at.min(now + STOP_POLL)).await;
    }
}

/// Where one domain's pace stands.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// The earliest the next message to this domain may go.
    next: Instant,
    /// The domain's own interval: from `[smtp.domains]`, else none beyond the global one.
    base: Duration,
    /// 1 normally; doubled by every slow-down, won back 5% by every success.
    factor: f64,
}

/// The pace of every recipient domain seen in this run.
pub struct Domains {
    /// The global interval: the unit a slowed domain's interval is counted in.
    global: Duration,
    rates: HashMap<String, f64>,
    paces: Mutex<HashMap<String, Pace>>,
}

/// The domain of an address, lowercased: what a pace is kept per.
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(address)
        .to_ascii_lowercase()
}

impl Domains {
    /// `rates`: messages per second per domain (lowercase), from `[smtp.domains]`.
    pub fn new(global: Duration, rates: HashMap<String, f64>) -> Domains {
        Domains {
            global,
            rates,
            paces: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, domain: &str, now: Instant) -> Pace {
        let base = match self.rates.get(domain) {
            Some(r) => Duration::from_secs_f64(1.0 / r.max(0.001)),
            None => Duration::ZERO,
        };
        Pace {
            next: now,
            base,
            factor: 1.0,
        }
    }

    fn interval(&self, p: &Pace) -> Duration {
        if p.factor > 1.0 {
            p.base.max(self.global.mul_f64(p.factor))
        } else {
            p.base
        }
    }

    /// Takes a slot for `domain` if one is free now; else says when the next one is.
    pub fn take(&self, domain: &str, now: Instant) -> Result<(), Instant> {
        let mut paces = self.paces.lock().unwrap_or_else(|e| e.into_inner());
        let p = paces
            .entry(domain.to_string())
            .or_insert_with(|| self.fresh(domain, now));
        if p.next > now {
            return Err(p.next);
        }
        let interval = self.interval(p);
        p.next = now + interval;
        Ok(())
    }

    /// The server asked for less traffic to `domain`: its interval doubles.
    pub fn slow_down(&self, domain: &str) {
        let now = Instant::now();
        let mut paces = self.paces.lock().unwrap_or_else(|e| e.into_inner());
        let p = paces
            .entry(domain.to_string())
            .or_insert_with(|| self.fresh(domain, now));
        p.factor = (p.factor * 2.0).clamp(2.0, MAX_FACTOR);
        let interval = self.interval(p);
        p.next = p.next.max(now + interval);
    }

    /// A message to `domain` went through: a slowed domain wins back a little.
    pub fn success(&self, domain: &str) {
        let mut paces = self.paces.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = paces.get_mut(domain) {
            if p.factor > 1.0 {
                p.factor *= 0.95;
                if p.factor < 1.05 {
                    p.factor = 1.0;
                }
            }
        }
    }

    #[cfg(test)]
    fn factor(&self, domain: &str) -> f64 {
        let paces = self.paces.lock().unwrap();
        paces.get(domain).map(|p| p.factor).unwrap_or(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn limiter_paces() {
        let l = Limiter::new(100.0);
        let go = AtomicBool::new(false);
        let t = Instant::now();
        for _ in 0..11 {
            assert!(l.wait(&go).await);
        }
        assert!(t.elapsed() >= Duration::from_millis(95));
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_for_a_distant_slot() {
        // One message a day: the second slot is a day away.
        let l = Limiter::new(1.0 / 86_400.0);
        let stop = Arc::new(AtomicBool::new(false));
        assert!(l.wait(&stop).await);
        let setter = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                stop.store(true, Ordering::Relaxed);
            })
        };
        // Only the stop can end this wait before the timeout does.
        let waited = tokio::time::timeout(Duration::from_secs(30), l.wait(&stop)).await;
        assert_eq!(waited.ok(), Some(false), "the stop ends the wait");
        setter.await.unwrap();
    }

    #[test]
    fn a_slow_down_slows_only_its_domain_and_successes_win_it_back() {
        let ms = Duration::from_millis;
        let d = Domains::new(ms(10), HashMap::new());
        let t = Instant::now();
        assert_eq!(d.take("slow.example", t), Ok(()));
        // Without a limit of its own a domain only has the global pace.
        assert_eq!(d.take("slow.example", t), Ok(()));
        d.slow_down("slow.example");
        assert_eq!(d.factor("slow.example"), 2.0);
        assert!(d.take("slow.example", t).is_err());
        assert_eq!(d.take("fast.example", t), Ok(()));
        assert_eq!(d.take("fast.example", t), Ok(()));
        d.slow_down("slow.example");
        assert_eq!(d.factor("slow.example"), 4.0);
        let later = Instant::now() + ms(40);
        assert_eq!(d.take("slow.example", later), Ok(()));
        assert_eq!(d.take("slow.example", later + ms(39)), Err(later + ms(40)));
        for _ in 0..100 {
            d.success("slow.example");
        }
        assert_eq!(d.factor("slow.example"), 1.0);
    }

    #[test]
    fn a_domain_rate_from_the_config_applies_to_that_domain() {
        let ms = Duration::from_millis;
        let d = Domains::new(ms(1), HashMap::from([("gmail.com".to_string(), 20.0)]));
        let t = Instant::now();
        assert_eq!(d.take("gmail.com", t), Ok(()));
        assert_eq!(d.take("gmail.com", t + ms(10)), Err(t + ms(50)));
        assert_eq!(d.take("gmail.com", t + ms(50)), Ok(()));
        assert_eq!(d.take("example.org", t), Ok(()));
        assert_eq!(d.take("example.org", t), Ok(()));
        assert_eq!(domain_of("Ann@GMail.COM"), "gmail.com");
    }
}
