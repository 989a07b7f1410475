//! SSH signatures (`ssh-keygen -Y sign`, OpenSSH's PROTOCOL.sshsig) over plan digests, so a
//! destructive plan can require the approval of a person who holds a key, rather than of
//! a name anyone can type. A signature verifies against the approver's public key as the
//! roster lists it, so it can be stored anywhere (a database row, a file) without being
//! trusted: nobody without the private key can make one.
//!
//! Only `ssh-ed25519` keys: Ed25519 comes from `ring`, Roster's one crypto stack, and it is
//! what `ssh-keygen` makes by default. Signing in-process reads an unencrypted OpenSSH key;
//! an encrypted one (or one in an agent or on a hardware token) signs with `ssh-keygen -Y
//! sign` itself, and Roster takes that signature as it is.
//!
//! Written here rather than with the `ssh-key` crate, which would bring a second
//! implementation of Ed25519 and SHA-2 into the tree for two small binary formats.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, STANDARD_NO_PAD as B64_NO_PAD};
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};

const KEY_TYPE: &str = "ssh-ed25519";
const MAGIC: &[u8] = b"SSHSIG";
const SIG_VERSION: u32 = 1;
const BEGIN_SIG: &str = "-----BEGIN SSH SIGNATURE-----";
const END_SIG: &str = "-----END SSH SIGNATURE-----";
const BEGIN_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END_KEY: &str = "-----END OPENSSH PRIVATE KEY-----";
const KEY_MAGIC: &[u8] = b"openssh-key-v1\0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SshError {
    #[error(
        "{what} is not an ssh-ed25519 public key ({why}); write it as `ssh-keygen -y -f KEY` prints it: \"ssh-ed25519 AAAA... comment\""
    )]
    PublicKey { what: String, why: String },
    #[error("{0}")]
    PrivateKey(String),
    #[error(
        "the SSH signature is malformed ({0}); make it with `roster approve PLAN --key KEY` or `ssh-keygen -Y sign -n roster-plan -f KEY`"
    )]
    Malformed(String),
    #[error("the SSH signature was made for namespace {found:?}, not {expected:?}")]
    Namespace { expected: String, found: String },
    #[error("the SSH signature was made with another key ({found}), not {expected}")]
    OtherKey { expected: String, found: String },
    #[error("the SSH signature does not verify: it was made over other content, or altered")]
    Invalid,
}

/// An `ssh-ed25519` public key.
#[derive(Clone, PartialEq, Eq)]
pub struct SshPublicKey {
    /// The key's wire form (`string "ssh-ed25519" || string key`), as signatures embed it.
    blob: Vec<u8>,
    key: [u8; 32],
}

impl std::fmt::Debug for SshPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SshPublicKey({})", self.fingerprint())
    }
}

impl SshPublicKey {
    /// Reads `ssh-ed25519 BASE64 [comment]`, as in `authorized_keys` or a `.pub` file.
    /// `what` names it in errors (say, "approvers[0].key").
    pub fn parse(line: &str, what: &str) -> Result<Self, SshError> {
        let bad = |why: &str| SshError::PublicKey {
            what: what.to_string(),
            why: why.to_string(),
        };
        let mut parts = line.split_whitespace();
        let kind = parts.next().ok_or_else(|| bad("it is empty"))?;
        if kind != KEY_TYPE {
            return Err(bad(&format!(
                "its type is {kind:?}; only ssh-ed25519 keys are taken"
            )));
        }
        let b64 = parts
            .next()
            .ok_or_else(|| bad("the key itself is missing"))?;
        let blob = B64.decode(b64).map_err(|_| bad("its key is not base64"))?;
        Self::from_blob(&blob).ok_or_else(|| bad("its key is not a well-formed ssh-ed25519 key"))
    }

    fn from_blob(blob: &[u8]) -> Option<Self> {
        let mut r = Reader(blob);
        if r.string()? != KEY_TYPE.as_bytes() {
            return None;
        }
        let key: [u8; 32] = r.string()?.try_into().ok()?;
        r.0.is_empty().then(|| Self {
            blob: blob.to_vec(),
            key,
        })
    }

    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.blob);
        format!("SHA256:{}", B64_NO_PAD.encode(digest.as_ref()))
    }

    /// The `ssh-ed25519 BASE64` line.
    pub fn to_line(&self) -> String {
        format!("{KEY_TYPE} {}", B64.encode(&self.blob))
    }
}

