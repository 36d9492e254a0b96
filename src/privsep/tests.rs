//! Tests of the credentials helper: its requests, answers over a real socket pair, malformed ones refused.

use super::*;
use crate::testkit::TempDir;
use std::time::Instant;

fn account_files(dir: &TempDir) -> Files {
    let f = Files { passwd: dir.path().join("passwd"), shadow: dir.path().join("shadow") };
    let hash = crate::sys::crypt("$6$salt$", b"right").unwrap();
    std::fs::write(&f.passwd, "ann:x:1500:1600:Ann:/home/ann:/bin/sh\n").unwrap();
    std::fs::write(&f.shadow, format!("ann:{hash}:19000:0:99999:7:::\n")).unwrap();
    f
}

#[test]
fn requests_and_answers_round_trip_and_malformed_ones_are_refused() {
    let m = encode_request(7, "ann", b"pw:with\0odd bytes").unwrap();
    assert_eq!(decode_request(&m), Some(Request { seq: 7, name: "ann", password: b"pw:with\0odd bytes" }));
    assert!(encode_request(1, &"x".repeat(MAX_USER_NAME + 1), b"").is_none());
    assert!(encode_request(1, "ann", &vec![b'p'; HELPER_MESSAGE]).is_none());
    for bad in [&b""[..], b"C", b"C\0\0\0\x01", b"X\0\0\0\x01\x03annpw", b"C\0\0\0\x01\x09ann", b"C\0\0\0\x01\x02../"] {
        assert_eq!(decode_request(bad), None, "{bad:?}");
    }
    assert_eq!(decode_request(b"C\0\0\0\x01\x03a/b"), None);
    assert_eq!(sequence(b"X\0\0\x01\x02junk"), 258, "a malformed request's answer still names it");
    let yes = Answer::Yes(Account { uid: 7, gid: 8, home: "/h".into() });
    for a in [yes, Answer::No(Refusal::Locked as u8), Answer::Unavailable, Answer::Malformed] {
        assert_eq!(decode_answer(&encode_answer(9, &a)), Some((9, a)));
    }
    assert_eq!(decode_answer(b"Y\0\0\0\x01\0\0"), None);
    assert_eq!(decode_answer(b"N\0\0\0\x01extra"), None);
    assert_eq!(decode_answer(b"N\0\0\0\x01"), None, "a no says why");
}

#[test]
fn the_daemon_helper_answers_every_session_and_refuses_malformed_requests() {
    let dir = TempDir::new("privsep");
    let files = account_files(&dir);
    let (ours, theirs) = process::seqpacket_pair().unwrap();
    let helper = std::thread::spawn(move || serve(&theirs, &files, Serving::Daemon));
    let client = Helper::new(ours.try_clone().unwrap(), false);
    let ann = Account { uid: 1500, gid: 1600, home: "/home/ann".into() };
    assert_eq!(client.check("ann", b"right", &|| false).unwrap(), Ok(ann.clone()));
    assert_eq!(client.check("ann", b"wrong", &|| false).unwrap(), Err("wrong password"));
    assert_eq!(client.check("bob", b"right", &|| false).unwrap(), Err("unknown user"));
    // A compromised session's request: answered E, and the helper goes on.
    process::send_message(ours.as_fd(), b"C\0\0\0\x05\xffann").unwrap();
    let answer = || {
        let mut buf = [0u8; 16];
        let n = process::receive_message(ours.as_fd(), &mut buf).unwrap();
        buf[..n].to_vec()
    };
    assert_eq!(answer(), b"E\0\0\0\x05");
    process::send_message(ours.as_fd(), &vec![b'C'; HELPER_MESSAGE + 1]).unwrap();
    assert_eq!(answer()[0], b'E');
    // An answer left over from a request whose session stopped waiting is
    // not taken for the next one.
    process::send_message(ours.as_fd(), &encode_request(1000, "ann", b"right").unwrap()).unwrap();
    assert_eq!(client.check("ann", b"wrong", &|| false).unwrap(), Err("wrong password"));
    assert_eq!(client.check("ann", b"right", &|| false).unwrap(), Ok(ann));
    drop((client, ours));
    assert_eq!(helper.join().unwrap(), None, "the helper ends with its sessions");
}

