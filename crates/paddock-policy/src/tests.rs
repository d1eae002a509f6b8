//! Tests of every layer rule, every lock, and a corpus of bad input.

use crate::*;

fn layer(l: Layer, src: &str, text: &str) -> ParsedLayer {
    ParsedLayer::parse(l, src, text).unwrap_or_else(|e| panic!("{}", PolicyErrors(e)))
}

fn refused(layers: &[ParsedLayer]) -> Vec<PolicyError> {
    merge(layers).expect_err("must be refused")
}

#[test]
fn defaults_alone() {
    let eff = merge(&[]).unwrap();
    assert_eq!(eff.workspace.value, WorkspaceMode::Rw);
    assert_eq!(eff.network_mode.value, NetworkMode::None);
    assert_eq!(eff.exec.value, ExecMode::Enabled);
    assert_eq!(eff.workspace.origin.layer, Layer::Default);
}

#[test]
fn starter_file_parses_and_means_the_defaults() {
    let eff = merge(&[layer(Layer::User, "starter.toml", STARTER)]).unwrap();
    assert_eq!(
        eff.hash(),
        merge(&[]).unwrap().hash(),
        "the starter restates the defaults"
    );
}

#[test]
fn higher_layer_scalar_wins_and_keeps_its_origin() {
    let user = layer(
        Layer::User,
        "user.toml",
        "version = 1\n[filesystem]\nworkspace = \"ro\"\n",
    );
    let flags = layer(
        Layer::Flags,
        "flags.toml",
        "version = 1\n\n[filesystem]\nworkspace = \"cow\"\n",
    );
    let eff = merge(&[flags, user]).unwrap();
    assert_eq!(eff.workspace.value, WorkspaceMode::Cow);
    let o = &eff.workspace.origin;
    assert_eq!(
        (o.layer, o.source.as_str(), o.line, o.column),
        (Layer::Flags, "flags.toml", Some(4), Some(13))
    );
}

#[test]
fn deny_lists_accumulate_across_layers() {
    let user = layer(
        Layer::User,
        "u",
        "version = 1\n[network]\ndeny = [\"a.example\"]\n[filesystem]\ndeny = [\"~/.ssh\"]\n",
    );
    let project = layer(
        Layer::Project,
        "p",
        "version = 1\n[network]\ndeny = [\"b.example\"]\n",
    );
    let admin = layer(
        Layer::Admin,
        "a",
        "version = 1\n[network]\ndeny = [\"c.example\"]\n[filesystem]\ndeny = [\"~/.aws\"]\n",
    );
    let eff = merge(&[user, project, admin]).unwrap();
    let deny: Vec<_> = eff.net_deny.iter().map(|d| d.value.as_str()).collect();
    assert_eq!(deny, ["a.example", "b.example", "c.example"]);
    assert_eq!(eff.fs_deny.len(), 2);
    assert_eq!(eff.net_deny[1].origin.layer, Layer::Project);
}

#[test]
fn project_that_widens_network_is_refused_with_its_line() {
    let p = layer(
        Layer::Project,
        ".paddock/policy.toml",
        "version = 1\n[network]\nmode = \"proxy\"\nallow = [\"evil.example:443\"]\n",
    );
    let errs = refused(&[p]);
    assert!(
        errs.iter().all(|e| e.code == "POLICY_PROJECT_LOOSENS"),
        "{errs:?}"
    );
    let lines: Vec<_> = errs.iter().map(|e| e.line).collect();
    assert!(
        lines.contains(&Some(3)) && lines.contains(&Some(4)),
        "{lines:?}"
    );
    assert!(
        errs[0].to_string().contains(".paddock/policy.toml:3:8"),
        "{}",
        errs[0]
    );
}

