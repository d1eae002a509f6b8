//! DNS messages from the sandbox (the transparent path's resolver): one
//! standard question read, fail closed, and the answers paddock writes.
//! Anything but one plain question is FORMERR (or, for what is not a query
//! at all, no answer). Fuzzed (`fuzz/fuzz_targets/dns_query.rs`).

use std::net::IpAddr;

/// Record type A (an IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type AAAA (an IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Class IN (the Internet).
pub const CLASS_IN: u16 = 1;
/// Seconds an answer may be cached: the address stays the name's for the
/// sandbox's life.
const TTL: u32 = 300;

/// Response code: no error.
pub const NOERROR: u8 = 0;
/// Response code: the query could not be read.
pub const FORMERR: u8 = 1;
/// Response code: the server failed.
pub const SERVFAIL: u8 = 2;
/// Response code: not implemented (another opcode).
pub const NOTIMP: u8 = 4;
/// Response code: refused by policy.
pub const REFUSED: u8 = 5;

/// One question, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The message's id, echoed.
    pub id: u16,
    /// Recursion desired, echoed.
    pub rd: bool,
    /// The name, lower case, no trailing dot.
    pub name: String,
    /// The record type asked for.
    pub qtype: u16,
    /// The class asked for.
    pub qclass: u16,
    /// The question section's bytes (name, type, class), echoed in the
    /// answer as they came.
    pub wire: Vec<u8>,
}

/// Why a message gets no normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bad {
    /// Not a query (too short, or a response): no answer at all.
    Drop,
    /// A query paddock does not read: answered with this code.
    Answer {
        /// The message's id.
        id: u16,
        /// Recursion desired.
        rd: bool,
        /// The response code to answer with.
        rcode: u8,
    },
}

/// Read a DNS query: a header with QR = 0 and opcode QUERY, exactly one
/// question, no answer or authority records, at most one additional
/// record (an EDNS OPT, ignored). The name's labels are plain: no
/// compression pointer, no dot or byte outside printable ASCII inside a
/// label, 255 bytes at most.
pub fn parse_query(msg: &[u8]) -> Result<Question, Bad> {
    if msg.len() < 12 {
        return Err(Bad::Drop);
    }
    let word = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let id = word(0);
    let flags = word(2);
    let rd = flags & 0x0100 != 0;
    if flags & 0x8000 != 0 {
        return Err(Bad::Drop);
    }
    let formerr = Bad::Answer {
        id,
        rd,
        rcode: FORMERR,
    };
    if (flags >> 11) & 0xf != 0 {
        return Err(Bad::Answer {
            id,
            rd,
            rcode: NOTIMP,
        });
    }
    let (qd, an, ns, ar) = (word(4), word(6), word(8), word(10));
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return Err(formerr);
    }
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let Some(&len) = msg.get(at) else {
            return Err(formerr);
        };
        at += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return Err(formerr);
        }
        let end = at + usize::from(len);
        let Some(label) = msg.get(at..end) else {
            return Err(formerr);
        };
        if !label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
            return Err(formerr);
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at = end;
        if at - 12 > 255 {
            return Err(formerr);
        }
    }
    let Some(tail) = msg.get(at..at + 4) else {
        return Err(formerr);
    };
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    let qclass = u16::from_be_bytes([tail[2], tail[3]]);
    Ok(Question {
        id,
        rd,
        name: labels.join("."),
        qtype,
        qclass,
        wire: msg[12..at + 4].to_vec(),
    })
}

/// Is the question of the Internet class?
pub fn internet(q: &Question) -> bool {
    q.qclass == CLASS_IN
}

/// The answer to `q`: `rcode`, and one record per address (each of the
/// question's type).
pub fn response(q: &Question, rcode: u8, addrs: &[IpAddr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + q.wire.len() + addrs.len() * 28);
    out.extend_from_slice(&q.id.to_be_bytes());
    // QR, opcode 0, AA (paddock is the authority here), RD echoed, RA.
    let flags: u16 = 0x8400 | if q.rd { 0x0100 } else { 0 } | 0x0080 | u16::from(rcode & 0xf);
    out.extend_from_slice(&flags.to_be_bytes());
    let count = u16::try_from(addrs.len()).unwrap_or(0);
    for n in [1, count, 0, 0] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&q.wire);
    for a in addrs {
        // The name: a pointer to the question's (offset 12).
        out.extend_from_slice(&[0xc0, 12]);
        let (kind, data) = match a {
            IpAddr::V4(v) => (TYPE_A, v.octets().to_vec()),
            IpAddr::V6(v) => (TYPE_AAAA, v.octets().to_vec()),
        };
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// An answer with only a header: for a question that could not be read.
pub fn bare(id: u16, rd: bool, rcode: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&id.to_be_bytes());
    let flags: u16 = 0x8000 | if rd { 0x0100 } else { 0 } | 0x0080 | u16::from(rcode & 0xf);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.').filter(|l| !l.is_empty()) {
            m.push(u8::try_from(l.len()).unwrap());
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    #[test]
    fn a_query_is_read_and_answered() {
        let q = parse_query(&query("API.Example.com.", TYPE_A)).unwrap();
        assert_eq!(q.name, "api.example.com");
        assert_eq!((q.id, q.rd, q.qtype), (0x1234, true, TYPE_A));
        let a = response(&q, NOERROR, &["198.18.1.3".parse().unwrap()]);
        assert_eq!(&a[0..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0xf, NOERROR);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
        assert_eq!(&a[a.len() - 4..], &[198, 18, 1, 3]);
        let six = response(&q, NOERROR, &["fd70:6164:6463:1::3".parse().unwrap()]);
        assert_eq!(six.len(), 12 + q.wire.len() + 12 + 16);
    }

    #[test]
    fn what_is_not_one_plain_question_is_refused_to_be_read() {
        let ok = query("a.example", TYPE_A);
        assert_eq!(parse_query(&ok[..11]), Err(Bad::Drop));
        let mut resp = ok.clone();
        resp[2] |= 0x80;
        assert_eq!(parse_query(&resp), Err(Bad::Drop));
        let code = |m: &[u8]| match parse_query(m) {
            Err(Bad::Answer { rcode, .. }) => rcode,
            other => panic!("{other:?}"),
        };
        let mut two = ok.clone();
        two[5] = 2;
        assert_eq!(code(&two), FORMERR);
        let mut opcode = ok.clone();
        opcode[2] |= 0x10;
        assert_eq!(code(&opcode), NOTIMP);
        // A compression pointer, a dot inside a label, a cut name.
        let mut ptr = ok.clone();
        ptr[12] = 0xc0;
        assert_eq!(code(&ptr), FORMERR);
        let dotted = {
            let mut m = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'a', b'.', b'b', 0];
            m.extend_from_slice(&[0, 1, 0, 1]);
            m
        };
        assert_eq!(code(&dotted), FORMERR);
        assert_eq!(code(&ok[..ok.len() - 2]), FORMERR);
        // Over 255 bytes of name.
        let long = query(&vec!["a".repeat(63); 5].join("."), TYPE_A);
        assert_eq!(code(&long), FORMERR);
        // An EDNS OPT record after the question is allowed.
        let mut edns = ok.clone();
        edns[11] = 1;
        edns.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        assert!(parse_query(&edns).is_ok());
    }
}
