//! What a service binary writes when its output is not a terminal (a file, a pipe, a log
//! shipper): plain text, no ANSI colour codes.

use std::process::Command;

use shopmesh_e2e::processes::bin_dir;
use shopmesh_testkit::Service;

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    // An unknown operator command: the binary starts its telemetry, logs, and exits at once.
    let out = Command::new(Service::Notifications.binary(&bin_dir()))
        .arg("no-such-command")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "text")
        .output()
        .expect("the notifications binary runs");
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("telemetry initialised"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "escape codes in piped logs: {logs:?}"
    );
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors.contains("no command \"no-such-command\""),
        "{errors}"
    );
    assert!(!out.status.success());
}
