//! A loopback RTSP camera for tests and benchmarks: a real gst-rtsp-server on 127.0.0.1 that
//! serves either a live test pattern encoded on the fly (H.264 with x264, H.265 with x265) or a
//! pre-encoded MPEG-TS file, looped forever and paced in real time, optionally behind RTSP
//! basic authentication.
//!
//! When it is ready it prints one line, `rtsp://127.0.0.1:PORT/MOUNT`, and then serves until
//! it is killed (SIGTERM / SIGKILL).
//!
//! `cargo run --features test-camera --example test_camera -- [--port N] [--codec h264|h265]
//! [--width W --height H --fps F --bitrate-kbps K --key-int N] [--file PATH.ts]
//! [--user U --password P] [--mount /cam]`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use gst::glib;
use gst_rtsp_server::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Codec {
    H264,
    H265,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        }
    }

    fn encoder(self) -> &'static str {
        match self {
            Codec::H264 => "x264enc",
            Codec::H265 => "x265enc",
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Loopback RTSP test camera (gst-rtsp-server on 127.0.0.1)")]
struct Args {
    /// TCP port for RTSP; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, value_enum, default_value_t = Codec::H264)]
    codec: Codec,
    #[arg(long, default_value_t = 640)]
    width: u32,
    #[arg(long, default_value_t = 480)]
    height: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    #[arg(long, default_value_t = 1000)]
    bitrate_kbps: u32,
    /// Frames between keyframes; default: one keyframe per second.
    #[arg(long)]
    key_int: Option<u32>,
    /// Serve this pre-encoded MPEG-TS file (in --codec) instead of encoding: no encoder runs,
    /// the file loops forever and is paced in real time; each client gets it from the start.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Require RTSP basic authentication with this user name (needs --password).
    #[arg(long, requires = "password")]
    user: Option<String>,
    #[arg(long, requires = "user")]
    password: Option<String>,
    #[arg(long, default_value = "/cam")]
    mount: String,
}

/// The media factory's launch line: source, then the codec's parser and RTP payloader.
fn launch_line(args: &Args) -> Result<String, String> {
    let codec = args.codec.name();
    let tail = format!("{codec}parse ! rtp{codec}pay name=pay0 pt=96 config-interval=-1");
    if let Some(file) = &args.file {
        return Ok(format!(
            "( multifilesrc location={} loop=true ! tsdemux ! {tail} )",
            launch_path(file)?
        ));
    }
    let encoder = args.codec.encoder();
    if gst::ElementFactory::find(encoder).is_none() {
        return Err(format!(
            "the GStreamer element {encoder} is missing: install the plugin that provides it \
             (gstreamer1.0-plugins-bad for x265enc, gstreamer1.0-plugins-ugly for x264enc)"
        ));
    }
    let key_int = args.key_int.unwrap_or(args.fps).max(1);
    // format=I420: from videotestsrc's default formats x264 would pick High 4:4:4.
    Ok(format!(
        "( videotestsrc is-live=true pattern=ball \
         ! video/x-raw,format=I420,width={},height={},framerate={}/1 \
         ! {encoder} key-int-max={key_int} tune=zerolatency speed-preset=ultrafast bitrate={} \
         ! {tail} )",
        args.width, args.height, args.fps, args.bitrate_kbps
    ))
}

/// `path` quoted for a launch line; multifilesrc reads `%` as a printf pattern, so it is refused
/// like a double quote.
fn launch_path(path: &Path) -> Result<String, String> {
    if !path.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    let absolute = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = absolute
        .to_str()
        .filter(|t| !t.contains(['"', '%', '\\']))
        .ok_or_else(|| {
            format!(
                "{}: the path must be UTF-8 without '\"', '%' or '\\'",
                absolute.display()
            )
        })?;
    Ok(format!("\"{text}\""))
}

/// Only clients that log in as `user` / `password` may use the factory.
fn require_basic_auth(
    server: &gst_rtsp_server::RTSPServer,
    factory: &gst_rtsp_server::RTSPMediaFactory,
    user: &str,
    password: &str,
) {
    const ROLE: &str = "viewer";
    let auth = gst_rtsp_server::RTSPAuth::new();
    let token = gst_rtsp_server::RTSPToken::builder()
        .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        .build();
    let basic = gst_rtsp_server::RTSPAuth::make_basic(user, password);
    auth.add_basic(basic.as_str(), &token);
    server.set_auth(Some(&auth));
    factory.add_role_from_structure(
        &gst::Structure::builder(ROLE)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
            .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
            .build(),
    );
}

fn serve(args: &Args) -> Result<(), String> {
    gst::init().map_err(|e| format!("GStreamer: {e}"))?;
    if !args.mount.starts_with('/') {
        return Err(format!("--mount must start with '/': {}", args.mount));
    }
    let launch = launch_line(args)?;

    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&args.port.to_string());
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(&launch);
    // A live source: one pipeline for all clients, so a test reader and the gateway see the
    // same stream. A file: one pipeline per client, from the start of the file. Shared, a file's
    // media is not live, so a second client's PLAY (npt=0-) seeks it; the seek fails (a looping
    // source) and leaves the media in error for every client (503).
    factory.set_shared(args.file.is_none());
    if let (Some(user), Some(password)) = (&args.user, &args.password) {
        require_basic_auth(&server, &factory, user, password);
    }
    let mounts = server
        .mount_points()
        .ok_or("the RTSP server has no mount points")?;
    mounts.add_factory(&args.mount, factory);

    let context = glib::MainContext::new();
    server
        .attach(Some(&context))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let port = server.bound_port();
    if port <= 0 {
        return Err(format!("cannot listen on 127.0.0.1:{}", args.port));
    }

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "rtsp://127.0.0.1:{port}{}", args.mount)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    drop(stdout);

    glib::MainLoop::new(Some(&context), false).run();
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("test_camera: {message}");
            ExitCode::FAILURE
        }
    }
}