#[test]
fn project_may_not_add_allow_even_when_user_enabled_proxy() {
    let user = layer(
        Layer::User,
        "u",
        "version = 1\n[network]\nmode = \"proxy\"\nallow = [\"api.example.com\"]\n",
    );
    let p = layer(
        Layer::Project,
        "p",
        "version = 1\n[network]\nallow = [\"other.example\"]\n",
    );
    let errs = refused(&[user.clone(), p]);
    assert_eq!(errs[0].code, "POLICY_PROJECT_LOOSENS");
    // Narrowing is fine: a project may deny, turn the network off, or use
    // deny-only rules.
    let p = layer(Layer::Project, "p", "version = 1\n[network]\nmode = \"none\"\ndeny = [\"x.example\"]\n[[network.rules]]\nhost = \"api.example.com\"\ndeny = [\"* /v1/files\"]\n");
    let eff = merge(&[user, p]).unwrap();
    assert_eq!(eff.network_mode.value, NetworkMode::None);
    assert_eq!(eff.net_rules.len(), 1);
}

#[test]
fn project_cannot_loosen_filesystem() {
    let cases = [
        (
            "[filesystem]\nworkspace = \"rw\"\n",
            "version = 1\n[filesystem]\nworkspace = \"ro\"\n",
        ),
        ("[[filesystem.mount]]\npath = \"~/.ssh\"\n", ""),
        ("[[filesystem.mount]]\npath = \"../sibling\"\n", ""),
        (
            "[[filesystem.mount]]\npath = \"data\"\ntarget = \"/data\"\n",
            "",
        ),
        ("[filesystem]\ntools = [\"/opt/x\"]\n", ""),
        ("[filesystem]\nunprotect = [\".git\"]\n", ""),
        (
            "[filesystem]\nsockets = [\"/run/user/1000/gnupg/S.gpg-agent\"]\n",
            "",
        ),
        ("[process]\nenv = [\"AWS_SECRET_ACCESS_KEY\"]\n", ""),
        (
            "[exec]\nmode = \"enabled\"\n",
            "version = 1\n[exec]\nmode = \"disabled\"\n",
        ),
        ("[audit]\nlevel = \"off\"\n", ""),
        ("[process.limits]\ntmp_mib = 99999\n", ""),
    ];
    for (project, user) in cases {
        let mut layers = vec![layer(
            Layer::Project,
            "p.toml",
            &format!("version = 1\n{project}"),
        )];
        if !user.is_empty() {
            layers.push(layer(Layer::User, "u.toml", user));
        }
        let errs = refused(&layers);
        assert!(
            errs.iter()
                .any(|e| e.code == "POLICY_PROJECT_LOOSENS" && e.line.is_some()),
            "{project}: {errs:?}"
        );
    }
}

#[test]
fn project_may_tighten_filesystem() {
    let p = layer(Layer::Project, "p", "version = 1\n[filesystem]\nworkspace = \"cow\"\nprotect = [\"secrets\"]\n[[filesystem.mount]]\npath = \"vendor\"\nmode = \"ro\"\n[process]\nenv = [\"CI=1\"]\n");
    let eff = merge(&[p]).unwrap();
    assert_eq!(eff.workspace.value, WorkspaceMode::Cow);
    assert_eq!(eff.mounts.len(), 1);
    assert_eq!(eff.env[0].value, "CI=1");
}

#[test]
fn user_and_flags_may_loosen() {
    let user = layer(
        Layer::User,
        "u",
        "version = 1\n[filesystem]\nunprotect = [\".git\"]\ntools = [\"~/bin\"]\n",
    );
    let flags = layer(
        Layer::Flags,
        "f",
        "version = 1\n[network]\nmode = \"proxy\"\nallow = [\"*.npmjs.org\"]\n",
    );
    let eff = merge(&[user, flags]).unwrap();
    assert_eq!(eff.unprotect[0].value, ".git");
    assert_eq!(eff.net_allow[0].value, "*.npmjs.org");
}

