//! Which addresses reelay's outbound requests may reach: client webhooks, provider output
//! downloads and media inputs all go to URLs a client chose. Such a URL must not let reelay
//! probe its own network (metadata endpoints, databases, admin ports), so only globally
//! routable unicast addresses pass, plus an explicit allow-list for local development.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Which addresses an outbound request may reach: public unicast addresses, plus an allow-list (local development, tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<Cidr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Malformed, or not an http(s) URL a webhook can be sent to.
    #[error("{0}")]
    BadUrl(String),
    /// The URL names an address the policy does not permit.
    #[error("{0}")]
    Forbidden(String),
    /// An allow-list entry is neither an IP address nor a CIDR block.
    #[error("{0}")]
    BadAllowEntry(String),
}

impl AddressPolicy {
    /// Public addresses only.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Parses a comma- or whitespace-separated list of CIDRs or single IPs: "127.0.0.0/8, ::1". Empty string = strict.
    pub fn with_allowed(list: &str) -> Result<Self, PolicyError> {
        let allowed = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .map(Cidr::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// True if `ip` may be contacted: allow-listed, or globally routable unicast.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow_listed(ip) || classify(ip).is_none()
    }

    /// What can be known from the URL alone (used at submission, answered with a 400): scheme must be http or
    /// https, a host must be present, no userinfo; a literal IP host (v4, or bracketed v6) must be permitted; the
    /// names `localhost` and `*.localhost` count as 127.0.0.1 and ::1. Other hostnames pass here: they are checked
    /// on the resolved address at connect time.
    pub fn check_url(&self, url: &str) -> Result<(), PolicyError> {
        let parsed =
            Url::parse(url).map_err(|e| PolicyError::BadUrl(format!("webhook URL is not a valid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(PolicyError::BadUrl(format!(
                "webhook URL scheme must be http or https, not {}",
                parsed.scheme()
            )));
        }
        let Some(host) = parsed.host() else {
            return Err(PolicyError::BadUrl("webhook URL has no host".into()));
        };
        // Credentials would be sent to the receiver and end up in logs; never echo them back.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(PolicyError::BadUrl(format!(
                "webhook URL for host {host} must not carry a user name or password"
            )));
        }
        match host {
            Host::Ipv4(ip) => self.check_ip(&host, ip.into()),
            Host::Ipv6(ip) => self.check_ip(&host, ip.into()),
            Host::Domain(name) if is_localhost(name) => {
                let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
                if loopback.into_iter().any(|ip| self.permits(ip)) {
                    Ok(())
                } else {
                    Err(PolicyError::Forbidden(format!(
                        "webhook host {name} is {}",
                        Class::Loopback
                    )))
                }
            }
            Host::Domain(_) => Ok(()),
        }
    }

    fn check_ip(&self, host: &Host<&str>, ip: IpAddr) -> Result<(), PolicyError> {
        if self.allow_listed(ip) {
            return Ok(());
        }
        match classify(ip) {
            None => Ok(()),
            Some(refusal) => Err(PolicyError::Forbidden(format!("webhook host {host} is {refusal}"))),
        }
    }

    fn allow_listed(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address reaches the IPv4 host, so it matches IPv4 entries too.
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed
            .iter()
            .any(|cidr| cidr.contains(ip) || mapped.is_some_and(|v4| cidr.contains(v4)))
    }
}

