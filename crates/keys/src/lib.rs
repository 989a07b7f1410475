//! Roster's signing key. A digest anyone can recompute proves nothing: whoever edits a plan
//! file or a database row can recompute it too. So what must be trusted later (plans,
//! approvals, audit-log rows, log heads) is signed with an Ed25519 key that lives in a file
//! of its own, outside Roster's database and outside plan files: `signing.key` (0600) in the
//! state directory, or wherever `ROSTER_SIGNING_KEY_FILE` points (a service host only, say).
//!
//! Verifying needs public keys alone, so an auditor can check a log without the secret.
//! Rotation keeps old signatures valid: the retired public keys are listed beside the key
//! file (`signing.key.retired`), and a signature names the key that made it.
//!
//! Ed25519 comes from `ring`, which is already in the tree for TLS: one crypto stack.

pub mod ssh;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// The key file's name in the state directory.
pub const KEY_FILE: &str = "signing.key";
/// The variable that names the key file elsewhere.
pub const KEY_FILE_ENV: &str = "ROSTER_SIGNING_KEY_FILE";
/// How a public key is written, one per line: `roster-ed25519 BASE64 KEY-ID`.
const PUBLIC_TAG: &str = "roster-ed25519";
/// How a signature is written: `ed25519:KEY-ID:BASE64`.
const SIGNATURE_TAG: &str = "ed25519";
/// The largest key or public-key file read (they are a few hundred bytes).
const MAX_FILE: u64 = 1 << 20;

/// What a signature is for. Each signs its own domain, so a signature made for one kind
/// of record can never be passed off as another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Plan,
    Approval,
    LogRow,
    LogHead,
    Tombstone,
    Export,
    /// The console's sign-in form token: only a form this service served can sign in.
    SignIn,
    /// An access review's evidence bundle (its manifest of file digests).
    Evidence,
}

impl Purpose {
    fn domain(self) -> &'static str {
        match self {
            Purpose::Plan => "roster/plan/v1",
            Purpose::Approval => "roster/approval/v1",
            Purpose::LogRow => "roster/log-row/v1",
            Purpose::LogHead => "roster/log-head/v1",
            Purpose::Tombstone => "roster/tombstone/v1",
            Purpose::Export => "roster/export/v1",
            Purpose::SignIn => "roster/sign-in-form/v1",
            Purpose::Evidence => "roster/review-evidence/v1",
        }
    }

    fn message(self, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(body.len() + 24);
        m.extend_from_slice(self.domain().as_bytes());
        m.push(b'\n');
        m.extend_from_slice(body);
        m
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the signing key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the signing key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a signing key Roster can use ({why}); give an Ed25519 key in PKCS#8 PEM (`openssl genpkey -algorithm ed25519`), or move it away and Roster makes a new one"
    )]
    BadKeyFile { path: PathBuf, why: String },
    #[error("the signing key {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path} line {line}: not a public key (`roster-ed25519 BASE64 KEY-ID`): {why}")]
    BadPublicKey {
        path: String,
        line: usize,
        why: String,
    },
    #[error(
        "this process holds public keys only and cannot sign; run it where the signing key is ({KEY_FILE} in the state directory or {KEY_FILE_ENV})"
    )]
    NoSigner,
    #[error("{what} has no signature")]
    Unsigned { what: String },
    #[error("{what} has a malformed signature ({why})")]
    Malformed { what: String, why: String },
    #[error(
        "{what} is signed by key {key_id}, which is neither this state's signing key nor one of its retired keys"
    )]
    UnknownKey { what: String, key_id: String },
    #[error("{what} does not match its signature (it was changed after it was signed)")]
    Mismatch { what: String },
}

pub type Result<T> = std::result::Result<T, KeyError>;

/// An Ed25519 public key and its id (the first 16 hex digits of its SHA-256).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    bytes: [u8; 32],
    id: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PublicKey {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        let id = roster_domain::sha256::hex(&bytes)[..16].to_string();
        Self { bytes, id }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `roster-ed25519 BASE64 KEY-ID`, the line public-key files hold.
    pub fn to_line(&self) -> String {
        format!("{PUBLIC_TAG} {} {}", B64.encode(self.bytes), self.id)
    }

    /// Reads one line of a public-key file; the id, if given, must be the key's.
    pub fn parse(line: &str) -> std::result::Result<Self, String> {
        let mut words = line.split_whitespace();
        if words.next() != Some(PUBLIC_TAG) {
            return Err(format!("it does not start with {PUBLIC_TAG}"));
        }
        let b64 = words.next().ok_or("the key is missing")?;
        let bytes = B64
            .decode(b64)
            .map_err(|e| format!("the key is not base64: {e}"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "an Ed25519 public key is 32 bytes".to_string())?;
        let key = Self::from_bytes(bytes);
        if let Some(id) = words.next()
            && id != key.id
        {
            return Err(format!("its id {id} is not the key's ({})", key.id));
        }
        Ok(key)
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.bytes)
            .verify(message, signature)
            .is_ok()
    }
}

