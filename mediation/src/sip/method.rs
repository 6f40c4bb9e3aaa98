//! SIP request methods: the ones this stack names, and any other token kept as written
//! (methods are case-sensitive, RFC 3261 §7.1, so `invite` is not INVITE).

use std::fmt;

/// A request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE.
    Invite,
    /// ACK.
    Ack,
    /// BYE.
    Bye,
    /// CANCEL.
    Cancel,
    /// OPTIONS.
    Options,
    /// UPDATE (RFC 3311).
    Update,
    /// INFO (RFC 6086).
    Info,
    /// PRACK (RFC 3262).
    Prack,
    /// REFER (RFC 3515).
    Refer,
    /// NOTIFY (RFC 6665).
    Notify,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// MESSAGE (RFC 3428).
    Message,
    /// REGISTER.
    Register,
    /// PUBLISH (RFC 3903).
    Publish,
    /// Any other token.
    Other(Box<str>),
}

const NAMED: &[(&str, Method)] = &[
    ("INVITE", Method::Invite),
    ("ACK", Method::Ack),
    ("BYE", Method::Bye),
    ("CANCEL", Method::Cancel),
    ("OPTIONS", Method::Options),
    ("UPDATE", Method::Update),
    ("INFO", Method::Info),
    ("PRACK", Method::Prack),
    ("REFER", Method::Refer),
    ("NOTIFY", Method::Notify),
    ("SUBSCRIBE", Method::Subscribe),
    ("MESSAGE", Method::Message),
    ("REGISTER", Method::Register),
    ("PUBLISH", Method::Publish),
];

impl Method {
    /// The method as written on the wire.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Method::Other(s) => s,
            named => NAMED
                .iter()
                .find(|(_, m)| m == named)
                .map_or("", |(s, _)| s),
        }
    }

    /// True for a method this stack names (an RFC method, in upper case).
    pub(crate) fn is_known(&self) -> bool {
        !matches!(self, Method::Other(_))
    }
}

impl From<&str> for Method {
    fn from(s: &str) -> Self {
        NAMED
            .iter()
            .find(|(name, _)| *name == s)
            .map_or_else(|| Method::Other(s.into()), |(_, m)| m.clone())
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_case_matters() {
        for (name, m) in NAMED {
            assert_eq!(&Method::from(*name), m);
            assert_eq!(m.as_str(), *name);
        }
        assert_eq!(Method::from("invite"), Method::Other("invite".into()));
        assert!(!Method::from("invite").is_known());
        assert_eq!(Method::from("NEWMETHOD").to_string(), "NEWMETHOD");
    }
}
