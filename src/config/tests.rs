use super::*;

const MIB: u64 = 1024 * 1024;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, ConfigSource::File(PathBuf::from("test.toml")))
}

/// All issues of `text`, as (key, line, message).
fn issues(text: &str) -> Vec<(String, Option<usize>, String)> {
    match parse(text) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors
            .issues
            .into_iter()
            .map(|i| (i.key, i.line, i.message))
            .collect(),
    }
}

/// `text` has exactly one issue, at `key` on `line`, whose message contains `words`.
#[track_caller]
fn assert_issue(text: &str, key: &str, line: usize, words: &str) {
    let found = issues(text);
    assert_eq!(found.len(), 1, "expected one issue, got {found:#?}");
    let (k, l, message) = &found[0];
    assert_eq!((k.as_str(), *l), (key, Some(line)), "{message}");
    assert!(message.contains(words), "`{message}` lacks `{words}`");
}

/// A unique scratch file, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("kinedge-config-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn built_in_parses() {
    let config = Config::built_in();
    assert_eq!(config.source, ConfigSource::BuiltIn);
    assert_eq!(config.storage.data_dir, None);
    assert_eq!(config.storage.min_free_disk, 256 * MIB);
    assert_eq!(config.storage.cache_size, 16 * MIB);
    assert_eq!(config.storage.max_commit_bytes, 8 * MIB);
    assert_eq!(config.api.listen, "127.0.0.1:4567".parse().unwrap());
    assert_eq!(config.api.region, "us-east-1");
    assert_eq!(config.api.account_id, "000000000000");
    assert!(config.api.credentials.is_empty());
    assert_eq!(
        config.streams,
        vec![StreamConfig {
            name: "telemetry".into(),
            shards: 2,
            retention_hours: 24,
            max_bytes: None,
            on_full: OnFull::OverwriteOldest,
        }]
    );
    assert_eq!(config.log.level.as_deref(), Some("info"));
    assert_eq!(config.log.format, LogFormat::Auto);
    assert_eq!(
        config.mqtt,
        MqttConfig {
            listen: "0.0.0.0:1883".parse().unwrap(),
            allow_anonymous: false,
            max_packet_size: MIB,
            ..MqttConfig::default()
        }
    );
    assert_eq!(
        config.routes,
        vec![RouteConfig {
            topic: "devices/+/telemetry".into(),
            stream: "telemetry".into(),
            partition_key: "{device}".into(),
            format: RouteFormat::Raw,
        }]
    );
}

#[test]
fn built_in_commented_examples_are_valid() {
    // Uncommenting the documented examples must give a valid file.
    let text: String = DEFAULT_CONFIG_TOML
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest == "[[api.credentials]]"
                    || rest == "[mqtt.tls]"
                    || rest.split_once(" = ").is_some_and(|(key, _)| {
                        key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(config.api.credentials.len(), 2);
    assert_eq!(config.streams[0].max_bytes, Some(1024 * MIB));
    assert_eq!(
        config.storage.data_dir.as_deref(),
        Some(Path::new("/var/lib/kinedge"))
    );
    assert_eq!(config.mqtt.client_id_pattern.as_deref(), Some("{device}-*"));
    assert!(config.mqtt.tls.is_some());
    assert!(config.mqtt.websocket_listen.is_some());
    assert_eq!(config.mqtt.connect_timeout_s, 10);
}

#[test]
fn empty_file_gives_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config.storage, StorageConfig::default());
    assert_eq!(config.api, ApiConfig::default());
    assert!(config.streams.is_empty());
    assert_eq!(config.log, LogConfig::default());
    assert_eq!(config.mqtt, MqttConfig::default());
    assert!(config.mqtt.enabled);
    assert_eq!(config.mqtt.listen, "0.0.0.0:1883".parse().unwrap());
    assert!(!config.mqtt.allow_anonymous);
    assert_eq!(config.mqtt.max_packet_size, MIB);
    assert_eq!(config.mqtt.max_connections, 1000);
    assert_eq!(config.mqtt.max_inflight, 100);
    assert_eq!(config.mqtt.keep_alive_max_s, 3600);
    assert_eq!(config.mqtt.client_id_pattern, None);
    assert!(config.routes.is_empty());
}