#[test]
fn admin_lock_refuses_lower_layers_with_their_line() {
    let admin = layer(Layer::Admin, "/etc/paddock/policy.toml", "version = 1\n[admin]\nlock = [\"network\", \"filesystem.workspace\"]\n[network]\nmode = \"none\"\n");
    for (l, text) in [
        (
            Layer::User,
            "version = 1\n[network]\nallow = [\"x.example\"]\n",
        ),
        (
            Layer::Flags,
            "version = 1\n[filesystem]\nworkspace = \"rw\"\n",
        ),
        (
            Layer::Project,
            "version = 1\n[network]\ndeny = [\"y.example\"]\n",
        ),
    ] {
        let errs = refused(&[admin.clone(), layer(l, "lower.toml", text)]);
        assert_eq!(errs[0].code, "POLICY_LOCKED_BY_ADMIN", "{l}: {errs:?}");
        assert_eq!(errs[0].line, Some(3), "{l}");
        assert!(
            errs[0].message.contains("/etc/paddock/policy.toml:3"),
            "{}",
            errs[0].message
        );
    }
    // Unlocked keys stay free.
    let ok = merge(&[
        admin,
        layer(Layer::User, "u", "version = 1\n[audit]\nlevel = \"all\"\n"),
    ])
    .unwrap();
    assert_eq!(ok.audit_level.value, AuditLevel::All);
    assert_eq!(ok.locks.len(), 2);
}

#[test]
fn admin_wins_over_every_layer() {
    let admin = layer(
        Layer::Admin,
        "a",
        "version = 1\n[filesystem]\nworkspace = \"ro\"\n",
    );
    let flags = layer(
        Layer::Flags,
        "f",
        "version = 1\n[filesystem]\nworkspace = \"rw\"\n",
    );
    let eff = merge(&[flags, admin]).unwrap();
    assert_eq!(eff.workspace.value, WorkspaceMode::Ro);
    assert_eq!(eff.workspace.origin.layer, Layer::Admin);
}

#[test]
fn admin_can_disable_exec() {
    let admin = layer(
        Layer::Admin,
        "a",
        "version = 1\n[admin]\nexec = \"disabled\"\n",
    );
    let flags = layer(
        Layer::Flags,
        "f",
        "version = 1\n[exec]\nmode = \"enabled\"\n",
    );
    let eff = merge(&[admin, flags]).unwrap();
    assert_eq!(eff.exec.value, ExecMode::Disabled);
    assert!(eff.exec_disabled_by_admin);
    assert_eq!(eff.exec.origin.line, Some(3));
}

#[test]
fn admin_section_outside_admin_layer_is_refused() {
    let e = ParsedLayer::parse(
        Layer::User,
        "u.toml",
        "version = 1\n[admin]\nlock = [\"network\"]\n",
    )
    .unwrap_err();
    assert_eq!(e[0].line, Some(2), "{e:?}");
    let e = ParsedLayer::parse(
        Layer::Admin,
        "a.toml",
        "version = 1\n[admin]\nlock = [\"netwrk\"]\n",
    )
    .unwrap_err();
    assert!(e[0].message.contains("netwrk"), "{e:?}");
}

#[test]
fn hash_depends_on_meaning_not_on_files() {
    let a = merge(&[layer(
        Layer::User,
        "a.toml",
        "version = 1\n[filesystem]\nworkspace = \"ro\"\n",
    )])
    .unwrap();
    let b = merge(&[layer(
        Layer::Flags,
        "b.toml",
        "# comment\nversion = 1\n\n[filesystem]\n  workspace = 'ro'\n",
    )])
    .unwrap();
    let c = merge(&[layer(
        Layer::User,
        "c.toml",
        "version = 1\n[filesystem]\nworkspace = \"cow\"\n",
    )])
    .unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), c.hash());
    assert!(a.hash().starts_with("sha256:") && a.hash().len() == 71);
}