#[test]
fn an_inetd_helper_ends_at_the_login_at_a_malformed_request_or_after_its_checks() {
    let dir = TempDir::new("privsep");
    let run = |requests: Vec<Vec<u8>>, checks: u32| {
        let files = account_files(&dir);
        let (ours, theirs) = process::seqpacket_pair().unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let helper = std::thread::spawn(move || serve(&theirs, &files, Serving::OneSession { checks, until }));
        let mut answers = Vec::new();
        for r in requests {
            // A helper that has ended takes no more requests.
            if process::send_message(ours.as_fd(), &r).is_err() {
                break;
            }
            let mut buf = [0u8; 64];
            match process::receive_message(ours.as_fd(), &mut buf) {
                Ok(n) if n > 0 => answers.push(buf[0]),
                _ => break,
            }
        }
        (answers, helper.join().unwrap())
    };
    let (right, wrong) = (encode_request(1, "ann", b"right").unwrap(), encode_request(2, "ann", b"wrong").unwrap());
    let (answers, login) = run(vec![wrong.clone(), right.clone(), wrong.clone()], 5);
    assert_eq!(answers, b"NY");
    assert_eq!(login.map(|l| (l.name, l.account.uid)), Some(("ann".to_string(), 1500)));
    let (answers, login) = run(vec![b"junk".to_vec(), right.clone()], 5);
    assert_eq!((answers, login), (b"E".to_vec(), None));
    let (answers, login) = run(vec![wrong.clone(), wrong.clone(), right], 2);
    assert_eq!((answers, login), (b"NN".to_vec(), None));
}

#[test]
fn an_inetd_helper_ends_at_the_deadline_of_a_session_that_never_asks() {
    let dir = TempDir::new("privsep");
    let files = account_files(&dir);
    let (_ours, theirs) = process::seqpacket_pair().unwrap();
    let until = Instant::now() + std::time::Duration::from_millis(50);
    assert_eq!(serve(&theirs, &files, Serving::OneSession { checks: 5, until }), None);
}

#[test]
fn failures_are_spaced_per_name_and_in_all() {
    use crate::limits::{HELPER_FAILURE_BURST, HELPER_NAME_BURST, HELPER_NAME_SPACING};
    let mut s = spacing::Spacing::default();
    for _ in 0..HELPER_NAME_BURST - 1 {
        s.failed("ann");
    }
    assert_eq!(s.next_check("ann"), None, "within the burst");
    s.failed("ann");
    let next = s.next_check("ann").unwrap();
    assert!(next > Instant::now() + HELPER_NAME_SPACING / 2, "one name's guesses are spaced");
    assert_eq!(s.next_check("bob"), None, "another name is not held back by them");
    for i in 0..HELPER_FAILURE_BURST {
        s.failed(&format!("n{i}"));
    }
    assert!(s.next_check("bob").is_some(), "a flood of names slows every check");
}

/// inetd mode's root helper against a child process that spends its checks
/// and then stops (a wedged or compromised one): the helper's service ends
/// after the checks, and the child is ended at the deadline, not waited for.
#[test]
fn a_child_that_spends_its_checks_and_stops_is_ended_at_the_deadline() {
    let dir = TempDir::new("privsep");
    let files = account_files(&dir);
    let (ours, theirs) = process::seqpacket_pair().unwrap();
    // Made before the fork: the child only sends, reads and stops.
    let requests = [encode_request(1, "ann", b"wrong").unwrap(), encode_request(2, "ann", b"worse").unwrap()];
    let child = match process::fork().unwrap() {
        Forked::Child => {
            let mut answer = [0u8; 64];
            for r in &requests {
                if process::send_message(ours.as_fd(), r).is_err()
                    || process::receive_message(ours.as_fd(), &mut answer).is_err()
                {
                    process::exit_now(1);
                }
            }
            process::stop_self();
            process::exit_now(0)
        }
        Forked::Parent(pid) => pid,
    };
    drop(ours);
    let until = Instant::now() + std::time::Duration::from_millis(300);
    assert_eq!(serve(&theirs, &files, Serving::OneSession { checks: 2, until }), None, "its checks are spent");
    assert!(!process::end_child(child, until), "the stopped child was ended, not waited for");
    assert!(Instant::now() >= until, "ended before the deadline");
    assert_eq!(process::wait_until(child, Instant::now()), process::Ended::Exited(false), "and reaped");
}

#[test]
fn the_helper_is_asked_in_the_order_sessions_came_and_an_abandoned_place_is_skipped() {
    let mut q = Queue { next: 5, ..Queue::default() };
    q.abandoned.insert(1);
    q.abandoned.insert(2);
    q.pass();
    assert_eq!(q.serving, 3, "tickets 1 and 2 stopped waiting: 3 is next");
    assert!(q.abandoned.is_empty());
    q.pass();
    assert_eq!(q.serving, 4);
}
