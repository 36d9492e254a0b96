//! Non-negative three-decimal numbers (`12.345`) in state_dir files, without std's float code.
//!
//! Penalty scores and log budgets are written and read this way, without
//! std's float formatting and parsing code.
//!
//! `f64`'s `Display` and `FromStr` bring about 20 KB of tables and code
//! (`core::num::dec2flt`, `flt2dec`) into the firmware binary for these two
//! files alone. The text is the one `{:.3}` wrote before, so files written
//! by an older pop3d (several instances may share state_dir during an
//! upgrade) read the same both ways.

/// `value` with three decimals; negative and NaN values are written as 0,
/// values too large for `u64` thousandths as the largest.
pub fn format3(value: f64) -> String {
    // `as` saturates: NaN and negatives become 0.
    let milli = (value * 1000.0).round() as u64;
    format!("{}.{:03}", milli / 1000, milli % 1000)
}

/// The value of `digits[.digits]`, as `format3` writes it; None for a sign,
/// an exponent, `inf`, `NaN` or anything else.
pub fn parse3(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || (text.contains('.') && fraction.is_empty()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    // Digits past the ninth change nothing a score or a budget cares about.
    let fraction = &fraction[..fraction.len().min(9)];
    let scale = 10u32.pow(fraction.len() as u32);
    let fraction = if fraction.is_empty() { 0 } else { fraction.parse::<u32>().ok()? };
    Some(whole as f64 + f64::from(fraction) / f64::from(scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_float_formatting_did() {
        for v in [0.0, 0.0004, 0.5, 1.0, 2.25, 3.9996, 12.345, 19.0, 1e6 + 0.125] {
            assert_eq!(format3(v), format!("{v:.3}"), "{v}");
        }
        assert_eq!(format3(-1.0), "0.000");
        assert_eq!(format3(f64::NAN), "0.000");
    }

    #[test]
    fn reads_what_it_writes_and_nothing_else() {
        for v in [0.0, 0.5, 1.0, 2.25, 12.345, 19.999] {
            assert_eq!(parse3(&format3(v)), Some(v));
        }
        assert_eq!(parse3("7"), Some(7.0));
        assert_eq!(parse3("0.1234567891234"), Some(0.123456789));
        for bad in ["", ".5", "5.", "-1.0", "+1.0", "1e3", "inf", "NaN", "1.2.3", " 1.0", "1,5"] {
            assert_eq!(parse3(bad), None, "{bad}");
        }
    }
}