#[test]
fn credentials_never_show_their_source() {
    let u = layer(Layer::User, "u", "version = 1\n[[network.credentials]]\nhost = \"api.example.com\"\nheader = \"x-api-key\"\nsource = \"file:/secret/path\"\nenv = \"K\"\n");
    let eff = merge(&[u]).unwrap();
    let shown = serde_json::to_string(&eff.items()).unwrap();
    assert!(!shown.contains("/secret/path"), "{shown}");
    assert!(shown.contains("api.example.com"));
}

/// Bad input: each case gives one precise error (line and column, what is
/// wrong, a help text) and never a panic.
#[test]
fn bad_input_corpus() {
    let corpus: &[(&str, usize, &str)] = &[
        ("version = 1\n[filesystem\n", 2, "malformed"),
        ("version = 1\nworkspace = = \"rw\"\n", 2, "malformed"),
        ("[filesystem]\nworkspace = \"rw\"\n", 1, "missing version"),
        ("version = \"1\"\n", 1, "wrong type"),
        ("version = 2\n", 1, "future version"),
        ("version = 1\n[filesystem]\nworkspace = \"readwrite\"\n", 3, "bad enum"),
        ("version = 1\n[filesystem]\nmounts = []\n", 3, "unknown key"),
        ("version = 1\n[netwerk]\nmode = \"none\"\n", 2, "unknown section"),
        ("version = 1\n[[filesystem.mount]]\npath = \"/x\"\nmode = \"rwx\"\n", 4, "bad mode"),
        ("version = 1\n[[filesystem.mount]]\npath = \"/x\"\ntarget = \"/proc/self\"\n", 4, "impossible mount"),
        ("version = 1\n[[filesystem.mount]]\npath = \"/x\"\ntarget = \"rel/path\"\n", 4, "relative target"),
        ("version = 1\n[[filesystem.mount]]\npath = \"\"\n", 3, "empty path"),
        ("version = 1\n[[filesystem.mount]]\ntarget = \"/x\"\n", 2, "missing path"),
        ("version = 1\n[network]\nallow = [\"http://x.com/\"]\n", 3, "bad pattern"),
        ("version = 1\n[network]\nallow = [\"x.com:99999\"]\n", 3, "bad port"),
        ("version = 1\n[[network.rules]]\nhost = \"a.com\"\nallow = [\"FETCH /x\"]\n", 4, "bad method"),
        ("version = 1\n[[network.credentials]]\nhost = \"a.com\"\nheader = \"x\"\nsource = \"vault:x\"\nenv = \"K\"\n", 5, "bad source"),
        ("version = 1\n[process]\nenv = [\"BAD NAME\"]\n", 3, "bad env"),
        ("version = 1\n[process.limits]\nmemory_mib = 0\n", 3, "zero limit"),
        ("version = 1\n[process.limits]\ncpu = -1.0\n", 3, "negative cpu"),
        ("version = 1\n[process.limits]\npids = -5\n", 3, "negative integer"),
        ("version = 1\n[session]\nidle_timeout = \"soon\"\n", 3, "bad duration"),
        ("version = 1\n[audit]\nsinks = [\"syslog\"]\n", 3, "bad sink"),
        ("version = 1\n[filesystem]\nprotect = [\"/abs\"]\n", 3, "absolute protect"),
        ("version = 1\nversion = 1\n", 2, "duplicate key"),
        ("version = 1\n[[network.credentials]]\nhost = \"a.com\"\nfile = \"~/a.json\"\nkey = \"r\"\nrefresh = { url = \"https://a.com/t\", access = \"a\", fields = [\"code\"] }\n", 6, "another grant's field"),
        ("version = 1\n[[network.credentials]]\nhost = \"a.com\"\nfile = \"~/a.json\"\nkey = \"r\"\nrefresh = { url = \"https://a.com/t\", access = \"a\", fields = [\"a&b\"] }\n", 6, "no field name"),
    ];
    for (text, line, what) in corpus {
        let errs = ParsedLayer::parse(Layer::User, "bad.toml", text).expect_err(what);
        let e = &errs[0];
        assert_eq!(e.line, Some(*line), "{what}: {e}");
        assert!(e.column.is_some(), "{what}: {e}");
        assert!(!e.help.is_empty(), "{what}: {e}");
        let shown = e.to_string();
        assert!(
            shown.contains(&format!("bad.toml:{line}:")),
            "{what}: {shown}"
        );
        assert!(shown.contains('^'), "{what}: {shown}");
    }
}

