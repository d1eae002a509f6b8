//! The transparent path's DNS reader (`paddock-protocol`) on arbitrary
//! bytes: a message is one plain question or a refusal, never a panic; a
//! question read is answered with a message that reads back as a response
//! to the same question.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_protocol::dns::{parse_query, response, Bad, NOERROR};

fuzz_target!(|data: &[u8]| {
    match parse_query(data) {
        Ok(q) => {
            assert!(q.name.len() <= 255);
            assert!(q.name.bytes().all(|b| b.is_ascii_graphic()));
            let a = response(&q, NOERROR, &["198.18.1.1".parse().unwrap()]);
            assert_eq!(&a[0..2], &data[0..2], "the id is echoed");
            assert!(a[2] & 0x80 != 0, "a response");
            assert_eq!(&a[12..12 + q.wire.len()], &q.wire[..], "the question is echoed");
            // The answer is not itself read as a query.
            assert_eq!(parse_query(&a), Err(Bad::Drop));
        }
        Err(Bad::Drop) => assert!(data.len() < 12 || data[2] & 0x80 != 0),
        Err(Bad::Answer { id, .. }) => assert_eq!(id.to_be_bytes(), [data[0], data[1]]),
    }
});