#[test]
fn every_key_is_accepted() {
    // Also checks that raw::SCHEMA and the serde structs list the same keys.
    let config = parse(
        r#"
        [storage]
        data_dir = "/srv/kinedge"
        min_free_disk = 0
        cache_size = "1MiB"
        max_commit_bytes = "128MiB"
        [api]
        listen = "[::]:8080"
        region = "eu-west-1"
        account_id = "123456789012"
        credentials = [{ access_key_id = "AKIA1", secret_env = "SECRET_ONE" }]
        [[streams]]
        name = "a.b_c-D"
        shards = 1024
        retention_hours = 8760
        max_bytes = 1048576
        on_full = "reject_new"
        [log]
        level = "warn,kinedge::api=trace"
        format = "json"
        [mqtt]
        enabled = false
        listen = "127.0.0.1:18830"
        allow_anonymous = true
        max_packet_size = "256MiB"
        max_connections = 100000
        max_inflight = 65535
        keep_alive_max_s = 10
        connect_timeout_s = 300
        client_id_pattern = "gw-{device}-*"
        [[routes]]
        topic = "devices/+/telemetry"
        stream = "a.b_c-D"
        partition_key = "{device}/{client_id}/{topic[1]}/{payload.meta.id}"
        format = "envelope"
        [[routes]]
        topic = "other/#"
        stream = "rest"
        "#,
    )
    .unwrap();
    assert_eq!(config.storage.data_dir, Some(PathBuf::from("/srv/kinedge")));
    assert_eq!(config.storage.min_free_disk, 0);
    assert_eq!(config.storage.max_commit_bytes, 128 * MIB);
    assert_eq!(config.api.listen, "[::]:8080".parse().unwrap());
    assert_eq!(
        config.api.credentials,
        vec![ApiCredential {
            access_key_id: "AKIA1".into(),
            secret: SecretSource::Env("SECRET_ONE".into()),
        }]
    );
    let stream = &config.streams[0];
    assert_eq!((stream.shards, stream.retention_hours), (1024, 8760));
    assert_eq!(stream.max_bytes, Some(MIB));
    assert_eq!(stream.on_full, OnFull::RejectNew);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(
        config.mqtt,
        MqttConfig {
            enabled: false,
            listen: "127.0.0.1:18830".parse().unwrap(),
            allow_anonymous: true,
            max_packet_size: 256 * MIB,
            max_connections: 100_000,
            max_inflight: 65_535,
            keep_alive_max_s: 10,
            connect_timeout_s: 300,
            client_id_pattern: Some("gw-{device}-*".into()),
            websocket_listen: None,
            tls: None,
        }
    );
    assert_eq!(
        config.routes,
        vec![
            RouteConfig {
                topic: "devices/+/telemetry".into(),
                stream: "a.b_c-D".into(),
                partition_key: "{device}/{client_id}/{topic[1]}/{payload.meta.id}".into(),
                format: RouteFormat::Envelope,
            },
            RouteConfig {
                topic: "other/#".into(),
                stream: "rest".into(),
                partition_key: "{device}".into(),
                format: RouteFormat::Raw,
            },
        ]
    );
}

#[test]
fn unknown_keys_are_named_with_what_is_supported() {
    assert_issue(
        "[api]\nlisten = \"127.0.0.1:1\"\n\n[video]\nfragment_duration_ms = 2000\n",
        "video",
        4,
        "unknown key `video` (this version supports storage, api, streams, log, devices, mqtt, routes)",
    );
    assert_issue(
        "[mqtt]\nlisten = \"0.0.0.0:1883\"\nport = 1883\n",
        "mqtt.port",
        3,
        "unknown key `port` (this version supports enabled, listen, allow_anonymous, \
         max_packet_size, max_connections, max_inflight, keep_alive_max_s, connect_timeout_s, \
         client_id_pattern, websocket_listen, tls)",
    );
    assert_issue(
        "[[routes]]\ntopic = \"a\"\nstream = \"s\"\nkey = \"{device}\"\n",
        "routes[0].key",
        4,
        "unknown key `key` (this version supports topic, stream, partition_key, format)",
    );
    assert_issue(
        "[[streams]]\nname = \"a\"\n[[streams]]\nname = \"b\"\nmax_byte = 5\n",
        "streams[1].max_byte",
        5,
        "unknown key `max_byte` (this version supports name, shards, retention_hours, max_bytes, on_full)",
    );
    assert_issue(
        "[storage]\n\"odd.key\" = 1\n",
        "storage.\"odd.key\"",
        2,
        "unknown key `odd.key`",
    );
    assert_issue("log.colour = true\n", "log.colour", 1, "level, format");
}