#[test]
fn shipped_schema_matches_the_types() {
    let shipped = include_str!("../../../schema/policy.schema.json");
    assert_eq!(
        shipped,
        schema_json(),
        "run `paddock policy schema > schema/policy.schema.json`"
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("0"), Some(0));
    assert_eq!(parse_duration("45s"), Some(45));
    assert_eq!(parse_duration("30m"), Some(1800));
    assert_eq!(parse_duration("2h"), Some(7200));
    assert_eq!(parse_duration("7d"), Some(604_800));
    assert_eq!(parse_duration("7"), None);
    assert_eq!(parse_duration("m"), None);
}

#[test]
fn network_decisions() {
    let none = merge(&[]).unwrap();
    assert_eq!(
        decide_network(&none, "api.example.com", 443, None).code,
        "NET_DOMAIN_NOT_ALLOWED"
    );
    let u = layer(Layer::User, "u", "version = 1\n[network]\nmode = \"proxy\"\nallow = [\"api.example.com\", \"*.npmjs.org\", \"10.1.2.3:8080\"]\ndeny = [\"bad.npmjs.org\"]\n[[network.rules]]\nhost = \"api.example.com\"\ninspect = true\nallow = [\"POST /v1/messages\", \"GET /v1/models\"]\ndeny = [\"* /v1/files\"]\n");
    let eff = merge(&[u]).unwrap();
    let d = |h: &str, p: u16, r: Option<(&str, &str)>| decide_network(&eff, h, p, r).code;
    assert_eq!(d("api.example.com", 443, None), "NET_ALLOWED");
    assert_eq!(d("api.example.com", 22, None), "NET_DOMAIN_NOT_ALLOWED");
    assert_eq!(d("registry.npmjs.org", 443, None), "NET_ALLOWED");
    assert_eq!(d("npmjs.org", 443, None), "NET_DOMAIN_NOT_ALLOWED");
    assert_eq!(d("bad.npmjs.org", 443, None), "NET_DOMAIN_DENIED");
    assert_eq!(d("evil.example", 443, None), "NET_DOMAIN_NOT_ALLOWED");
    assert_eq!(d("1.2.3.4", 443, None), "NET_IP_LITERAL");
    assert_eq!(d("10.1.2.3", 8080, None), "NET_ALLOWED");
    assert_eq!(
        d("api.example.com", 443, Some(("POST", "/v1/messages"))),
        "NET_ALLOWED"
    );
    assert_eq!(
        d("api.example.com", 443, Some(("POST", "/v1/files"))),
        "NET_PATH_DENIED"
    );
    assert_eq!(
        d("api.example.com", 443, Some(("DELETE", "/v1/models"))),
        "NET_PATH_NOT_ALLOWED"
    );
    let dec = decide_network(&eff, "api.example.com", 443, Some(("POST", "/v1/files")));
    assert_eq!(dec.origin.unwrap().line, Some(6));
}

