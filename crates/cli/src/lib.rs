//! `roster`: keeps the user accounts of SaaS apps in line with who should have them.
//!
//! The command is this library and a `main.rs` that calls [`main`]: a binary cannot start
//! compiling before the crates it uses are compiled in full, a library can (Cargo's
//! pipelining), so most of the command's code compiles beside `roster-service` instead of
//! after it.

mod adobe_cmd;
mod args;
mod audit_cmd;
mod demo;
mod exit;
mod lifecycle_cmd;
mod magento_cmd;
mod marketo_cmd;
mod output;
mod plan_cmd;
mod render;
mod review_cmd;
mod sandbox_cmd;
mod serve_cmd;
mod state_cmd;
mod validate_cmd;

use std::sync::Arc;

use clap::Parser;
use roster_engine::planning::{self, ApplyArgs, ToApply};
use roster_engine::{actor, connect, lock};

/// The `roster` command: parses the arguments and runs them; the exit code says how it went.
pub fn main() -> std::process::ExitCode {
    restore_sigpipe();
    let cli = args::Cli::parse();
    // Offline, instant, no state: written before anything else starts.
    match &cli.command {
        args::Command::Completions { shell } => return completions(*shell),
        args::Command::Man => return man_page(),
        args::Command::Validate { files } => {
            return match validate_cmd::run(files) {
                Ok(validate_cmd::Validated::AllValid) => std::process::ExitCode::SUCCESS,
                Ok(validate_cmd::Validated::Invalid(n)) => {
                    eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
                    std::process::ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("error: cannot start Roster's runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `roster completions SHELL`: the script on stdout.
fn completions(shell: args::Shell) -> std::process::ExitCode {
    use clap::CommandFactory;
    use clap_complete::Shell as S;
    let shell = match shell {
        args::Shell::Bash => S::Bash,
        args::Shell::Zsh => S::Zsh,
        args::Shell::Fish => S::Fish,
        args::Shell::Powershell => S::PowerShell,
        args::Shell::Elvish => S::Elvish,
    };
    let mut cmd = args::Cli::command();
    clap_complete::generate(shell, &mut cmd, "roster", &mut std::io::stdout());
    std::process::ExitCode::SUCCESS
}

/// `roster man`: the manual page on stdout.
fn man_page() -> std::process::ExitCode {
    use clap::CommandFactory;
    let page = clap_mangen::Man::new(args::Cli::command());
    match page.render(&mut std::io::stdout()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the manual page: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The state a service configuration names (`[service] state`), for every command given it
/// with `--config` and no `--state` / ROSTER_STATE: one configuration, one state.
fn state_of_config(config: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    let path = config?;
    let text = std::fs::read_to_string(path).ok()?;
    if !validate_cmd::is_service_config(&text) {
        return None;
    }
    roster_service::config::ServeConfig::parse_offline(path, &text)
        .ok()?
        .state
}

/// Whether the configuration file given is the service's (`[service]`, `[marketo.NAME]`).
fn is_service_config(config: Option<&std::path::Path>) -> bool {
    config
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|t| validate_cmd::is_service_config(&t))
}

/// The instance of the service's configuration `plan` and `apply` work on: `--instance`, or
/// the only one. Read as the service reads it, its secrets included.
fn chosen_instance(
    config: Option<&std::path::Path>,
    name: Option<&str>,
) -> anyhow::Result<Option<roster_engine::Chosen>> {
    use roster_engine::problem::Problem;
    let Some(path) = config.filter(|p| is_service_config(Some(p))) else {
        if let Some(name) = name {
            return Err(Problem::not_configured(format!(
                "--instance {name}: instances are named in the service's configuration; give it with --config"
            )));
        }
        return Ok(None);
    };
    pick_instance(path, None, name).map(Some)
}

/// The instance of the service's configuration at `path` named `name`, else the only one
/// (of `app`, when a command works on one app).
fn pick_instance(
    path: &std::path::Path,
    app: Option<roster_domain::desired::App>,
    name: Option<&str>,
) -> anyhow::Result<roster_engine::Chosen> {
    use roster_engine::problem::Problem;
    use roster_service::config::{Connection, ServeConfig};
    let config = ServeConfig::load(path)?;
    let of_app: Vec<_> = config
        .instances
        .iter()
        .filter(|i| app.is_none_or(|a| i.app == a))
        .collect();
    let names: Vec<&str> = of_app.iter().map(|i| i.name.as_str()).collect();
    let what = app.map_or("instances".to_string(), |a| {
        format!("{} instances", a.name())
    });
    let inst = match name {
        Some(n) => {
            let inst = config.instance(n).ok_or_else(|| {
                Problem::not_configured(format!(
                    "--instance {n}: {} runs {}; name one of them",
                    path.display(),
                    config
                        .instances
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            if let Some(a) = app.filter(|a| *a != inst.app) {
                return Err(Problem::not_configured(format!(
                    "--instance {n} is not a {} instance; this command works on {}: {}",
                    a.name(),
                    what,
                    if names.is_empty() {
                        "none configured".into()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            inst
        }
        None if of_app.len() == 1 => of_app[0],
        None if of_app.is_empty() => {
            return Err(Problem::not_configured(format!(
                "{} runs no {what}",
                path.display()
            )));
        }
        None => {
            return Err(Problem::not_configured(format!(
                "{} runs {} {what} ({}): pass --instance NAME (or ROSTER_INSTANCE)",
                path.display(),
                names.len(),
                names.join(", ")
            )));
        }
    };
    let (marketo, magento) = match &inst.connection {
        Connection::Marketo(c) => (Some(c.clone()), None),
        Connection::Magento(c) => (None, Some(c.clone())),
        Connection::Adobe { .. } => {
            return Err(Problem::not_configured(format!(
                "{} is an Adobe organization: `roster serve` plans it; the CLI plans Marketo and Magento instances",
                inst.name
            )));
        }
    };
    Ok(roster_engine::Chosen {
        app: inst.app,
        name: inst.short_name().to_string(),
        marketo,
        magento,
    })
}

async fn run(mut cli: args::Cli) -> std::process::ExitCode {
    if cli.state.is_none() {
        cli.state = state_of_config(cli.config.as_deref());
    }
    // The service's configuration serves every command: plan and apply work on one of its
    // instances; the others read no connection settings from it.
    let service_config = is_service_config(cli.config.as_deref());
    let instance = if let args::Command::Plan { instance, .. }
    | args::Command::Apply { instance, .. } = &cli.command
    {
        match chosen_instance(cli.config.as_deref(), instance.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::from(exit::code(&e));
            }
        }
    } else {
        None
    };
    // The demo narrates on stdout; the in-process sandbox's own log lines would only get in the way.
    let quiet = matches!(cli.command, args::Command::Demo { .. });
    let json_logs = match &cli.command {
        args::Command::Serve {
            action: None,
            json_logs,
            ..
        } => {
            *json_logs
                || cli
                    .config
                    .as_deref()
                    .and_then(|p| roster_service::config::ServeConfig::load(p).ok())
                    .is_some_and(|c| c.json_logs)
        }
        _ => false,
    } || std::env::var("ROSTER_LOG_FORMAT").is_ok_and(|f| f == "json");
    init_tracing(cli.verbose, quiet, json_logs);
    connect::set_allow_insecure_http(cli.allow_insecure_http);
    connect::set_call_timeout(cli.timeout);
    let deadline = cli.deadline;
    let g = roster_engine::Globals {
        state: cli.state.clone(),
        database: cli.database.as_deref().map(String::from),
        config: cli.config.clone(),
        actor: cli.actor.clone(),
        events: Arc::new(render::Terminal),
        no_config_file: service_config,
        instance,
        // Commands that connect to one app (`marketo users`, `audit magento`, ...) find
        // their instance in the service's configuration when given it.
        service_instances: cli.config.clone().filter(|_| service_config).map(|path| {
            Arc::new(move |app, name: Option<&str>| pick_instance(&path, Some(app), name))
                as roster_engine::InstanceFinder
        }),
    };
    // One writer at a time: a command that changes the apps or the state holds the
    // state's lock (and, as it connects, each instance's) until it ends.
    let _state_lock = match writer(&cli.command) {
        Some(what) => {
            let dir = cli.state.clone().unwrap_or_else(connect::default_state_dir);
            lock::set_writer(what, cli.lock_wait);
            let held = match cli.database.as_deref() {
                // A shared database: the lock is in it, so processes on every machine wait.
                Some(url) => match connect::open_state(Some(&dir), Some(url)).await {
                    Ok(store) => lock::database(&store, what, cli.lock_wait)
                        .await
                        .map(|_held| StateLock::Database { _held }),
                    Err(e) => Err(e),
                },
                None => lock::acquire(&lock::state_lock_path(&dir), what, cli.lock_wait)
                    .map(|_held| StateLock::File { _held }),
            };
            match held {
                Ok(held) => Some(held),
                Err(err) => {
                    eprintln!("error: {err:#}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let line = audit_line(&cli.command);
    let by = by_flag(&cli.command).or(cli.actor.clone());
    let mut exit = std::process::ExitCode::SUCCESS;
    let work = async {
        match cli.command {
            // Answered in `main`, before the runtime starts.
            args::Command::Completions { .. }
            | args::Command::Man
            | args::Command::Validate { .. } => Ok(()),
            // --ims conflicts with --serve (and so --print-env), as the arguments say.
            args::Command::Demo { dir, ims: true, .. } => demo::run_ims(dir).await,
            args::Command::Demo {
                dir,
                serve,
                print_env,
                ims: false,
            } => demo::run(dir, serve, print_env).await,
            args::Command::Sandbox(cmd) => sandbox_cmd::run(cmd).await,
            args::Command::Marketo(cmd) => marketo_cmd::run(cmd, &g).await,
            args::Command::Audit(args::AuditCommand::Marketo {
                conn,
                output,
                html,
                resume,
            }) => audit_cmd::run(&conn, output, html, resume, &g).await,
            args::Command::Magento(cmd) => magento_cmd::run(cmd, &g).await,
            args::Command::Audit(args::AuditCommand::Magento {
                conn,
                html: Some(file),
                roster,
                ..
            }) => magento_cmd::audit_html(&conn, &file, roster.as_deref(), &g).await,
            args::Command::Audit(args::AuditCommand::Magento { conn, output, .. }) => {
                magento_cmd::audit(&conn, output, &g).await
            }
            args::Command::Audit(args::AuditCommand::Adobe { conn, output }) => {
                adobe_cmd::audit(&conn, output, &g).await
            }
            args::Command::Provision(args::ProvisionCommand::MagentoCustomer {
                conn,
                email,
                first,
                last,
                website,
                group,
                admin,
                role,
            }) => {
                magento_cmd::provision(
                    &conn,
                    &email,
                    &first,
                    &last,
                    website.as_deref(),
                    group.as_deref(),
                    admin.as_deref(),
                    role.as_deref(),
                    &g,
                )
                .await
            }
            args::Command::Offboard(args::OffboardCommand::Magento {
                conn,
                email,
                website,
                admin,
                confirm,
            }) => {
                magento_cmd::offboard(
                    &conn,
                    email.as_deref(),
                    website.as_deref(),
                    admin.as_deref(),
                    &confirm,
                    &g,
                )
                .await
            }
            args::Command::Provision(cmd) => lifecycle_cmd::provision(cmd, &g).await,
            args::Command::Offboard(args::OffboardCommand::Marketo {
                conn,
                email,
                include_api_only,
                confirm,
            }) => lifecycle_cmd::offboard_cmd(&conn, &email, include_api_only, &confirm, &g).await,
            args::Command::Tombstones(a) => lifecycle_cmd::tombstones(a, &g).await,
            args::Command::Restore(args::RestoreCommand::Marketo { conn, email }) => {
                lifecycle_cmd::restore(&conn, &email, &g).await
            }
            args::Command::Restore(args::RestoreCommand::Adobe { conn, email }) => {
                adobe_cmd::restore(&conn, &email, &g).await
            }
            args::Command::Restore(args::RestoreCommand::Magento {
                conn,
                email,
                website,
                admin,
            }) => magento_cmd::restore(&conn, email, website, admin, &g).await,
            args::Command::Plan {
                roster,
                out,
                output,
                resend_invites,
                people,
                detailed_exitcode,
                ..
            } => plan_cmd::plan_cmd(&roster, out.as_deref(), output, resend_invites, &people, &g)
                .await
                .map(|outcome| {
                    if detailed_exitcode {
                        exit = std::process::ExitCode::from(match outcome {
                            plan_cmd::PlanOutcome::NothingToDo => 0,
                            plan_cmd::PlanOutcome::Changes => 2,
                            plan_cmd::PlanOutcome::Blocked => 3,
                        });
                    }
                }),
            args::Command::Apply {
                plan,
                auto,
                approve,
                by,
                resend_invites,
                ..
            } => {
                let plan = match (plan.as_deref(), auto.as_deref()) {
                    (Some(path), None) => Ok(ToApply::File(path)),
                    (None, Some(roster)) => Ok(ToApply::Auto(roster)),
                    _ => Err(anyhow::anyhow!(
                        "give a saved plan (`roster apply plan.json`) or a roster with --auto"
                    )),
                };
                match plan {
                    Ok(plan) => {
                        planning::apply(
                            ApplyArgs {
                                plan,
                                approve,
                                by: by.as_deref(),
                                resend_invites,
                                stop: None,
                            },
                            &g,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                }
            }
            args::Command::Approve {
                plan,
                by,
                key,
                signature,
                print_digest,
            } => {
                use roster_engine::approvers::Signer;
                let how = match (&key, &signature) {
                    _ if print_digest => planning::Approve::PrintDigest,
                    (Some(k), _) => planning::Approve::Signed(Signer::Key(k)),
                    (_, Some(s)) => planning::Approve::Signed(Signer::Signature(s)),
                    _ => planning::Approve::ByName,
                };
                planning::approve(&plan, by.as_deref(), how, &g).await
            }
            args::Command::Serve {
                action: None,
                listen,
                ..
            } => {
                serve_cmd::serve(
                    cli.state.as_deref(),
                    cli.database.as_deref(),
                    cli.config.as_deref(),
                    listen,
                    cli.lock_wait,
                )
                .await
            }
            args::Command::Serve {
                action: Some(args::ServeAction::Token(t)),
                ..
            } => {
                serve_cmd::token(
                    t,
                    cli.state.as_deref(),
                    cli.database.as_deref(),
                    cli.config.as_deref(),
                )
                .await
            }
            args::Command::Serve {
                action: Some(args::ServeAction::User(u)),
                ..
            } => {
                serve_cmd::user(
                    u,
                    cli.state.as_deref(),
                    cli.database.as_deref(),
                    cli.config.as_deref(),
                )
                .await
            }
            args::Command::Serve {
                action: Some(args::ServeAction::ScimToken(t)),
                ..
            } => {
                serve_cmd::scim_token(
                    t,
                    cli.state.as_deref(),
                    cli.database.as_deref(),
                    cli.config.as_deref(),
                )
                .await
            }
            args::Command::Serve {
                action: Some(args::ServeAction::Migrate),
                ..
            } => {
                serve_cmd::migrate(
                    cli.state.as_deref(),
                    cli.database.as_deref(),
                    cli.config.as_deref(),
                )
                .await
            }
            args::Command::State(action) => state_cmd::state(action, &g).await,
            args::Command::Review(cmd) => review_cmd::run(cmd, &g).await,
            args::Command::Report {
                server,
                report,
                instance,
                days,
                role,
                scope,
                at,
                output,
            } => {
                review_cmd::report(
                    &server,
                    report,
                    &instance,
                    days,
                    role.as_deref(),
                    scope.as_deref(),
                    at.as_deref(),
                    output,
                )
                .await
            }
            args::Command::Log {
                action: Some(args::LogAction::Verify { head, public_keys }),
                ..
            } => plan_cmd::log_verify(head.as_deref(), public_keys.as_deref(), &g).await,
            args::Command::Log {
                action: Some(args::LogAction::Head { output }),
                ..
            } => plan_cmd::log_head(output, &g).await,
            args::Command::Keys(action) => plan_cmd::keys_cmd(action, &g).await,
            args::Command::Log {
                action: None,
                plan,
                output,
            } => plan_cmd::log_cmd(plan.as_deref(), output, &g).await,
        }
    };
    let result = match deadline {
        None => work.await,
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!(
                "stopped at the --deadline of {}s (ROSTER_DEADLINE); what was done before is recorded, and an apply resumes from its journal when run again",
                limit.as_secs()
            )),
        },
    };
    // Every command that changed (or tried to change) an app leaves a line in the audit log.
    if let Some((app, action, target, detail)) = line {
        let logged = async {
            let state = connect::open_state(g.state.as_deref(), g.database.as_deref()).await?;
            actor::record(
                &state,
                &actor::Actor::resolve(by.as_deref()),
                app,
                action,
                &target,
                Some(detail),
                &result,
            )
            .await
        };
        if let Err(e) = logged.await {
            eprintln!("error: the audit log could not be written: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    }
    match result {
        Ok(()) => exit,
        Err(err)
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            // The reader went away (`| head`): not an error worth reporting.
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(exit::code(&err))
        }
    }
}

/// The audit-log line of a command that changes an app: (app, action, target, detail).
/// `apply` and `approve` write their own lines (one per step, approval or refusal).
fn audit_line(command: &args::Command) -> Option<(&'static str, &'static str, String, String)> {
    use args::{
        Command, MagentoCommand, MarketoCommand, OffboardCommand, ProvisionCommand, RestoreCommand,
    };
    let roles = |r: &[String]| format!("roles: {}", r.join(", "));
    Some(match command {
        Command::Marketo(MarketoCommand::Invite { person, .. }) => (
            "marketo",
            "invite",
            person.email.clone(),
            format!(
                "roster marketo invite; {}{}",
                roles(&person.roles),
                if person.api_only { "; API-only" } else { "" }
            ),
        ),
        Command::Marketo(MarketoCommand::Update {
            userid,
            email,
            first,
            last,
            expires_at,
            no_expiry,
            ..
        }) => {
            let mut changed = Vec::new();
            if email.is_some() {
                changed.push("email");
            }
            if first.is_some() || last.is_some() {
                changed.push("name");
            }
            if expires_at.is_some() || *no_expiry {
                changed.push("login expiry");
            }
            (
                "marketo",
                "update",
                userid.clone(),
                format!("roster marketo update: {}", changed.join(", ")),
            )
        }
        Command::Marketo(MarketoCommand::Grant {
            userid, roles: r, ..
        }) => (
            "marketo",
            "grant",
            userid.clone(),
            format!("roster marketo grant; {}", roles(r)),
        ),
        Command::Marketo(MarketoCommand::Revoke {
            userid, roles: r, ..
        }) => (
            "marketo",
            "revoke",
            userid.clone(),
            format!("roster marketo revoke; {}", roles(r)),
        ),
        Command::Marketo(MarketoCommand::Delete {
            userid, confirm, ..
        }) if confirm.yes => (
            "marketo",
            "delete",
            userid.clone(),
            format!("roster marketo delete --yes{}", reason(confirm)),
        ),
        Command::Offboard(OffboardCommand::Marketo { email, confirm, .. }) if confirm.yes => (
            "marketo",
            "offboard",
            email.clone(),
            format!("roster offboard marketo --yes{}", reason(confirm)),
        ),
        Command::Offboard(OffboardCommand::Magento {
            email,
            admin,
            confirm,
            ..
        }) if confirm.yes => (
            "magento",
            "offboard",
            admin.clone().or(email.clone()).unwrap_or_default(),
            format!(
                "roster offboard magento --yes{}{}",
                if admin.is_some() { " (admin user)" } else { "" },
                reason(confirm)
            ),
        ),
        Command::Provision(ProvisionCommand::Marketo {
            email,
            roles: r,
            check_pending,
            resend,
            ..
        }) => {
            if *check_pending {
                (
                    "marketo",
                    "check pending",
                    "tracked invitations".into(),
                    format!(
                        "roster provision marketo --check-pending{}",
                        if *resend { " --resend" } else { "" }
                    ),
                )
            } else {
                (
                    "marketo",
                    "provision",
                    email.clone().unwrap_or_default(),
                    format!("roster provision marketo; {}", roles(r)),
                )
            }
        }
        Command::Provision(ProvisionCommand::MagentoCustomer {
            email,
            group,
            admin,
            role,
            ..
        }) => (
            "magento",
            "provision",
            admin.clone().unwrap_or_else(|| email.clone()),
            match admin {
                Some(_) => format!(
                    "roster provision magento: admin user, role {}",
                    role.clone().unwrap_or_default()
                ),
                None => format!(
                    "roster provision magento: customer, group {}",
                    group.clone().unwrap_or_else(|| "default".into())
                ),
            },
        ),
        Command::Restore(RestoreCommand::Marketo { email, .. }) => (
            "marketo",
            "restore",
            email.clone(),
            "roster restore marketo: re-invited from the tombstone".into(),
        ),
        Command::Restore(RestoreCommand::Magento { email, admin, .. }) => (
            "magento",
            "restore",
            admin
                .clone()
                .map(|a| format!("admin user {a}"))
                .or(email.clone().map(|e| format!("customer {e}")))
                .unwrap_or_default(),
            "roster restore magento: created again from the tombstone".into(),
        ),
        Command::Magento(MagentoCommand::Regroup {
            from,
            to,
            filters,
            yes: true,
            ..
        }) => (
            "magento",
            "regroup",
            format!("group {from}"),
            format!(
                "roster magento regroup --from {from} --to {to}{}",
                filters
                    .iter()
                    .map(|f| format!(" --filter {f}"))
                    .collect::<String>()
            ),
        ),
        _ => return None,
    })
}

fn reason(confirm: &args::Confirm) -> String {
    confirm
        .reason
        .as_ref()
        .map_or(String::new(), |r| format!(" (reason: {r})"))
}

/// The per-command `--by`, where a command has one.
fn by_flag(command: &args::Command) -> Option<String> {
    use args::{Command, MarketoCommand, OffboardCommand};
    match command {
        Command::Marketo(MarketoCommand::Delete { confirm, .. })
        | Command::Offboard(OffboardCommand::Marketo { confirm, .. })
        | Command::Offboard(OffboardCommand::Magento { confirm, .. }) => confirm.by.clone(),
        _ => None,
    }
}

/// Which commands change the apps or Roster's records, and so take the state's lock.
/// The state's lock a writing command holds until it ends: a file beside the SQLite state,
/// or the PostgreSQL state's own writer lock.
enum StateLock {
    File { _held: lock::Held },
    Database { _held: roster_store::SessionLock },
}

fn writer(command: &args::Command) -> Option<&'static str> {
    use args::{Command, MagentoCommand, MarketoCommand, OffboardCommand};
    Some(match command {
        Command::Apply { .. } => "roster apply",
        Command::Approve { .. } => "roster approve",
        Command::Provision(_) => "roster provision",
        Command::Restore(_) => "roster restore",
        Command::Offboard(OffboardCommand::Marketo { confirm, .. })
        | Command::Offboard(OffboardCommand::Magento { confirm, .. })
            if confirm.yes =>
        {
            "roster offboard"
        }
        Command::Marketo(MarketoCommand::Delete { confirm, .. }) if confirm.yes => {
            "roster marketo delete"
        }
        Command::Marketo(
            MarketoCommand::Invite { .. }
            | MarketoCommand::Update { .. }
            | MarketoCommand::Grant { .. }
            | MarketoCommand::Revoke { .. },
        ) => "roster marketo",
        Command::Magento(MagentoCommand::Regroup { yes: true, .. }) => "roster magento regroup",
        Command::State(args::StateAction::Import { .. }) => "roster state import",
        _ => return None,
    })
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`roster log | head`) would panic.
/// The default action ends the process quietly, as a Unix tool should (status 141).
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default before any thread writes.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_tracing(verbose: u8, quiet: bool, json: bool) {
    let default = match verbose {
        0 if quiet => "warn",
        0 if json => "info",
        0 => "warn,roster_sandbox=info,roster_service=info",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROSTER_LOG")
        .unwrap_or_else(|_| default.into());
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        return;
    }
    let ansi = output::colour(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}