#[test]
fn plaintext_secret_is_refused() {
    let text = "[[api.credentials]]\naccess_key_id = \"AKIA1\"\nsecret = \"hunter2\"\nsecret_env = \"X\"\n";
    assert_issue(
        text,
        "api.credentials[0].secret",
        3,
        "plaintext secrets are not allowed in config",
    );
    let found = issues(text);
    assert!(!found[0].2.contains("hunter2"));
    // Alone it is the only issue: no extra "no secret" noise.
    assert_issue(
        "[[api.credentials]]\naccess_key_id = \"A\"\nsecret = \"hunter2\"\n",
        "api.credentials[0].secret",
        3,
        "plaintext secrets are not allowed in config",
    );
}

#[test]
fn credentials_need_exactly_one_secret_source() {
    assert_issue(
        "[[api.credentials]]\naccess_key_id = \"AKIA1\"\nsecret_file = \"/a\"\nsecret_env = \"B\"\n",
        "api.credentials[0].secret_env",
        4,
        "give exactly one",
    );
    assert_issue(
        "[api]\n[[api.credentials]]\naccess_key_id = \"AKIA1\"\n",
        "api.credentials[0]",
        2,
        "exactly one of secret_file or secret_env",
    );
    assert_issue(
        "[[api.credentials]]\nsecret_env = \"B\"\n",
        "api.credentials[0].access_key_id",
        1,
        "needs an access_key_id",
    );
    assert_issue(
        "[[api.credentials]]\naccess_key_id = \"AKIA/1\"\nsecret_env = \"B\"\n",
        "api.credentials[0].access_key_id",
        2,
        "not an access key id",
    );
    assert_issue(
        "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_env = \"B\"\n\
         [[api.credentials]]\naccess_key_id = \"A\"\nsecret_env = \"C\"\n",
        "api.credentials[1].access_key_id",
        5,
        "duplicate access_key_id `A` (also in api.credentials[0])",
    );
    assert_issue(
        "[[api.credentials]]\naccess_key_id = \"A\"\nsecret_env = \"\"\n",
        "api.credentials[0].secret_env",
        3,
        "not an environment variable name",
    );
}

#[test]
fn storage_rules() {
    assert_issue(
        "[storage]\nmin_free_disk = \"lots\"\n",
        "storage.min_free_disk",
        2,
        "`lots` is not a size",
    );
    assert_issue(
        "[storage]\nmin_free_disk = -1\n",
        "storage.min_free_disk",
        2,
        "-1 is negative",
    );
    assert_issue(
        "[storage]\nmin_free_disk = 1.5\n",
        "storage.min_free_disk",
        2,
        "expected a number of bytes or a size like \"256MiB\", found float 1.5",
    );
    assert_issue(
        "[storage]\ncache_size = \"512KiB\"\n",
        "storage.cache_size",
        2,
        "512KiB is too small: at least 1MiB",
    );
    assert_issue(
        "[storage]\n\nmax_commit_bytes = \"1GiB\"\n",
        "storage.max_commit_bytes",
        3,
        "1GiB is out of range: 1MiB..=128MiB",
    );
    assert_issue(
        "[storage]\ndata_dir = \"\"\n",
        "storage.data_dir",
        2,
        "must not be empty",
    );
    assert_issue(
        "[storage]\ndata_dir = 5\n",
        "storage.data_dir",
        2,
        "expected a directory path in quotes, found integer 5",
    );
}