#[test]
fn isolation_minimum_defaults_to_no_userns_and_a_project_may_only_raise_it() {
    let eff = merge(&[]).unwrap();
    assert_eq!(eff.isolation_minimum.value, IsolationLevel::NoUserns);
    assert!(eff.allow_unsafe_no_sandbox.value);
    let user = layer(
        Layer::User,
        "u",
        "version = 1\n[isolation]\nminimum = \"landlock-unavailable\"\n",
    );
    // Raising is tightening: fine, with its origin.
    let up = layer(
        Layer::Project,
        "p",
        "version = 1\n[isolation]\nminimum = \"full\"\nallow_unsafe_no_sandbox = false\n",
    );
    let eff = merge(&[user.clone(), up]).unwrap();
    assert_eq!(eff.isolation_minimum.value, IsolationLevel::Full);
    assert_eq!(eff.isolation_minimum.origin.layer, Layer::Project);
    assert!(!eff.allow_unsafe_no_sandbox.value);
    // Lowering it, or allowing an unsandboxed run again, is loosening.
    let down = layer(
        Layer::Project,
        "p",
        "version = 1\n[isolation]\nminimum = \"no-userns\"\n",
    );
    let errs = refused(&[user, down]);
    assert_eq!(errs[0].code, "POLICY_PROJECT_LOOSENS");
    assert_eq!(errs[0].line, Some(3), "{}", errs[0]);
    let admin = layer(
        Layer::Admin,
        "/etc/paddock/policy.toml",
        "version = 1\n[isolation]\nallow_unsafe_no_sandbox = false\n",
    );
    let again = layer(
        Layer::User,
        "u",
        "version = 1\n[isolation]\nallow_unsafe_no_sandbox = true\n",
    );
    // (Admin last: it is applied over every other layer.)
    let eff = merge(&[again, admin]).unwrap();
    assert!(!eff.allow_unsafe_no_sandbox.value);
}

#[test]
fn network_limits_have_defaults_and_a_project_may_only_lower_them() {
    let eff = merge(&[]).unwrap();
    assert_eq!(
        eff.net_connections.value, None,
        "the built-in default applies"
    );
    let user = layer(
        Layer::User,
        "u",
        "version = 1\n[network.limits]\nconnections = 64\nidle_timeout = \"2m\"\n",
    );
    let eff = merge(std::slice::from_ref(&user)).unwrap();
    assert_eq!(eff.net_connections.value, Some(64));
    assert_eq!(eff.net_idle_s.value, Some(120));
    let lower = layer(
        Layer::Project,
        "p",
        "version = 1\n[network.limits]\nconnections = 32\nhandshake_timeout = \"5s\"\n",
    );
    let eff = merge(&[user.clone(), lower]).unwrap();
    assert_eq!(eff.net_connections.value, Some(32));
    assert_eq!(eff.net_handshake_s.value, Some(5));
    for raise in [
        "version = 1\n[network.limits]\nconnections = 128\n",
        "version = 1\n[network.limits]\nheader_kib = 1024\n",
    ] {
        let errs = refused(&[user.clone(), layer(Layer::Project, "p", raise)]);
        assert_eq!(errs[0].code, "POLICY_PROJECT_LOOSENS", "{raise}");
    }
    let bad = ParsedLayer::parse(
        Layer::User,
        "u",
        "version = 1\n[network.limits]\nidle_timeout = \"soon\"\nconnections = 0\n",
    )
    .unwrap_err();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad.iter().all(|e| e.code == "POLICY_INVALID"));
}

#[test]
fn a_project_cannot_choose_the_upstream_proxy_or_opt_out_of_inspection() {
    for text in [
        "version = 1\n[network]\nupstream_proxy = \"http://evil.example:3128\"\n",
        "version = 1\n[[network.rules]]\nhost = \"api.example.com\"\ninspect = false\n",
        "version = 1\n[[network.rules]]\nhost = \"api.example.com\"\naccept_credentials = [\"cookie\"]\n",
        "version = 1\n[[network.rules]]\nhost = \"api.example.com\"\nwebsocket = [\"/ws\"]\n",
    ] {
        let errs = refused(&[layer(Layer::Project, "p", text)]);
        let want = if text.contains("upstream_proxy") {
            "POLICY_PROJECT_HOST_KEY"
        } else {
            "POLICY_PROJECT_LOOSENS"
        };
        assert_eq!(errs[0].code, want, "{text}");
    }
    let bad = ParsedLayer::parse(
        Layer::User,
        "u",
        "version = 1\n[network]\nupstream_proxy = \"socks5://x:1\"\n",
    )
    .unwrap_err();
    assert_eq!(bad[0].code, "POLICY_INVALID");
}

