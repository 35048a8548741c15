//! Names: DFDG's fault codes and their messages, and the "did you mean" for a name that is not
//! known (an edit distance), used by rule compilation and by `dfdg-mock check`.

/// DFDG's fault codes and their meaning (docs/domain.md).
pub const DFDG_CODES: &[(i64, &str)] = &[
    (100, "Ping"),
    (1001, "Invalid CPR number"),
    (1010, "Unknown CPR number"),
    (1011, "Internal error"),
    (1012, "Logon failed"),
    (1013, "Insufficient permissions for this webservice"),
    (1014, "Message not valid"),
    (1100, "An error occurred"),
    (1101, "Client certificate missing"),
    (2001, "Code list name invalid"),
    (2002, "Code list value invalid"),
    (2003, "Code list value expired"),
    (4405, "Person is dead"),
    (4413, "Authority type in header invalid"),
    (4575, "Not authorised for the operation"),
    (8173, "Invalid OrganisationType"),
    (8174, "Invalid UserType"),
    (8232, "Missing ActiveOrganisationHeader"),
    (8233, "Missing RequestUserMetadataHeader"),
    (8234, "ActiveOrganisationHeader cannot be deserialised"),
];

/// The message of a known DFDG fault code.
pub fn dfdg_message(code: i64) -> Option<&'static str> {
    DFDG_CODES
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, message)| *message)
}

/// "unknown operation \"GetVariablePersonStatu\"; did you mean \"GetVariablePersonStatus\"?"
pub fn unknown_name(what: &str, name: &str, known: &[&str]) -> String {
    match did_you_mean(name, known) {
        Some(close) => format!("unknown {what} \"{name}\"; did you mean \"{close}\"?"),
        None if known.is_empty() => format!("unknown {what} \"{name}\""),
        None => format!(
            "unknown {what} \"{name}\"; expected one of: {}",
            known.join(", ")
        ),
    }
}

/// The known name closest to `name`, if it is close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    known
        .iter()
        .map(|candidate| {
            (
                edit_distance(&name.to_lowercase(), &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| *candidate)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_close_names() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        let known = ["GetVariablePersonStatus", "SaveAvailabilityAssessment"];
        assert_eq!(
            did_you_mean("GetVariablePersonStatu", &known),
            Some("GetVariablePersonStatus")
        );
        assert_eq!(did_you_mean("Nothing", &known), None);
    }
}
