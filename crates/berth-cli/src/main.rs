//! berth: the command-line client. It speaks only the public Engine API over berthd's socket; the
//! daemon arrives with the engine issue, so for now the CLI only says so.

fn main() -> anyhow::Result<()> {
    anyhow::bail!(
        "berth: the daemon and its client arrive with the engine issue; use berth-runc for now"
    )
}
