//! A trunk's number rules (Lync's translation rules and `RemovePlusFromUri`): checked when the
//! file loads, so a replacement can only name groups its pattern has and write what a SIP URI's
//! user part may hold; applied by the engine to each call's called and calling number on the
//! leg toward or from the gateway. Pure.

use super::model::{GatewayConfig, NumberKind, NumberRule, RuleDirection};
use crate::sip::uri::is_safe_user;

/// `number` after `gateway`'s rules for `kind` and `direction` (the first rule whose pattern
/// matches rewrites it; a rule whose result would be empty is passed over), then, toward the
/// gateway, without a leading `+` when the trunk says `remove_plus`.
pub(crate) fn translate(
    gateway: &GatewayConfig,
    kind: NumberKind,
    direction: RuleDirection,
    number: &str,
) -> String {
    let rewritten = first_match(&gateway.number_rules, kind, direction, number)
        .unwrap_or_else(|| number.to_string());
    match rewritten.strip_prefix('+') {
        Some(rest) if gateway.remove_plus && direction == RuleDirection::ToGateway => {
            if rest.is_empty() {
                rewritten
            } else {
                rest.to_string()
            }
        }
        _ => rewritten,
    }
}

fn first_match(
    rules: &[NumberRule],
    kind: NumberKind,
    direction: RuleDirection,
    number: &str,
) -> Option<String> {
    rules
        .iter()
        .filter(|r| r.number == kind && r.direction == direction)
        .filter_map(|r| {
            let caps = r.pattern.captures(number)?;
            let mut out = String::new();
            caps.expand(&r.replace, &mut out);
            // Only the matched part is replaced; the rest of the number stays.
            let whole = caps.get(0)?;
            let result = format!(
                "{}{out}{}",
                &number[..whole.start()],
                &number[whole.end()..]
            );
            (!result.is_empty()).then_some(result)
        })
        .next()
}

/// Why `replace` cannot be used with `pattern`, if it cannot: a `$` reference to a group the
/// pattern does not have (`$1a` names a group `1a`: write `${1}a`), or a literal character a
/// SIP URI's user part may not hold.
pub(crate) fn check_replacement(pattern: &regex::Regex, replace: &str) -> Result<(), String> {
    let names: Vec<&str> = pattern.capture_names().flatten().collect();
    let groups = pattern.captures_len();
    let mut literal = String::new();
    let mut rest = replace;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            literal.push('$');
            rest = after;
            continue;
        }
        let (name, after) = match rest.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => return Err("a \"${\" without its \"}\"".into()),
            },
            None => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        let known = match name.parse::<usize>() {
            Ok(n) => n < groups,
            Err(_) => names.contains(&name),
        };
        if name.is_empty() {
            return Err("a \"$\" with no group after it (write \"$$\" for a dollar sign)".into());
        }
        if !known {
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            let hint = if !digits.is_empty() && digits.len() < name.len() {
                let text = &name[digits.len()..];
                format!(
                    " (for group {digits} followed by \"{text}\", write \"${{{digits}}}{text}\")"
                )
            } else {
                String::new()
            };
            return Err(format!("\"${name}\": the pattern has no such group{hint}"));
        }
        rest = after;
    }
    literal.push_str(rest);
    if let Some(c) = literal.chars().find(|c| !is_safe_user(&c.to_string())) {
        return Err(format!(
            "{c:?} may not stand in a SIP URI's user part (letters, digits and -_.!~*'()&=+$;?/%)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(
        rules: &[(NumberKind, RuleDirection, &str, &str)],
        remove_plus: bool,
    ) -> GatewayConfig {
        let mut g: GatewayConfig =
            toml::from_str("name = \"gw1\"\naddress = \"192.0.2.1:5061\"\ntransport = \"tls\"\n")
                .unwrap();
        g.number_rules = rules
            .iter()
            .map(|(number, direction, pattern, replace)| NumberRule {
                number: *number,
                direction: *direction,
                pattern: regex::Regex::new(pattern).unwrap(),
                replace: replace.to_string(),
            })
            .collect();
        g.remove_plus = remove_plus;
        g
    }

    use NumberKind::*;
    use RuleDirection::*;

    #[test]
    fn the_first_matching_rule_of_the_number_and_direction_wins() {
        let g = gateway(
            &[
                (Called, ToGateway, r"^\+1(\d{10})$", "1$1"),
                (Called, ToGateway, r"^\+(\d+)$", "011$1"),
                (Calling, ToGateway, r"^\+44(\d+)$", "0$1"),
                (Called, FromGateway, r"^(\d{4})$", "+1555000$1"),
            ],
            false,
        );
        assert_eq!(
            translate(&g, Called, ToGateway, "+15551234567"),
            "15551234567"
        );
        assert_eq!(
            translate(&g, Called, ToGateway, "+442071234567"),
            "011442071234567"
        );
        assert_eq!(
            translate(&g, Calling, ToGateway, "+442071234567"),
            "02071234567"
        );
        assert_eq!(translate(&g, Called, FromGateway, "4567"), "+15550004567");
        // No rule matches: the number goes as it came.
        assert_eq!(
            translate(&g, Calling, FromGateway, "+15551234567"),
            "+15551234567"
        );
        assert_eq!(translate(&g, Called, ToGateway, "911"), "911");
    }

    #[test]
    fn an_unanchored_pattern_replaces_only_what_it_matched() {
        let g = gateway(&[(Called, ToGateway, r"^00", "+")], false);
        assert_eq!(translate(&g, Called, ToGateway, "0044123"), "+44123");
    }

    #[test]
    fn remove_plus_applies_toward_the_gateway_after_the_rules() {
        let g = gateway(&[(Called, ToGateway, r"^(\d{10})$", "+1$1")], true);
        assert_eq!(
            translate(&g, Called, ToGateway, "5551234567"),
            "15551234567"
        );
        assert_eq!(
            translate(&g, Calling, ToGateway, "+15551234567"),
            "15551234567"
        );
        assert_eq!(
            translate(&g, Calling, FromGateway, "+15551234567"),
            "+15551234567"
        );
        assert_eq!(translate(&g, Called, ToGateway, "+"), "+", "never empty");
    }

    #[test]
    fn a_rule_that_would_empty_the_number_is_passed_over() {
        let g = gateway(
            &[
                (Called, ToGateway, r"^9$", ""),
                (Called, ToGateway, r"^9$", "0"),
            ],
            false,
        );
        assert_eq!(translate(&g, Called, ToGateway, "9"), "0");
    }

    #[test]
    fn replacements_are_checked_against_their_pattern() {
        let re = |p: &str| regex::Regex::new(p).unwrap();
        assert!(check_replacement(&re(r"^\+1(\d+)$"), "1$1").is_ok());
        assert!(check_replacement(&re(r"^\+1(?<n>\d+)$"), "${n}").is_ok());
        assert!(
            check_replacement(&re(r"^(\d+)$"), "$$1").is_ok(),
            "$$ is a literal $"
        );
        let e = check_replacement(&re(r"^(\d+)$"), "$2").unwrap_err();
        assert!(e.contains("no such group"), "{e}");
        let e = check_replacement(&re(r"^(\d+)$"), "$1a").unwrap_err();
        assert!(e.contains("write \"${1}a\""), "{e}");
        let e = check_replacement(&re(r"^(\d+)$"), "<$1>").unwrap_err();
        assert!(e.contains("'<'"), "{e}");
        assert!(check_replacement(&re(r"^(\d+)$"), "${1").is_err());
    }
}
