//! `paddock doctor`: what isolation this machine gives, and what is missing.

use crate::cli::DoctorArgs;
use crate::error::CliError;

/// Probe and print.
pub fn doctor(a: DoctorArgs) -> Result<i32, CliError> {
    let checks = paddock_sandbox::probe::kernel_checks();
    let iso = crate::status::isolation(&checks);
    let usable = iso.level != "none";
    let level = format!("{}: {}", iso.level, iso.summary);
    if a.json {
        let v = serde_json::json!({
            "isolation": iso.level,
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
