//! `paddock doctor`: what isolation this machine gives, and what is missing.

use crate::cli::DoctorArgs;
use crate::error::CliError;

/// Probe and print.
pub fn doctor(a: DoctorArgs) -> Result<i32, CliError> {
    let checks = paddock_sandbox::probe::kernel_checks();
    let usable = checks
        .iter()
        .find(|c| c.id == "user_namespaces")
        .is_some_and(|c| c.status == "ok");
    let level = if !usable {
        "none: the sandbox cannot start on this machine"
    } else if checks
        .iter()
        .all(|c| c.status == "ok" || c.id == "cgroup_delegation" || c.id == "tun")
    {
        "full: namespaces + Landlock + seccomp"
    } else {
        "partial: see the missing features below"
    };
    if a.json {
        let v = serde_json::json!({
            "isolation": level.split(':').next().unwrap_or(""),
            "summary": level,
            "checks": checks,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("isolation: {level}\n");
        for c in &checks {
            let mark = match c.status.as_str() {
                "ok" => "ok  ",
                "degraded" => "warn",
                _ => "MISS",
            };
            println!("[{mark}] {:<28} {}", c.id, c.detail);
            if !c.impact.is_empty() {
                println!("       impact: {}", c.impact);
            }
            if !c.fix.is_empty() {
                println!("       fix:    {}", c.fix);
            }
        }
    }
    Ok(if usable { 0 } else { 1 })
}
