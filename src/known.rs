//! The networks each account logged in from lately, a small file per account in state_dir: its logins wait less there.
//!
//! One line per network (the address masked to `network_prefix_ipv4`/
//! `_ipv6`), at most `KNOWN_NETWORKS_PER_ACCOUNT`, written only after a
//! login succeeded and again only when a network's time is a day old. It
//! is a hint shared by daemons and inetd sessions on one state_dir: a lost
//! or torn file costs a stranger's delay, nothing more (format: DESIGN.md,
//! "Files in state_dir").

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::limits::{KNOWN_NETWORKS_PER_ACCOUNT, KNOWN_REFRESH};
use crate::nofollow;

/// Where the records are, and for how long a login makes its network known.
#[derive(Debug, Clone)]
pub struct Known {
    pub dir: PathBuf,
    pub period: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The networks of an account's file, with the time of the last login from each.
fn read(path: &Path) -> Vec<((IpAddr, u8), u64)> {
    let Ok(text) = nofollow::read_state(path) else { return Vec::new() };
    text.lines()
        .take(KNOWN_NETWORKS_PER_ACCOUNT)
        .filter_map(|line| {
            let (net, at) = line.split_once(' ')?;
            let (ip, len) = net.split_once('/')?;
            Some(((ip.parse().ok()?, len.parse().ok()?), at.parse().ok()?))
        })
        .collect()
}

impl Known {
    fn path(&self, name: &str) -> Option<PathBuf> {
        crate::users::valid_name(name).then(|| self.dir.join(format!("{name}.known")))
    }

    /// Whether `name` logged in from `net` within the period.
    pub fn is_known(&self, name: &str, net: (IpAddr, u8)) -> bool {
        if self.period.is_zero() {
            return false;
        }
        let Some(path) = self.path(name) else { return false };
        let now = now_ms();
        read(&path).iter().any(|&(n, at)| n == net && now.saturating_sub(at) < self.period.as_millis() as u64)
    }

    /// `name` logged in from `net` now.
    pub fn remember(&self, name: &str, net: (IpAddr, u8)) {
        let Some(path) = self.path(name) else { return };
        if self.period.is_zero() {
            return;
        }
        let now = now_ms();
        let mut nets = read(&path);
        if nets.iter().any(|&(n, at)| n == net && now.saturating_sub(at) < KNOWN_REFRESH.as_millis() as u64) {
            return;
        }
        nets.retain(|&(n, _)| n != net);
        nets.sort_by_key(|&(_, at)| std::cmp::Reverse(at));
        nets.truncate(KNOWN_NETWORKS_PER_ACCOUNT - 1);
        let mut text = format!("{}/{} {now}\n", net.0, net.1);
        for ((ip, len), at) in nets {
            text.push_str(&format!("{ip}/{len} {at}\n"));
        }
        if let Err(e) = nofollow::replace_state(&path, &text) {
            log::warn!("cannot write {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TempDir;

    fn net(s: &str) -> (IpAddr, u8) {
        (s.parse().unwrap(), 32)
    }

    #[test]
    fn a_login_makes_its_network_known_for_the_period_and_the_file_stays_bounded() {
        let dir = TempDir::new("known");
        let known = Known { dir: dir.path().to_path_buf(), period: Duration::from_secs(3600) };
        assert!(!known.is_known("alice", net("192.0.2.1")));
        known.remember("alice", net("192.0.2.1"));
        assert!(known.is_known("alice", net("192.0.2.1")));
        assert!(!known.is_known("alice", net("192.0.2.2")), "another network");
        assert!(!known.is_known("bob", net("192.0.2.1")), "another account");
        for i in 0..(KNOWN_NETWORKS_PER_ACCOUNT as u32 + 5) {
            known.remember("alice", net(&std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()));
        }
        let text = std::fs::read_to_string(dir.join("alice.known")).unwrap();
        assert_eq!(text.lines().count(), KNOWN_NETWORKS_PER_ACCOUNT);
        assert!(!known.is_known("alice", net("192.0.2.1")), "the least recent went first");
        // Expired: a time older than the period.
        std::fs::write(dir.join("bob.known"), format!("192.0.2.1/32 {}\n", now_ms() - 7_200_000)).unwrap();
        assert!(!known.is_known("bob", net("192.0.2.1")));
        // Switched off, and names that cannot be files.
        let off = Known { period: Duration::ZERO, ..known.clone() };
        assert!(!off.is_known("alice", net("10.0.0.1")));
        known.remember("../x", net("192.0.2.1"));
        assert!(!dir.join("../x.known").exists());
    }

    #[test]
    fn a_current_record_is_not_written_again_and_garbage_is_skipped() {
        let dir = TempDir::new("known");
        let known = Known { dir: dir.path().to_path_buf(), period: Duration::from_secs(3600) };
        known.remember("alice", net("192.0.2.1"));
        let path = dir.join("alice.known");
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        known.remember("alice", net("192.0.2.1"));
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!((after.modified().unwrap(), std::os::unix::fs::MetadataExt::ino(&after)), (before, inode));
        std::fs::write(&path, format!("junk\n192.0.2.9/32 x\n192.0.2.1/32 {}\n", now_ms())).unwrap();
        assert!(known.is_known("alice", net("192.0.2.1")));
    }
}