/// An unencrypted OpenSSH `ssh-ed25519` private key, for signing in-process.
pub struct SshPrivateKey {
    pair: Ed25519KeyPair,
    public: SshPublicKey,
}

impl std::fmt::Debug for SshPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SshPrivateKey({})", self.public.fingerprint())
    }
}

impl SshPrivateKey {
    /// Reads an OpenSSH private key file's text (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub fn parse(text: &str) -> Result<Self, SshError> {
        let bad = |why: &str| SshError::PrivateKey(format!("the SSH key is not usable: {why}"));
        let body = armored(text, BEGIN_KEY, END_KEY).ok_or_else(|| {
            bad("it is not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----); convert it with `ssh-keygen -p -f KEY`, or sign with `ssh-keygen -Y sign` and pass --signature")
        })?;
        let raw = B64
            .decode(body)
            .map_err(|_| bad("its body is not base64"))?;
        let malformed = || bad("it is malformed");
        let rest = raw.strip_prefix(KEY_MAGIC).ok_or_else(malformed)?;
        let mut r = Reader(rest);
        let cipher = r.string().ok_or_else(malformed)?;
        let kdf = r.string().ok_or_else(malformed)?;
        let _kdf_options = r.string().ok_or_else(malformed)?;
        if cipher != b"none" || kdf != b"none" {
            return Err(SshError::PrivateKey(
                "the SSH key is protected by a passphrase, which Roster does not read: sign the digest with `roster approve PLAN --print-digest | ssh-keygen -Y sign -n roster-plan -f KEY > plan.sig` and pass `--signature plan.sig`".into(),
            ));
        }
        if r.u32() != Some(1) {
            return Err(bad("it holds more than one key"));
        }
        let public_blob = r.string().ok_or_else(malformed)?;
        let public = SshPublicKey::from_blob(public_blob).ok_or_else(|| {
            bad("it is not an ssh-ed25519 key; make one with `ssh-keygen -t ed25519`")
        })?;
        let mut p = Reader(r.string().ok_or_else(malformed)?);
        let (check1, check2) = (p.u32(), p.u32());
        if check1.is_none() || check1 != check2 {
            return Err(malformed());
        }
        if p.string() != Some(KEY_TYPE.as_bytes()) {
            return Err(malformed());
        }
        let pk = p.string().ok_or_else(malformed)?;
        let sk = p.string().ok_or_else(malformed)?;
        if pk != public.key || sk.len() != 64 || sk[32..] != public.key {
            return Err(malformed());
        }
        let pair = Ed25519KeyPair::from_seed_and_public_key(&sk[..32], pk)
            .map_err(|_| bad("its private and public halves do not match"))?;
        Ok(Self { pair, public })
    }

    pub fn public(&self) -> &SshPublicKey {
        &self.public
    }

    /// Signs `message` in `namespace`, as `ssh-keygen -Y sign -n NAMESPACE` does, and
    /// returns the armored signature.
    pub fn sign(&self, namespace: &str, message: &[u8]) -> String {
        let hash = "sha512";
        let signed = signed_data(namespace, hash, message);
        let sig = self.pair.sign(&signed);
        let mut sig_blob = Vec::new();
        put_string(&mut sig_blob, KEY_TYPE.as_bytes());
        put_string(&mut sig_blob, sig.as_ref());
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&SIG_VERSION.to_be_bytes());
        put_string(&mut blob, &self.public.blob);
        put_string(&mut blob, namespace.as_bytes());
        put_string(&mut blob, b"");
        put_string(&mut blob, hash.as_bytes());
        put_string(&mut blob, &sig_blob);
        let encoded = B64.encode(&blob);
        let mut out = String::from(BEGIN_SIG);
        out.push('\n');
        for chunk in encoded.as_bytes().chunks(70) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str(END_SIG);
        out.push('\n');
        out
    }
}

/// The public key an armored signature says it was made with (not yet verified).
pub fn signer(armored_sig: &str) -> Result<SshPublicKey, SshError> {
    Ok(parse_signature(armored_sig)?.public)
}

