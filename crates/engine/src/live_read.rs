//! The sessions a plan or an apply works through, read together; and reading rosters.

use std::path::Path;

use anyhow::{Context, Result, bail};
use roster_domain::desired::{App, Roster};
use roster_domain::live::Live;

use crate::Globals;
use crate::apps::Connector;
use crate::conn::{MagentoConn, MarketoConn};
use crate::connect::MarketoSession;
use crate::events::Event;
use crate::magento_ops::MagentoSession;

/// The connections a plan or an apply works through: each app whose URL is configured.
pub struct Sessions {
    pub marketo: Option<MarketoSession>,
    pub magento: Option<MagentoSession>,
    /// The Adobe Admin Console as an app of its own (`access: { adobe: ... }`).
    pub adobe: Option<crate::apps::adobe::AdobeSession>,
    /// Why the Adobe organization configured for the CLI could not be reached as an app: it
    /// matters only to a roster that gives Adobe access, which then fails saying so (the
    /// `[adobe]` section may be there for a Marketo subscription's link alone).
    pub adobe_error: Option<String>,
}

impl Sessions {
    /// Each app whose URL is in the environment or the config file.
    pub async fn open(g: &Globals) -> Result<Self> {
        // An instance of the service's configuration: its connection alone.
        if let Some(chosen) = &g.instance {
            return Self::connect(chosen.marketo.clone(), chosen.magento.clone(), g).await;
        }
        let file = g.config_file()?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let max_retries = match env("ROSTER_MARKETO_MAX_RETRIES") {
            Some(n) => Some(n.trim().parse::<usize>().map_err(|_| {
                anyhow::anyhow!(
                    "ROSTER_MARKETO_MAX_RETRIES is {n:?}: give a whole number of retries, like 6"
                )
            })?),
            None => None,
        };
        let marketo = env("ROSTER_MARKETO_URL")
            .or(file.marketo.url.clone())
            .map(|url| MarketoConn {
                url: Some(url),
                client_id: env("ROSTER_MARKETO_CLIENT_ID"),
                client_secret: env("ROSTER_MARKETO_CLIENT_SECRET"),
                max_retries,
                ..MarketoConn::default()
            });
        let magento = env("ROSTER_MAGENTO_URL")
            .or(file.magento.url.clone())
            .map(|url| MagentoConn {
                url: Some(url),
                username: env("ROSTER_MAGENTO_USERNAME"),
                password: env("ROSTER_MAGENTO_PASSWORD"),
                scope: "all".into(),
                totp_secret: env("ROSTER_MAGENTO_TOTP_SECRET"),
                totp_secret_file: env("ROSTER_MAGENTO_TOTP_SECRET_FILE").map(Into::into),
                token: env("ROSTER_MAGENTO_TOKEN"),
                consumer_key: env("ROSTER_MAGENTO_CONSUMER_KEY"),
                consumer_secret: env("ROSTER_MAGENTO_CONSUMER_SECRET"),
                access_token: env("ROSTER_MAGENTO_ACCESS_TOKEN"),
                access_token_secret: env("ROSTER_MAGENTO_ACCESS_TOKEN_SECRET"),
                instance: None,
            });
        let mut sessions = Self::connect(marketo, magento, g).await?;
        match crate::apps::adobe::AdobeSession::configured(g).await {
            Ok(adobe) => sessions.adobe = adobe,
            Err(e) => sessions.adobe_error = Some(format!("{e:#}")),
        }
        sessions.reserve_ims_profiles();
        Ok(sessions)
    }

    /// The Marketo subscription's product profiles are Marketo's access: the Adobe app
    /// leaves them alone.
    pub fn reserve_ims_profiles(&mut self) {
        if let (Some(a), Some(link)) = (
            &mut self.adobe,
            self.marketo.as_ref().and_then(|m| m.ims.as_ref()),
        ) && link.client.org_id() == a.instance
        {
            a.reserved = link.profiles.clone();
        }
    }

    pub async fn connect(
        marketo: Option<MarketoConn>,
        magento: Option<MagentoConn>,
        g: &Globals,
    ) -> Result<Self> {
        let marketo = match marketo {
            Some(conn) => Some(MarketoSession::open(&conn, g).await?),
            None => None,
        };
        let magento = match magento {
            Some(conn) => Some(MagentoSession::open(&conn, g).await?),
            None => None,
        };
        Ok(Sessions {
            marketo,
            magento,
            adobe: None,
            adobe_error: None,
        })
    }

