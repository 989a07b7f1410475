//! Which base URLs a connector may send credentials to. Over plain `http://` a client secret,
//! an admin password and every token cross the network readable by anyone on the path, so
//! that is allowed only to this machine (a local sandbox) unless the operator says otherwise.

/// The host of an `http(s)://` URL, without brackets, port or user info.
pub fn host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

/// True for `localhost`, `*.localhost` and loopback addresses (127.0.0.0/8, ::1).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// True when `url` points at this machine: a refused connection there means nothing listens,
/// so clients fail at once instead of retrying.
pub fn is_local(url: &str) -> bool {
    host(url).is_some_and(is_loopback)
}

/// Checks that `url` is `https://`, or `http://` to this machine, or `http://` elsewhere with
/// `allow_insecure_http`. The error says what to change.
pub fn check_transport(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if !lower.starts_with("http://") {
        return Err(format!(
            "the URL {url:?} must start with https:// (or http:// for a local sandbox)"
        ));
    }
    match host(url) {
        Some(h) if is_loopback(h) => Ok(()),
        _ if allow_insecure_http => Ok(()),
        Some(h) => Err(format!(
            "the URL {url:?} is plain http:// to {h}, which would send credentials and tokens unencrypted; use https://, or pass --allow-insecure-http (ROSTER_ALLOW_INSECURE_HTTP=1) if this network is trusted"
        )),
        None => Err(format!("the URL {url:?} has no host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_found_in_every_shape() {
        assert_eq!(
            host("https://shop.example.com/rest"),
            Some("shop.example.com")
        );
        assert_eq!(host("http://127.0.0.1:8080"), Some("127.0.0.1"));
        assert_eq!(host("http://[::1]:9/x"), Some("::1"));
        assert_eq!(host("http://user:pw@10.0.0.1:80/"), Some("10.0.0.1"));
        assert_eq!(host("http://127.0.0.1@evil.example/"), Some("evil.example"));
    }

    #[test]
    fn plain_http_goes_only_to_this_machine_unless_allowed() {
        for ok in [
            "https://123-abc-456.mktorest.com",
            "http://127.0.0.1:4000",
            "http://127.8.9.10",
            "http://localhost:80",
            "http://[::1]:4000",
            "HTTP://LOCALHOST",
            "http://shop.localhost",
        ] {
            assert_eq!(check_transport(ok, false), Ok(()), "{ok}");
        }
        for refused in [
            "http://shop.example.com",
            "http://10.0.0.5:8080",
            "http://127.0.0.1@evil.example",
            "http://localhost.evil.example",
        ] {
            let e = check_transport(refused, false).unwrap_err();
            assert!(e.contains("--allow-insecure-http"), "{e}");
            assert_eq!(check_transport(refused, true), Ok(()), "{refused}");
        }
        assert!(
            check_transport("ftp://x.example", true)
                .unwrap_err()
                .contains("https://")
        );
    }
}
