//! The `topic` template of the `mqtt` destination: `{stream}` filled in at construction,
//! `{partition_key}` per record. Invariant: a rendered topic is a valid MQTT topic name
//! (non-empty, at most 65,535 bytes, no `+`, `#` or NUL), or `render` refuses it.

/// A topic template with `{stream}` already filled in.
pub(super) struct TopicTemplate {
    parts: Vec<Part>,
}

enum Part {
    Text(String),
    PartitionKey,
}

impl TopicTemplate {
    pub(super) fn parse(template: &str, stream: &str) -> Result<TopicTemplate, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| "a `{` without `}`".to_string())?;
            match &after[..close] {
                "stream" => text.push_str(stream),
                "partition_key" => {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                    parts.push(Part::PartitionKey);
                }
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}` (known: {{stream}}, {{partition_key}})"
                    ))
                }
            }
            rest = &after[close + 1..];
        }
        text.push_str(rest);
        parts.push(Part::Text(text));
        let template = TopicTemplate { parts };
        // The template's own text must make a valid topic with any harmless key.
        template.render("k")?;
        Ok(template)
    }

    pub(super) fn render(&self, partition_key: &str) -> Result<String, String> {
        let mut topic = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => topic.push_str(t),
                Part::PartitionKey => topic.push_str(partition_key),
            }
        }
        check_topic(&topic)?;
        Ok(topic)
    }
}

fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the topic is empty".into());
    }
    if topic.len() > 65_535 {
        return Err(format!(
            "the topic is {} bytes, at most 65,535",
            topic.len()
        ));
    }
    if let Some(c) = topic.chars().find(|c| matches!(c, '+' | '#' | '\0')) {
        let shown: String = topic.chars().take(100).collect();
        return Err(format!(
            "topic {shown:?} contains {c:?}, not allowed in a topic name"
        ));
    }
    Ok(())
}