#[test]
fn api_rules() {
    assert_issue(
        "[api]\nlisten = \"localhost:4567\"\n",
        "api.listen",
        2,
        "`localhost:4567` is not a socket address: write IP:PORT",
    );
    assert_issue(
        "[api]\nlisten = 4567\n",
        "api.listen",
        2,
        "expected an address in quotes, found integer 4567",
    );
    assert_issue(
        "[api]\nregion = \"EU_West\"\n",
        "api.region",
        2,
        "use a-z, 0-9 and `-`",
    );
    assert_issue(
        "[api]\naccount_id = \"12345\"\n",
        "api.account_id",
        2,
        "exactly 12 digits",
    );
    assert_issue(
        "[api]\naccount_id = 123456789012\n",
        "api.account_id",
        2,
        "expected a string in quotes, found integer",
    );
}

#[test]
fn stream_rules() {
    let stream = |body: &str| format!("[[streams]]\nname = \"s\"\n{body}\n");
    assert_issue(
        &stream("retention_hours = 12"),
        "streams[0].retention_hours",
        3,
        "12 is out of range: 24..=8760 hours",
    );
    assert_issue(
        &stream("shards = 0"),
        "streams[0].shards",
        3,
        "0 is out of range: 1..=1024",
    );
    assert_issue(
        &stream("shards = 5000000000"),
        "streams[0].shards",
        3,
        "5000000000 is out of range: 1..=1024",
    );
    assert_issue(
        &stream("shards = \"2\""),
        "streams[0].shards",
        3,
        "expected a whole number, found string \"2\"",
    );
    assert_issue(
        &stream("max_bytes = \"1000kB\""),
        "streams[0].max_bytes",
        3,
        "1MB is too small: at least 1MiB",
    );
    assert_issue(
        &stream("on_full = \"drop\""),
        "streams[0].on_full",
        3,
        "`drop` is not allowed: use \"overwrite_oldest\" or \"reject_new\"",
    );
    assert_issue(
        "[[streams]]\nname = \"bad name\"\n",
        "streams[0].name",
        2,
        "not a valid stream name: use 1..=128 characters",
    );
    assert_issue(
        &format!("[[streams]]\nname = \"{}\"\n", "x".repeat(129)),
        "streams[0].name",
        2,
        "not a valid stream name",
    );
    assert_issue(
        "[[streams]]\nshards = 2\n",
        "streams[0].name",
        1,
        "missing: every stream needs a name",
    );
    assert_issue(
        "[[streams]]\nname = \"a\"\n\n[[streams]]\nname = \"a\"\n",
        "streams[1].name",
        5,
        "duplicate stream name `a` (also in streams[0])",
    );
    assert_issue(
        "streams = [{ name = \"a\" }, { name = \"b\", shards = 0 }]\n",
        "streams[1].shards",
        1,
        "out of range",
    );
}

#[test]
fn log_rules() {
    assert_issue(
        "[log]\nlevel = \"infoo\"\n",
        "log.level",
        2,
        "`infoo` is not a level",
    );
    assert_issue(
        "[log]\nlevel = \"kinedge=loud\"\n",
        "log.level",
        2,
        "is not a valid filter",
    );
    assert_issue("[log]\nlevel = \"\"\n", "log.level", 2, "must not be empty");
    assert_issue(
        "[log]\nformat = \"yaml\"\n",
        "log.format",
        2,
        "use \"auto\", \"text\" or \"json\"",
    );
    let config = parse("[log]\nlevel = \" DEBUG, hyper=warn \"\nformat = \"text\"\n").unwrap();
    assert_eq!(config.log.level.as_deref(), Some("DEBUG,hyper=warn"));
    assert_eq!(config.log.format, LogFormat::Text);
}

#[test]
fn shape_and_syntax_errors_have_key_and_line() {
    assert_issue(
        "[api]\nlisten = \"127.0.0.1:1\"\n\nstorage = 1\n",
        "api.storage",
        4,
        "unknown key",
    );
    assert_issue(
        "# comment\nstorage = 1\n",
        "storage",
        2,
        "expected a table, found integer `1`",
    );
    assert_issue(
        "[api]\ncredentials = \"AKIA\"\n",
        "api.credentials",
        2,
        "expected an array of tables",
    );
    let found = issues("[log]\nlevel = \"info\n");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0.as_str(), found[0].1), ("", Some(2)));
    assert!(found[0].2.starts_with("invalid TOML"), "{}", found[0].2);
}

