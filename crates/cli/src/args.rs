//! The command line, declared with clap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use roster_sandbox::marketo::RoleBodyShapes;
use roster_sandbox::marketo::admin::RoleAt;

#[derive(Debug, Parser)]
#[command(
    name = "roster",
    version,
    about = "Keeps SaaS user accounts in line with who should have them: joiners, movers and leavers."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). ROSTER_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a local emulation of a SaaS API, to try Roster offline or to test against.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Adobe Marketo Engage: identity service and User Management API.
    Marketo(MarketoSandbox),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MarketoSandbox {
    #[command(subcommand)]
    pub admin: Option<MarketoSandboxCommand>,
    #[command(flatten)]
    pub run: MarketoRun,
}

#[derive(Debug, Subcommand)]
pub enum MarketoSandboxCommand {
    /// Change the sandbox's subscription as a Marketo admin would (works while it runs).
    Admin(MarketoAdmin),
}

#[derive(Debug, Args)]
pub struct MarketoRun {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8710", env = "ROSTER_SANDBOX_LISTEN")]
    pub listen: SocketAddr,
    /// Directory for the sandbox's SQLite state (created and seeded if new).
    #[arg(long, env = "ROSTER_SANDBOX_DATA")]
    pub data: Option<PathBuf>,
    /// Client id of the seeded custom service (generated on first start if absent).
    #[arg(long, env = "ROSTER_SANDBOX_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Client secret of the seeded custom service (generated on first start if absent).
    #[arg(long, env = "ROSTER_SANDBOX_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Emulate a subscription migrated to Adobe IMS: invite/update/delete for API-only users only.
    #[arg(long)]
    pub ims: bool,
    /// Lifetime of access tokens (e.g. 3600s, 10m).
    #[arg(long, default_value = "3600s", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// Role-body shapes the role endpoints accept: both, array (bare array only) or input ({"input": [...]} only).
    #[arg(long, default_value = "both", value_parser = parse_role_body)]
    pub role_body: RoleBodyShapes,
    /// Calls allowed per --rate-window before 606.
    #[arg(long, default_value_t = 100)]
    pub rate_limit: u32,
    /// The rolling window of --rate-limit (e.g. 20s, 500ms).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub rate_window: Duration,
    /// Calls in flight at once before 615.
    #[arg(long, default_value_t = 10)]
    pub max_concurrent: u32,
    /// Calls per US-Central day before 607.
    #[arg(long, default_value_t = 50_000)]
    pub daily_quota: u64,
    /// Latency added to every User Management call (e.g. 20ms).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub latency: Duration,
    /// Fraction of calls (0 to 1) answered with a random 502, 604, 608 or 611.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub error_rate: f64,
    /// Fraction of calls (0 to 1) whose token expires early (602).
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub token_expiry_rate: f64,
}

#[derive(Debug, Args)]
pub struct MarketoAdmin {
    /// The sandbox's data directory.
    #[arg(long, env = "ROSTER_SANDBOX_DATA")]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub action: AdminAction,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create a custom role with permissions ("Create an API Only User Role").
    CreateRole {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A permission, e.g. "Access API", "Access Users", "Access User Management Api". Repeatable.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// The role may only be granted in workspace 0 (AllZones).
        #[arg(long)]
        only_all_zones: bool,
    },
    /// Create an API-only user, active at once ("Create an API Only User").
    CreateApiUser {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "API")]
        first: String,
        #[arg(long, default_value = "User")]
        last: String,
        /// ROLE@WORKSPACE by name or id, e.g. "API Role@Default". Repeatable.
        #[arg(long = "role", required = true)]
        roles: Vec<RoleAt>,
    },
    /// Create a custom service owned by an API-only user and print its credentials.
    CreateService {
        #[arg(long)]
        name: String,
        /// Email of the API-only user that owns the service.
        #[arg(long)]
        user: String,
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long, env = "ROSTER_SANDBOX_NEW_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
    },
    /// List the custom services and their credentials.
    Services,
}

/// Parses `500ms`, `20s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; use e.g. 500ms, 20s, 2m or 1h"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{s:?} is out of range"))
}

pub fn parse_role_body(s: &str) -> Result<RoleBodyShapes, String> {
    match s.trim() {
        "both" => Ok(RoleBodyShapes::Both),
        "array" => Ok(RoleBodyShapes::BareArray),
        "input" => Ok(RoleBodyShapes::InputWrapper),
        other => Err(format!(
            "{other:?} is not a role-body shape; use both, array or input"
        )),
    }
}

pub fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a fraction between 0 and 1 (e.g. 0.1 for 10%)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("20").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(
            parse_duration("fast")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            parse_duration("3 weeks")
                .unwrap_err()
                .contains("unknown unit")
        );
    }

    #[test]
    fn role_body_shapes() {
        assert_eq!(parse_role_body("array").unwrap(), RoleBodyShapes::BareArray);
        assert_eq!(
            parse_role_body("input").unwrap(),
            RoleBodyShapes::InputWrapper
        );
        assert!(
            parse_role_body("xml")
                .unwrap_err()
                .contains("both, array or input")
        );
    }

    #[test]
    fn fractions() {
        assert_eq!(parse_fraction("0.25").unwrap(), 0.25);
        assert!(parse_fraction("1.5").is_err());
        assert!(parse_fraction("-0.1").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
