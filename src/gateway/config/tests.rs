use super::check;
use super::*;
use crate::config::*;
use crate::delivery::config::{
    AwsCredentialsConfig, BufferHints, Compression, DeliveryStreamConfig, DestinationConfig,
    DirectoryConfig, FirehoseConfig, HttpEndpointConfig, KinesisConfig, MqttDestinationConfig,
    ProcessorConfig, S3Config, Secret, SourceConfig, StartPosition,
};
use std::path::PathBuf;

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
    assert_eq!(
        config.delivery_streams,
        vec![DeliveryStreamConfig {
            name: "telemetry-archive".into(),
            source: SourceConfig::Stream {
                stream: "telemetry".into(),
                start: StartPosition::TrimHorizon,
            },
            buffer: BufferHints {
                size_bytes: 5 * MIB,
                interval_s: 300,
            },
            compression: Compression::Gzip,
            priority: 5,
            processors: vec![ProcessorConfig::AppendDelimiter {
                delimiter: "\n".into(),
            }],
            destination: DestinationConfig::Directory(DirectoryConfig {
                path: "deliveries".into(),
                prefix: None,
                error_prefix: None,
            }),
        }]
    );
    assert_eq!(config.delivery, DeliverySettings::default());
}

#[test]
fn built_in_commented_examples_are_valid() {
    // Uncommenting the documented examples must give a valid file.
    let text: String = DEFAULT_CONFIG_TOML
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if [
                    "[[api.credentials]]",
                    "[api.tls]",
                    "[mqtt.tls]",
                    "[[delivery_streams]]",
                    "[[delivery_streams.processors]]",
                    "[delivery_streams.destination]",
                ]
                .contains(&rest)
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
    assert!(config.api.tls.is_some());
    assert_eq!(config.api.cors_origins, vec!["https://dashboard.example"]);
    assert_eq!(config.streams[0].max_bytes, Some(1024 * MIB));
    assert_eq!(
        config.storage.data_dir.as_deref(),
        Some(Path::new("/var/lib/kinedge"))
    );
    assert_eq!(config.mqtt.client_id_pattern.as_deref(), Some("{device}-*"));
    assert!(config.mqtt.tls.is_some());
    assert!(config.mqtt.websocket_listen.is_some());
    assert_eq!(config.mqtt.connect_timeout_s, 10);
    let kinds: Vec<&str> = config
        .delivery_streams
        .iter()
        .map(|d| d.destination.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            "directory",
            "s3",
            "http_endpoint",
            "kinesis",
            "firehose",
            "mqtt",
            "s3"
        ]
    );
    assert_eq!(
        config.delivery_streams.last().map(|d| &d.source),
        Some(&crate::delivery::config::SourceConfig::Video)
    );
    let archive = &config.delivery_streams[0];
    assert_eq!(archive.priority, 5);
    let DestinationConfig::Directory(directory) = &archive.destination else {
        panic!("{archive:?}");
    };
    assert!(directory.prefix.is_some() && directory.error_prefix.is_some());
    let s3 = &config.delivery_streams[1];
    let processors: Vec<&str> = s3
        .processors
        .iter()
        .map(|p| match p {
            ProcessorConfig::Filter { .. } => "filter",
            ProcessorConfig::PartitionKeys { .. } => "partition_keys",
            ProcessorConfig::HttpTransform { .. } => "http_transform",
            ProcessorConfig::Metadata => "metadata",
            ProcessorConfig::AppendDelimiter { .. } => "append_delimiter",
        })
        .collect();
    assert_eq!(
        processors,
        [
            "filter",
            "partition_keys",
            "http_transform",
            "metadata",
            "append_delimiter"
        ]
    );
    let DestinationConfig::S3(s3) = &s3.destination else {
        panic!("{s3:?}");
    };
    assert_eq!(
        s3.credentials.secret,
        Some(Secret::File("/etc/kinedge/s3-secret".into()))
    );
    assert_eq!(config.delivery_streams[4].source, SourceConfig::DirectPut);
    assert_eq!(
        config.delivery.dead_letter_dir.as_deref(),
        Some(Path::new("dead-letter"))
    );
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
    assert_eq!(config.mqtt.max_pending_connections, 256);
    assert_eq!(config.mqtt.max_pending_per_address, 32);
    assert_eq!(config.mqtt.max_inflight, 100);
    assert_eq!(config.mqtt.keep_alive_max_s, 3600);
    assert_eq!(config.mqtt.client_id_pattern, None);
    assert!(config.routes.is_empty());
}

