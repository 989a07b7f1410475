//! `roster`: keeps the user accounts of SaaS apps in line with who should have them.

mod args;
mod audit_cmd;
mod connect;
mod demo;
mod lifecycle;
mod live_read;
mod magento_cmd;
mod marketo_cmd;
mod output;
mod plan_cmd;
mod sandbox_cmd;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    // The demo narrates on stdout; the in-process sandbox's own log lines would only get in the way.
    let quiet = matches!(cli.command, args::Command::Demo { .. });
    init_tracing(cli.verbose, quiet);
    let g = marketo_cmd::Globals {
        state: cli.state.as_deref(),
        config: cli.config.as_deref(),
    };
    let result = match cli.command {
        args::Command::Demo { dir } => demo::run(dir).await,
        args::Command::Sandbox(cmd) => sandbox_cmd::run(cmd).await,
        args::Command::Marketo(cmd) => marketo_cmd::run(cmd, &g).await,
        args::Command::Audit(args::AuditCommand::Marketo { conn, output, html }) => {
            audit_cmd::run(&conn, output, html, &g).await
        }
        args::Command::Magento(cmd) => magento_cmd::run(cmd, &g).await,
        args::Command::Audit(args::AuditCommand::Magento { conn, output }) => {
            magento_cmd::audit(&conn, output, &g).await
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
        args::Command::Provision(cmd) => lifecycle::provision(cmd, &g).await,
        args::Command::Offboard(args::OffboardCommand::Marketo {
            conn,
            email,
            include_api_only,
            confirm,
        }) => lifecycle::offboard_cmd(&conn, &email, include_api_only, &confirm, &g).await,
        args::Command::Tombstones(a) => lifecycle::tombstones(a, &g).await,
        args::Command::Restore(args::RestoreCommand::Marketo { conn, email }) => {
            lifecycle::restore(&conn, &email, &g).await
        }
        args::Command::Plan {
            roster,
            out,
            output,
            resend_invites,
        } => plan_cmd::plan_cmd(&roster, out.as_deref(), output, resend_invites, &g).await,
        args::Command::Apply {
            plan,
            auto,
            approve,
            by,
            resend_invites,
        } => {
            plan_cmd::apply(
                plan_cmd::ApplyArgs {
                    plan: plan.as_deref(),
                    auto: auto.as_deref(),
                    approve,
                    by: by.as_deref(),
                    resend_invites,
                },
                &g,
            )
            .await
        }
        args::Command::Approve { plan, by } => plan_cmd::approve(&plan, by.as_deref(), &g).await,
        args::Command::Log { plan, output } => plan_cmd::log_cmd(plan.as_deref(), output, &g).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
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
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let default = match verbose {
        0 if quiet => "warn",
        0 => "warn,roster_sandbox=info",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROSTER_LOG")
        .unwrap_or_else(|_| default.into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}