/// `localhost` and its subdomains are loopback by definition (RFC 6761), whatever DNS says.
fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(entry: &str) -> Result<Self, PolicyError> {
        let bad = || {
            PolicyError::BadAllowEntry(format!(
                "webhook allow-list entry {entry:?} is not an IP address or a CIDR block"
            ))
        };
        let (addr, prefix) = match entry.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (entry, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { network, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_prefix(net.to_bits().into(), ip.to_bits().into(), self.prefix, 32),
            (IpAddr::V6(net), IpAddr::V6(ip)) => in_prefix(net.to_bits(), ip.to_bits(), self.prefix, 128),
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of `a` and `b` (both `width` bits wide) agree.
fn in_prefix(a: u128, b: u128, prefix: u8, width: u32) -> bool {
    let prefix = u32::from(prefix);
    prefix == 0 || (a ^ b) >> (width - prefix) == 0
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    in_prefix(ip.to_bits().into(), Ipv4Addr::from(net).to_bits().into(), prefix, 32)
}

fn v6_in(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    in_prefix(ip.to_bits(), net.to_bits(), prefix, 128)
}

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Loopback,
    Unspecified,
    Private,
    SharedNat,
    LinkLocal,
    UniqueLocal,
    SiteLocal,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    Reserved,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Loopback => "a loopback address",
            Class::Unspecified => "an unspecified (this-network) address",
            Class::Private => "a private address",
            Class::SharedNat => "a carrier-grade NAT (shared) address",
            Class::LinkLocal => "a link-local address",
            Class::UniqueLocal => "a unique-local address",
            Class::SiteLocal => "a site-local address",
            Class::Multicast => "a multicast address",
            Class::Broadcast => "the broadcast address",
            Class::Documentation => "a documentation address",
            Class::Benchmarking => "a benchmarking address",
            Class::Reserved => "a reserved address",
        })
    }
}

/// A non-public address, with the IPv4 address it embeds when that is what was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    class: Class,
    embedded: Option<Ipv4Addr>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(v4) => write!(f, "{} (it embeds the IPv4 address {v4})", self.class),
            None => write!(f, "{}", self.class),
        }
    }
}

