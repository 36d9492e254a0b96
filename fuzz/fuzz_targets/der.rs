//! Fuzz target: the DER reader that takes a client certificate's subject CN, on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(cn) = pop3d::der::subject_common_name(data) {
        assert!(cn.len() < data.len(), "the name comes out of the certificate");
    }
});