/// Checks that `armored_sig` is `key`'s signature over `message` in `namespace`.
pub fn verify(
    armored_sig: &str,
    key: &SshPublicKey,
    namespace: &str,
    message: &[u8],
) -> Result<(), SshError> {
    let sig = parse_signature(armored_sig)?;
    if sig.namespace != namespace {
        return Err(SshError::Namespace {
            expected: namespace.to_string(),
            found: sig.namespace.escape_debug().to_string(),
        });
    }
    if sig.public != *key {
        return Err(SshError::OtherKey {
            expected: key.fingerprint(),
            found: sig.public.fingerprint(),
        });
    }
    let signed = signed_data(namespace, &sig.hash, message);
    UnparsedPublicKey::new(&ED25519, key.key)
        .verify(&signed, &sig.signature)
        .map_err(|_| SshError::Invalid)
}

struct Parsed {
    public: SshPublicKey,
    namespace: String,
    hash: String,
    signature: Vec<u8>,
}

fn parse_signature(text: &str) -> Result<Parsed, SshError> {
    let bad = |why: &str| SshError::Malformed(why.to_string());
    let body = armored(text, BEGIN_SIG, END_SIG)
        .ok_or_else(|| bad("no -----BEGIN SSH SIGNATURE----- block"))?;
    let raw = B64
        .decode(body)
        .map_err(|_| bad("its body is not base64"))?;
    let rest = raw
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with SSHSIG"))?;
    let mut r = Reader(rest);
    if r.u32() != Some(SIG_VERSION) {
        return Err(bad("its version is not 1"));
    }
    let cut = || bad("it is cut short");
    let public = SshPublicKey::from_blob(r.string().ok_or_else(cut)?)
        .ok_or_else(|| bad("it was not made with an ssh-ed25519 key"))?;
    let namespace = String::from_utf8_lossy(r.string().ok_or_else(cut)?).into_owned();
    let _reserved = r.string().ok_or_else(cut)?;
    let hash = String::from_utf8_lossy(r.string().ok_or_else(cut)?).into_owned();
    if hash != "sha512" && hash != "sha256" {
        return Err(bad("its hash is neither sha512 nor sha256"));
    }
    let mut s = Reader(r.string().ok_or_else(cut)?);
    if s.string() != Some(KEY_TYPE.as_bytes()) {
        return Err(bad("its signature is not ssh-ed25519"));
    }
    let signature = s.string().ok_or_else(cut)?.to_vec();
    if signature.len() != 64 || !r.0.is_empty() {
        return Err(bad("its signature has the wrong length"));
    }
    Ok(Parsed {
        public,
        namespace,
        hash,
        signature,
    })
}

/// What is signed: PROTOCOL.sshsig's preamble, namespace and hash of the message.
fn signed_data(namespace: &str, hash: &str, message: &[u8]) -> Vec<u8> {
    let algorithm = if hash == "sha256" {
        &ring::digest::SHA256
    } else {
        &ring::digest::SHA512
    };
    let digest = ring::digest::digest(algorithm, message);
    let mut out = MAGIC.to_vec();
    put_string(&mut out, namespace.as_bytes());
    put_string(&mut out, b"");
    put_string(&mut out, hash.as_bytes());
    put_string(&mut out, digest.as_ref());
    out
}

