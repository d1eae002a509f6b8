//! The one integration test binary: every test starts real sandboxes with
//! the real `paddock` binary and attacks them from inside with
//! `paddock-probe`. CI runs this suite as root and again as an unprivileged
//! user.

mod util;

mod api;
mod audit;
mod cli;
mod dashboard;
mod deny;
mod egress;
mod filesystem;
mod install;
mod isolation;
mod lab;
mod logins;
mod mcp;
mod network;
mod oci;
mod oci_audit;
mod oci_egress;
mod policy;
mod process;
mod protected;
mod review;
mod session;
mod sockets;
mod syscalls;
