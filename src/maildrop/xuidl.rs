//! The X-UIDL migration option: the ids qpopper and mailutils wrote reused as UIDLs, where valid and unique.
//!
//! Clients moving from those servers then download nothing twice. Any
//! sender can write the header, so the option is off by default, and a
//! malformed, duplicate or colliding one falls back to pop3d's own id: ids
//! stay unique. The headers are read by `headers`.

use std::collections::{HashMap, HashSet};

use super::headers::Header;
use super::message::{Message, Uid};

/// For each message (by index), the X-UIDL id to use: its header's
/// (`headers`, a valid id), if no other message has it and it is no other
/// message's own id.
pub fn ids(headers: &[Header], messages: &[Message]) -> Vec<Option<String>> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for id in headers.iter().filter_map(|h| h.x_uidl.as_deref()) {
        *count.entry(id).or_default() += 1;
    }
    // An id that is some message's own is the text of its `Uid`.
    let own: HashSet<Uid> = messages.iter().map(|m| m.uid).collect();
    let taken = |id: &str| Uid::parse(id).is_some_and(|uid| own.contains(&uid));
    headers.iter().map(|h| h.x_uidl.as_ref().filter(|id| count[id.as_str()] == 1 && !taken(id)).cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unique_ids_that_are_no_messages_own() {
        let message =
            |n: u8| Message { start: 0, content: 0, end: 0, size: 1, uid: Uid { digest: [n; 16], copy: 0 }, head: 0 };
        let messages: Vec<Message> = (0..5).map(|n| message(n * 0x2b)).collect();
        let header = |id: Option<&str>| Header { x_uidl: id.map(String::from), no_end: false };
        let own = messages[1].uid.to_string();
        let upper = own.to_uppercase();
        let headers =
            [header(Some("a")), header(Some("twice")), header(Some("twice")), header(Some(&upper)), header(Some(&own))];
        assert_eq!(ids(&headers, &messages), [Some("a".to_string()), None, None, Some(upper), None]);
    }
}
