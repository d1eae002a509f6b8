//! The transparent path's resolver: DNS questions from the sandbox are
//! answered from the policy, never looked up on the host. The messages are
//! read and written by [`paddock_protocol::dns`].
//!
//! An allowed name ([`paddock_policy::decide_name`]) gets a synthetic
//! address from a private pool ([`paddock_types::transparent`]) that maps
//! back to the name: a connection to it is judged as a connection to the
//! name. A refused name gets REFUSED and an event.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

pub use paddock_protocol::dns::*;
use paddock_types::transparent as t;

/// The names given synthetic addresses, both ways. An index, once given,
/// stays its name's for the sandbox's life: a connection made long after
/// the lookup still finds its name.
#[derive(Default)]
pub struct Pool {
    inner: Mutex<(HashMap<String, u32>, Vec<String>)>,
}

impl Pool {
    /// The index of `name`, given now if it has none; `None` when the pool
    /// is full. The flag says whether it was given now.
    pub fn index(&self, name: &str) -> Option<(u32, bool)> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = g.0.get(name) {
            return Some((*i, false));
        }
        let i = u32::try_from(g.1.len())
            .ok()
            .filter(|i| *i < t::POOL_SIZE)?;
        g.0.insert(name.to_string(), i);
        g.1.push(name.to_string());
        Some((i, true))
    }

    /// The name a synthetic address stands for.
    pub fn name_of(&self, ip: IpAddr) -> Option<String> {
        let i = t::index_of(ip)?;
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.1.get(usize::try_from(i).ok()?).cloned()
    }
}

/// The addresses of pool index `i` that answer a question of `qtype`
/// (A: the IPv4 one, AAAA: the IPv6 one, anything else: none).
pub fn addresses(i: u32, qtype: u16) -> Vec<IpAddr> {
    match qtype {
        TYPE_A => t::v4_of(i).map(IpAddr::V4).into_iter().collect(),
        TYPE_AAAA => t::v6_of(i).map(IpAddr::V6).into_iter().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_answer_their_own_type_only() {
        assert_eq!(
            addresses(3, TYPE_A),
            ["198.18.1.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            addresses(3, TYPE_AAAA),
            ["fd70:6164:6463:1::3".parse::<IpAddr>().unwrap()]
        );
        assert!(addresses(3, 16).is_empty(), "TXT: no address");
    }

    #[test]
    fn the_pool_maps_both_ways_and_keeps_indexes() {
        let p = Pool::default();
        assert_eq!(p.index("a.example"), Some((0, true)));
        assert_eq!(p.index("b.example"), Some((1, true)));
        assert_eq!(p.index("a.example"), Some((0, false)));
        assert_eq!(
            p.name_of(t::v4_of(1).unwrap().into()).as_deref(),
            Some("b.example")
        );
        assert_eq!(
            p.name_of(t::v6_of(0).unwrap().into()).as_deref(),
            Some("a.example")
        );
        assert_eq!(p.name_of(t::v4_of(2).unwrap().into()), None);
        assert_eq!(p.name_of("93.184.216.34".parse().unwrap()), None);
    }
}