#[test]
fn a_get_deny_covers_head_and_deny_holds_on_every_reading() {
    let u = layer(
        Layer::User,
        "u",
        "version = 1\n[network]\nmode = \"proxy\"\nallow = [\"api.example.com\"]\n[[network.rules]]\nhost = \"api.example.com\"\nallow = [\"GET /\", \"HEAD /\", \"POST /v1/messages\"]\ndeny = [\"GET /admin\", \"* /v1/files\"]\n",
    );
    let eff = merge(&[u]).unwrap();
    let d = |m: &str, p: &str| decide_network(&eff, "api.example.com", 443, Some((m, p))).code;
    assert_eq!(d("HEAD", "/admin"), "NET_PATH_DENIED");
    assert_eq!(d("GET", "/v1%2Ffiles"), "NET_PATH_DENIED");
    assert_eq!(
        d("POST", "/v1/messages/..%2F..%2Fv1%2Ffiles"),
        "NET_PATH_DENIED"
    );
    assert_eq!(d("GET", "/%40scope%2Fname"), "NET_ALLOWED");
    assert_eq!(d("POST", "/v1/messages"), "NET_ALLOWED");
}

/// One value for every key in [`KEYS`], as a file would set it.
const KEY_EXAMPLES: &[(&str, &str)] = &[
    ("filesystem.workspace", "[filesystem]\nworkspace = \"cow\""),
    ("filesystem.mount", "[[filesystem.mount]]\npath = \"vendor\"\nmode = \"ro\""),
    ("filesystem.tools", "[filesystem]\ntools = [\"/opt/x\"]"),
    ("filesystem.protect", "[filesystem]\nprotect = [\"secrets\"]"),
    ("filesystem.unprotect", "[filesystem]\nunprotect = [\".git\"]"),
    ("filesystem.deny", "[filesystem]\ndeny = [\"~/.aws\"]"),
    ("network.mode", "[network]\nmode = \"none\""),
    ("network.allow", "[network]\nallow = [\"a.example\"]"),
    ("network.deny", "[network]\ndeny = [\"b.example\"]"),
    ("network.rules", "[[network.rules]]\nhost = \"api.example.com\"\ndeny = [\"* /v1/files\"]"),
    ("network.credentials", "[[network.credentials]]\nhost = \"evil.example\"\nheader = \"x-api-key\"\nsource = \"env:ANTHROPIC_API_KEY\"\nenv = \"K\""),
    ("network.upstream_proxy", "[network]\nupstream_proxy = \"http://evil.example:3128\""),
    ("network.limits.connections", "[network.limits]\nconnections = 8"),
    ("network.limits.header_kib", "[network.limits]\nheader_kib = 16"),
    ("network.limits.handshake_timeout", "[network.limits]\nhandshake_timeout = \"5s\""),
    ("network.limits.idle_timeout", "[network.limits]\nidle_timeout = \"60s\""),
    ("filesystem.sockets", "[filesystem]\nsockets = [\"~/.ssh/agent.sock\"]"),
    ("process.env", "[process]\nenv = [\"CI=1\"]"),
    ("process.limits.memory_mib", "[process.limits]\nmemory_mib = 512"),
    ("process.limits.pids", "[process.limits]\npids = 64"),
    ("process.limits.cpu", "[process.limits]\ncpu = 1.0"),
    ("process.limits.tmp_mib", "[process.limits]\ntmp_mib = 128"),
    ("process.limits.cow_mib", "[process.limits]\ncow_mib = 128"),
    ("session.idle_timeout", "[session]\nidle_timeout = \"0\""),
    ("session.retention.max_age", "[session.retention]\nmax_age = \"0\""),
    ("session.retention.max_count", "[session.retention]\nmax_count = 0"),
    ("session.retention.max_disk_mib", "[session.retention]\nmax_disk_mib = 1"),
    ("audit.level", "[audit]\nlevel = \"all\""),
    ("audit.sinks", "[audit]\nsinks = [\"otlp\"]"),
    ("audit.otlp_endpoint", "[audit]\notlp_endpoint = \"https://collector.evil.example\""),
    ("exec.mode", "[exec]\nmode = \"disabled\""),
    ("isolation.minimum", "[isolation]\nminimum = \"full\""),
    ("isolation.allow_unsafe_no_sandbox", "[isolation]\nallow_unsafe_no_sandbox = false"),
];

