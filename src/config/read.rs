//! The configuration's value readers: one per kind of value (number, duration, size, path, list, boolean, choice).
//!
//! Each takes the value's text and gives the value or what was expected
//! (`expected seconds`); the key table (`keys`) adds the key and the text.

use std::path::PathBuf;
use std::time::Duration;

/// A value, or what was expected instead.
pub type Read<T> = Result<T, String>;

/// An unsigned whole number that fits `T` (on a 32-bit target `usize` is
/// 32 bits: 2^32 + 1 is refused, never wrapped to 1).
pub fn number<T: TryFrom<u64>>(value: &str) -> Read<T> {
    value.parse::<u64>().ok().and_then(|n| T::try_from(n).ok()).ok_or_else(|| "expected a number".into())
}

/// A whole number above 0.
pub fn positive(value: &str) -> Read<usize> {
    value.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| "expected a number above 0".into())
}

/// A whole number from 0 to `max` (a network prefix length).
pub fn prefix_len<const MAX: u8>(value: &str) -> Read<u8> {
    value.parse().ok().filter(|&n| n <= MAX).ok_or_else(|| format!("expected a prefix length 0-{MAX}"))
}

/// Whole seconds.
pub fn seconds(value: &str) -> Read<Duration> {
    value.parse().map(Duration::from_secs).map_err(|_| "expected seconds".into())
}

/// Whole seconds, at least `min`; `why` says why less is refused.
pub fn seconds_at_least(value: &str, min: Duration, why: &str) -> Read<Duration> {
    let t = seconds(value)?;
    if t < min {
        return Err(why.into());
    }
    Ok(t)
}

/// Bytes: `123`, `64K`, `512M`, `8G` (powers of 1024, either case).
pub fn size(value: &str) -> Read<u64> {
    let (digits, shift) = match value.as_bytes().last() {
        Some(b'K' | b'k') => (&value[..value.len() - 1], 10),
        Some(b'M' | b'm') => (&value[..value.len() - 1], 20),
        Some(b'G' | b'g') => (&value[..value.len() - 1], 30),
        _ => (value, 0),
    };
    let n = digits.parse::<u64>().ok().and_then(|n| n.checked_mul(1 << shift));
    n.ok_or_else(|| "expected a size like 512M or 8G".into())
}

/// `yes`, `true`, `on` or `no`, `false`, `off`.
pub fn boolean(value: &str) -> Read<bool> {
    match value {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err("expected yes or no".into()),
    }
}

/// A path, not empty.
pub fn path(value: &str) -> Read<PathBuf> {
    optional_path(value)?.ok_or_else(|| "expected a path".into())
}

/// A path, or nothing for an empty value.
pub fn optional_path(value: &str) -> Read<Option<PathBuf>> {
    Ok((!value.is_empty()).then(|| value.into()))
}

/// Text, or nothing for an empty value.
pub fn optional_text(value: &str) -> Read<Option<String>> {
    Ok((!value.is_empty()).then(|| value.to_string()))
}

/// One of `choices`, by name: the error lists the names in their order.
pub fn one_of<T: Copy>(value: &str, choices: &[(&str, T)]) -> Read<T> {
    if let Some(&(_, v)) = choices.iter().find(|(name, _)| *name == value) {
        return Ok(v);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    Err(match names.split_last() {
        Some((last, [])) => format!("expected {last}"),
        Some((last, rest)) => format!("expected {} or {last}", rest.join(", ")),
        None => "expected nothing".into(),
    })
}

/// The entries of a comma-separated list, blanks around them and empty
/// ones left out.
pub fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A comma-separated list of `item`s, each read by `item`; `expected`
/// says what an entry looks like.
pub fn list_of<T>(value: &str, item: impl Fn(&str) -> Option<T>, expected: &str) -> Read<Vec<T>> {
    list(value).map(|entry| item(entry).ok_or_else(|| expected.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_value() {
        assert_eq!(number::<u32>("4294967295"), Ok(u32::MAX));
        assert_eq!(number::<u32>("4294967296").unwrap_err(), "expected a number");
        assert!(number::<u64>("-1").is_err() && number::<u64>("").is_err() && number::<u64>(" 1").is_err());
        assert_eq!(positive("0").unwrap_err(), "expected a number above 0");
        assert_eq!(prefix_len::<32>("32"), Ok(32));
        assert_eq!(prefix_len::<32>("33").unwrap_err(), "expected a prefix length 0-32");
        assert_eq!(seconds("90"), Ok(Duration::from_secs(90)));
        assert_eq!(seconds_at_least("599", Duration::from_secs(600), "too short").unwrap_err(), "too short");
        assert_eq!(seconds_at_least("600", Duration::from_secs(600), "too short"), Ok(Duration::from_secs(600)));
        assert_eq!(size("8G"), Ok(8 << 30));
        assert_eq!(size("64k"), Ok(64 << 10));
        assert_eq!(size("17179869184G").unwrap_err(), "expected a size like 512M or 8G", "overflow");
        assert!(size("").is_err() && size("G").is_err());
        assert_eq!((boolean("on"), boolean("false")), (Ok(true), Ok(false)));
        assert_eq!(boolean("1").unwrap_err(), "expected yes or no");
        assert_eq!(path("").unwrap_err(), "expected a path");
        assert_eq!(optional_path(""), Ok(None));
        let choices = [("yes", 1), ("no", 2), ("loopback", 3)];
        assert_eq!(one_of("no", &choices), Ok(2));
        assert_eq!(one_of("No", &choices).unwrap_err(), "expected yes, no or loopback");
        assert_eq!(one_of("x", &[(":", 1)]).unwrap_err(), "expected :");
        assert_eq!(list(" a, ,b ,").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(list_of(" 1, 2", |e| e.parse::<u8>().ok(), "numbers"), Ok(vec![1, 2]));
        assert_eq!(list_of("1, x", |e| e.parse::<u8>().ok(), "numbers").unwrap_err(), "numbers");
    }
}
