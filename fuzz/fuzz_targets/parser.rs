//! Fuzz target: the command parser (commands and SASL response lines) on arbitrary bytes, whole and in small chunks, which must give the same results.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pop3d::parser::Parser;

/// Everything the parser makes of `data` fed in chunks of `chunk` bytes
/// (commands, or SASL lines when `sasl`), as text to compare.
fn parse(data: &[u8], chunk: usize, sasl: bool) -> Vec<String> {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    for mut piece in data.chunks(chunk) {
        loop {
            let next = if sasl {
                parser.next_sasl(&mut piece).map(|r| format!("{r:?}"))
            } else {
                parser.next(&mut piece).map(|r| format!("{r:?}"))
            };
            match next {
                Some(item) => out.push(item),
                None => break,
            }
        }
        assert!(piece.is_empty(), "the parser left input unread");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let sasl = mode & 1 == 1;
    let chunk = usize::from(mode >> 1) % 7 + 1;
    let whole = parse(data, data.len().max(1), sasl);
    assert_eq!(whole, parse(data, chunk, sasl), "chunked input parsed differently");
});