#[test]
fn every_key_is_accepted() {
    // Every key, at its bounds (the supported keys come from the serde structs themselves).
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
        max_connections = 64
        cors_origins = ["https://dash.example", "http://192.0.2.7:8080"]
        credentials = [{ access_key_id = "AKIA1", secret_env = "SECRET_ONE" }]
        tls = { cert = "/etc/kinedge/tls/api.crt", key = "/etc/kinedge/tls/api.key" }
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
        max_pending_connections = 50
        max_pending_per_address = 5
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
    assert_eq!(config.api.max_connections, 64);
    assert_eq!(
        config.api.cors_origins,
        vec!["https://dash.example", "http://192.0.2.7:8080"]
    );
    assert_eq!(
        config.api.tls,
        Some(ApiTlsConfig {
            cert: "/etc/kinedge/tls/api.crt".into(),
            key: "/etc/kinedge/tls/api.key".into(),
        })
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
            max_pending_connections: 50,
            max_pending_per_address: 5,
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
        "[api]\nlisten = \"127.0.0.1:1\"\n\n[console]\nqueries = 2\n",
        "console",
        4,
        "unknown key `console` (this version supports storage, api, streams, log, devices, mqtt, routes, delivery_streams, delivery, video, analytics, on_demand)",
    );
    assert_issue(
        "[mqtt]\nlisten = \"0.0.0.0:1883\"\nport = 1883\n",
        "mqtt.port",
        3,
        "unknown key `port` (this version supports enabled, listen, allow_anonymous, \
         max_packet_size, max_connections, max_pending_connections, max_pending_per_address, \
         max_inflight, keep_alive_max_s, connect_timeout_s, \
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
fn api_front_rules() {
    let config = parse("").unwrap();
    assert_eq!(
        config.api.max_connections,
        ApiConfig::DEFAULT_MAX_CONNECTIONS
    );
    assert!(config.api.cors_origins.is_empty());
    assert!(config.api.tls.is_none());
    assert_eq!(
        parse("[api]\ncors_origins = [\"*\"]\n")
            .unwrap()
            .api
            .cors_origins,
        vec!["*"]
    );
    assert_issue(
        "[api]\nmax_connections = 0\n",
        "api.max_connections",
        2,
        "out of range: 1..=100000",
    );
    assert_issue(
        "[api]\ncors_origins = \"https://dash.example\"\n",
        "api.cors_origins",
        2,
        "a list of origins",
    );
    for bad in [
        "https://dash.example/",
        "dash.example",
        "https://dash.example/app",
        "ftp://dash.example",
        "https://",
    ] {
        assert_issue(
            &format!("[api]\ncors_origins = [\"{bad}\"]\n"),
            "api.cors_origins",
            2,
            "is not an origin",
        );
    }
    assert_issue(
        "[api]\ncors_origins = [\"*\", \"https://a.example\"]\n",
        "api.cors_origins",
        2,
        "list it alone",
    );
    assert_issue(
        "[api.tls]\ncert = \"/x.crt\"\n",
        "api.tls.key",
        1,
        "private key",
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
    let errors =
        parse("[[streams]]\nname = \"s\"\nretention_hours = 12\n\n[console]\n").unwrap_err();
    assert_eq!(
        errors.to_string(),
        "test.toml:3: streams[0].retention_hours: 12 is out of range: 24..=8760 hours\n\
         test.toml:5: console: unknown key `console` (this version supports storage, api, \
         streams, log, devices, mqtt, routes, delivery_streams, delivery, video, analytics, on_demand)"
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
        "[mqtt]\nmax_pending_per_address = 0\n",
        "mqtt.max_pending_per_address",
        2,
        "0 is out of range: 1..=100000",
    );
    assert_issue(
        "[mqtt]\nmax_pending_connections = -1\n",
        "mqtt.max_pending_connections",
        2,
        "-1 is out of range: 1..=100000",
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

// ---- [[delivery_streams]] and [delivery] ----

/// A delivery stream `d` reading stream `s`, with `body` after line 3.
fn delivery(body: &str) -> String {
    format!("[[delivery_streams]]\nname = \"d\"\nsource = {{ stream = \"s\" }}\n{body}\n")
}

const DIRECTORY: &str = "destination = { type = \"directory\", path = \"out\" }";

#[test]
fn delivery_full_config_round_trips() {
    let text = r#"
[delivery]
max_bandwidth = "512KiB"
dead_letter_dir = "/var/lib/kinedge/dead"

[[delivery_streams]]
name = "to-s3"
source = { stream = "telemetry", start = "latest" }
buffer = { size = "128MiB", interval_s = 0 }
compression = "snappy"
priority = 1
processors = [
  { type = "filter", expression = "select(.temp > 20)" },
  { type = "partition_keys", keys = { device = ".device", "room_2" = ".room" } },
  { type = "append_delimiter" },
  { type = "append_delimiter", delimiter = "\r\n" },
  { type = "metadata" },
  { type = "http_transform", url = "http://127.0.0.1:9000/", max_records = 10000, timeout_s = 900, retries = 0 },
  { type = "http_transform", url = "https://transform.example.com/x" },
]
destination = { type = "s3", bucket = "fleet.data-1", region = "eu-west-1", prefix = "p/!{partitionKeyFromQuery:device}/!{partitionKeyFromQuery:room_2}/", error_prefix = "e/!{firehose:error-output-type}/", endpoint = "http://127.0.0.1:5000", access_key_id = "AKIA1", secret_env = "S3_SECRET", force_path_style = true }

[[delivery_streams]]
name = "to-http"
source = "direct_put"
buffer = { size = "64MiB" }
compression = "gzip"
[delivery_streams.destination]
type = "http_endpoint"
url = "https://receiver.example.com/firehose"
access_key_file = "/etc/kinedge/http-key"
common_attributes = { gateway = "gw1", "with space" = "" }
retry_duration_s = 7200

[[delivery_streams]]
name = "to-kinesis"
source = { stream = "telemetry" }
buffer = { interval_s = 900 }
compression = "none"
priority = 10
destination = { type = "kinesis", stream = "up.stream_1", region = "us-east-1", endpoint = "https://kinesis.example.com", access_key_id = "AKIA2", secret_file = "/s" }

[[delivery_streams]]
name = "to-firehose"
source = { stream = "other" }
destination = { type = "firehose", delivery_stream = "up-ds", region = "ap-south-1" }

[[delivery_streams]]
name = "to-mqtt"
source = { stream = "telemetry" }
destination = { type = "mqtt", url = "mqtts://iot.example.com:8883", topic = "gw/{stream}/{partition_key}", client_id = "gw1", ca = "/ca.pem", cert = "/c.crt", key = "/c.key", username = "u", password_env = "MQTT_PW" }

[[delivery_streams]]
name = "to-mqtt-plain"
source = { stream = "telemetry" }
destination = { type = "mqtt", url = "mqtt://127.0.0.1:1884", topic = "t" }

[[delivery_streams]]
name = "to-dir"
source = { stream = "telemetry" }
processors = [{ type = "partition_keys", keys = { k = ".k" } }]
destination = { type = "directory", path = "/srv/out", prefix = "!{partitionKeyFromQuery:k}/", error_prefix = "err/!{firehose:error-output-type}/" }
"#;
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.delivery,
        DeliverySettings {
            max_bandwidth: 512 * 1024,
            dead_letter_dir: Some("/var/lib/kinedge/dead".into()),
        }
    );
    let stream = |name: &str| SourceConfig::Stream {
        stream: name.into(),
        start: StartPosition::TrimHorizon,
    };
    let expected = vec![
        DeliveryStreamConfig {
            name: "to-s3".into(),
            source: SourceConfig::Stream {
                stream: "telemetry".into(),
                start: StartPosition::Latest,
            },
            buffer: BufferHints {
                size_bytes: 128 * MIB,
                interval_s: 0,
            },
            compression: Compression::Snappy,
            priority: 1,
            processors: vec![
                ProcessorConfig::Filter {
                    expression: "select(.temp > 20)".into(),
                },
                ProcessorConfig::PartitionKeys {
                    keys: [("device", ".device"), ("room_2", ".room")]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                },
                ProcessorConfig::AppendDelimiter {
                    delimiter: "\n".into(),
                },
                ProcessorConfig::AppendDelimiter {
                    delimiter: "\r\n".into(),
                },
                ProcessorConfig::Metadata,
                ProcessorConfig::HttpTransform {
                    url: "http://127.0.0.1:9000/".into(),
                    max_records: 10000,
                    timeout_s: 900,
                    retries: 0,
                },
                ProcessorConfig::HttpTransform {
                    url: "https://transform.example.com/x".into(),
                    max_records: 1000,
                    timeout_s: 60,
                    retries: 3,
                },
            ],
            destination: DestinationConfig::S3(S3Config {
                bucket: "fleet.data-1".into(),
                region: "eu-west-1".into(),
                prefix: Some(
                    "p/!{partitionKeyFromQuery:device}/!{partitionKeyFromQuery:room_2}/".into(),
                ),
                error_prefix: Some("e/!{firehose:error-output-type}/".into()),
                endpoint: Some("http://127.0.0.1:5000".into()),
                credentials: AwsCredentialsConfig {
                    access_key_id: Some("AKIA1".into()),
                    secret: Some(Secret::Env("S3_SECRET".into())),
                },
                force_path_style: true,
            }),
        },
        DeliveryStreamConfig {
            name: "to-http".into(),
            source: SourceConfig::DirectPut,
            buffer: BufferHints {
                size_bytes: 64 * MIB,
                interval_s: 300,
            },
            compression: Compression::Gzip,
            priority: 5,
            processors: vec![],
            destination: DestinationConfig::HttpEndpoint(HttpEndpointConfig {
                url: "https://receiver.example.com/firehose".into(),
                access_key: Some(Secret::File("/etc/kinedge/http-key".into())),
                common_attributes: [("gateway", "gw1"), ("with space", "")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                retry_duration_s: 7200,
            }),
        },
        DeliveryStreamConfig {
            name: "to-kinesis".into(),
            source: stream("telemetry"),
            buffer: BufferHints {
                size_bytes: 5 * MIB,
                interval_s: 900,
            },
            compression: Compression::None,
            priority: 10,
            processors: vec![],
            destination: DestinationConfig::Kinesis(KinesisConfig {
                stream: "up.stream_1".into(),
                region: "us-east-1".into(),
                endpoint: Some("https://kinesis.example.com".into()),
                credentials: AwsCredentialsConfig {
                    access_key_id: Some("AKIA2".into()),
                    secret: Some(Secret::File("/s".into())),
                },
            }),
        },
        DeliveryStreamConfig {
            name: "to-firehose".into(),
            source: stream("other"),
            buffer: BufferHints::default(),
            compression: Compression::None,
            priority: 5,
            processors: vec![],
            destination: DestinationConfig::Firehose(FirehoseConfig {
                delivery_stream: "up-ds".into(),
                region: "ap-south-1".into(),
                endpoint: None,
                credentials: AwsCredentialsConfig::default(),
            }),
        },
        DeliveryStreamConfig {
            name: "to-mqtt".into(),
            source: stream("telemetry"),
            buffer: BufferHints::default(),
            compression: Compression::None,
            priority: 5,
            processors: vec![],
            destination: DestinationConfig::Mqtt(MqttDestinationConfig {
                url: "mqtts://iot.example.com:8883".into(),
                topic: "gw/{stream}/{partition_key}".into(),
                client_id: "gw1".into(),
                ca: Some("/ca.pem".into()),
                cert: Some("/c.crt".into()),
                key: Some("/c.key".into()),
                username: Some("u".into()),
                password: Some(Secret::Env("MQTT_PW".into())),
            }),
        },
        DeliveryStreamConfig {
            name: "to-mqtt-plain".into(),
            source: stream("telemetry"),
            buffer: BufferHints::default(),
            compression: Compression::None,
            priority: 5,
            processors: vec![],
            destination: DestinationConfig::Mqtt(MqttDestinationConfig {
                url: "mqtt://127.0.0.1:1884".into(),
                topic: "t".into(),
                client_id: "kinedge-to-mqtt-plain".into(),
                ca: None,
                cert: None,
                key: None,
                username: None,
                password: None,
            }),
        },
        DeliveryStreamConfig {
            name: "to-dir".into(),
            source: stream("telemetry"),
            buffer: BufferHints::default(),
            compression: Compression::None,
            priority: 5,
            processors: vec![ProcessorConfig::PartitionKeys {
                keys: [("k".to_owned(), ".k".to_owned())].into_iter().collect(),
            }],
            destination: DestinationConfig::Directory(DirectoryConfig {
                path: "/srv/out".into(),
                prefix: Some("!{partitionKeyFromQuery:k}/".into()),
                error_prefix: Some("err/!{firehose:error-output-type}/".into()),
            }),
        },
    ];
    assert_eq!(config.delivery_streams, expected);
    // Source streams need not be in [[streams]], and two delivery streams may share one.
    assert!(config.streams.is_empty());
}

#[test]
fn delivery_defaults() {
    let config = parse(&delivery(DIRECTORY)).unwrap();
    assert_eq!(
        config.delivery_streams,
        vec![DeliveryStreamConfig {
            name: "d".into(),
            source: SourceConfig::Stream {
                stream: "s".into(),
                start: StartPosition::TrimHorizon,
            },
            buffer: BufferHints {
                size_bytes: 5 * MIB,
                interval_s: 300,
            },
            compression: Compression::None,
            priority: 5,
            processors: vec![],
            destination: DestinationConfig::Directory(DirectoryConfig {
                path: "out".into(),
                prefix: None,
                error_prefix: None,
            }),
        }]
    );
    assert_eq!(config.delivery, DeliverySettings::default());
    assert_eq!(
        parse("[delivery]\nmax_bandwidth = 1000\n")
            .unwrap()
            .delivery
            .max_bandwidth,
        1000
    );
}

#[test]
fn video_delivery_streams() {
    let text = "[delivery]\nmax_bandwidth = \"1MiB\"\n\n[[delivery_streams]]\nname = \"video-to-s3\"\nsource = \"video\"\npriority = 8\ndestination = { type = \"s3\", bucket = \"cams\", region = \"eu-west-1\", prefix = \"gw1/\" }\n";
    let config = parse(text).unwrap();
    let stream = &config.delivery_streams[0];
    assert_eq!(stream.source, SourceConfig::Video);
    assert_eq!(stream.priority, 8);
    assert!(stream.processors.is_empty());
    assert_eq!(stream.compression, Compression::None);
    assert!(
        matches!(&stream.destination, DestinationConfig::S3(s3) if s3.prefix.as_deref() == Some("gw1/"))
    );
    let video =
        |body: &str| format!("[[delivery_streams]]\nname = \"v\"\nsource = \"video\"\n{body}\n");
    assert!(parse(&video(DIRECTORY)).is_ok());
    assert_issue(
        &video("destination = { type = \"http_endpoint\", url = \"http://h/\" }"),
        "delivery_streams[0].destination.type",
        4,
        "`http_endpoint` cannot take video: a delivery stream with source = \"video\" uploads \
         camera fragments as objects; use \"s3\" or \"directory\"",
    );
    assert_issue(
        &video("destination = { type = \"kinesis\", stream = \"k\", region = \"r\" }"),
        "delivery_streams[0].destination.type",
        4,
        "`kinesis` cannot take video",
    );
    assert_issue(
        &video(&format!(
            "{DIRECTORY}\nprocessors = [{{ type = \"append_delimiter\" }}]"
        )),
        "delivery_streams[0].processors",
        5,
        "not allowed with source = \"video\": camera fragments are uploaded as they are",
    );
    assert_issue(
        &video(&format!("compression = \"gzip\"\n{DIRECTORY}")),
        "delivery_streams[0].compression",
        4,
        "not allowed with source = \"video\": video is already compressed",
    );
    assert_issue(
        &video(&format!("{DIRECTORY}\nbuffer = {{ interval_s = 60 }}")),
        "delivery_streams[0].buffer",
        5,
        "segment_minutes",
    );
    // Without processors there are no partition keys for a prefix to use.
    assert_issue(
        &video("destination = { type = \"directory\", path = \"v\", prefix = \"!{partitionKeyFromQuery:cam}/\" }"),
        "delivery_streams[0].destination.prefix",
        4,
        "needs a partition_keys processor",
    );
}

#[test]
fn delivery_missing_keys_are_named() {
    assert_issue(
        &delivery("destination = { type = \"s3\", region = \"eu-west-1\" }"),
        "delivery_streams[0].destination.bucket",
        4,
        "missing: destination type \"s3\" needs a bucket",
    );
    assert_issue(
        &delivery("destination = { type = \"s3\", bucket = \"b-1\" }"),
        "delivery_streams[0].destination.region",
        4,
        "missing: destination type \"s3\" needs the region",
    );
    assert_issue(
        "[[delivery_streams]]\nsource = \"direct_put\"\ndestination = { type = \"directory\", path = \"x\" }\n",
        "delivery_streams[0].name",
        1,
        "missing: every delivery stream needs a name",
    );
    assert_issue(
        &format!("[[delivery_streams]]\nname = \"d\"\n{DIRECTORY}\n"),
        "delivery_streams[0].source",
        1,
        "missing: every delivery stream needs a source",
    );
    assert_issue(
        &delivery(""),
        "delivery_streams[0].destination",
        1,
        "missing: every delivery stream needs a destination, e.g. destination = { type = \
         \"directory\", path = \"deliveries\" } (types: s3, http_endpoint, kinesis, firehose, \
         mqtt, directory, file)",
    );
    assert_issue(
        &delivery("destination = { path = \"x\" }"),
        "delivery_streams[0].destination.type",
        4,
        "missing: every destination needs a type: use \"s3\", \"http_endpoint\", \"kinesis\", \
         \"firehose\", \"mqtt\", \"directory\" or \"file\"",
    );
    assert_issue(
        "[[delivery_streams]]\nname = \"d\"\nsource = { start = \"latest\" }\ndestination = { type = \"directory\", path = \"x\" }\n",
        "delivery_streams[0].source.stream",
        3,
        "missing: the name of the stream to read",
    );
    assert_issue(
        &delivery("processors = [{ type = \"filter\" }]\ndestination = { type = \"directory\", path = \"x\" }"),
        "delivery_streams[0].processors[0].expression",
        4,
        "missing: processor type \"filter\" needs a jq expression",
    );
    assert_issue(
        &delivery("processors = [{ expression = \".a\" }]\ndestination = { type = \"directory\", path = \"x\" }"),
        "delivery_streams[0].processors[0].type",
        4,
        "missing: every processor needs a type: use \"filter\", \"partition_keys\", \
         \"append_delimiter\", \"metadata\" or \"http_transform\"",
    );
    assert_issue(
        &delivery("processors = [{ type = \"partition_keys\" }]\ndestination = { type = \"directory\", path = \"x\" }"),
        "delivery_streams[0].processors[0].keys",
        4,
        "missing: processor type \"partition_keys\" needs keys",
    );
    for (kind, key) in [
        ("http_endpoint", "url"),
        ("kinesis", "stream"),
        ("firehose", "delivery_stream"),
        ("mqtt", "url"),
        ("directory", "path"),
    ] {
        let extra = match kind {
            "kinesis" | "firehose" => ", region = \"us-east-1\"",
            "mqtt" => ", topic = \"t\"",
            _ => "",
        };
        assert_issue(
            &delivery(&format!("destination = {{ type = \"{kind}\"{extra} }}")),
            &format!("delivery_streams[0].destination.{key}"),
            4,
            &format!("missing: destination type \"{kind}\" needs"),
        );
    }
}

#[test]
fn delivery_wrong_types_are_named() {
    assert_issue(
        &delivery(&format!("priority = \"5\"\n{DIRECTORY}")),
        "delivery_streams[0].priority",
        4,
        "expected a whole number, found string \"5\"",
    );
    assert_issue(
        "[[delivery_streams]]\nname = 5\nsource = \"direct_put\"\ndestination = { type = \"directory\", path = \"x\" }\n",
        "delivery_streams[0].name",
        2,
        "expected a string in quotes, found integer 5",
    );
    assert_issue(
        &delivery(&format!("buffer = \"5MiB\"\n{DIRECTORY}")),
        "delivery_streams[0].buffer",
        4,
        "expected a table like { size = \"5MiB\", interval_s = 300 }, found string",
    );
    assert_issue(
        &delivery(&format!(
            "processors = {{ type = \"metadata\" }}\n{DIRECTORY}"
        )),
        "delivery_streams[0].processors",
        4,
        "expected an array of tables like [{ type = \"append_delimiter\" }], found table",
    );
    assert_issue(
        &delivery(&format!("processors = [\"metadata\"]\n{DIRECTORY}")),
        "delivery_streams[0].processors[0]",
        4,
        "expected a table like { type = \"append_delimiter\" }, found string",
    );
    assert_issue(
        &delivery("destination = \"s3\""),
        "delivery_streams[0].destination",
        4,
        "expected a table like { type = \"directory\", path = \"deliveries\" }, found string",
    );
    assert_issue(
        &delivery("destination = { type = \"directory\", path = 5 }"),
        "delivery_streams[0].destination.path",
        4,
        "expected a directory path in quotes, found integer 5",
    );
    assert_issue(
        &delivery(
            "destination = { type = \"s3\", bucket = \"b-1\", region = \"r\", force_path_style = \"yes\" }",
        ),
        "delivery_streams[0].destination.force_path_style",
        4,
        "expected true or false",
    );
    assert_issue(
        &delivery("destination = { type = \"http_endpoint\", url = \"http://h/\", common_attributes = { a = 1 } }"),
        "delivery_streams[0].destination.common_attributes.a",
        4,
        "expected a string in quotes, found integer 1",
    );
    assert_issue(
        &delivery(&format!(
            "processors = [{{ type = \"partition_keys\", keys = {{ a = 1 }} }}]\n{DIRECTORY}"
        )),
        "delivery_streams[0].processors[0].keys.a",
        4,
        "expected a jq expression in quotes, found integer 1",
    );
    assert_issue(
        "delivery_streams = 5\n",
        "delivery_streams",
        1,
        "expected an array of tables",
    );
    assert_issue(
        "[delivery]\nmax_bandwidth = \"fast\"\n",
        "delivery.max_bandwidth",
        2,
        "`fast` is not a size",
    );
    assert_issue(
        "[delivery]\ndead_letter_dir = \"\"\n",
        "delivery.dead_letter_dir",
        2,
        "must not be empty",
    );
}

#[test]
fn delivery_unknown_keys_and_types_list_what_is_supported() {
    assert_issue(
        &delivery(&format!("bufer = {{ size = 1 }}\n{DIRECTORY}")),
        "delivery_streams[0].bufer",
        4,
        "unknown key `bufer` (this version supports name, source, buffer, compression, \
         priority, processors, destination)",
    );
    assert_issue(
        &format!("[[delivery_streams]]\nname = \"d\"\nsource = {{ stream = \"s\", from = \"latest\" }}\n{DIRECTORY}\n"),
        "delivery_streams[0].source.from",
        3,
        "unknown key `from` (this version supports stream, start)",
    );
    assert_issue(
        &delivery(&format!(
            "buffer = {{ size = \"1MiB\", interval = 5 }}\n{DIRECTORY}"
        )),
        "delivery_streams[0].buffer.interval",
        4,
        "unknown key `interval` (this version supports size, interval_s)",
    );
    assert_issue(
        &delivery(&format!(
            "processors = [{{ type = \"metadata\" }}, {{ type = \"filter\", expression = \".a\", query = \".b\" }}]\n{DIRECTORY}"
        )),
        "delivery_streams[0].processors[1].query",
        4,
        "unknown key `query` for processor type \"filter\" (this version supports type, expression)",
    );
    assert_issue(
        &delivery(&format!(
            "processors = [{{ type = \"http_transform\", url = \"http://h/\", buffer = 1 }}]\n{DIRECTORY}"
        )),
        "delivery_streams[0].processors[0].buffer",
        4,
        "(this version supports type, url, max_records, timeout_s, retries)",
    );
    assert_issue(
        &delivery("destination = { type = \"directory\", path = \"x\", bucket = \"b\" }"),
        "delivery_streams[0].destination.bucket",
        4,
        "unknown key `bucket` for destination type \"directory\" (this version supports type, \
         path, prefix, error_prefix)",
    );
    let cases = [
        ("s3", "bucket = \"b-1\", region = \"r\"", "type, bucket, region, prefix, error_prefix, endpoint, access_key_id, secret_env, secret_file, force_path_style"),
        ("http_endpoint", "url = \"http://h/\"", "type, url, access_key_env, access_key_file, common_attributes, retry_duration_s"),
        ("kinesis", "stream = \"k\", region = \"r\"", "type, stream, region, endpoint, access_key_id, secret_env, secret_file"),
        ("firehose", "delivery_stream = \"f\", region = \"r\"", "type, delivery_stream, region, endpoint, access_key_id, secret_env, secret_file"),
        ("mqtt", "url = \"mqtt://h:1\", topic = \"t\"", "type, url, topic, client_id, ca, cert, key, username, password_env, password_file"),
    ];
    for (kind, keys, supported) in cases {
        assert_issue(
            &delivery(&format!("destination = {{ type = \"{kind}\", {keys}, colour = 1 }}")),
            "delivery_streams[0].destination.colour",
            4,
            &format!(
                "unknown key `colour` for destination type \"{kind}\" (this version supports {supported})"
            ),
        );
    }
    assert_issue(
        &delivery("destination = { type = \"gcs\", bucket = \"b\" }"),
        "delivery_streams[0].destination.type",
        4,
        "`gcs` is not a destination type: use \"s3\", \"http_endpoint\", \"kinesis\", \
         \"firehose\", \"mqtt\", \"directory\" or \"file\"",
    );
    assert_issue(
        &delivery(&format!(
            "processors = [{{ type = \"lambda\" }}]\n{DIRECTORY}"
        )),
        "delivery_streams[0].processors[0].type",
        4,
        "`lambda` is not a processor type: use \"filter\", \"partition_keys\", \
         \"append_delimiter\", \"metadata\" or \"http_transform\"",
    );
    assert_issue(
        &delivery(&format!("compression = \"lz4\"\n{DIRECTORY}")),
        "delivery_streams[0].compression",
        4,
        "`lz4` is not allowed: use \"none\", \"gzip\", \"zstd\" or \"snappy\"",
    );
}

#[test]
fn delivery_plaintext_secrets_are_refused() {
    let s3 = "type = \"s3\", bucket = \"b-1\", region = \"r\", access_key_id = \"AKIA1\"";
    for key in ["secret", "secret_access_key", "password", "access_key"] {
        let text = delivery(&format!("destination = {{ {s3}, {key} = \"hunter2\" }}"));
        assert_issue(
            &text,
            &format!("delivery_streams[0].destination.{key}"),
            4,
            "plaintext secrets are not allowed in config: put the secret in a file and set \
             secret_file, or in an environment variable and set secret_env",
        );
        assert!(!issues(&text)[0].2.contains("hunter2"));
    }
    assert_issue(
        &delivery(
            "destination = { type = \"http_endpoint\", url = \"http://h/\", access_key = \"k\" }",
        ),
        "delivery_streams[0].destination.access_key",
        4,
        "plaintext secrets are not allowed in config: put the secret in a file and set \
         access_key_file, or in an environment variable and set access_key_env",
    );
    assert_issue(
        &delivery("destination = { type = \"mqtt\", url = \"mqtts://h:8883\", topic = \"t\", username = \"u\", password = \"pw\" }"),
        "delivery_streams[0].destination.password",
        4,
        "put the secret in a file and set password_file, or in an environment variable and \
         set password_env",
    );
    let text =
        delivery("destination = { type = \"http_endpoint\", url = \"https://user:hunter2@h/\" }");
    assert_issue(
        &text,
        "delivery_streams[0].destination.url",
        4,
        "a URL with a password is not allowed",
    );
    assert!(!issues(&text)[0].2.contains("hunter2"));
}

#[test]
fn delivery_credentials_rules() {
    let s3 = |keys: &str| {
        delivery(&format!(
            "destination = {{ type = \"s3\", bucket = \"b-1\", region = \"r\", {keys} }}"
        ))
    };
    assert_issue(
        &s3("access_key_id = \"AKIA1\""),
        "delivery_streams[0].destination.access_key_id",
        4,
        "access_key_id needs its secret: give exactly one of secret_file or secret_env",
    );
    assert_issue(
        &s3("secret_env = \"X\""),
        "delivery_streams[0].destination.secret_env",
        4,
        "a secret without an access_key_id",
    );
    assert_issue(
        &s3("access_key_id = \"AKIA1\", secret_env = \"X\", secret_file = \"/x\""),
        "delivery_streams[0].destination.secret_env",
        4,
        "both secret_file and secret_env are set: give exactly one",
    );
    assert_issue(
        &s3("access_key_id = \"AKIA/1\", secret_env = \"X\""),
        "delivery_streams[0].destination.access_key_id",
        4,
        "not an access key id",
    );
    assert_issue(
        &s3("access_key_id = \"AKIA1\", secret_env = \"\""),
        "delivery_streams[0].destination.secret_env",
        4,
        "not an environment variable name",
    );
    assert_issue(
        &delivery("destination = { type = \"http_endpoint\", url = \"http://h/\", access_key_env = \"A\", access_key_file = \"/a\" }"),
        "delivery_streams[0].destination.access_key_env",
        4,
        "both access_key_file and access_key_env are set",
    );
    assert_issue(
        &delivery("destination = { type = \"mqtt\", url = \"mqtts://h:8883\", topic = \"t\", password_env = \"P\" }"),
        "delivery_streams[0].destination.password_env",
        4,
        "a password needs a username",
    );
}

#[test]
fn delivery_value_rules() {
    let dest = |d: &str| delivery(&format!("destination = {{ {d} }}"));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            delivery(&format!("priority = 0\n{DIRECTORY}")),
            "priority",
            "0 is out of range: 1..=10",
        ),
        (
            delivery(&format!("priority = 11\n{DIRECTORY}")),
            "priority",
            "11 is out of range: 1..=10",
        ),
        (
            delivery(&format!("buffer = {{ size = \"512KiB\" }}\n{DIRECTORY}")),
            "buffer.size",
            "512KiB is out of range: 1MiB..=128MiB",
        ),
        (
            delivery(&format!("buffer = {{ interval_s = 901 }}\n{DIRECTORY}")),
            "buffer.interval_s",
            "901 is out of range: 0..=900 seconds",
        ),
        (
            delivery("buffer = { size = \"65MiB\" }\ndestination = { type = \"http_endpoint\", url = \"http://h/\" }"),
            "buffer.size",
            "65MiB is out of range for destination type \"http_endpoint\": 1MiB..=64MiB",
        ),
        (
            delivery("compression = \"zstd\"\ndestination = { type = \"http_endpoint\", url = \"http://h/\" }"),
            "compression",
            "`zstd` is not allowed for destination type \"http_endpoint\": the Firehose HTTP \
             endpoint contract knows no content encoding but gzip",
        ),
        (
            delivery("compression = \"gzip\"\ndestination = { type = \"kinesis\", stream = \"k\", region = \"r\" }"),
            "compression",
            "`gzip` is not allowed for destination type \"kinesis\": it sends every record as a \
             Kinesis record of its own",
        ),
        (
            delivery("compression = \"snappy\"\ndestination = { type = \"firehose\", delivery_stream = \"f\", region = \"r\" }"),
            "compression",
            "not allowed for destination type \"firehose\"",
        ),
        (
            delivery("compression = \"gzip\"\ndestination = { type = \"mqtt\", url = \"mqtt://h:1\", topic = \"t\" }"),
            "compression",
            "not allowed for destination type \"mqtt\": it publishes every record as an MQTT message",
        ),
        (
            format!("[[delivery_streams]]\nname = \"d\"\nsource = \"telemetry\"\n{DIRECTORY}\n"),
            "source",
            "`telemetry` is not allowed: use source = \"direct_put\", source = \"video\" \
             (camera uploads), or source = { stream = \"telemetry\" } to read a stream",
        ),
        (
            format!("[[delivery_streams]]\nname = \"d\"\nsource = {{ stream = \"s\", start = \"oldest\" }}\n{DIRECTORY}\n"),
            "source.start",
            "`oldest` is not allowed: use \"trim_horizon\"",
        ),
        (
            format!("[[delivery_streams]]\nname = \"d\"\nsource = {{ stream = \"a b\" }}\n{DIRECTORY}\n"),
            "source.stream",
            "`a b` is not a valid stream name",
        ),
        (
            dest("type = \"s3\", bucket = \"Fleet_Data\", region = \"r\""),
            "destination.bucket",
            "`Fleet_Data` is not a valid bucket name",
        ),
        (
            dest("type = \"s3\", bucket = \"b-1\", region = \"EU\""),
            "destination.region",
            "`EU` is not a region name",
        ),
        (
            dest("type = \"s3\", bucket = \"b-1\", region = \"r\", endpoint = \"localhost:9000\""),
            "destination.endpoint",
            "`localhost:9000` is not allowed: use a http:// or https:// URL",
        ),
        (
            dest("type = \"s3\", bucket = \"b-1\", region = \"r\", endpoint = \"not a url\""),
            "destination.endpoint",
            "`not a url` is not a URL",
        ),
        (
            dest("type = \"s3\", bucket = \"b-1\", region = \"r\", prefix = \"!{partitionKeyFromQuery:dev}/\""),
            "destination.prefix",
            "`!{partitionKeyFromQuery:dev}` needs a partition_keys processor that defines `dev` \
             (this delivery stream has no partition_keys processor)",
        ),
        (
            delivery("processors = [{ type = \"partition_keys\", keys = { device = \".d\" } }]\ndestination = { type = \"directory\", path = \"x\", prefix = \"!{partitionKeyFromQuery:dev}/\" }"),
            "destination.prefix",
            "(this delivery stream defines device)",
        ),
        (
            dest("type = \"http_endpoint\", url = \"ftp://h/\""),
            "destination.url",
            "`ftp://h/` is not allowed: use a http:// or https:// URL",
        ),
        (
            dest("type = \"http_endpoint\", url = \"http://h/\", retry_duration_s = 7201"),
            "destination.retry_duration_s",
            "7201 is out of range: 0..=7200 seconds",
        ),
        (
            dest(&format!(
                "type = \"http_endpoint\", url = \"http://h/\", common_attributes = {{ {} }}",
                (0..51).map(|i| format!("a{i} = \"v\"")).collect::<Vec<_>>().join(", ")
            )),
            "destination.common_attributes",
            "51 attributes are too many: at most 50",
        ),
        (
            dest("type = \"kinesis\", stream = \"a/b\", region = \"r\""),
            "destination.stream",
            "`a/b` is not a valid stream name",
        ),
        (
            dest(&format!("type = \"firehose\", delivery_stream = \"{}\", region = \"r\"", "f".repeat(65))),
            "destination.delivery_stream",
            "is not a valid delivery stream name: use 1..=64 characters",
        ),
        (
            dest("type = \"mqtt\", url = \"mqtts://h\", topic = \"t\""),
            "destination.url",
            "`mqtts://h` has no port",
        ),
        (
            dest("type = \"mqtt\", url = \"https://h:1\", topic = \"t\""),
            "destination.url",
            "use a mqtt:// or mqtts:// URL",
        ),
        (
            dest("type = \"mqtt\", url = \"mqtt://h:1\", topic = \"a/#\""),
            "destination.topic",
            "must not contain `+`, `#` or NUL",
        ),
        (
            dest("type = \"mqtt\", url = \"mqtt://h:1\", topic = \"a/{device}\""),
            "destination.topic",
            "unknown placeholder {device}: use {stream} or {partition_key}",
        ),
        (
            dest("type = \"mqtt\", url = \"mqtts://h:1\", topic = \"t\", cert = \"/c\""),
            "destination.cert",
            "`cert` without `key`: give both",
        ),
        (
            dest("type = \"mqtt\", url = \"mqtt://h:1\", topic = \"t\", ca = \"/ca\""),
            "destination.ca",
            "`ca` is only used with TLS, but url is mqtt://",
        ),
        (
            dest("type = \"mqtt\", url = \"mqtt://h:1\", topic = \"t\", client_id = \"\""),
            "destination.client_id",
            "must be 1..=128 bytes",
        ),
        (
            delivery(&format!("processors = [{{ type = \"filter\", expression = \" \" }}]\n{DIRECTORY}")),
            "processors[0].expression",
            "must not be empty: write a jq expression",
        ),
        (
            delivery(&format!("processors = [{{ type = \"partition_keys\", keys = {{ \"a.b\" = \".x\" }} }}]\n{DIRECTORY}")),
            "processors[0].keys.\"a.b\"",
            "`a.b` is not a partition key name",
        ),
        (
            delivery(&format!("processors = [{{ type = \"partition_keys\", keys = {{}} }}]\n{DIRECTORY}")),
            "processors[0].keys",
            "must not be empty",
        ),
        (
            delivery(&format!("processors = [{{ type = \"partition_keys\", keys = {{ a = \".a\" }} }}, {{ type = \"partition_keys\", keys = {{ a = \".b\" }} }}]\n{DIRECTORY}")),
            "processors[1].keys.a",
            "partition key `a` is already defined in delivery_streams[0].processors[0].keys.a",
        ),
        (
            delivery(&format!("processors = [{{ type = \"append_delimiter\", delimiter = \"\" }}]\n{DIRECTORY}")),
            "processors[0].delimiter",
            "must be 1..=64 bytes long",
        ),
        (
            delivery(&format!("processors = [{{ type = \"http_transform\", url = \"http://h/\", max_records = 0 }}]\n{DIRECTORY}")),
            "processors[0].max_records",
            "0 is out of range: 1..=10000",
        ),
        (
            delivery(&format!("processors = [{{ type = \"http_transform\", url = \"http://h/\", timeout_s = 901 }}]\n{DIRECTORY}")),
            "processors[0].timeout_s",
            "901 is out of range: 1..=900 seconds",
        ),
        (
            delivery(&format!("processors = [{{ type = \"http_transform\", url = \"h:80\" }}]\n{DIRECTORY}")),
            "processors[0].url",
            "use a http:// or https:// URL",
        ),
        (
            delivery(&format!("processors = [{}]\n{DIRECTORY}", vec!["{ type = \"metadata\" }"; 33].join(", "))),
            "processors",
            "33 processors are too many: at most 32",
        ),
    ];
    for (text, key, words) in cases {
        let found = issues(&text);
        assert_eq!(found.len(), 1, "{text}: {found:#?}");
        let (k, _, message) = &found[0];
        assert_eq!(
            k,
            &format!("delivery_streams[0].{key}"),
            "{text}: {message}"
        );
        assert!(
            message.contains(words),
            "{text}: `{message}` lacks `{words}`"
        );
    }
}

#[test]
fn delivery_duplicate_names_and_shared_sources() {
    let text = format!(
        "[[delivery_streams]]\nname = \"d\"\nsource = {{ stream = \"s\" }}\n{DIRECTORY}\n\n\
         [[delivery_streams]]\nname = \"d\"\nsource = {{ stream = \"s\" }}\n{DIRECTORY}\n"
    );
    assert_issue(
        &text,
        "delivery_streams[1].name",
        7,
        "duplicate delivery stream name `d` (also in delivery_streams[0])",
    );
    let config = parse(&text.replacen("name = \"d\"", "name = \"e\"", 1)).unwrap();
    assert_eq!(config.delivery_streams.len(), 2);
    assert_issue(
        "[[delivery_streams]]\nname = \"a b\"\nsource = \"direct_put\"\ndestination = { type = \"directory\", path = \"x\" }\n",
        "delivery_streams[0].name",
        2,
        "`a b` is not a valid delivery stream name: use 1..=64 characters",
    );
}

#[test]
fn delivery_problems_point_at_their_line() {
    // Multi-line inline tables (TOML 1.1), an array of inline tables over several lines, and
    // sub-table headers: every problem is on the line of its own key.
    let text = r#"[[streams]]
name = "telemetry"

[[delivery_streams]]
name = "multi"
source = {
  stream = "telemetry",
  start = "oldest",
}
processors = [
  { type = "metadata" },
  { type = "partition_keys",
    keys = { device = ".device", "bad key" = ".x" } },
  { type = "filter",
    expression = ".a",
    colour = "blue" },
]
destination = {
  type = "s3",
  bucket = "b-1",
  region = "eu-west-1",
  secret = "hunter2",
  prefix = "!{partitionKeyFromQuery:room}/",
}

[[delivery_streams]]
name = "tables"
source = "direct_put"
compression = "gzip"

[delivery_streams.buffer]
size = "200MiB"

[delivery_streams.destination]
type = "kinesis"
stream = "up"
region = "eu-west-1"
access_key_id = "AKIA1"

[delivery]
max_bandwidth = -5
"#;
    let found: Vec<(String, Option<usize>)> = issues(text)
        .into_iter()
        .map(|(key, line, _)| (key, line))
        .collect();
    let expected = [
        ("delivery_streams[0].source.start", 8),
        ("delivery_streams[0].processors[1].keys.\"bad key\"", 13),
        ("delivery_streams[0].processors[2].colour", 16),
        ("delivery_streams[0].destination.secret", 22),
        ("delivery_streams[0].destination.prefix", 23),
        ("delivery_streams[1].compression", 29),
        ("delivery_streams[1].buffer.size", 32),
        ("delivery_streams[1].destination.access_key_id", 38),
        ("delivery.max_bandwidth", 41),
    ];
    let expected: Vec<(String, Option<usize>)> = expected
        .iter()
        .map(|(key, line)| (key.to_string(), Some(*line)))
        .collect();
    assert_eq!(found, expected);
    // A key missing from a multi-line inline table points at the table's own key.
    let text = "[[delivery_streams]]\nname = \"d\"\nsource = \"direct_put\"\ndestination = {\n  type = \"s3\",\n  region = \"r\",\n}\n";
    assert_issue(text, "delivery_streams[0].destination.bucket", 4, "missing");
    // Shown as FILE:LINE: KEY: message.
    let errors = parse(
        "[[delivery_streams]]\nname = \"d\"\nsource = \"direct_put\"\n\ndestination = { type = \"s3\", region = \"r\" }\n",
    )
    .unwrap_err();
    assert_eq!(
        errors.to_string(),
        "test.toml:5: delivery_streams[0].destination.bucket: missing: destination type \"s3\" \
         needs a bucket"
    );
}

// ---- what only `check-config` looks at ----

/// Warnings of `text` (which must parse), as (key, line, message).
fn warnings(text: &str) -> Vec<(String, Option<usize>, String)> {
    let parsed = parse_document(text, ConfigSource::File(PathBuf::from("test.toml")));
    assert!(parsed.issues.is_empty(), "{:#?}", parsed.issues);
    parsed
        .warnings
        .into_iter()
        .map(|i| (i.key, i.line, i.message))
        .collect()
}

#[test]
fn streams_that_are_not_configured_are_warnings() {
    let text = "[[streams]]\nname = \"telemetry\"\n\n[[routes]]\ntopic = \"a/#\"\nstream = \"telemetry\"\n\n\
                [[routes]]\ntopic = \"b/#\"\nstream = \"telemtry\"\n\n[[delivery_streams]]\nname = \"d\"\n\
                source = { stream = \"other\" }\ndestination = { type = \"directory\", path = \"x\" }\n";
    // Legal (streams can be created through the API) ...
    parse(text).unwrap();
    // ... but check-config points at them.
    let found = warnings(text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        (found[0].0.as_str(), found[0].1),
        ("routes[1].stream", Some(10))
    );
    assert!(found[0].2.contains("`telemtry` is not in [[streams]]"));
    assert_eq!(
        (found[1].0.as_str(), found[1].1),
        ("delivery_streams[0].source.stream", Some(14))
    );
    assert!(found[1].2.contains("`other` is not in [[streams]]"));
    assert!(warnings(DEFAULT_CONFIG_TOML).is_empty());
}

#[test]
fn listeners_cannot_share_a_port() {
    assert_issue(
        "[api]\nlisten = \"127.0.0.1:8883\"\n\n[mqtt.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        "mqtt.tls.listen",
        4,
        "`0.0.0.0:8883` is the port of api.listen (`127.0.0.1:8883`): two listeners cannot share a port",
    );
    assert_issue(
        "[mqtt]\nlisten = \"127.0.0.1:1883\"\nwebsocket_listen = \"127.0.0.1:1883\"\n",
        "mqtt.websocket_listen",
        3,
        "is the port of mqtt.listen",
    );
    // Different addresses on one port, port 0 (any free port) twice, a disabled broker: fine.
    parse("[api]\nlisten = \"127.0.0.1:1883\"\n[mqtt]\nlisten = \"127.0.0.2:1883\"\n").unwrap();
    parse("[api]\nlisten = \"127.0.0.1:0\"\n[mqtt]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    parse("[api]\nlisten = \"127.0.0.1:1883\"\n[mqtt]\nenabled = false\n").unwrap();
    // IPv4 and IPv6: only [::] takes the port for both.
    parse("[api]\nlisten = \"[::1]:1883\"\n").unwrap();
    assert_issue(
        "[api]\nlisten = \"127.0.0.1:1883\"\n[mqtt]\nlisten = \"[::]:1883\"\n",
        "mqtt.listen",
        4,
        "is the port of api.listen",
    );
}

#[test]
fn shards_of_all_streams_fit_the_gateway() {
    let text =
        "[[streams]]\nname = \"a\"\nshards = 1000\n\n[[streams]]\nname = \"b\"\nshards = 24\n\n\
                [[streams]]\nname = \"c\"\nshards = 1\n\n[[streams]]\nname = \"d\"\nshards = 1\n";
    assert_issue(
        text,
        "streams[2].shards",
        11,
        "the streams up to this one have 1025 shards: a gateway holds at most 1024 open shards",
    );
    parse(&text.replace("shards = 24", "shards = 22")).unwrap();
}

#[test]
fn references_are_collected_with_their_lines() {
    let text = r#"[storage]
data_dir = "/var/lib/kinedge"

[[api.credentials]]
access_key_id = "AKIA1"
secret_file = "/etc/kinedge/api.secret"

[mqtt.tls]
cert = "/etc/kinedge/tls/server.crt"
key = "/etc/kinedge/tls/server.key"
client_ca = "/etc/kinedge/tls/ca.crt"

[devices]
dir = "devices"

[[delivery_streams]]
name = "up"
source = "direct_put"
destination = { type = "kinesis", stream = "s", region = "eu-west-1", access_key_id = "AKIA2", secret_env = "UP_SECRET" }

[[delivery_streams]]
name = "ambient"
source = "direct_put"
destination = { type = "s3", bucket = "b-1", region = "eu-west-1" }

[[delivery_streams]]
name = "files"
source = "direct_put"
destination = { type = "directory", path = "/srv/out" }

[[delivery_streams]]
name = "relative"
source = "direct_put"
destination = { type = "directory", path = "out" }
"#;
    let parsed = parse_document(
        text,
        ConfigSource::File(PathBuf::from("/etc/kinedge/kinedge.toml")),
    );
    assert!(parsed.issues.is_empty(), "{:#?}", parsed.issues);
    let found: Vec<(&str, Option<usize>, &Reference)> = parsed
        .references
        .iter()
        .map(|(at, r)| (at.key.as_str(), at.line, r))
        .collect();
    let file = |p: &str| Reference::Secret(SecretSource::File(p.into()));
    let dir = |p: &str, must_exist| Reference::Directory {
        path: p.into(),
        must_exist,
    };
    let expected = [
        ("storage.data_dir", Some(2), dir("/var/lib/kinedge", false)),
        (
            "api.credentials[0].secret_file",
            Some(6),
            file("/etc/kinedge/api.secret"),
        ),
        ("devices.dir", Some(14), dir("/etc/kinedge/devices", true)),
        (
            "mqtt.tls.cert",
            Some(9),
            Reference::Certificates("/etc/kinedge/tls/server.crt".into()),
        ),
        (
            "mqtt.tls.key",
            Some(10),
            Reference::PrivateKey("/etc/kinedge/tls/server.key".into()),
        ),
        (
            "mqtt.tls.client_ca",
            Some(11),
            Reference::Certificates("/etc/kinedge/tls/ca.crt".into()),
        ),
        (
            "delivery_streams[0].destination.secret_env",
            Some(19),
            Reference::Secret(SecretSource::Env("UP_SECRET".into())),
        ),
        (
            "delivery_streams[1].destination",
            Some(24),
            Reference::AwsEnvironment,
        ),
        (
            "delivery_streams[2].destination.path",
            Some(29),
            dir("/srv/out", false),
        ),
    ];
    let expected: Vec<(&str, Option<usize>, &Reference)> =
        expected.iter().map(|(k, l, r)| (*k, *l, r)).collect();
    assert_eq!(found, expected);
    // The built-in configuration's devices folder may be missing (it is ./devices).
    let built_in = parse_document(DEFAULT_CONFIG_TOML, ConfigSource::BuiltIn);
    assert!(built_in.references.iter().all(|(_, r)| !matches!(
        r,
        Reference::Directory {
            must_exist: true,
            ..
        }
    )));
}

/// `check::check` on `config` (`{DIR}` = a fresh folder with `devices/`), after `setup`.
fn check_in(config: &str, setup: impl FnOnce(&Path)) -> (check::Report, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("devices")).unwrap();
    setup(dir.path());
    let file = dir.path().join("kinedge.toml");
    let config = config.replace("{DIR}", &dir.path().display().to_string());
    std::fs::write(&file, config).unwrap();
    (check::check(Some(&file)), dir)
}

/// The errors and warnings of a report as `FILE:LINE: KEY: message` with the file's name only.
fn shown(report: &check::Report) -> Vec<String> {
    report
        .all()
        .into_iter()
        .map(|i| {
            let file = Path::new(&i.file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{file}:{}: {}: {}", i.line.unwrap_or(0), i.key, i.message)
        })
        .collect()
}

#[track_caller]
fn assert_has(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|l| l.starts_with(expected)),
        "no line starts with `{expected}`:\n{}",
        lines.join("\n")
    );
}

#[test]
fn check_finds_missing_and_empty_secrets() {
    let config = r#"[api]
listen = "127.0.0.1:4999"

[[api.credentials]]
access_key_id = "AKIA1"
secret_file = "{DIR}/missing.secret"

[[api.credentials]]
access_key_id = "AKIA2"
secret_file = "{DIR}/empty.secret"

[[api.credentials]]
access_key_id = "AKIA3"
secret_env = "KINEDGE_TEST_SURELY_UNSET_7c1d"

[[api.credentials]]
access_key_id = "AKIA4"
secret_file = "{DIR}/open.secret"

[[api.credentials]]
access_key_id = "AKIA5"
secret_file = "{DIR}/good.secret"

[[delivery_streams]]
name = "h"
source = "direct_put"
destination = { type = "http_endpoint", url = "https://example.com/", access_key_file = "{DIR}/devices" }
"#;
    let (report, _dir) = check_in(config, |dir| {
        std::fs::write(dir.join("empty.secret"), "\n").unwrap();
        std::fs::write(dir.join("open.secret"), "s3cret\n").unwrap();
        std::fs::write(dir.join("good.secret"), "s3cret\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode;
            std::fs::set_permissions(dir.join("open.secret"), mode(0o644)).unwrap();
            std::fs::set_permissions(dir.join("good.secret"), mode(0o600)).unwrap();
        }
    });
    let lines = shown(&report);
    assert!(!report.is_ok() && report.summary.is_none());
    assert_has(&lines, "kinedge.toml:6: api.credentials[0].secret_file: `");
    assert!(
        lines[0].contains("missing.secret` does not exist"),
        "{lines:#?}"
    );
    assert_has(&lines, "kinedge.toml:10: api.credentials[1].secret_file: `");
    assert!(lines[1].ends_with("empty.secret` is empty: write the secret into it"));
    assert_has(
        &lines,
        "kinedge.toml:14: api.credentials[2].secret_env: the environment variable \
         `KINEDGE_TEST_SURELY_UNSET_7c1d` is not set",
    );
    #[cfg(unix)]
    assert_has(
        &lines,
        "kinedge.toml:18: api.credentials[3].secret_file: warning: `",
    );
    assert_has(
        &lines,
        "kinedge.toml:27: delivery_streams[0].destination.access_key_file: cannot read `",
    );
    // Warnings do not fail a check, errors do; the good secret gives neither.
    assert_eq!(report.errors.len(), 4, "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains(":22:")), "{lines:#?}");
}

#[test]
fn check_finds_files_that_are_no_certificates_or_keys() {
    let config = r#"[mqtt]
listen = "127.0.0.1:0"

[mqtt.tls]
listen = "127.0.0.1:0"
cert = "{DIR}/server.crt"
key = "{DIR}/server.key"
client_ca = "{DIR}/missing-ca.crt"
"#;
    let (report, _dir) = check_in(config, |dir| {
        std::fs::write(dir.join("server.crt"), "not a certificate\n").unwrap();
        std::fs::write(
            dir.join("server.key"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
    });
    let lines = shown(&report);
    assert_has(&lines, "kinedge.toml:6: mqtt.tls.cert: `");
    assert!(lines[0].ends_with("holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    assert_has(&lines, "kinedge.toml:7: mqtt.tls.key: `");
    assert!(
        lines
            .iter()
            .any(|l| l
                .ends_with("holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)")),
        "{lines:#?}"
    );
    assert_has(&lines, "kinedge.toml:8: mqtt.tls.client_ca: `");
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("missing-ca.crt` does not exist")),
        "{lines:#?}"
    );
}

#[test]
fn check_finds_directories() {
    let config = r#"[storage]
data_dir = "{DIR}/a-file"

[devices]
dir = "no-such-devices"
"#;
    let (report, _dir) = check_in(config, |dir| {
        std::fs::write(dir.join("a-file"), "").unwrap();
    });
    let lines = shown(&report);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_has(&lines, "kinedge.toml:2: storage.data_dir: `");
    assert!(lines[0].ends_with("a-file` is not a directory"));
    assert_has(&lines, "kinedge.toml:5: devices.dir: `");
    assert!(lines[1].contains("no-such-devices` does not exist: create it"));

    // A devices folder that is there, relative to the config file; a data dir to be created.
    let (report, _dir) = check_in(
        "[storage]\ndata_dir = \"{DIR}/data\"\n[devices]\ndir = \"devices\"\n\
         [api]\nlisten = \"127.0.0.1:4999\"\n",
        |_| {},
    );
    assert!(report.is_ok(), "{:#?}", shown(&report));
    let summary = report.summary.unwrap();
    assert!(
        summary.contains(": ok (0 streams, 0 delivery streams, 0 devices (0 cameras) in "),
        "{summary}"
    );
    assert!(
        summary.ends_with("/devices, API on 127.0.0.1:4999)"),
        "{summary}"
    );
}

#[test]
fn check_covers_every_device_file_and_what_it_names() {
    let config = r#"[api]
listen = "127.0.0.1:4999"

[[delivery_streams]]
name = "telemetry-out"
source = "direct_put"
destination = { type = "directory", path = "out" }
"#;
    let (report, _dir) = check_in(config, |dir| {
        let devices = dir.join("devices");
        let write = |name: &str, text: &str| std::fs::write(devices.join(name), text).unwrap();
        write("bad.toml", "id = \"bad\"\nkind = \"toaster\"\n");
        write("other.toml", "id = \"not-other\"\n");
        write(
            "cam1.toml",
            &format!(
                "id = \"cam1\"\nkind = \"camera\"\n\n[camera]\nsource = \"rtsp://192.0.2.10/s\"\n\
                 username = \"viewer\"\npassword_file = \"{}/cam1.secret\"\n\
                 upload = {{ destination = \"telemetry-out\" }}\n",
                dir.display()
            ),
        );
        write(
            "cam2.toml",
            "id = \"cam2\"\nkind = \"camera\"\n\n[camera]\nsource = \"file:///nonexistent/v.ts\"\n\
             upload = { destination = \"nowhere\" }\n",
        );
        write(
            "cam3.toml",
            "id = \"cam3\"\nkind = \"camera\"\n\n[camera]\nsource = \"rtsp://192.0.2.11/s\"\n\
             username = \"viewer\"\npassword_env = \"KINEDGE_TEST_SURELY_UNSET_9e0b\"\n",
        );
    });
    let lines = shown(&report);
    let expected = [
        "bad.toml:2: kind: `toaster` is not a kind",
        "cam1.toml:7: camera.password_file: `",
        "cam1.toml:8: camera.upload.destination: `telemetry-out` is not a video delivery stream",
        "cam2.toml:5: camera.source: `/nonexistent/v.ts` does not exist",
        "cam2.toml:6: camera.upload.destination: `nowhere` names no [[delivery_streams]] entry",
        "cam3.toml:7: camera.password_env: the environment variable \
         `KINEDGE_TEST_SURELY_UNSET_9e0b` is not set",
        "other.toml:1: id: the id `not-other` differs from the file name",
    ];
    for line in expected {
        assert_has(&lines, line);
    }
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    // Device files in name order, each by line.
    let files: Vec<&str> = lines
        .iter()
        .map(|l| l.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        files,
        [
            "bad.toml",
            "cam1.toml",
            "cam1.toml",
            "cam2.toml",
            "cam2.toml",
            "cam3.toml",
            "other.toml"
        ]
    );
}

#[test]
fn check_of_the_built_in_configuration() {
    let report = check::check(None);
    // ./devices (the tests run in the package's folder) holds no device file of its own.
    assert!(report.is_ok(), "{:#?}", shown(&report));
    assert!(report.warnings.is_empty(), "{:#?}", shown(&report));
    let summary = report.summary.unwrap_or_default();
    assert!(
        summary.starts_with("built-in configuration: ok (1 streams, 1 delivery streams"),
        "{summary}"
    );
}

#[test]
fn check_of_a_file_that_is_not_there() {
    let report = check::check(Some(Path::new("/nonexistent/kinedge.toml")));
    assert_eq!(
        shown(&report),
        ["kinedge.toml:0: : cannot read the config file: No such file or directory (os error 2)"]
    );
}

#[test]
fn devices_dir_is_relative_to_the_config_file() {
    let installed = |text: &str| {
        let source = ConfigSource::File(PathBuf::from("/etc/kinedge/kinedge.toml"));
        Config::parse(text, source).unwrap().devices.dir
    };
    // As installed under systemd: /etc/kinedge/devices, whatever the working directory.
    assert_eq!(
        installed(DEFAULT_CONFIG_TOML),
        Path::new("/etc/kinedge/devices")
    );
    assert_eq!(installed(""), Path::new("/etc/kinedge/devices"));
    assert_eq!(
        installed("[devices]\ndir = \"../shared/devices\"\n"),
        Path::new("/etc/kinedge/../shared/devices")
    );
    assert_eq!(
        installed("[devices]\ndir = \"/srv/devices\"\n"),
        Path::new("/srv/devices")
    );
    // A config file named without a folder: its folder is the working directory.
    let here = Config::parse("", ConfigSource::File(PathBuf::from("kinedge.toml"))).unwrap();
    assert_eq!(here.devices.dir, Path::new("devices"));
    // No file: ./devices in the working directory.
    assert_eq!(Config::built_in().devices.dir, Path::new("devices"));
}

#[test]
fn open_metrics_is_off_unless_asked_for() {
    assert!(!parse("").unwrap().api.open_metrics);
    assert!(
        parse("[api]\nopen_metrics = true\n")
            .unwrap()
            .api
            .open_metrics
    );
    assert_issue(
        "[api]\nopen_metrics = \"yes\"\n",
        "api.open_metrics",
        2,
        "true or false",
    );
}

#[test]
fn unknown_api_keys_list_the_supported_keys_in_their_order() {
    assert_issue(
        "[api]\nport = 1\n",
        "api.port",
        2,
        "(this version supports listen, region, account_id, open_metrics, max_connections, \
         cors_origins, tls, credentials, max_consumers_per_stream)",
    );
}

/// A script the engine accepts; `VALID_SQL` in a test's TOML stands for it.
const ANALYTICS_SQL: &str = "CREATE TABLE src (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', 'stream' = 'in', 'format' = 'json'); CREATE TABLE dst (device STRING, temp DOUBLE) WITH ('connector' = 'kinesis', 'stream' = 'out', 'format' = 'json'); INSERT INTO dst SELECT device, temp FROM src WHERE temp > 80";

fn with_sql(text: &str) -> String {
    text.replace("VALID_SQL", ANALYTICS_SQL)
}

#[test]
fn analytics_rules() {
    let config = parse(&with_sql(
        "[[analytics]]\nname = \"minute-avg\"\nsql = \"VALID_SQL\"\n\
         [[analytics]]\nname = \"off\"\nsql = \"VALID_SQL\"\nmax_state_keys = 10\nenabled = false\n",
    ))
    .unwrap();
    assert_eq!(
        config.analytics,
        vec![
            ApplicationConfig {
                name: "minute-avg".into(),
                sql: ANALYTICS_SQL.into(),
                max_state_keys: 100_000,
                enabled: true,
            },
            ApplicationConfig {
                name: "off".into(),
                sql: ANALYTICS_SQL.into(),
                max_state_keys: 10,
                enabled: false,
            },
        ]
    );
    assert!(parse("").unwrap().analytics.is_empty());
    assert_issue(
        &with_sql("[[analytics]]\nname = \"a\"\n"),
        "analytics[0].sql",
        1,
        "missing",
    );
    assert_issue(
        &with_sql("[[analytics]]\nname = \"a\"\nsql = \"VALID_SQL\"\nsql_file = \"a.sql\"\n"),
        "analytics[0].sql_file",
        4,
        "both",
    );
    assert_issue(
        &with_sql("[[analytics]]\nname = \"a/b\"\nsql = \"VALID_SQL\"\n"),
        "analytics[0].name",
        2,
        "not a valid application name",
    );
    assert_issue(
        &with_sql("[[analytics]]\nname = \"a\"\nsql = \"VALID_SQL\"\n\n[[analytics]]\nname = \"a\"\nsql = \"VALID_SQL\"\n"),
        "analytics[1].name",
        6,
        "duplicate application name `a`",
    );
    assert_issue(
        &with_sql("[[analytics]]\nname = \"a\"\nsql = \"VALID_SQL\"\nquery = \"x\"\n"),
        "analytics[0].query",
        4,
        "unknown key `query` (this version supports name, sql, sql_file, max_state_keys, enabled)",
    ); // The engine parses and plans the script; its message comes under the `sql` key.
    assert_issue(
        "[[analytics]]\nname = \"a\"\nsql = \"INSERT INTO nowhere SELECT FROM\"\n",
        "analytics[0].sql",
        3,
        "SQL",
    );
}

#[test]
fn analytics_sql_file_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("avg.sql"), ANALYTICS_SQL).unwrap();
    let file = dir.path().join("kinedge.toml");
    std::fs::write(
        &file,
        "[[analytics]]\nname = \"a\"\nsql_file = \"avg.sql\"\n",
    )
    .unwrap();
    let config = Config::load(&file).unwrap();
    assert_eq!(config.analytics[0].sql, ANALYTICS_SQL);
    std::fs::remove_file(dir.path().join("avg.sql")).unwrap();
    let errors = Config::load(&file).unwrap_err();
    assert_eq!(errors.issues.len(), 1, "{errors}");
    assert_eq!(errors.issues[0].key, "analytics[0].sql_file");
    assert_eq!(errors.issues[0].line, Some(3));
}