/// The private half. `Debug` shows its id only.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public.id)
    }
}

impl SigningKey {
    fn from_pkcs8(der: &[u8]) -> std::result::Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))?;
        let bytes: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| "an Ed25519 public key is 32 bytes".to_string())?;
        Ok(Self {
            pair,
            public: PublicKey::from_bytes(bytes),
        })
    }

    fn generate() -> (Self, Vec<u8>) {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).expect("the system's random source works");
        let der = doc.as_ref().to_vec();
        let key = Self::from_pkcs8(&der).expect("a key ring just made parses");
        (key, der)
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

/// The keys a process has: the signing key where it has one (the current key), and the
/// public keys it accepts (the current one first, then the retired ones).
#[derive(Clone, Debug)]
pub struct Keyring {
    signer: Option<Arc<SigningKey>>,
    keys: Vec<PublicKey>,
    /// Where the key came from, for messages.
    source: String,
}

/// A key ring and whether loading it created the key just now.
pub struct Loaded {
    pub keyring: Keyring,
    pub created: bool,
}

impl Keyring {
    /// The key file Roster uses: `ROSTER_SIGNING_KEY_FILE` if set, else `signing.key` in
    /// the state directory.
    pub fn default_path(state_dir: &Path) -> PathBuf {
        match std::env::var_os(KEY_FILE_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => state_dir.join(KEY_FILE),
        }
    }

    /// Reads the key at `path`, making one (0600) if there is none yet, and the retired
    /// public keys beside it.
    pub fn load_or_create(path: &Path) -> Result<Loaded> {
        let (signer, created) = match read_private(path)? {
            Some(text) => (parse_private(path, &text)?, false),
            None => match create(path) {
                Ok(key) => (key, true),
                // Another process made it first: use theirs.
                Err(KeyError::Write { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    let text = read_private(path)?.ok_or_else(|| KeyError::Read {
                        path: path.to_path_buf(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    })?;
                    (parse_private(path, &text)?, false)
                }
                Err(e) => return Err(e),
            },
        };
        let mut keys = vec![signer.public.clone()];
        keys.extend(read_public(&retired_path(path), true)?);
        Ok(Loaded {
            keyring: Keyring {
                signer: Some(Arc::new(signer)),
                keys,
                source: path.display().to_string(),
            },
            created,
        })
    }

    /// Public keys only, as `roster keys public` prints them: what an auditor holds.
    pub fn from_public_file(path: &Path) -> Result<Self> {
        let keys = read_public(path, false)?;
        if keys.is_empty() {
            return Err(KeyError::BadPublicKey {
                path: path.display().to_string(),
                line: 0,
                why: "the file holds no key".into(),
            });
        }
        Ok(Self {
            signer: None,
            keys,
            source: path.display().to_string(),
        })
    }

    /// A key made in memory, for tests and benchmarks that need no file.
    pub fn ephemeral() -> Self {
        let (key, _) = SigningKey::generate();
        Self {
            keys: vec![key.public.clone()],
            signer: Some(Arc::new(key)),
            source: "an in-memory key".into(),
        }
    }

    /// Retires the current key at `path` (its public half joins the retired list) and
    /// puts a new one in its place. Old signatures keep verifying; new ones use the new key.
    pub fn rotate(path: &Path) -> Result<Keyring> {
        let old = Self::load_or_create(path)?.keyring;
        let current = old.current().expect("a loaded key ring signs").clone();
        let retired = retired_path(path);
        let mut listed = read_public(&retired, true)?;
        if !listed.contains(&current) {
            listed.push(current);
        }
        let text: String = listed.iter().map(|k| k.to_line() + "\n").collect();
        write_file(&retired, text.as_bytes(), 0o644, false)?;
        let (key, der) = SigningKey::generate();
        let tmp = path.with_extension("key.new");
        let _ = std::fs::remove_file(&tmp);
        write_file(&tmp, pem(&der).as_bytes(), 0o600, true)?;
        std::fs::rename(&tmp, path).map_err(|source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        drop(key);
        Ok(Self::load_or_create(path)?.keyring)
    }

    /// The current key's public half (the one new signatures use), if this ring signs.
    pub fn current(&self) -> Option<&PublicKey> {
        self.signer.as_ref().map(|s| &s.public)
    }

    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// Every public key accepted, the current one first.
    pub fn public_keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The public-key file's text: every accepted key, one per line.
    pub fn public_file(&self) -> String {
        let mut text = String::from(
            "# Roster's public signing keys: the first signs now, the others are retired.\n\
             # Verify with `roster log verify --public-keys THIS_FILE --head HEAD.json`.\n",
        );
        for k in &self.keys {
            text.push_str(&k.to_line());
            text.push('\n');
        }
        text
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// `ed25519:KEY-ID:BASE64` over `body` in `purpose`'s domain.
    pub fn sign(&self, purpose: Purpose, body: &[u8]) -> Result<String> {
        let signer = self.signer.as_ref().ok_or(KeyError::NoSigner)?;
        let sig = signer.pair.sign(&purpose.message(body));
        Ok(format!(
            "{SIGNATURE_TAG}:{}:{}",
            signer.public.id,
            B64.encode(sig.as_ref())
        ))
    }

    /// Checks `signature` over `body`; `what` names the record in the error. Returns the
    /// id of the key that made it.
    pub fn verify(
        &self,
        purpose: Purpose,
        body: &[u8],
        signature: Option<&str>,
        what: &str,
    ) -> Result<String> {
        let signature = match signature {
            Some(s) if !s.is_empty() => s,
            _ => {
                return Err(KeyError::Unsigned {
                    what: what.to_string(),
                });
            }
        };
        let malformed = |why: &str| KeyError::Malformed {
            what: what.to_string(),
            why: why.to_string(),
        };
        let mut parts = signature.splitn(3, ':');
        if parts.next() != Some(SIGNATURE_TAG) {
            return Err(malformed("not an ed25519 signature"));
        }
        let key_id = parts.next().ok_or_else(|| malformed("no key id"))?;
        let bytes = B64
            .decode(parts.next().ok_or_else(|| malformed("no signature"))?)
            .map_err(|_| malformed("not base64"))?;
        let key =
            self.keys
                .iter()
                .find(|k| k.id == key_id)
                .ok_or_else(|| KeyError::UnknownKey {
                    what: what.to_string(),
                    key_id: key_id.to_string(),
                })?;
        if key.verify(&purpose.message(body), &bytes) {
            Ok(key_id.to_string())
        } else {
            Err(KeyError::Mismatch {
                what: what.to_string(),
            })
        }
    }

    /// Whether the key `id` is one this ring accepts.
    pub fn knows(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }
}

/// The key id a signature names, without checking it.
pub fn signature_key_id(signature: &str) -> Option<&str> {
    let mut parts = signature.splitn(3, ':');
    (parts.next()? == SIGNATURE_TAG).then_some(())?;
    parts.next()
}

/// `signing.key` -> `signing.key.retired`.
pub fn retired_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".retired");
    PathBuf::from(name)
}

fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut text = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        text.push('\n');
    }
    text.push_str("-----END PRIVATE KEY-----\n");
    text
}

