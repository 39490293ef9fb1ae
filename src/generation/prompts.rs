//! Versioned prompt templates. A job stores the template its prompt was rendered from and
//! the template's version, so a prompt can be traced and a template changed without
//! rewriting history: a new wording is a new constant with a new version, the old one stays.

use serde::{Deserialize, Serialize};

/// A LOGO brief (seed 002's logo generator): what the app is called and about, its colours
/// and a style.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogoBrief {
    pub app_name: String,
    pub app_focus: String,
    /// `#rrggbb` (or `#rgb`) colours, most important first.
    pub colors: Vec<String>,
    pub style: Option<String>,
}

/// One version of a template: `{placeholders}` are filled by [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// Stored on the job as `prompt_template_version`, e.g. `logo-brief.v1`.
    pub version: &'static str,
    /// Stored on the job as `prompt_template`.
    pub text: &'static str,
}

/// The logo brief template, version 1.
pub const LOGO_TEMPLATE_V1: Template = Template {
    version: "logo-brief.v1",
    text: "A professional logo for the app \"{app_name}\", an app about {app_focus}. \
           Style: {style}. Colour palette: {colors}. One memorable symbol in clean vector \
           shapes with flat colours, centred on a plain background, legible at small sizes; \
           no photographs, no mock-ups, no text other than the app name.{notes}",
};

/// A LOGO without a brief: the prompt as written, as a logo (version 1). It replaces the
/// fixed prefix the OpenAI provider used to add.
pub const LOGO_PROMPT_TEMPLATE_V1: Template = Template {
    version: "logo-prompt.v1",
    text: "A clean vector logo: {prompt}",
};

/// The style of a brief that names none.
pub const DEFAULT_LOGO_STYLE: &str = "modern, minimal";

/// `template.text` with each `{name}` replaced by its value.
pub fn render(template: &Template, values: &[(&str, &str)]) -> String {
    let mut out = template.text.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

/// The prompt of a LOGO job and the template it came from: from the brief when there is one
/// (`prompt`, if any, added as notes), else from the prompt.
pub fn logo_prompt(brief: Option<&LogoBrief>, prompt: Option<&str>) -> (String, Template) {
    match brief {
        Some(b) => {
            let notes = prompt.map(|p| format!(" Notes: {p}")).unwrap_or_default();
            let colors = b.colors.join(", ");
            let text = render(
                &LOGO_TEMPLATE_V1,
                &[
                    ("app_name", &b.app_name),
                    ("app_focus", &b.app_focus),
                    ("style", b.style.as_deref().unwrap_or(DEFAULT_LOGO_STYLE)),
                    ("colors", &colors),
                    ("notes", &notes),
                ],
            );
            (text, LOGO_TEMPLATE_V1)
        }
        None => (
            render(
                &LOGO_PROMPT_TEMPLATE_V1,
                &[("prompt", prompt.unwrap_or_default())],
            ),
            LOGO_PROMPT_TEMPLATE_V1,
        ),
    }
}

/// Whether `c` is a `#rgb` or `#rrggbb` hex colour.
pub fn is_hex_colour(c: &str) -> bool {
    c.strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 6) && h.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logo_template_fills_every_placeholder() {
        let brief = LogoBrief {
            app_name: "Fitly".into(),
            app_focus: "home workouts".into(),
            colors: vec!["#ff6600".into(), "#222".into()],
            style: None,
        };
        let (prompt, t) = logo_prompt(Some(&brief), Some("a running fox"));
        assert_eq!(t.version, "logo-brief.v1");
        assert!(prompt.starts_with("A professional logo for the app \"Fitly\", an app about home workouts. Style: modern, minimal. Colour palette: #ff6600, #222."), "{prompt}");
        assert!(prompt.ends_with(" Notes: a running fox"), "{prompt}");
        assert!(!prompt.contains('{'), "{prompt}");
        let (plain, t) = logo_prompt(None, Some("acme"));
        assert_eq!(
            (plain.as_str(), t.version),
            ("A clean vector logo: acme", "logo-prompt.v1")
        );
        assert!(is_hex_colour("#A0b1C2") && is_hex_colour("#fff"));
        assert!(!is_hex_colour("red") && !is_hex_colour("#12345") && !is_hex_colour("#ggg"));
    }
}
