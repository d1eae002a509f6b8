//! `paddock status [--json]`.

use crate::compile::HostFacts;
use crate::error::CliError;

/// Collect and print.
pub fn status(json: bool) -> Result<i32, CliError> {
    let host = HostFacts::current()?;
    let store = paddock_session::Store::locate(&host.home);
    let st = crate::status::collect(&store, &host);
    if json {
        println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
    } else {
        print!(
            "{}",
            paddock_session::text::terminal_safe_lines(&crate::status::render(&st))
        );
    }
    Ok(0)
}