/// The base64 between `begin` and `end`, whitespace removed.
fn armored(text: &str, begin: &str, end: &str) -> Option<String> {
    let start = text.find(begin)? + begin.len();
    let stop = start + text[start..].find(end)?;
    Some(
        text[start..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    )
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// SSH's wire format: big-endian `uint32` and length-prefixed `string`.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        if self.0.len() < len {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// An ed25519 key made by `ssh-keygen`, where it is installed (CI installs it).
    fn keygen(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        let key = dir.join("id_ed25519");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ana@example", "-f"])
            .arg(&key)
            .status();
        match made {
            Ok(s) if s.success() => Some(key),
            _ if std::env::var_os("ROSTER_REQUIRE_SSH_KEYGEN").is_some() => {
                panic!("ssh-keygen is required (ROSTER_REQUIRE_SSH_KEYGEN) but did not run")
            }
            _ => None,
        }
    }

    #[test]
    fn signatures_interoperate_with_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let Some(key) = keygen(dir.path()) else {
            eprintln!("ssh-keygen is not installed: skipped");
            return;
        };
        let public_line = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let public = SshPublicKey::parse(&public_line, "the test key").unwrap();
        let private = SshPrivateKey::parse(&std::fs::read_to_string(&key).unwrap()).unwrap();
        assert_eq!(private.public(), &public);
        let message = b"5f1a digest of a plan";

        // ssh-keygen's signature verifies here...
        let msg_file = dir.path().join("digest");
        std::fs::write(&msg_file, message).unwrap();
        let signed = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "roster-plan", "-f"])
            .arg(&key)
            .arg(&msg_file)
            .output()
            .unwrap();
        assert!(signed.status.success(), "{signed:?}");
        let theirs = std::fs::read_to_string(dir.path().join("digest.sig")).unwrap();
        verify(&theirs, &public, "roster-plan", message).unwrap();
        assert_eq!(
            verify(&theirs, &public, "roster-plan", b"other content"),
            Err(SshError::Invalid)
        );
        assert!(matches!(
            verify(&theirs, &public, "git", message),
            Err(SshError::Namespace { .. })
        ));

        // ...and ours verifies with ssh-keygen.
        let ours = private.sign("roster-plan", message);
        verify(&ours, &public, "roster-plan", message).unwrap();
        let sig_file = dir.path().join("ours.sig");
        std::fs::write(&sig_file, &ours).unwrap();
        let allowed = dir.path().join("allowed_signers");
        std::fs::write(&allowed, format!("ana {public_line}")).unwrap();
        let checked = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", "roster-plan", "-I", "ana", "-f"])
            .arg(&allowed)
            .arg("-s")
            .arg(&sig_file)
            .stdin(std::fs::File::open(&msg_file).unwrap())
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "ssh-keygen rejects our signature: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        assert_eq!(
            public.fingerprint(),
            String::from_utf8_lossy(
                &Command::new("ssh-keygen")
                    .args(["-l", "-E", "sha256", "-f"])
                    .arg(key.with_extension("pub"))
                    .output()
                    .unwrap()
                    .stdout
            )
            .split_whitespace()
            .nth(1)
            .unwrap()
        );
    }

    #[test]
    fn another_key_and_broken_inputs_are_refused_with_what_is_wrong() {
        let private = private_from([7; 32]);
        let other = private_from([8; 32]).public().clone();
        // A public key as a line reads back as the same key.
        assert_eq!(
            &SshPublicKey::parse(&format!("{} ana", other.to_line()), "k").unwrap(),
            &other
        );
        let sig = private.sign("roster-plan", b"m");
        assert!(matches!(
            verify(&sig, &other, "roster-plan", b"m"),
            Err(SshError::OtherKey { .. })
        ));
        // One flipped bit in the signature itself.
        let mut raw = B64
            .decode(armored(&sig, BEGIN_SIG, END_SIG).unwrap())
            .unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let flipped = format!("{BEGIN_SIG}\n{}\n{END_SIG}\n", B64.encode(&raw));
        assert_eq!(
            verify(&flipped, private.public(), "roster-plan", b"m"),
            Err(SshError::Invalid)
        );
        assert!(matches!(
            verify("hello", private.public(), "roster-plan", b"m"),
            Err(SshError::Malformed(_))
        ));
        let rsa = SshPublicKey::parse("ssh-rsa AAAAB3NzaC1yc2E x", "approvers[1].key")
            .unwrap_err()
            .to_string();
        assert!(
            rsa.contains("approvers[1].key") && rsa.contains("only ssh-ed25519"),
            "{rsa}"
        );
        assert!(SshPrivateKey::parse("not a key").is_err());
    }

    /// An unencrypted OpenSSH key file for `pair`, as `ssh-keygen -N ''` writes one.
    fn private_from(seed: [u8; 32]) -> SshPrivateKey {
        use ring::signature::KeyPair;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        let mut blob = Vec::new();
        put_string(&mut blob, KEY_TYPE.as_bytes());
        put_string(&mut blob, &public);
        let mut private = Vec::new();
        private.extend_from_slice(&[1, 2, 3, 4, 1, 2, 3, 4]);
        put_string(&mut private, KEY_TYPE.as_bytes());
        put_string(&mut private, &public);
        let mut sk = seed.to_vec();
        sk.extend_from_slice(&public);
        put_string(&mut private, &sk);
        put_string(&mut private, b"comment");
        let mut raw = KEY_MAGIC.to_vec();
        put_string(&mut raw, b"none");
        put_string(&mut raw, b"none");
        put_string(&mut raw, b"");
        raw.extend_from_slice(&1u32.to_be_bytes());
        put_string(&mut raw, &blob);
        put_string(&mut raw, &private);
        let text = format!("{BEGIN_KEY}\n{}\n{END_KEY}\n", B64.encode(&raw));
        SshPrivateKey::parse(&text).unwrap()
    }
}