    /// Every configured app, as a connector: the one list a new app joins.
    pub fn apps(&self) -> impl Iterator<Item = &dyn Connector> {
        [
            self.marketo.as_ref().map(|s| s as &dyn Connector),
            self.magento.as_ref().map(|s| s as &dyn Connector),
            self.adobe.as_ref().map(|s| s as &dyn Connector),
        ]
        .into_iter()
        .flatten()
    }

    /// The connector of `app`, if it is configured.
    pub fn app(&self, app: App) -> Option<&dyn Connector> {
        self.apps().find(|c| c.app() == app)
    }

    /// Where the sessions' events go (the first session's: they share one sink).
    pub fn events(&self) -> Option<&crate::events::Events> {
        self.apps().next().map(|c| c.events())
    }

    pub fn configured(&self, app: App) -> bool {
        self.app(app).is_some()
    }

    /// The username Roster signs in to Magento with: never planned against.
    pub fn magento_username(&self) -> Option<String> {
        self.magento
            .as_ref()
            .map(|s| s.client.config().username.to_lowercase())
            .filter(|u| !u.is_empty())
    }

    /// Saves the Marketo quota used and prints what every connection cost.
    pub async fn finish(&mut self) -> Result<()> {
        if let Some(s) = &mut self.marketo {
            s.record_usage().await?;
        }
        for c in self.apps() {
            c.events().emit(Event::Cost {
                app: c.app().name(),
                line: c.cost(),
            });
        }
        Ok(())
    }
}

/// Reads the live state of every configured app at once, each through its connector:
/// Magento customers of the roster's website only, Adobe holders of the names the roster
/// gives only.
pub async fn read(sessions: &Sessions, roster: &Roster) -> Result<Live> {
    let parts = futures_util::future::try_join_all(sessions.apps().map(|c| c.read(roster))).await?;
    Ok(parts.into_iter().fold(Live::default(), Live::merge))
}

/// Reads a roster file (and the CSV it may name), reporting every problem with its line.
pub fn load_roster(path: &Path) -> Result<Roster> {
    use roster_domain::roster_file::{self, Format};
    let name = path.display().to_string();
    let format = Format::of(&name).with_context(|| {
        format!("{name}: cannot tell the format; name the file .yaml, .yml, .toml or .csv")
    })?;
    let text = read_bounded(path, "the roster file")?;
    let problems = |list: Vec<roster_domain::desired::Problem>| {
        let lines: Vec<String> = list.iter().map(ToString::to_string).collect();
        crate::problem::Problem::invalid(format!(
            "the roster has {} problem{}; nothing was read from the apps:\n  {}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("\n  ")
        ))
    };
    let parsed = roster_file::parse(&name, &text, format).map_err(problems)?;
    let mut roster = parsed.roster;
    if let Some(csv) = parsed.people_file {
        let relative = Path::new(&csv);
        if relative.is_absolute() || Format::of(&csv) != Some(Format::Csv) {
            bail!(
                "{name}: people_file must be a relative path to a .csv file (it is resolved against the roster file's folder); got {}",
                roster_domain::text::sanitize(&csv)
            );
        }
        let csv_path = path.parent().unwrap_or(Path::new(".")).join(relative);
        let text = read_bounded(&csv_path, &format!("{name}: people_file"))?;
        roster_file::add_people(&mut roster, &csv_path.display().to_string(), &text)
            .map_err(problems)?;
    }
    Ok(roster)
}

/// The people_file a roster file names, resolved against its folder (`None`: it names none,
/// or cannot be read: `load_roster` says why).
pub fn people_file_of(path: &Path) -> Option<std::path::PathBuf> {
    use roster_domain::roster_file::{self, Format};
    let name = path.display().to_string();
    let format = Format::of(&name)?;
    let text = read_bounded(path, "the roster file").ok()?;
    let csv = roster_file::parse(&name, &text, format).ok()?.people_file?;
    Some(path.parent().unwrap_or(Path::new(".")).join(csv))
}

/// A roster or people file's text: a regular file (not a device, a pipe or a folder) of at
/// most [`roster_file::MAX_FILE_BYTES`]. Errors never quote the content.
fn read_bounded(path: &Path, what: &str) -> Result<String> {
    use roster_domain::roster_file::MAX_FILE_BYTES;
    use std::io::Read;
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {shown}"))?;
    if !meta.is_file() {
        bail!("{what} {shown} is not a regular file; give the path of a file");
    }
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "{what} {shown} is {} MiB; Roster reads files of up to {} MiB",
            meta.len() / (1024 * 1024),
            MAX_FILE_BYTES / (1024 * 1024)
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {what} {shown}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bail!(
            "{what} {shown} grew past {} MiB while it was read",
            MAX_FILE_BYTES / (1024 * 1024)
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{what} {shown} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}