/// Key by key from the table: every key has a class and an example; a
/// project layer that sets a host key is refused at that key's line
/// (POLICY_PROJECT_HOST_KEY), whatever the value; sandbox keys are never
/// refused as host keys.
#[test]
fn a_project_may_not_set_host_keys_key_by_key() {
    for (key, _) in KEYS {
        assert!(
            KEY_EXAMPLES.iter().any(|(k, _)| k == key),
            "{key} has no example here: add one (and give it a class in KEYS)"
        );
    }
    for (key, snippet) in KEY_EXAMPLES {
        let class = key_class(key).unwrap_or_else(|| panic!("{key} is not in KEYS"));
        let text = format!("version = 1\n{snippet}\n");
        // The example sets exactly this key.
        let v: toml::Value = toml::from_str(&text).unwrap();
        let mut at = &v;
        for k in key.split('.') {
            at = at
                .get(k)
                .unwrap_or_else(|| panic!("{key}: the example does not set it"));
        }
        let p = ParsedLayer::parse(Layer::Project, ".paddock/policy.toml", &text)
            .unwrap_or_else(|e| panic!("{key}: {}", PolicyErrors(e)));
        let errs = merge(&[p]).err().unwrap_or_default();
        let host: Vec<_> = errs
            .iter()
            .filter(|e| e.code == "POLICY_PROJECT_HOST_KEY")
            .collect();
        match class {
            KeyClass::Host => {
                assert_eq!(host.len(), 1, "{key}: {}", PolicyErrors(errs.clone()));
                let line = host[0].line.unwrap();
                let shown = text.lines().nth(line - 1).unwrap();
                let last = key.rsplit('.').next().unwrap();
                assert!(
                    shown.contains(last)
                        || shown.contains(&format!("[{}", key.rsplit_once('.').unwrap().0)),
                    "{key}: line {line} is `{shown}`"
                );
                assert!(host[0].help.contains("your own policy"));
                // The user's own layer may set it.
                let u = ParsedLayer::parse(Layer::User, "u", &text).unwrap();
                let ok = merge(&[u]);
                assert!(
                    ok.as_ref()
                        .err()
                        .is_none_or(|e| e.iter().all(|e| e.code != "POLICY_PROJECT_HOST_KEY")),
                    "{key}"
                );
            }
            KeyClass::Sandbox => assert!(host.is_empty(), "{key}: {}", PolicyErrors(errs.clone())),
        }
    }
}

#[test]
fn no_websocket_where_a_body_rule_applies_from_any_layer() {
    let ws = "version = 1\n[network]\nmode = \"proxy\"\nallow = [\"api.example.com\"]\n[[network.rules]]\nhost = \"api.example.com\"\nwebsocket = [\"/v1/realtime\"]\n";
    let eff = merge(&[layer(Layer::User, "u", ws)]).unwrap();
    assert!(websocket_allowed(
        &eff,
        "api.example.com",
        443,
        "/v1/realtime"
    ));
    // The messages would carry what `body_deny` refuses in a body.
    let body =
        "version = 1\n[[network.rules]]\nhost = \"api.example.com\"\nbody_deny = [\"type:url\"]\n";
    let eff = merge(&[
        layer(Layer::User, "u", ws),
        layer(Layer::Project, "p", body),
    ])
    .unwrap();
    assert!(!websocket_allowed(
        &eff,
        "api.example.com",
        443,
        "/v1/realtime"
    ));
}
