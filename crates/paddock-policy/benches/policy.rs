//! In-process figures for the policy engine: what every `paddock run`
//! pays before the sandbox starts (parse, validate, merge, hash) and what
//! the proxy pays per request (a network decision).

#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use paddock_policy::{decide_network, merge, Layer, ParsedLayer, STARTER};

const PROJECT: &str = r#"version = 1
[filesystem]
workspace = "cow"
[network]
mode = "proxy"
allow = ["api.anthropic.com:443", "*.npmjs.org", "pypi.org", "files.pythonhosted.org", "github.com"]
deny = ["evil.example"]
[[network.rules]]
host = "api.anthropic.com"
inspect = true
allow = ["POST /v1/messages", "GET /v1/models"]
deny = ["* /v1/files"]
"#;

fn bench(c: &mut Criterion) {
    c.bench_function("parse starter policy", |b| {
        b.iter(|| ParsedLayer::parse(Layer::User, "user.toml", black_box(STARTER)).unwrap())
    });
    let user = ParsedLayer::parse(Layer::User, "user.toml", STARTER).unwrap();
    let flags = ParsedLayer::parse(Layer::Flags, "flags", PROJECT).unwrap();
    c.bench_function("merge user + flags layers and hash", |b| {
        b.iter(|| {
            let eff = merge(black_box(&[user.clone(), flags.clone()])).unwrap();
            black_box(eff.hash())
        })
    });
    let eff = merge(&[user.clone(), flags.clone()]).unwrap();
    c.bench_function("network decision (inspected request)", |b| {
        b.iter(|| {
            decide_network(
                black_box(&eff),
                "api.anthropic.com",
                443,
                Some(("POST", "/v1/messages")),
            )
        })
    });
    c.bench_function("network decision (refused host)", |b| {
        b.iter(|| decide_network(black_box(&eff), "exfil.example", 443, None))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
