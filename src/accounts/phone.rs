//! Phone numbers: parsed and validated with libphonenumber's metadata, stored as E.164.

use crate::error::AppError;

/// Normalises a phone number typed by a person into E.164 (`+14155552671`).
/// Numbers must carry their country code (`+...` or `00...`).
pub fn normalize(input: &str, field: &str) -> Result<String, AppError> {
    let bad = || {
        AppError::bad_input(
            field,
            "not a valid phone number; include the country code, e.g. +14155552671",
        )
    };
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.len() > 32 {
        return Err(bad());
    }
    let international = match trimmed.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => trimmed.to_string(),
    };
    if !international.starts_with('+') {
        return Err(bad());
    }
    let number = phonenumber::parse(None, &international).map_err(|_| bad())?;
    if !phonenumber::is_valid(&number) {
        return Err(bad());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_become_e164() {
        for input in [
            "+1 (415) 555-2671",
            "+14155552671",
            "0014155552671",
            " +44 20 7946 0958 ",
        ] {
            let n = normalize(input, "phone").unwrap();
            assert!(
                n.starts_with('+') && n[1..].chars().all(|c| c.is_ascii_digit()),
                "{input} -> {n}"
            );
        }
        assert_eq!(
            normalize("+1 (415) 555-2671", "phone").unwrap(),
            "+14155552671"
        );
    }

    #[test]
    fn non_numbers_are_refused_with_the_field() {
        for input in [
            "",
            "12345",
            "hello",
            "+1",
            "+999 123",
            "4155552671",
            "'; DROP TABLE users; --",
            &"9".repeat(10_000),
        ] {
            match normalize(input, "input.phone") {
                Err(AppError::BadUserInput { field, .. }) => assert_eq!(field, "input.phone"),
                other => panic!("{input:?} gave {other:?}"),
            }
        }
    }
}
