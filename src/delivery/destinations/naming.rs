//! Placeholder: being written (S3 prefixes and object names, Firehose style).

/// Checks a prefix template for `check-config`: `error_prefix` templates must contain
/// `!{firehose:error-output-type}`. The message says what is wrong.
pub fn check_prefix(template: &str, error_prefix: bool) -> Result<(), String> {
    let _ = (template, error_prefix);
    Ok(())
}
