//! A private Postfix instance as the relay a newsletter sends through: its own
//! `config_directory`, queue and Maildir under the test's folder, `smtpd` on a loopback port,
//! every other domain relayed to a next hop (the fault-injecting test server), and mail for
//! `local_domain` (where bounces go) delivered by Postfix's `virtual` agent into one Maildir.
//! Queue lifetimes are zero, so a deferral is returned at once by Postfix's own bounce daemon.
//!
//! Postfix's master runs as root and drops to the `postfix` user, as on a mail server: the
//! tests run as root (as `.ci/run` does), and `scripts/setup-test-deps` installs Postfix.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct Relay {
    etc: PathBuf,
    pub port: u16,
    /// The Maildir that receives mail for `local_domain`.
    pub maildir: PathBuf,
    pub log: PathBuf,
}

fn id(flag: &str) -> String {
    let out = Command::new("id").args([flag, "postfix"]).output().unwrap();
    assert!(
        out.status.success(),
        "there is no `postfix` user: run scripts/setup-test-deps to install Postfix"
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Postfix's control command; it writes its messages to a terminal only, so they are
/// collected from its log file instead.
fn postfix(etc: &Path, what: &str) -> bool {
    Command::new("/usr/sbin/postfix")
        .arg("-c")
        .arg(etc)
        .arg(what)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running /usr/sbin/postfix: install it with scripts/setup-test-deps")
        .success()
}

const SERVICES: &str = "\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
";

impl Relay {
    /// Starts Postfix in `dir/postfix`, relaying to `127.0.0.1:next_hop`.
    pub fn start(dir: &Path, next_hop: u16, local_domain: &str) -> Relay {
        let root = dir.join("postfix");
        let (etc, queue, data, mail) = (
            root.join("etc"),
            root.join("queue"),
            root.join("data"),
            root.join("mail"),
        );
        for d in [&etc, &queue, &data, &mail] {
            std::fs::create_dir_all(d).unwrap();
        }
        let (uid, gid) = (id("-u"), id("-g"));
        let chown = |p: &Path| {
            let ok = Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(p)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown {}", p.display());
        };
        chown(&data);
        chown(&mail);
        // The postfix user must reach its queue: the test's folder is private by default.
        for p in [dir, root.as_path()] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let port = free_port();
        let log = root.join("maillog");
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {root}
maillog_file = {log}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.test
mydomain = relay.test
myorigin = relay.test
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = smtp:[127.0.0.1]:{next_hop}
smtp_dns_support_level = disabled
virtual_mailbox_domains = {local_domain}
virtual_mailbox_base = {mail}
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 5s
alias_maps =
alias_database =
biff = no
",
            queue = queue.display(),
            data = data.display(),
            root = root.display(),
            log = log.display(),
            mail = mail.display(),
        );
        std::fs::write(etc.join("main.cf"), main_cf).unwrap();
        std::fs::write(
            etc.join("master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n{SERVICES}"),
        )
        .unwrap();
        let relay = Relay {
            etc,
            port,
            maildir: mail.join("box"),
            log,
        };
        assert!(
            postfix(&relay.etc, "start"),
            "Postfix did not start: {}",
            std::fs::read_to_string(&relay.log).unwrap_or_default()
        );
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "Postfix does not listen on {port}: {}",
                std::fs::read_to_string(&relay.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        relay
    }

    /// The messages delivered to the Maildir so far (`new/`), oldest first by name.
    pub fn delivered(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Waits until at least `n` messages are in the Maildir, failing after `secs` seconds.
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<PathBuf> {
        let t = Instant::now();
        loop {
            let v = self.delivered();
            if v.len() >= n {
                return v;
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "{} of {n} messages arrived in {}s; Postfix log:\n{}",
                v.len(),
                secs,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if !postfix(&self.etc, "stop") {
            let _ = postfix(&self.etc, "abort");
        }
    }
}