fn parse_private(path: &Path, text: &str) -> Result<SigningKey> {
    let bad = |why: String| KeyError::BadKeyFile {
        path: path.to_path_buf(),
        why,
    };
    if !text.contains("-----BEGIN PRIVATE KEY-----") {
        return Err(bad("no PEM PRIVATE KEY block".into()));
    }
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = B64
        .decode(body)
        .map_err(|e| bad(format!("the PEM block is not base64: {e}")))?;
    SigningKey::from_pkcs8(&der).map_err(bad)
}

fn create(path: &Path) -> Result<SigningKey> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|source| KeyError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let (key, der) = SigningKey::generate();
    // Written whole beside it, then linked into place: processes starting together on
    // one shared key file never read a half-written key, and the link fails (as
    // AlreadyExists) for all but the first.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".new-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    write_file(&tmp, pem(&der).as_bytes(), 0o600, true)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(|source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(key)
}

/// Opens without following a symlink: a link planted where the key goes must not make
/// Roster read or write another file.
fn open_options(write: bool, mode: u32) -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    if write {
        o.write(true);
    } else {
        o.read(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW).mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    o
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, exclusive: bool) -> Result<()> {
    let mut o = open_options(true, mode);
    if exclusive {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    let err = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = o.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

fn read_limited(path: &Path) -> std::io::Result<Option<(String, u32)>> {
    let f = match open_options(false, 0).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    #[cfg(unix)]
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
    #[cfg(not(unix))]
    let mode = 0o600;
    let mut text = String::new();
    f.take(MAX_FILE).read_to_string(&mut text)?;
    Ok(Some((text, mode)))
}

fn read_private(path: &Path) -> Result<Option<String>> {
    let read = read_limited(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    match read {
        None => Ok(None),
        Some((_, mode)) if mode & 0o077 != 0 => Err(KeyError::Exposed {
            path: path.to_path_buf(),
            mode,
        }),
        Some((text, _)) => Ok(Some(text)),
    }
}

fn read_public(path: &Path, missing_ok: bool) -> Result<Vec<PublicKey>> {
    let text = match read_limited(path) {
        Ok(Some((text, _))) => text,
        Ok(None) if missing_ok => return Ok(Vec::new()),
        Ok(None) => {
            return Err(KeyError::Read {
                path: path.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        Err(source) => {
            return Err(KeyError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = PublicKey::parse(line).map_err(|why| KeyError::BadPublicKey {
            path: path.display().to_string(),
            line: i + 1,
            why,
        })?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_for_its_purpose_and_content_only() {
        let ring = Keyring::ephemeral();
        let sig = ring.sign(Purpose::Plan, b"digest-1").unwrap();
        assert!(
            ring.verify(Purpose::Plan, b"digest-1", Some(&sig), "plan")
                .is_ok()
        );
        assert!(matches!(
            ring.verify(Purpose::Plan, b"digest-2", Some(&sig), "plan"),
            Err(KeyError::Mismatch { .. })
        ));
        // The same bytes signed as a plan are no approval.
        assert!(matches!(
            ring.verify(Purpose::Approval, b"digest-1", Some(&sig), "approval"),
            Err(KeyError::Mismatch { .. })
        ));
        assert!(matches!(
            ring.verify(Purpose::Plan, b"digest-1", None, "plan"),
            Err(KeyError::Unsigned { .. })
        ));
        // Another key's signature names a key this ring does not know.
        let other = Keyring::ephemeral()
            .sign(Purpose::Plan, b"digest-1")
            .unwrap();
        assert!(matches!(
            ring.verify(Purpose::Plan, b"digest-1", Some(&other), "plan"),
            Err(KeyError::UnknownKey { .. })
        ));
    }

    #[test]
    fn the_key_file_is_made_once_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(KEY_FILE);
        let first = Keyring::load_or_create(&path).unwrap();
        assert!(first.created);
        let second = Keyring::load_or_create(&path).unwrap();
        assert!(!second.created);
        assert_eq!(first.keyring.current(), second.keyring.current());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                Keyring::load_or_create(&path),
                Err(KeyError::Exposed { .. })
            ));
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_where_the_key_goes_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "not a key").unwrap();
        let path = dir.path().join(KEY_FILE);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(Keyring::load_or_create(&path).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "not a key");
    }

    #[test]
    fn rotation_keeps_old_signatures_valid_and_signs_with_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let old = Keyring::load_or_create(&path).unwrap().keyring;
        let old_sig = old.sign(Purpose::LogRow, b"row 1").unwrap();
        let new = Keyring::rotate(&path).unwrap();
        assert_ne!(new.current(), old.current());
        assert!(
            new.verify(Purpose::LogRow, b"row 1", Some(&old_sig), "row 1")
                .is_ok()
        );
        let new_sig = new.sign(Purpose::LogRow, b"row 2").unwrap();
        assert_eq!(signature_key_id(&new_sig), new.current().map(PublicKey::id));
        // An auditor with the public file alone verifies both, and cannot sign.
        let public = dir.path().join("roster.pub");
        std::fs::write(&public, new.public_file()).unwrap();
        let auditor = Keyring::from_public_file(&public).unwrap();
        assert!(!auditor.can_sign());
        assert!(
            auditor
                .verify(Purpose::LogRow, b"row 1", Some(&old_sig), "row 1")
                .is_ok()
        );
        assert!(
            auditor
                .verify(Purpose::LogRow, b"row 2", Some(&new_sig), "row 2")
                .is_ok()
        );
        assert!(matches!(
            auditor.sign(Purpose::LogRow, b"x"),
            Err(KeyError::NoSigner)
        ));
    }

    #[test]
    fn an_openssl_style_pkcs8_v1_key_is_accepted() {
        // `openssl genpkey -algorithm ed25519` writes PKCS#8 v1 (no public key inside).
        let seed = [7u8; 32];
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        write_file(&path, pem(&der).as_bytes(), 0o600, true).unwrap();
        let ring = Keyring::load_or_create(&path).unwrap().keyring;
        let sig = ring.sign(Purpose::Plan, b"x").unwrap();
        assert!(ring.verify(Purpose::Plan, b"x", Some(&sig), "x").is_ok());
    }

    #[test]
    fn debug_shows_the_key_id_only() {
        let ring = Keyring::ephemeral();
        let shown = format!("{ring:?}");
        assert!(shown.contains("SigningKey("));
        assert!(!shown.contains("pair"));
    }
}
