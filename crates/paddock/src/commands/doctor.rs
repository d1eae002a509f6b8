//! `paddock doctor`: what isolation this machine gives, what the policy
//! here requires, and what is missing.

use crate::cli::DoctorArgs;
use crate::compile::HostFacts;
use crate::error::CliError;

/// Probe and print. Exit 0 when a sandbox meeting the policy's minimum can
/// be built here, 1 otherwise.
pub fn doctor(a: DoctorArgs) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    // A fresh probe (doctor is where one looks after changing the host),
    // cached again for the runs that follow.
    crate::isolation::forget(&host.home);
    let (layers, _) = crate::isolation::layers(&host.home);
    let checks = paddock_sandbox::probe::kernel_checks(&layers);
    let eff = crate::policy_files::effective(&host, None, None).ok();
    let iso =
        crate::status::isolation(&checks, &layers, eff.as_ref().map(|e| &e.isolation_minimum));
    let meets = match (layers.best(), &eff) {
        (Some(l), Some(e)) => crate::isolation::meets(l, e.isolation_minimum.value),
        (Some(_), None) => true,
        (None, _) => false,
    };
    let level = format!("{}: {}", iso.level, iso.summary);
    if a.json {
        let v = serde_json::json!({
            "isolation": iso.level,
            "summary": level,
            "minimum": iso.minimum,
            "minimum_origin": iso.minimum_origin,
            "meets_minimum": meets,
            "layers": layers,
            "checks": checks,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("isolation: {level}");
        println!(
            "minimum:   {} ({}){}\n",
            iso.minimum,
            iso.minimum_origin,
            if meets {
                ""
            } else {
                " — NOT MET: sandboxes will not start here"
            }
        );
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
    Ok(if meets { 0 } else { 1 })
}
