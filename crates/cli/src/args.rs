//! The command line, declared with clap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
pub use roster_engine::{AdobeConn, Confirm, MagentoConn, MarketoConn, parse_duration};
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
    /// Directory of Roster's own state (quota usage, pending invites, tombstones).
    /// Default: $XDG_STATE_HOME/roster or ~/.local/state/roster.
    #[arg(long, global = true, env = "ROSTER_STATE", value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Keep Roster's state in this PostgreSQL database instead of the SQLite file in the
    /// state directory, so several processes (and machines) share it:
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE. Every command honours it.
    #[arg(
        long,
        global = true,
        env = "ROSTER_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database: Option<roster_store::DatabaseUrl>,
    /// Configuration file (TOML). Default: $XDG_CONFIG_HOME/roster/config.toml, if present.
    #[arg(long, global = true, env = "ROSTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Who is acting, for the audit log (e.g. a service account's name). The OS account is
    /// always recorded beside it [default: the OS account].
    #[arg(long, global = true, env = "ROSTER_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
    /// How long a command that changes things waits for another one holding the state.
    #[arg(long, global = true, env = "ROSTER_LOCK_WAIT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub lock_wait: Duration,
    /// Allow plain http:// to apps on other machines (credentials and tokens would cross the
    /// network unencrypted). http:// to this machine (a sandbox) is always allowed.
    #[arg(long, global = true, env = "ROSTER_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
    /// How long one call to an app may take before it counts as failed (and is retried).
    #[arg(long, global = true, env = "ROSTER_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Stop the whole command after this long (e.g. `15m`), whatever it is waiting for.
    /// An apply stopped so resumes from its journal on the next run [default: none].
    #[arg(long, global = true, env = "ROSTER_DEADLINE", value_parser = parse_duration, value_name = "DURATION")]
    pub deadline: Option<Duration>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a shell completion script: `roster completions bash > /etc/bash_completion.d/roster`,
    /// zsh into a directory of $fpath as `_roster`, fish into ~/.config/fish/completions/roster.fish,
    /// PowerShell into your profile.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff): `roster man > /usr/local/share/man/man1/roster.1`.
    Man,
    /// Check roster files and service configurations offline: no credentials, no network.
    ///
    /// Rosters as `roster plan` reads them; a configuration (TOML with [service] or
    /// [marketo.NAME] sections) as `roster serve` does, its secrets named but not read, with
    /// the rosters it names. Exit 0 when every file is valid, 2 when one is not (each problem
    /// printed with FILE:LINE), 1 when a file cannot be read.
    Validate {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Try Roster offline: provision a joiner, offboard a leaver and audit, against an
    /// in-process Marketo sandbox.
    Demo {
        /// Keep the sandbox, Roster's state and the report here [default: a new temp directory].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Instead of the scripted tour, run `roster serve` against both sandboxes and
        /// print its URL and an admin API token; stop with Ctrl-C or SIGTERM.
        #[arg(long)]
        serve: bool,
        /// With --serve: also print ROSTER_SERVE_URL=... and ROSTER_SERVE_TOKEN=... lines.
        #[arg(long, requires = "serve")]
        print_env: bool,
        /// The tour on a Marketo subscription managed by Adobe Identity: an Adobe Admin
        /// Console sandbox too, and examples/roster-ims.yaml.
        #[arg(long, conflicts_with = "serve")]
        ims: bool,
    },
    /// Run a local emulation of a SaaS API, to try Roster offline or to test against.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Adobe Marketo Engage users, roles and workspaces: thin, scriptable commands.
    #[command(subcommand)]
    Marketo(MarketoCommand),
    /// Magento / Adobe Commerce customers, groups and admin users.
    #[command(subcommand)]
    Magento(MagentoCommand),
    /// Who has which role in which workspace, as a table, CSV, JSON or an HTML report.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Give a joiner an account with roles, and follow the invitation until it is accepted.
    #[command(subcommand)]
    Provision(ProvisionCommand),
    /// Remove a leaver's account: dry-run unless --yes; a tombstone is kept first.
    #[command(subcommand)]
    Offboard(OffboardCommand),
    /// List the accounts Roster deleted: when, by whom, with which roles.
    Tombstones(TombstonesArgs),
    /// Re-invite a deleted account with the roles its tombstone recorded.
    #[command(subcommand)]
    Restore(RestoreCommand),
    /// Compare a roster file with the apps and show the steps that would make them match.
    ///
    /// Apps are reached through ROSTER_MARKETO_* / ROSTER_MAGENTO_* or the config file;
    /// each configured app is read.
    Plan {
        /// The roster: .yaml, .yml, .toml, or an HR export in .csv.
        #[arg(value_name = "ROSTER")]
        roster: PathBuf,
        /// Save the plan (with the state it was computed from) for `roster apply`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Output format on stdout (json prints an object whose `steps` array is the plan).
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
        /// Plan to re-send Marketo invitations that expired or expire within 7 days.
        #[arg(long)]
        resend_invites: bool,
        /// With the service's configuration as --config: the instance to plan for
        /// (`marketo.prod`); the only one when it runs one.
        #[arg(long, env = "ROSTER_INSTANCE", value_name = "INSTANCE")]
        instance: Option<String>,
        /// Plan for this person only (repeatable): a targeted plan, which reads only what
        /// they need (on Marketo, the user list and their roles) and leaves every other
        /// account alone. `roster apply` of it checks the same people again.
        #[arg(long = "person", value_name = "EMAIL")]
        people: Vec<String>,
        /// Exit 0 when there is nothing to do, 2 when changes are pending, 3 when the plan is
        /// blocked by a cap (1 stays an error), for CI jobs.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Run a saved plan (refused if the apps changed since), or plan and run with --auto.
    ///
    /// Every step is journaled: run the same apply again after a crash or a failure and it
    /// finishes the plan without repeating a step.
    Apply {
        /// A plan saved by `roster plan --out`.
        #[arg(value_name = "PLAN", required_unless_present = "auto")]
        plan: Option<PathBuf>,
        /// With the service's configuration as --config: the instance the plan is for
        /// (`marketo.prod`); the only one when it runs one.
        #[arg(long, env = "ROSTER_INSTANCE", value_name = "INSTANCE")]
        instance: Option<String>,
        /// Plan from this roster and apply at once.
        #[arg(long, value_name = "ROSTER", conflicts_with = "plan")]
        auto: Option<PathBuf>,
        /// Approve the plan's destructive steps (revokes, disables, deletions).
        #[arg(long)]
        approve: bool,
        /// Who is applying, for the audit log and tombstones [default: $USER].
        #[arg(long, env = "ROSTER_ACTOR", value_name = "NAME")]
        by: Option<String>,
        /// With --auto: re-send Marketo invitations that expired or expire within 7 days.
        #[arg(long)]
        resend_invites: bool,
    },
    /// Record an approval of a saved plan's destructive steps, so `roster apply` runs them.
    ///
    /// When the roster lists approvers (policies.approvers, with SSH public keys), a
    /// destructive plan needs one of them to sign it: --key signs with an unencrypted
    /// ssh-ed25519 key; for one with a passphrase, in an agent or on a token, sign the
    /// output of --print-digest with `ssh-keygen -Y sign -n roster-plan -f KEY` and pass
    /// the result with --signature.
    Approve {
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        /// Who approves [default: $USER]; with --key or --signature, the roster's name for
        /// the key that signed.
        #[arg(long, env = "ROSTER_ACTOR", value_name = "NAME")]
        by: Option<String>,
        /// Sign the plan with this OpenSSH ed25519 private key (namespace roster-plan).
        #[arg(long, value_name = "KEY", conflicts_with_all = ["signature", "print_digest"])]
        key: Option<PathBuf>,
        /// Record a signature made by `ssh-keygen -Y sign -n roster-plan` over the digest.
        #[arg(long, value_name = "FILE", conflicts_with = "print_digest")]
        signature: Option<PathBuf>,
        /// Print the bytes an approver signs (the plan's digest, no newline), and nothing else.
        #[arg(long)]
        print_digest: bool,
    },
    /// Run Roster as a service: reconcile every instance named in the --config file on a
    /// schedule and on demand, hold destructive steps for approval, serve the JSON API.
    ///
    /// Stop it with SIGTERM or Ctrl-C: the step in progress finishes, the journal stays
    /// consistent, and the next start resumes.
    Serve {
        #[command(subcommand)]
        action: Option<ServeAction>,
        /// Address to listen on [default: [service] listen in the config, else 127.0.0.1:8420].
        #[arg(long, value_name = "ADDRESS")]
        listen: Option<SocketAddr>,
        /// Log one JSON object per line on stderr (also [service] json_logs = true).
        #[arg(long)]
        json_logs: bool,
    },
    /// Access reviews on a running `roster serve`: start a campaign, decide items, close
    /// it, fetch its signed evidence; `review verify` checks a bundle offline.
    ///
    /// The service is reached at --server (ROSTER_SERVE_URL) with the API token in
    /// ROSTER_SERVE_TOKEN or --token-file (never on the command line).
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Audit reports from a running `roster serve`: privileged access, dormant accounts,
    /// orphaned accounts, leavers still active, or who had some access at a moment.
    Report {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(value_enum)]
        report: ReportKind,
        /// The service's instance (`marketo.prod`).
        #[arg(long, value_name = "INSTANCE")]
        instance: String,
        /// dormant: days without a sign-in.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// access: the role (absent: any account at all).
        #[arg(long)]
        role: Option<String>,
        /// access: the role's workspace or website.
        #[arg(long)]
        scope: Option<String>,
        /// access: the moment, RFC 3339 (default now).
        #[arg(long)]
        at: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Roster's state as a whole: move it from the SQLite file to PostgreSQL (or back)
    /// without losing history.
    #[command(subcommand)]
    State(StateAction),
    /// The signing key that signs plans, approvals and the audit log (`signing.key` in the
    /// state directory, or ROSTER_SIGNING_KEY_FILE).
    #[command(subcommand)]
    Keys(KeysAction),
    /// The audit log: every change, approval and refusal, who made it, when, and how it
    /// went. Each line is hash-chained to the one before and signed (`roster log verify`).
    Log {
        #[command(subcommand)]
        action: Option<LogAction>,
        /// Only this plan's lines.
        #[arg(long, value_name = "PLAN_ID")]
        plan: Option<String>,
        /// table, csv, json, or jsonl (one object per line, for a SIEM).
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Write every record of the state (--state, or --database) as JSON lines: plans, the
    /// journal, the audit log with its hashes, tombstones, invitations, quota, the
    /// service's runs, tokens (hashed), console accounts and SCIM resources.
    Export {
        /// The file to write (created 0600: it holds personal data).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Read an export into the state --state or --database names, which must be empty;
    /// all of it goes in or none does, and the audit log's chain is verified after.
    Import {
        /// A file `roster state export` wrote.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServeAction {
    /// Bring the state's schema up to date and stop (run it once before starting new
    /// `roster serve` processes on a shared PostgreSQL database; they also migrate
    /// themselves, one at a time).
    Migrate,
    /// API tokens for the service: each has a name and a role.
    #[command(subcommand)]
    Token(TokenAction),
    /// Web console accounts: each has a name, a password and a role.
    #[command(subcommand)]
    User(UserAction),
    /// SCIM connections: one bearer token per identity provider pushing to /scim/v2.
    #[command(subcommand, name = "scim-token")]
    ScimToken(ScimTokenAction),
}

#[derive(Debug, Subcommand)]
pub enum ScimTokenAction {
    /// Make a connection's token and print it once (only its SHA-256 is stored).
    Create {
        /// The identity provider (okta, entra, ...); its pushes are kept apart by it.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Limit the connection to these instances (repeat; default every instance).
        #[arg(long = "instance", value_name = "INSTANCE")]
        instances: Vec<String>,
    },
    /// The connections: names, instances, when made and last used (never the tokens).
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Revoke a connection's token: its requests are refused from now on.
    Revoke {
        #[arg(long, value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a console account. The password comes from ROSTER_NEW_PASSWORD, else a prompt
    /// (not echoed); at least 12 characters. Only its argon2 hash is stored.
    Add {
        #[arg(long, value_name = "NAME")]
        name: String,
        /// viewer (read), operator (+ reconcile), approver (+ approve/reject), admin.
        #[arg(long, value_parser = ["viewer", "operator", "approver", "admin"])]
        role: String,
    },
    /// The console accounts: names, roles, and whether they are locked.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Remove a console account: its sessions end and the API tokens acting for it stop
    /// working.
    Remove {
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Give an account a new password (ROSTER_NEW_PASSWORD, else a prompt): it is unlocked
    /// and signed out everywhere.
    Passwd {
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Lift the lock repeated failed sign-ins put on an account.
    Unlock {
        #[arg(long, value_name = "NAME")]
        name: String,
    },
    /// Change an account's role (its API tokens never act above it).
    SetRole {
        #[arg(long, value_name = "NAME")]
        name: String,
        #[arg(long, value_parser = ["viewer", "operator", "approver", "admin"])]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token and print it once (only its SHA-256 is stored).
    Create {
        /// Who or what uses it (shown in the audit log as the actor).
        #[arg(long, value_name = "NAME")]
        name: String,
        /// viewer (read), operator (+ reconcile), approver (+ approve/reject), admin.
        #[arg(long, value_parser = ["viewer", "operator", "approver", "admin"])]
        role: String,
        /// The console account (a person) the token acts for: it carries that identity, so
        /// four-eyes knows the token and the account are one person, and never more than
        /// the account's role.
        #[arg(long = "for", value_name = "CONSOLE_USER", conflicts_with = "service")]
        account: Option<String>,
        /// The token is a service account (CI, a script), known by its --name.
        #[arg(long)]
        service: bool,
        /// It stops working after this long (e.g. 90d, 12h); `token rotate` replaces it
        /// without downtime.
        #[arg(long, value_name = "DURATION", value_parser = roster_engine::conn::parse_duration)]
        expires: Option<std::time::Duration>,
    },
    /// Replace a token without downtime: prints a new token of the same name, role and
    /// holder, which works at once; the old one keeps working for --overlap (listed as
    /// NAME#rotated-TIME), so its clients can be given the new one, then stops.
    Rotate {
        #[arg(long, value_name = "NAME")]
        name: String,
        /// How long the old token keeps working.
        #[arg(long, default_value = "1d", value_name = "DURATION", value_parser = roster_engine::conn::parse_duration)]
        overlap: std::time::Duration,
        /// The new token's lifetime [default: the old one's].
        #[arg(long, value_name = "DURATION", value_parser = roster_engine::conn::parse_duration)]
        expires: Option<std::time::Duration>,
    },
    /// The tokens: names, roles, when made and last used (never the tokens themselves).
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Revoke a token: requests with it are refused from now on.
    Revoke {
        #[arg(long, value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogAction {
    /// Check the log: every line chained to the one before and signed with the state's key
    /// (or a retired one); says where it breaks if a line was edited, removed or inserted
    /// (exit 1), or how many lines it verified.
    Verify {
        /// A head saved earlier by `roster log head -o json`: lines up to it must all be
        /// there, unchanged (a cut tail is caught only this way).
        #[arg(long, value_name = "FILE")]
        head: Option<PathBuf>,
        /// Verify with these public keys (`roster keys public`) instead of the state's
        /// signing key: what an auditor without the secret runs.
        #[arg(long, value_name = "FILE")]
        public_keys: Option<PathBuf>,
    },
    /// The newest line's id and hash, signed now: save it outside Roster's database
    /// (`-o json > head.json`) to prove later that nothing up to it was removed.
    Head {
        /// table or json.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Print the public keys that verify this state's plans, approvals and log (the current
    /// one first, then retired ones), for an auditor: `roster keys public > roster.pub`.
    Public,
    /// Retire the signing key and make a new one: new signatures use the new key; what
    /// the old one signed keeps verifying (its public key is kept beside the key file).
    Rotate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Csv,
    /// One JSON object per line (for SIEM ingestion).
    Jsonl,
    /// The document `json` prints, as YAML.
    Yaml,
    /// The table with every cell whole (`table` on a terminal shortens long cells to fit).
    Wide,
}

impl Output {
    /// A whole document (`json`, `yaml`) rather than rows.
    pub fn is_document(self) -> bool {
        matches!(self, Output::Json | Output::Yaml)
    }

    /// Aligned columns for people (`table`, `wide`).
    pub fn is_table(self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Html,
}

#[derive(Debug, Subcommand)]
pub enum MarketoCommand {
    /// List accepted users (pending invitations are not listed by the API).
    Users(WithConn),
    /// List roles.
    Roles {
        #[command(flatten)]
        common: WithConn,
        /// Include hidden roles (such as Marketo Support).
        #[arg(long)]
        all: bool,
    },
    /// List workspaces.
    Workspaces(WithConn),
    /// Show one user with roles, or their pending invitation.
    User {
        #[command(flatten)]
        common: WithConn,
        /// The user id (usually the email address).
        userid: String,
    },
    /// Invite a user with roles (an email goes out; API-only users are active at once).
    Invite {
        #[command(flatten)]
        common: WithConn,
        #[command(flatten)]
        person: NewPerson,
    },
    /// Change a user's email, names or expiry.
    Update {
        #[command(flatten)]
        common: WithConn,
        userid: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        first: Option<String>,
        #[arg(long)]
        last: Option<String>,
        /// Access ends at this date (YYYY-MM-DD or ISO-8601).
        #[arg(long, conflicts_with = "no_expiry", value_name = "DATE")]
        expires_at: Option<String>,
        /// Remove the expiry.
        #[arg(long)]
        no_expiry: bool,
    },
    /// Delete a user or a pending invitation (dry-run unless --yes; a tombstone is kept).
    Delete {
        #[command(flatten)]
        common: WithConn,
        userid: String,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Grant ROLE@WORKSPACE pairs.
    Grant {
        #[command(flatten)]
        common: WithConn,
        userid: String,
        /// ROLE@WORKSPACE, by name or id. Repeatable.
        #[arg(long = "role", required = true, value_name = "ROLE@WORKSPACE")]
        roles: Vec<String>,
    },
    /// Revoke ROLE@WORKSPACE pairs.
    Revoke {
        #[command(flatten)]
        common: WithConn,
        userid: String,
        /// ROLE@WORKSPACE, by name or id. Repeatable.
        #[arg(long = "role", required = true, value_name = "ROLE@WORKSPACE")]
        roles: Vec<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct WithConn {
    #[command(flatten)]
    pub conn: MarketoConn,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Clone, Args)]
pub struct NewPerson {
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub first: String,
    #[arg(long)]
    pub last: String,
    /// ROLE@WORKSPACE, by name or id, e.g. "Standard User@Default". Repeatable.
    #[arg(long = "role", required = true, value_name = "ROLE@WORKSPACE")]
    pub roles: Vec<String>,
    /// An API-only user (no email, active at once).
    #[arg(long)]
    pub api_only: bool,
    /// Access ends at this date (YYYY-MM-DD or ISO-8601): for contractors.
    #[arg(long, value_name = "DATE")]
    pub expires_at: Option<String>,
    /// Why, as recorded by Marketo.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Every accepted user x role x workspace, plus the invitations Roster is tracking.
    Marketo {
        #[command(flatten)]
        conn: MarketoConn,
        /// Output format on stdout.
        #[arg(short, long, value_enum, default_value = "table")]
        output: ReportFormat,
        /// Also write the self-contained HTML report to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Finish an audit the daily quota interrupted: reuse the users it read and read only
        /// the rest.
        #[arg(long)]
        resume: bool,
    },
    /// Customers by website and group, and admin users with their role where the API exists.
    Magento {
        #[command(flatten)]
        conn: MagentoConn,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
        /// Instead, write the printable audit report (every account, its group or admin
        /// role, status, last sign-in; against --roster when given) to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// With --html: the roster to set the accounts against (managed_domains narrows
        /// the customers read).
        #[arg(long, value_name = "ROSTER", requires = "html")]
        roster: Option<PathBuf>,
    },
    /// The Adobe Admin Console's users with their product profiles, user groups and admin
    /// roles, and how many hold each product profile.
    Adobe {
        #[command(flatten)]
        conn: AdobeConn,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum MagentoCommand {
    /// List customers, optionally filtered.
    Customers {
        #[command(flatten)]
        conn: MagentoConn,
        /// FIELD=VALUE or FIELD:CONDITION:VALUE (eq, neq, like, in, gt, gteq, lt, lteq, null, notnull). Repeatable; all must match.
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show one customer (by id or email), with addresses in JSON.
    Customer {
        #[command(flatten)]
        conn: MagentoConn,
        /// A customer id or an email address.
        customer: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List customer groups.
    Groups {
        #[command(flatten)]
        conn: MagentoConn,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List admin users (where the store offers an API for them).
    Admins {
        #[command(flatten)]
        conn: MagentoConn,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// List admin roles (where the store offers an API for them).
    Roles {
        #[command(flatten)]
        conn: MagentoConn,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Move customers from one group to another through the async bulk API (dry-run unless --yes).
    Regroup {
        #[command(flatten)]
        conn: MagentoConn,
        /// The group to move customers out of (name or id).
        #[arg(long, value_name = "GROUP")]
        from: String,
        /// The group to move them into (name or id).
        #[arg(long, value_name = "GROUP")]
        to: String,
        /// Only customers that also match FIELD=VALUE or FIELD:CONDITION:VALUE. Repeatable.
        #[arg(long = "filter", value_name = "FILTER")]
        filters: Vec<String>,
        /// Customers per bulk request: each page of the search (at most 300, Magento's
        /// largest) is submitted as one bulk as soon as it is read.
        #[arg(long, default_value_t = 300)]
        chunk: usize,
        /// Stop waiting for a bulk that shows no progress for this long (the store's
        /// consumer is then probably not running).
        #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
        bulk_timeout: Duration,
        /// Do it. Without this flag the command only shows what it would do.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProvisionCommand {
    /// Create a Magento customer (Magento emails a link to set a password), or an admin user.
    #[command(name = "magento")]
    MagentoCustomer {
        #[command(flatten)]
        conn: MagentoConn,
        #[arg(long)]
        email: String,
        #[arg(long)]
        first: String,
        #[arg(long)]
        last: String,
        /// Website code or id [default: the store's first website].
        #[arg(long, value_name = "CODE")]
        website: Option<String>,
        /// Customer group (name or id) [default: General].
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// Create an admin user with this user name instead of a customer (needs the admin-user API).
        #[arg(long, value_name = "USERNAME", requires = "role")]
        admin: Option<String>,
        /// The admin user's role (name or id).
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
    },
    /// Invite a person with roles, or converge an existing account and Roster's pending invites.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["email", "check_pending"])))]
    Marketo {
        #[command(flatten)]
        conn: MarketoConn,
        #[arg(long, requires_all = ["first", "last", "roles"])]
        email: Option<String>,
        #[arg(long)]
        first: Option<String>,
        #[arg(long)]
        last: Option<String>,
        /// ROLE@WORKSPACE, by name or id, e.g. "Standard User@Default". Repeatable.
        #[arg(long = "role", value_name = "ROLE@WORKSPACE")]
        roles: Vec<String>,
        /// An API-only user (no email, active at once).
        #[arg(long)]
        api_only: bool,
        /// Access ends at this date (YYYY-MM-DD or ISO-8601): for contractors.
        #[arg(long, value_name = "DATE")]
        expires_at: Option<String>,
        /// Wait until the invitation is accepted, then make sure every role stuck.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
        wait_timeout: Duration,
        /// How often --wait checks (each check is one API call).
        #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
        poll_interval: Duration,
        /// Re-send an expired invitation (delete it and invite again).
        #[arg(long)]
        resend: bool,
        /// Check every invitation Roster is tracking: grant roles to those accepted, report the rest.
        #[arg(long, conflicts_with_all = ["first", "last", "roles", "api_only", "expires_at"])]
        check_pending: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OffboardCommand {
    /// Delete a Magento customer (or, with --admin, an admin user); a tombstone is kept first.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["email", "admin"])))]
    Magento {
        #[command(flatten)]
        conn: MagentoConn,
        /// The customer's email.
        #[arg(long)]
        email: Option<String>,
        /// Only the customer of this website (code or id), when the email exists in several.
        #[arg(long, value_name = "CODE")]
        website: Option<String>,
        /// An admin user's user name instead of a customer.
        #[arg(long, value_name = "USERNAME")]
        admin: Option<String>,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Remove a user's roles, then delete the user (or delete a pending invitation).
    Marketo {
        #[command(flatten)]
        conn: MarketoConn,
        #[arg(long)]
        email: String,
        /// API-only users run integrations and are refused unless this is given.
        #[arg(long)]
        include_api_only: bool,
        #[command(flatten)]
        confirm: Confirm,
    },
}

#[derive(Debug, Args)]
pub struct TombstonesArgs {
    /// Only this app's tombstones.
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Invite the user again with the names and roles of their newest tombstone.
    Marketo {
        #[command(flatten)]
        conn: MarketoConn,
        #[arg(long)]
        email: String,
    },
    /// Give a person back the Adobe product profiles and user groups of their newest
    /// tombstone (their account made again if it was deleted).
    Adobe {
        #[command(flatten)]
        conn: AdobeConn,
        #[arg(long)]
        email: String,
    },
    /// Create a deleted customer again (with its addresses, group and attributes) or an admin
    /// user (with its role) from the newest tombstone that Roster has not restored yet.
    Magento {
        #[command(flatten)]
        conn: MagentoConn,
        /// The customer's email.
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        email: Option<String>,
        /// Only the customer of this website (code or id), when the email was on several.
        #[arg(long, value_name = "CODE", requires = "email")]
        website: Option<String>,
        /// An admin user's user name instead of a customer.
        #[arg(long, value_name = "USERNAME")]
        admin: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Adobe Marketo Engage: identity service and User Management API.
    Marketo(Box<MarketoSandbox>),
    /// Magento 2 / Adobe Commerce: tokens, customers, groups, websites, searchCriteria.
    Magento(Box<MagentoSandbox>),
    /// Adobe Admin Console: IMS sign-in and the User Management API (UMAPI).
    Adobe(Box<AdobeSandbox>),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AdobeSandbox {
    #[command(subcommand)]
    pub admin: Option<AdobeSandboxCommand>,
    #[command(flatten)]
    pub run: AdobeRun,
}

#[derive(Debug, Subcommand)]
pub enum AdobeSandboxCommand {
    /// Change the sandbox's organization as an Admin Console administrator would (works
    /// while it runs).
    Admin(AdobeAdmin),
}

#[derive(Debug, Args)]
pub struct AdobeRun {
    /// Address to listen on; port 0 picks a free port.
    #[arg(
        long,
        default_value = "127.0.0.1:8730",
        env = "ROSTER_ADOBE_SANDBOX_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Directory for the sandbox's SQLite state (created and seeded if new).
    #[arg(long, env = "ROSTER_SANDBOX_DATA")]
    pub data: Option<PathBuf>,
    /// The organization's id, e.g. 0A1B2C3D4E5F60718293A4B5@AdobeOrg [default: that one, or
    /// the stored one].
    #[arg(long)]
    pub org_id: Option<String>,
    /// Client id (API key) of the OAuth Server-to-Server credential [default: the stored one,
    /// or generated].
    #[arg(long, env = "ROSTER_ADOBE_SANDBOX_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Its client secret [default: the stored one, or generated].
    #[arg(
        long,
        env = "ROSTER_ADOBE_SANDBOX_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// Lifetime of access tokens (Adobe's: 86399 s).
    #[arg(long, default_value = "86399s", value_parser = parse_duration, value_name = "DURATION")]
    pub token_ttl: Duration,
    /// Users per page of GET /users/{org}/{page} (Adobe's: 2000).
    #[arg(long, default_value_t = 2000)]
    pub page_size: usize,
    /// Action calls per client per --rate-window before 429 (Adobe's: 10 a minute).
    #[arg(long, default_value_t = 10)]
    pub action_limit: u32,
    /// User reads per client per --rate-window before 429 (Adobe's: 25 a minute).
    #[arg(long, default_value_t = 25)]
    pub users_limit: u32,
    /// Group reads per client per --rate-window before 429 (Adobe's: 5 a minute).
    #[arg(long, default_value_t = 5)]
    pub groups_limit: u32,
    /// The window of the three limits.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub rate_window: Duration,
    /// Answer every UMAPI call no sooner than this after it arrives, e.g. 200ms.
    #[arg(long, value_parser = parse_duration, default_value = "0s", value_name = "DURATION")]
    pub latency: Duration,
    /// Fraction (0 to 1) of UMAPI calls answered 502, 503 or 504.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction, value_name = "RATE")]
    pub error_rate: f64,
    /// Tell every throttled client to wait this long (Adobe has answered early re-runs with
    /// waits of 30 to 55 minutes) [default: until the window has room].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct AdobeAdmin {
    /// The sandbox's data directory.
    #[arg(long, env = "ROSTER_SANDBOX_DATA")]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub action: AdobeAdminAction,
}

#[derive(Debug, Subcommand)]
pub enum AdobeAdminAction {
    /// Add a user to the organization, in the groups and product profiles given.
    AddUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        first: String,
        #[arg(long)]
        last: String,
        /// federatedID, enterpriseID or adobeID.
        #[arg(long = "type", default_value = "federatedID")]
        kind: String,
        #[arg(long, default_value = "US")]
        country: String,
        /// A user group, product profile or admin group (also _org_admin). Repeatable.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Put a user in a group, product profile or admin group (also _org_admin).
    AddToGroup {
        #[arg(long)]
        email: String,
        #[arg(long)]
        group: String,
    },
    /// Take a user out of a group, product profile or admin group.
    RemoveFromGroup {
        #[arg(long)]
        email: String,
        #[arg(long)]
        group: String,
    },
    /// Remove a user from the organization.
    RemoveUser {
        #[arg(long)]
        email: String,
    },
    /// Create a product profile (UMAPI cannot).
    CreateProfile {
        #[arg(long)]
        name: String,
        /// The product, e.g. "Marketo Engage (MKTO)".
        #[arg(long)]
        product: String,
        /// The Marketo subscription (its id) this profile gives access to.
        #[arg(long)]
        marketo_subscription: Option<i64>,
    },
    /// Claim a domain for Federated or Enterprise IDs.
    ClaimDomain {
        #[arg(long)]
        domain: String,
        #[arg(long = "type", default_value = "federatedID")]
        kind: String,
    },
    /// Add many Federated IDs at once (for large audits and benchmarks).
    AddPeople {
        #[arg(long)]
        count: usize,
        /// Emails are PREFIX00001@DOMAIN, PREFIX00002@DOMAIN, ...
        #[arg(long, default_value = "person")]
        prefix: String,
        #[arg(long, default_value = "bulk.example")]
        domain: String,
        /// A group or product profile for every one of them. Repeatable.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// List the users and their groups.
    List,
    /// List the API clients and their secrets.
    Clients,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MagentoSandbox {
    #[command(subcommand)]
    pub admin: Option<MagentoSandboxCommand>,
    #[command(flatten)]
    pub run: MagentoRun,
}

#[derive(Debug, Subcommand)]
pub enum MagentoSandboxCommand {
    /// Change the sandbox's store as a Magento admin would (works while it runs).
    Admin(MagentoAdmin),
}

#[derive(Debug, Args)]
pub struct MagentoAdmin {
    /// The sandbox's data directory.
    #[arg(long, env = "ROSTER_SANDBOX_DATA")]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub action: MagentoAdminAction,
}

#[derive(Debug, Subcommand)]
pub enum MagentoAdminAction {
    /// Create and activate an integration (System > Extensions > Integrations); prints its
    /// consumer key and secret and its access token and secret.
    CreateIntegration {
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct MagentoRun {
    /// Address to listen on; port 0 picks a free port.
    #[arg(
        long,
        default_value = "127.0.0.1:8720",
        env = "ROSTER_MAGENTO_SANDBOX_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Directory for the sandbox's SQLite state (created and seeded if new).
    #[arg(long, env = "ROSTER_SANDBOX_DATA")]
    pub data: Option<PathBuf>,
    /// The admin account's user name [default: admin, or the stored one].
    #[arg(long)]
    pub admin_user: Option<String>,
    /// The admin account's password [default: the stored one, or generated].
    #[arg(
        long,
        env = "ROSTER_MAGENTO_SANDBOX_ADMIN_PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,
    /// Customers a new sandbox is seeded with.
    #[arg(long, default_value_t = 300)]
    pub customers: usize,
    /// Offer /V1/users and /V1/roles (admin users), as an extension does; core Magento has none.
    #[arg(long)]
    pub admin_users_api: bool,
    /// Leave bulks unprocessed, as on a store whose `async.operations.all` consumer is not
    /// running.
    #[arg(long)]
    pub no_bulk_consumer: bool,
    /// Operations per second the bulk consumer processes, modelling a real store's consumer
    /// (tens per second per PHP process) [default: as fast as the sandbox can].
    #[arg(long, value_name = "OPS")]
    pub bulk_rate: Option<f64>,
    /// Require two-factor authentication for admins, as Magento 2.4 does by default: admin
    /// tokens only through /V1/tfa/provider/google/authenticate with a TOTP code.
    #[arg(long)]
    pub tfa: bool,
    /// Accept integration access tokens as bearer tokens ("Allow OAuth Access Tokens to be
    /// used as standalone Bearer tokens", off by default since Magento 2.4.4).
    #[arg(long)]
    pub integration_as_bearer: bool,
    /// Answer every REST call no sooner than this after it arrives (a real store spends about
    /// 100 ms per call bootstrapping PHP), e.g. 100ms.
    #[arg(long, value_parser = parse_duration, default_value = "0s", value_name = "DURATION")]
    pub latency: Duration,
    /// Fraction (0 to 1) of REST calls answered by "the proxy in front" with an HTML 502, 503
    /// or 504 page.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction, value_name = "RATE")]
    pub html_error_rate: f64,
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
    /// With --ims: the data directory of the `roster sandbox adobe` whose Marketo Engage
    /// product profiles decide who this subscription's standard users are.
    #[arg(long, value_name = "DIR", requires = "ims")]
    pub adobe: Option<PathBuf>,
    /// With --adobe: how long a change in the Admin Console takes to show here.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub adobe_sync_delay: Duration,
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
    /// Fraction of writes (0 to 1) answered 604 after they ran (the change made, the answer lost).
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub write_timeout_rate: f64,
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
    /// Add many accepted users at once (for large audits and benchmarks).
    AddPeople {
        #[arg(long)]
        count: usize,
        /// Emails are PREFIX00001@DOMAIN, PREFIX00002@DOMAIN, ...
        #[arg(long, default_value = "person")]
        prefix: String,
        #[arg(long, default_value = "bulk.example")]
        domain: String,
        /// ROLE@WORKSPACE for every one of them. Repeatable.
        #[arg(long = "role", default_value = "Standard User@Default")]
        roles: Vec<RoleAt>,
    },
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
        // humantime's units, written out too.
        assert_eq!(
            parse_duration("3 weeks").unwrap(),
            Duration::from_secs(21 * 86_400)
        );
        assert!(
            parse_duration("3 fortnights")
                .unwrap_err()
                .contains("unknown time unit")
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

/// The shells `roster completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

/// Where the service is and how to sign in to it.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The service's base URL, as `roster demo --serve --print-env` prints it.
    #[arg(long, env = "ROSTER_SERVE_URL", value_name = "URL")]
    pub server: Option<String>,
    /// A file holding the API token (`roster serve token create`) [default: ROSTER_SERVE_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Start a campaign (operator): the service reads the instance's access as its
    /// snapshot and gives each entitlement a reviewer.
    Start {
        #[command(flatten)]
        server: ServerArgs,
        /// The service's instance (`marketo.prod`), as `/api/v1/instances` names it.
        #[arg(long, value_name = "INSTANCE")]
        instance: String,
        /// all, privileged, role=ROLE@WORKSPACE or group=NAME.
        #[arg(long, default_value = "all")]
        scope: String,
        /// When reviewers must be done: a duration from now (14d, 36h).
        #[arg(long)]
        due: String,
        /// manager (the person's manager, else the instance's owner), owner, or a name.
        #[arg(long, default_value = "manager")]
        reviewer: String,
        /// What happens to items nobody decided by the due date: keep, revoke, or escalate
        /// (to the campaign's starter).
        #[arg(long, default_value = "keep")]
        on_due: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Every campaign with its progress.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// One campaign: progress per reviewer, completeness of its snapshot.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: i64,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// A campaign's items with their reviewers and decisions.
    Items {
        #[command(flatten)]
        server: ServerArgs,
        id: i64,
        /// Only the items the token's holder reviews.
        #[arg(long)]
        mine: bool,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Decide items (their reviewer only): several items at once are recorded as a bulk
    /// decision. Keeping privileged access needs --comment.
    Decide {
        #[command(flatten)]
        server: ServerArgs,
        id: i64,
        #[arg(value_name = "ITEM", required = true)]
        items: Vec<i64>,
        /// keep, revoke, reduce (one item, with --keep-role) or not_decided.
        #[arg(long)]
        decision: String,
        /// With reduce: a role that stays (ROLE@WORKSPACE); repeat for several.
        #[arg(long = "keep-role", value_name = "ROLE")]
        keep_roles: Vec<String>,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Close a campaign (approver): its revocations come into force and their plan waits
    /// for a second approver.
    Close {
        #[command(flatten)]
        server: ServerArgs,
        id: i64,
    },
    /// Write a campaign's signed evidence bundle into a new directory, for an auditor.
    Evidence {
        #[command(flatten)]
        server: ServerArgs,
        id: i64,
        /// A directory that does not exist yet (or is empty).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Check an evidence bundle offline: its signed manifest, every file's digest, each
    /// log row's own signature, and each decision against the row that recorded it. Exit
    /// 0 when it verifies, 1 when it does not (every problem printed).
    Verify {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The public keys to trust (`roster keys public` on the service's host) [default:
        /// this state's keys].
        #[arg(long, value_name = "FILE")]
        public_keys: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportKind {
    Privileged,
    Dormant,
    Orphaned,
    Leavers,
    /// Who had access at a moment (--role, --scope, --at).
    Access,
}