#[test]
fn every_mistake_is_reported_in_line_order() {
    let text = r#"[storage]
min_free_disk = "lots"
cache_size = 1

[api]
listen = "nowhere"

[mqtt]
port = 1883

[[streams]]
name = "telemetry"
retention_hours = 12
colour = "blue"

[[streams]]
name = "telemetry"
shards = 0
"#;
    let found: Vec<(String, Option<usize>)> = issues(text)
        .into_iter()
        .map(|(key, line, _)| (key, line))
        .collect();
    let expected = [
        ("storage.min_free_disk", 2),
        ("storage.cache_size", 3),
        ("api.listen", 6),
        ("mqtt.port", 9),
        ("streams[0].retention_hours", 13),
        ("streams[0].colour", 14),
        ("streams[1].name", 17),
        ("streams[1].shards", 18),
    ];
    let expected: Vec<(String, Option<usize>)> = expected
        .iter()
        .map(|(key, line)| (key.to_string(), Some(*line)))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn display_is_file_line_key_message() {
    let errors = parse("[[streams]]\nname = \"s\"\nretention_hours = 12\n\n[video]\n").unwrap_err();
    assert_eq!(
        errors.to_string(),
        "test.toml:3: streams[0].retention_hours: 12 is out of range: 24..=8760 hours\n\
         test.toml:5: video: unknown key `video` (this version supports storage, api, streams, \
         log, devices, mqtt, routes)"
    );
}

#[test]
fn sizes_parse() {
    let cases = [
        ("1048576", 1_048_576),
        ("0", 0),
        ("512B", 512),
        ("1KiB", 1024),
        ("1kB", 1000),
        ("5MiB", 5 * MIB),
        ("256 MiB", 256 * MIB),
        (" 2GB ", 2_000_000_000),
        ("3GiB", 3 << 30),
        ("1TB", 1_000_000_000_000),
        ("2TiB", 2 << 40),
        ("5mib", 5 * MIB),
    ];
    for (text, bytes) in cases {
        assert_eq!(parse_size(text), Ok(bytes), "{text}");
    }
    for bad in ["", "MiB", "1.5GiB", "-1", "5 parsecs", "5 Mi B", "1e6"] {
        let err = parse_size(bad).unwrap_err();
        assert!(err.contains("is not a size"), "{bad}: {err}");
    }
    assert!(parse_size("99999999999TiB")
        .unwrap_err()
        .contains("too large"));
    assert!(parse_size("99999999999999999999")
        .unwrap_err()
        .contains("too large"));
}

#[test]
fn sizes_format() {
    assert_eq!(format_size(0), "0B");
    assert_eq!(format_size(1023), "1023B");
    assert_eq!(format_size(1000), "1kB");
    assert_eq!(format_size(256 * MIB), "256MiB");
    assert_eq!(format_size(2_000_000_000), "2GB");
    assert_eq!(format_size(1536), "1536B");
}

#[test]
fn load_reads_files_and_names_them() {
    let file = TempFile::new("load.toml", "[[streams]]\nname = \"x\"\nshards = 0\n");
    let errors = Config::load(&file.0).unwrap_err();
    let shown = errors.to_string();
    assert!(
        shown.starts_with(&format!("{}:3: streams[0].shards: ", file.0.display())),
        "{shown}"
    );

    let file = TempFile::new("ok.toml", "[log]\nformat = \"json\"\n");
    let config = Config::load(&file.0).unwrap();
    assert_eq!(config.source, ConfigSource::File(file.0.clone()));

    let missing = Path::new("/nonexistent/kinedge.toml");
    let errors = Config::load(missing).unwrap_err();
    assert_eq!(errors.issues.len(), 1);
    assert!(errors.issues[0]
        .message
        .contains("cannot read the config file"));
    assert_eq!(errors.issues[0].file, "/nonexistent/kinedge.toml");
}

#[test]
fn load_secret_from_file_and_env() {
    let file = TempFile::new("secret", "s3cr3t\n");
    let from_file = ApiCredential {
        access_key_id: "AKIA1".into(),
        secret: SecretSource::File(file.0.clone()),
    };
    assert_eq!(from_file.load_secret().unwrap(), "s3cr3t");

    // PATH is always set; reading it avoids mutating the environment of parallel tests.
    let from_env = ApiCredential {
        access_key_id: "AKIA2".into(),
        secret: SecretSource::Env("PATH".into()),
    };
    assert_eq!(
        from_env.load_secret().unwrap(),
        std::env::var("PATH").unwrap()
    );

    let missing_var = ApiCredential {
        access_key_id: "AKIA3".into(),
        secret: SecretSource::Env("KINEDGE_TEST_SURELY_UNSET_4f2a".into()),
    };
    let err = missing_var.load_secret().unwrap_err().to_string();
    assert!(
        err.contains("AKIA3") && err.contains("KINEDGE_TEST_SURELY_UNSET_4f2a"),
        "{err}"
    );

    let missing_file = ApiCredential {
        access_key_id: "AKIA4".into(),
        secret: SecretSource::File("/nonexistent/secret".into()),
    };
    let err = missing_file.load_secret().unwrap_err();
    assert!(matches!(err, ConfigError::SecretFile { .. }));
    assert!(err.to_string().contains("/nonexistent/secret"), "{err}");

    let empty = TempFile::new("empty-secret", "\n");
    let empty = ApiCredential {
        access_key_id: "AKIA5".into(),
        secret: SecretSource::File(empty.0.clone()),
    };
    assert!(matches!(
        empty.load_secret(),
        Err(ConfigError::EmptySecret { .. })
    ));
}

#[test]
fn quick_repair_is_off_by_default_and_a_boolean() {
    assert!(!Config::built_in().storage.quick_repair);
    let config = parse("[storage]\nquick_repair = true\n").unwrap();
    assert!(config.storage.quick_repair);
    assert_issue(
        "[storage]\n\nquick_repair = \"yes\"\n",
        "storage.quick_repair",
        3,
        "true or false",
    );
}

#[test]
fn mqtt_rules() {
    assert_issue(
        "[mqtt]\nlisten = \"mqtt.local:1883\"\n",
        "mqtt.listen",
        2,
        "`mqtt.local:1883` is not a socket address: write IP:PORT, e.g. \"0.0.0.0:1883\"",
    );
    assert_issue(
        "[mqtt]\n\nallow_anonymous = \"no\"\n",
        "mqtt.allow_anonymous",
        3,
        "expected true or false, found string",
    );
    assert_issue("[mqtt]\nenabled = 1\n", "mqtt.enabled", 2, "true or false");
    assert_issue(
        "[mqtt]\nmax_packet_size = \"512B\"\n",
        "mqtt.max_packet_size",
        2,
        "512B is out of range: 1KiB..=256MiB",
    );
    assert_issue(
        "[mqtt]\nmax_packet_size = \"1GiB\"\n",
        "mqtt.max_packet_size",
        2,
        "1GiB is out of range: 1KiB..=256MiB",
    );
    assert_issue(
        "[mqtt]\nmax_connections = 0\n",
        "mqtt.max_connections",
        2,
        "0 is out of range: 1..=100000",
    );
    assert_issue(
        "[mqtt]\nmax_inflight = 65536\n",
        "mqtt.max_inflight",
        2,
        "65536 is out of range: 1..=65535",
    );
    assert_issue(
        "[mqtt]\nkeep_alive_max_s = 5\n",
        "mqtt.keep_alive_max_s",
        2,
        "5 is out of range: 10..=65535 seconds",
    );
    assert_issue(
        "[mqtt]\nconnect_timeout_s = 301\n",
        "mqtt.connect_timeout_s",
        2,
        "301 is out of range: 1..=300 seconds",
    );
    assert_issue(
        "[mqtt]\nconnect_timeout_s = \"10\"\n",
        "mqtt.connect_timeout_s",
        2,
        "expected a whole number",
    );
    assert_issue(
        "[mqtt]\nclient_id_pattern = \"sensor-*\"\n",
        "mqtt.client_id_pattern",
        2,
        "`sensor-*` lacks {device}",
    );
    assert_issue(
        "[mqtt]\nclient_id_pattern = \"{device}{device}\"\n",
        "mqtt.client_id_pattern",
        2,
        "repeats {device}",
    );
    assert_issue(
        "[mqtt]\nclient_id_pattern = \"{device}-{n}\"\n",
        "mqtt.client_id_pattern",
        2,
        "placeholder other than {device}",
    );
    let config = parse("[mqtt]\nclient_id_pattern = \"*.{device}\"\n").unwrap();
    assert_eq!(config.mqtt.client_id_pattern.as_deref(), Some("*.{device}"));
}

#[test]
fn route_rules() {
    let route =
        |body: &str| format!("[[routes]]\ntopic = \"devices/+/t\"\nstream = \"s\"\n{body}\n");
    assert_issue(
        &route("partition_key = \"{foo}\""),
        "routes[0].partition_key",
        4,
        "unknown placeholder {foo}: use {device}, {client_id}, {topic[N]} or {payload.FIELD}",
    );
    assert_issue(
        "[[routes]]\ntopic = \"a\"\nstream = \"s\"\n\n[[routes]]\ntopic = \"b\"\nstream = \"s\"\n\
         partition_key = \"k-{topic[x]}\"\n",
        "routes[1].partition_key",
        8,
        "unknown placeholder {topic[x]}",
    );
    assert_issue(
        &route("partition_key = \"{payload.}\""),
        "routes[0].partition_key",
        4,
        "unknown placeholder {payload.}",
    );
    assert_issue(
        &route("partition_key = \"{device\""),
        "routes[0].partition_key",
        4,
        "unclosed `{`",
    );
    assert_issue(
        &route("partition_key = \"\""),
        "routes[0].partition_key",
        4,
        "must not be empty",
    );
    assert_issue(
        &route("partition_key = 5"),
        "routes[0].partition_key",
        4,
        "expected a template in quotes, found integer 5",
    );
    assert_issue(
        &route("format = \"json\""),
        "routes[0].format",
        4,
        "`json` is not allowed: use \"raw\" or \"envelope\"",
    );
    assert_issue(
        "[[routes]]\ntopic = \"devices/#/t\"\nstream = \"s\"\n",
        "routes[0].topic",
        2,
        "`devices/#/t` is not a valid MQTT topic filter: '#' must be the last level",
    );
    assert_issue(
        "[[routes]]\ntopic = \"a\"\nstream = \"no spaces\"\n",
        "routes[0].stream",
        3,
        "`no spaces` is not a valid stream name",
    );
    assert_issue(
        "[[routes]]\nstream = \"s\"\n",
        "routes[0].topic",
        1,
        "missing: every route needs a topic filter",
    );
    assert_issue(
        "[[routes]]\ntopic = \"a\"\n",
        "routes[0].stream",
        1,
        "missing: every route needs a stream",
    );
    assert_issue(
        "[[routes]]\ntopic = \"a/+\"\nstream = \"s\"\n[[routes]]\ntopic = \"a/+\"\nstream = \"t\"\n",
        "routes[1].topic",
        5,
        "duplicate topic `a/+` (also in routes[0])",
    );
    assert_issue(
        "routes = [{ topic = \"a\", stream = \"s\" }, { topic = \"b\", stream = \"s\", format = 1 }]\n",
        "routes[1].format",
        1,
        "expected a string in quotes, found integer 1",
    );
    let config = parse(&route("")).unwrap();
    assert_eq!(config.routes[0].partition_key, "{device}");
    assert_eq!(config.routes[0].format, RouteFormat::Raw);
}

#[test]
fn mqtt_tls_needs_cert_and_key() {
    let config = parse(
        "[mqtt.tls]\nlisten = \"127.0.0.1:8883\"\ncert = \"/etc/kinedge/tls/server.crt\"\nkey = \"/etc/kinedge/tls/server.key\"\nclient_ca = \"/etc/kinedge/tls/ca.crt\"\n",
    )
    .unwrap();
    let tls = config.mqtt.tls.unwrap();
    assert_eq!(tls.listen, "127.0.0.1:8883".parse().unwrap());
    assert_eq!(
        tls.client_ca.unwrap(),
        PathBuf::from("/etc/kinedge/tls/ca.crt")
    );
    assert_issue(
        "[mqtt.tls]\ncert = \"/x.crt\"\n",
        "mqtt.tls.key",
        1,
        "private key",
    );
}