/// `None` for a globally routable unicast address, otherwise why not.
fn classify(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(|class| Refusal { class, embedded: None }),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    // Order matters only for overlaps: the broadcast address sits inside 240/4.
    const RANGES: &[([u8; 4], u8, Class)] = &[
        ([0, 0, 0, 0], 8, Class::Unspecified),
        ([10, 0, 0, 0], 8, Class::Private),
        ([100, 64, 0, 0], 10, Class::SharedNat),
        ([127, 0, 0, 0], 8, Class::Loopback),
        ([169, 254, 0, 0], 16, Class::LinkLocal),
        ([172, 16, 0, 0], 12, Class::Private),
        ([192, 0, 0, 0], 24, Class::Reserved),
        ([192, 0, 2, 0], 24, Class::Documentation),
        ([192, 168, 0, 0], 16, Class::Private),
        ([198, 18, 0, 0], 15, Class::Benchmarking),
        ([198, 51, 100, 0], 24, Class::Documentation),
        ([203, 0, 113, 0], 24, Class::Documentation),
        ([224, 0, 0, 0], 4, Class::Multicast),
        ([255, 255, 255, 255], 32, Class::Broadcast),
        ([240, 0, 0, 0], 4, Class::Reserved),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| v4_in(ip, *net, *prefix))
        .map(|(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let plain = |class| Some(Refusal { class, embedded: None });
    if ip == Ipv6Addr::UNSPECIFIED {
        return plain(Class::Unspecified);
    }
    if ip == Ipv6Addr::LOCALHOST {
        return plain(Class::Loopback);
    }
    // Addresses that carry an IPv4 address reach (or are translated to) that IPv4 host.
    let embedded = if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if v6_in(ip, Ipv6Addr::UNSPECIFIED, 96) {
        // IPv4-compatible ::a.b.c.d (deprecated, but still routed to the IPv4 host by some stacks).
        Some(Ipv4Addr::from_bits(ip.to_bits() as u32))
    } else if v6_in(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        // NAT64 well-known prefix.
        Some(Ipv4Addr::from_bits(ip.to_bits() as u32))
    } else if v6_in(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        // 6to4: the IPv4 address is in bits 16..48.
        Some(Ipv4Addr::from_bits((ip.to_bits() >> 80) as u32))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return classify_v4(v4).map(|class| Refusal {
            class,
            embedded: Some(v4),
        });
    }
    const RANGES: &[(Ipv6Addr, u8, Class)] = &[
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, Class::LinkLocal),
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, Class::SiteLocal),
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, Class::UniqueLocal),
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, Class::Multicast),
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, Class::Documentation),
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, Class::Documentation),
        (Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0), 48, Class::Benchmarking),
        // IETF protocol assignments (Teredo, ORCHID, ...): no webhook receiver lives there.
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23, Class::Reserved),
    ];
    if let Some((_, _, class)) = RANGES.iter().find(|(net, prefix, _)| v6_in(ip, *net, *prefix)) {
        return plain(*class);
    }
    // Only 2000::/3 is allocated for global unicast; everything else (NAT64 local-use, discard-only, ...) is not.
    if v6_in(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        None
    } else {
        plain(Class::Reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forbidden(policy: &AddressPolicy, url: &str) -> String {
        match policy.check_url(url) {
            Err(PolicyError::Forbidden(msg)) => msg,
            other => panic!("{url}: expected Forbidden, got {other:?}"),
        }
    }

    fn bad_url(url: &str) -> String {
        match AddressPolicy::strict().check_url(url) {
            Err(PolicyError::BadUrl(msg)) => msg,
            other => panic!("{url}: expected BadUrl, got {other:?}"),
        }
    }

    #[test]
    fn public_unicast_addresses_are_permitted() {
        let strict = AddressPolicy::strict();
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82a::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(strict.permits(ip(addr)), "{addr} should be public");
        }
    }

    #[test]
    fn every_non_public_ipv4_class_is_refused() {
        let strict = AddressPolicy::strict();
        for (addr, class) in [
            ("127.0.0.1", Class::Loopback),
            ("127.255.255.254", Class::Loopback),
            ("0.0.0.0", Class::Unspecified),
            ("0.1.2.3", Class::Unspecified),
            ("10.0.0.5", Class::Private),
            ("172.16.0.1", Class::Private),
            ("172.31.255.255", Class::Private),
            ("192.168.1.1", Class::Private),
            ("100.64.0.1", Class::SharedNat),
            ("100.127.255.255", Class::SharedNat),
            ("169.254.169.254", Class::LinkLocal),
            ("224.0.0.1", Class::Multicast),
            ("239.255.255.250", Class::Multicast),
            ("255.255.255.255", Class::Broadcast),
            ("192.0.2.10", Class::Documentation),
            ("198.51.100.10", Class::Documentation),
            ("203.0.113.10", Class::Documentation),
            ("198.18.0.1", Class::Benchmarking),
            ("198.19.255.255", Class::Benchmarking),
            ("240.0.0.1", Class::Reserved),
            ("192.0.0.8", Class::Reserved),
        ] {
            assert!(!strict.permits(ip(addr)), "{addr} should be refused");
            assert_eq!(classify(ip(addr)), Some(Refusal { class, embedded: None }), "{addr}");
        }
    }

    #[test]
    fn every_non_public_ipv6_class_is_refused() {
        let strict = AddressPolicy::strict();
        for (addr, class) in [
            ("::1", Class::Loopback),
            ("::", Class::Unspecified),
            ("fe80::1", Class::LinkLocal),
            ("febf::1", Class::LinkLocal),
            ("fc00::1", Class::UniqueLocal),
            ("fd12:3456::1", Class::UniqueLocal),
            ("fec0::1", Class::SiteLocal),
            ("ff02::1", Class::Multicast),
            ("2001:db8::1", Class::Documentation),
            ("2001:2::1", Class::Benchmarking),
            ("2001::1", Class::Reserved),
            ("64:ff9b:1::1", Class::Reserved),
            ("100::1", Class::Reserved),
        ] {
            assert!(!strict.permits(ip(addr)), "{addr} should be refused");
            assert_eq!(classify(ip(addr)), Some(Refusal { class, embedded: None }), "{addr}");
        }
    }

    #[test]
    fn ipv6_addresses_embedding_ipv4_are_judged_by_the_ipv4_address() {
        let strict = AddressPolicy::strict();
        for (addr, v4, class) in [
            ("::ffff:10.0.0.1", "10.0.0.1", Class::Private),
            ("::ffff:127.0.0.1", "127.0.0.1", Class::Loopback),
            ("::ffff:169.254.169.254", "169.254.169.254", Class::LinkLocal),
            ("::10.0.0.1", "10.0.0.1", Class::Private),
            ("::127.0.0.1", "127.0.0.1", Class::Loopback),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254", Class::LinkLocal),
            ("64:ff9b::192.168.0.1", "192.168.0.1", Class::Private),
            ("2002:7f00:1::1", "127.0.0.1", Class::Loopback),
            ("2002:c0a8:101::", "192.168.1.1", Class::Private),
        ] {
            assert!(!strict.permits(ip(addr)), "{addr} should be refused");
            let embedded = Some(v4.parse().unwrap());
            assert_eq!(classify(ip(addr)), Some(Refusal { class, embedded }), "{addr}");
        }
    }

    #[test]
    fn literal_ip_urls_are_checked_and_errors_name_host_and_reason() {
        let strict = AddressPolicy::strict();
        assert_eq!(
            forbidden(&strict, "http://10.0.0.5/hook"),
            "webhook host 10.0.0.5 is a private address"
        );
        assert_eq!(
            forbidden(&strict, "http://169.254.169.254/latest/meta-data/"),
            "webhook host 169.254.169.254 is a link-local address"
        );
        assert_eq!(
            forbidden(&strict, "https://[::1]:8443/"),
            "webhook host [::1] is a loopback address"
        );
        assert_eq!(
            forbidden(&strict, "http://[::ffff:10.0.0.1]/"),
            "webhook host [::ffff:a00:1] is a private address (it embeds the IPv4 address 10.0.0.1)"
        );
        assert_eq!(
            forbidden(&strict, "http://[fd00::1]/"),
            "webhook host [fd00::1] is a unique-local address"
        );
        assert_eq!(strict.check_url("https://8.8.8.8/hook"), Ok(()));
        assert_eq!(strict.check_url("https://[2606:4700:4700::1111]/hook"), Ok(()));
    }

    #[test]
    fn numeric_ipv4_spellings_are_normalised_and_caught() {
        let strict = AddressPolicy::strict();
        for url in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.0.1./",
        ] {
            assert_eq!(
                forbidden(&strict, url),
                "webhook host 127.0.0.1 is a loopback address",
                "{url}"
            );
        }
        assert_eq!(
            forbidden(&strict, "http://0xa9.0xfe.0xa9.0xfe/"),
            "webhook host 169.254.169.254 is a link-local address"
        );
        assert_eq!(
            forbidden(&strict, "http://167772161/"),
            "webhook host 10.0.0.1 is a private address"
        );
    }

    #[test]
    fn localhost_names_count_as_loopback() {
        let strict = AddressPolicy::strict();
        for url in [
            "http://localhost/",
            "http://LOCALHOST:8080/",
            "http://api.localhost/",
            "http://localhost./x",
        ] {
            let msg = forbidden(&strict, url);
            assert!(msg.ends_with("is a loopback address"), "{url}: {msg}");
        }
        assert_eq!(
            forbidden(&strict, "http://localhost:9/"),
            "webhook host localhost is a loopback address"
        );
        let dev = AddressPolicy::with_allowed("127.0.0.0/8").unwrap();
        assert_eq!(dev.check_url("http://localhost:3000/hook"), Ok(()));
        assert_eq!(dev.check_url("http://my.app.localhost/hook"), Ok(()));
        let v6_only = AddressPolicy::with_allowed("::1").unwrap();
        assert_eq!(v6_only.check_url("http://localhost/"), Ok(()));
    }

    #[test]
    fn other_hostnames_are_left_to_the_connect_time_check() {
        let strict = AddressPolicy::strict();
        assert_eq!(strict.check_url("https://hooks.example.com/reelay?token=abc"), Ok(()));
        assert_eq!(strict.check_url("http://notlocalhost/"), Ok(()));
        assert_eq!(strict.check_url("http://localhost.example.com/"), Ok(()));
    }

    #[test]
    fn malformed_or_unsuitable_urls_are_bad_urls() {
        assert!(bad_url("not a url").starts_with("webhook URL is not a valid URL"));
        assert!(bad_url("http://").starts_with("webhook URL is not a valid URL"));
        assert_eq!(
            bad_url("ftp://example.com/"),
            "webhook URL scheme must be http or https, not ftp"
        );
        assert_eq!(
            bad_url("file:///etc/passwd"),
            "webhook URL scheme must be http or https, not file"
        );
        assert_eq!(
            bad_url("gopher://10.0.0.1:6379/"),
            "webhook URL scheme must be http or https, not gopher"
        );
        let msg = bad_url("https://user:s3cret@example.com/");
        assert_eq!(
            msg,
            "webhook URL for host example.com must not carry a user name or password"
        );
        assert!(!msg.contains("s3cret"));
        assert!(bad_url("https://user@example.com/").contains("must not carry a user name or password"));
    }

    #[test]
    fn the_allow_list_admits_exactly_its_blocks() {
        let policy = AddressPolicy::with_allowed("127.0.0.0/8, ::1\n10.1.0.0/16 fd00::/8,192.168.1.7").unwrap();
        for addr in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "10.1.255.1",
            "fd12::1",
            "192.168.1.7",
            "::ffff:127.0.0.1",
        ] {
            assert!(policy.permits(ip(addr)), "{addr} should be allow-listed");
        }
        for addr in ["10.2.0.1", "192.168.1.8", "169.254.169.254", "fe80::1", "::2"] {
            assert!(!policy.permits(ip(addr)), "{addr} should still be refused");
        }
        // Public addresses stay permitted alongside the allow-list.
        assert!(policy.permits(ip("8.8.8.8")));
        assert_eq!(policy.check_url("http://127.0.0.1:8080/hook"), Ok(()));
        assert_eq!(policy.check_url("http://[::1]:8080/hook"), Ok(()));
        assert_eq!(
            forbidden(&policy, "http://10.2.0.1/"),
            "webhook host 10.2.0.1 is a private address"
        );
    }

    #[test]
    fn allow_list_blocks_with_host_bits_and_zero_prefixes() {
        let policy = AddressPolicy::with_allowed("10.9.8.7/8").unwrap();
        assert!(policy.permits(ip("10.0.0.1")));
        let everything_v4 = AddressPolicy::with_allowed("0.0.0.0/0").unwrap();
        assert!(everything_v4.permits(ip("169.254.169.254")));
        assert!(!everything_v4.permits(ip("fe80::1")));
    }

    #[test]
    fn an_empty_allow_list_is_strict() {
        assert_eq!(AddressPolicy::with_allowed("").unwrap(), AddressPolicy::strict());
        assert_eq!(AddressPolicy::with_allowed(" ,\n ").unwrap(), AddressPolicy::strict());
        assert!(!AddressPolicy::with_allowed("").unwrap().permits(ip("127.0.0.1")));
    }

    #[test]
    fn malformed_allow_entries_are_rejected() {
        for entry in [
            "localhost",
            "10.0.0.0/33",
            "::1/129",
            "10.0.0/8",
            "10.0.0.0/",
            "/8",
            "10.0.0.0/x",
        ] {
            match AddressPolicy::with_allowed(&format!("127.0.0.1, {entry}")) {
                Err(PolicyError::BadAllowEntry(msg)) => assert!(msg.contains(entry), "{msg}"),
                other => panic!("{entry}: expected BadAllowEntry, got {other:?}"),
            }
        }
    }
}
